"""Assist over HTTP: run a cycle now (N3+), and what Assist did per ticket and per cycle (N1+)."""

from __future__ import annotations


from widip.functions import db, job_table
from widip.functions.assist import records
from widip.http.auth import require_user
from widip.http.jobs import BROKER_UNAVAILABLE, accept_job
from widip.http.openapi_doc import error, json_response, operation

_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}

OPENAPI_PATHS = {
    "/assist/cycles": {
        "post": operation("Run one Assist cycle now (N3+); ASSIST_ENABLED=false makes it a no-op",
                          "postAssistCycle", {"202": json_response("queued; poll Location"),
                                              "503": BROKER_UNAVAILABLE}),
        "get": operation("Assist cycles, newest first: the widip_agent_logs rows (N1+)", "listAssistCycles",
                         {"200": json_response("cycles"), "400": error("bad limit")}, params=[_LIMIT])},
    "/assist/tickets": {"get": operation(
        "What Assist decided and did per ticket: category, decision, reason, actions, outcome, session (N1+)",
        "listAssistTickets", {"200": json_response("tickets"), "400": error("bad filter")},
        params=[_LIMIT, {"name": "decision", "in": "query", "schema": {"enum": list(records.DECISIONS)}}])},
}


class Cycles:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_post(self, req, resp):
        require_user(req, 3)
        accept_job(resp, self._ctx.pool, job_table.RUN_ASSIST_CYCLE, "assist_cycle", {})

    def on_get(self, req, resp):
        require_user(req, 1)
        limit = req.get_param_as_int("limit", min_value=1, max_value=500, default=50)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = {"cycles": records.list_cycles(conn, limit=limit)}


class Tickets:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp):
        require_user(req, 1)
        limit = req.get_param_as_int("limit", min_value=1, max_value=500, default=100)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = {"tickets": records.list_tickets(conn, decision=req.get_param("decision"), limit=limit)}


def register(app, ctx):
    app.add_route("/assist/cycles", Cycles(ctx))
    app.add_route("/assist/tickets", Tickets(ctx))
