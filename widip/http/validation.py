"""Request-body and parameter validation with JSON Schema: one clear 400 naming what is wrong."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import falcon
from falcon.util.uri import parse_query_string

from widip.errors import Invalid
from widip.functions import untrusted


#: Largest JSON body accepted (alerts and chat messages are far smaller).
MAX_BODY_BYTES = 1024 * 1024
#: Largest id PostgreSQL's bigint keys hold.
BIGINT_MAX = 2**63 - 1
#: Falcon route converter for a bigint primary key in a path, `{item_id:ROW_ID}`: anything else
#: (text, 0, negative, too large) matches no route, so Falcon answers 404 before any SQL runs.
ROW_ID = f"int(min=1, max={BIGINT_MAX})"
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def read_json(req: falcon.Request, schema: dict, *, storable: bool = True):
    """The request's body parsed as JSON (whatever Content-Type a curl user sent), validated against
    `schema`; raise Invalid saying which field is wrong. Hostile shapes (nesting deeper than
    untrusted.MAX_DEPTH, NUL bytes, lone surrogates) are refused here, before any code recurses into
    them or PostgreSQL chokes on them; `storable=False` leaves the last two to a caller that must
    audit the refusal itself (tool calls)."""
    if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
        raise Invalid(f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if not raw.strip():
        raise Invalid("a JSON body is required")
    if len(raw) > MAX_BODY_BYTES:
        raise Invalid(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except RecursionError:
        raise Invalid(f"the body is nested deeper than {untrusted.MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise Invalid("the body is not valid JSON") from None
    trouble = untrusted.problem(body, max_depth=untrusted.MAX_DEPTH, strings=untrusted.may_decode_unstorable(raw))
    if trouble and (storable or trouble.startswith("nested")):
        raise Invalid(trouble if not trouble.startswith("nested") else f"body: {trouble}")
    if not trouble:
        untrusted.check(body, schema)
    return body


# --- query parameters: present-but-blank or malformed is a 400, never silently ignored ----------


def query_text(req: falcon.Request, name: str, *, max_length: int = 200) -> str | None:
    """The query parameter's last value; None when absent; Invalid when blank, too long or unstorable."""
    values = parse_query_string(req.query_string or "", keep_blank=True, csv=False).get(name)
    if values is None:
        return None
    value = values[-1] if isinstance(values, list) else values
    if not value.strip():
        raise Invalid(f"query parameter {name} is empty; omit it or give a value")
    if len(value) > max_length or untrusted.problem(value):
        raise Invalid(f"query parameter {name} is invalid")
    return value


def query_bool(req: falcon.Request, name: str, default: bool = False) -> bool:
    value = query_text(req, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise Invalid(f"query parameter {name} must be true or false, got {value[:30]!r}")


def query_datetime(req: falcon.Request, name: str) -> datetime | None:
    value = query_text(req, name, max_length=64)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"query parameter {name} must be an ISO 8601 date-time, got {value[:30]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def query_choice(req: falcon.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = query_text(req, name)
    if value is not None and value not in allowed:
        raise Invalid(f"query parameter {name} must be one of {', '.join(allowed)}")
    return value
