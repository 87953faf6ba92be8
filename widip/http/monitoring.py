"""GET /monitoring (N1+): integrations, GLPI health, queues, outbox, approvals, devices down."""

from __future__ import annotations

from widip.functions import monitoring
from widip.http.auth import require_user
from widip.http.openapi_doc import error, json_response

MIN_LEVEL = 1

MONITORING_SCHEMA = {
    "type": "object",
    "required": ["generated_at", "integrations", "glpi", "queues", "outbox", "approvals", "devices_down", "problems"],
    "properties": {
        "generated_at": {"type": "number", "description": "epoch seconds"},
        "integrations": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["status"],
            "properties": {"status": {"enum": ["ok", "degraded", "down", "unknown"]},
                           "last_error": {"type": ["string", "null"]},
                           "last_success_at": {"type": ["number", "null"]},
                           "window_size": {"type": "integer"}, "window_failures": {"type": "integer"}}}},
        "glpi": {"type": "object", "required": ["status", "history"],
                 "properties": {"status": {"enum": ["ok", "degraded", "down", "unknown"]},
                                "effective_status": {"enum": ["ok", "degraded", "down"]},
                                "last_probe": {"type": ["object", "null"]},
                                "history": {"type": "object", "description": "last 24 h of probes"}}},
        "queues": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"waiting": {"type": "integer"}, "in_progress": {"type": "integer"},
                                             "delayed": {"type": "integer"}, "dead_lettered": {"type": "integer"},
                                             "oldest_message_age_seconds": {"type": ["number", "null"]}}}},
        "outbox": {"type": "object", "required": ["pending", "failed", "stale"]},
        "approvals": {"type": "object", "required": ["pending"]},
        "devices_down": {"type": "array", "items": {"type": "object"}},
        "scheduler": {"type": "object"},
        "sentinel": {"type": "object"}, "assist": {"type": "object"},
        "problems": {"type": "array", "items": {"type": "object", "required": ["severity", "what"],
                                                "properties": {"severity": {"enum": ["error", "warning"]},
                                                               "what": {"type": "string"}}}},
    },
}

OPENAPI_PATHS = {
    "/monitoring": {"get": {
        "summary": "Operations snapshot: integration statuses, GLPI health (24 h), queues, outbox, approvals, "
                   "devices down, last Sentinel tick and Assist cycle (N1+)",
        "operationId": "getMonitoring", "security": [{"bearer": []}],
        "responses": {"200": json_response("the snapshot", MONITORING_SCHEMA),
                      "401": error("missing, expired or revoked bearer token"),
                      "403": error("requires accreditation N1"),
                      "503": error("PostgreSQL or Redis unavailable")},
    }},
}


class Monitoring:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp):
        require_user(req, MIN_LEVEL)
        resp.media = monitoring.snapshot(self._ctx.pool, self._ctx.redis)
        resp.set_header("Cache-Control", "no-store")


def register(app, ctx):
    # Integration outcomes are recorded in this process too: build_context installs the listener.
    app.add_route("/monitoring", Monitoring(ctx))
