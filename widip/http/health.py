"""GET /health (the process answers) and GET /ready (its dependencies answer)."""

from __future__ import annotations

import falcon

from widip.functions import readiness
from widip.http.openapi_doc import json_response

OPENAPI_PATHS = {
    "/health": {"get": {"summary": "Liveness: the web process answers", "operationId": "health",
                        "responses": {"200": json_response("alive", {"type": "object", "required": ["status"],
                                                                      "properties": {"status": {"const": "ok"}}})}}},
    "/ready": {"get": {"summary": "Readiness: PostgreSQL, Redis, broker and scheduler heartbeat",
                       "operationId": "ready",
                       "responses": {"200": json_response("every component is ok"),
                                     "503": json_response("some component is down; `down` names them")}}},
}


class Health:
    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


class Ready:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp):
        report = readiness.readiness(self._ctx.pool, self._ctx.redis, self._ctx.broker)
        resp.status = falcon.HTTP_200 if report["ready"] else falcon.HTTP_503
        resp.media = report


def register(app, ctx):
    app.add_route("/health", Health())
    app.add_route("/ready", Ready(ctx))
