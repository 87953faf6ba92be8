"""Request-body and parameter validation with JSON Schema: one clear 400 naming what is wrong."""

from __future__ import annotations

import json

import falcon
from jsonschema import Draft202012Validator

from widip.errors import Invalid


#: Largest JSON body accepted (alerts and chat messages are far smaller).
MAX_BODY_BYTES = 1024 * 1024


def read_json(req: falcon.Request, schema: dict) -> dict:
    """The request's body parsed as JSON (whatever Content-Type a curl user sent), validated against
    `schema`; raise Invalid saying which field is wrong."""
    if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
        raise Invalid(f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if not raw.strip():
        raise Invalid("a JSON body is required")
    if len(raw) > MAX_BODY_BYTES:
        raise Invalid(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("the body is not valid JSON") from None
    check(body, schema)
    return body


def check(value, schema: dict, what: str = "body") -> None:
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or what
        raise Invalid(f"{where}: {first.message}")

