"""Cross-cutting HTTP concerns: a request id on every response and every log line."""

from __future__ import annotations

import re
import uuid

from widip.logs import request_id_var

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestId:
    """Reuses a sane incoming X-Request-ID (from a proxy) or makes one; echoes it back."""

    def process_request(self, req, resp):
        incoming = req.get_header("X-Request-ID") or ""
        rid = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        req.context.request_id = rid
        request_id_var.set(rid)

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Request-ID", getattr(req.context, "request_id", request_id_var.get()))
