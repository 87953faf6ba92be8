"""The tool registry over HTTP: list tools (name, description, schema, level) and call one as a human.

A human's direct call passes the same gate as an agent's, with the human's own accreditation.
"""

from __future__ import annotations

import falcon

from widip.errors import Invalid
from widip.functions import db
from widip.functions.safeguard import audit
from widip.functions.safeguard.direct import propose_direct
from widip.functions.safeguard.policy import level_for, policy_for
from widip.functions.tools import all_tools
from widip.http.auth import require_user
from widip.http.openapi_doc import error, json_response
from widip.http.validation import read_json
from widip.messaging.relay import flush_outbox

SECURED = [{"bearer": []}]
OPENAPI_PATHS = {
    "/tools": {"get": {"summary": "Every tool: name, system, description, argument schema and live level (N1+)",
                       "operationId": "listTools", "security": SECURED,
                       "responses": {"200": json_response("tools"), "401": error("not logged in"),
                                     "403": error("N0")}}},
    "/tools/{name}": {"post": {
        "summary": "Call a tool as a human, through the SAFEGUARD gate (200 with the call, or 202 with what waits)",
        "operationId": "callTool", "security": SECURED,
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": json_response("accepted to run now; poll the call"), "202": json_response("waiting"),
                      "400": error("invalid arguments"), "401": error("not logged in"),
                      "403": error("refused by SAFEGUARD"), "404": error("unknown tool")}}},
    "/tools/calls/{call_id}": {"get": {
        "summary": "A tool call's status and result (its caller or N3+)", "operationId": "getToolCall",
        "security": SECURED, "parameters": [{"name": "call_id", "in": "path", "required": True,
                                              "schema": {"type": "string"}}],
        "responses": {"200": json_response("the call"), "401": error("not logged in"), "404": error("no such call")}}},
}

_NEXT = {
    "ready": "queued to run now",
    "waiting_approval": "approval required from N{approve}; request {request_id}",
    "deferred": "human-only action: an N4 must schedule it 24–48 h ahead (deferred action created)",
    "refused": "refused: {reason}",
}


def call_view(call: dict) -> dict:
    return {"call_id": str(call["id"]), "tool": call["tool_name"], "status": call["status"], "level": call["level"],
            "decision": call["decision"], "request_id": call["request_id"], "result": call["result"],
            "error": call["error"], "created_at": call["created_at"].isoformat(),
            "finished_at": call["finished_at"].isoformat() if call["finished_at"] else None}


class Tools:
    def __init__(self, ctx):
        self._ctx = ctx
        self._policy = policy_for(ctx.settings)

    def on_get(self, req, resp):
        require_user(req, 1)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = {"tools": [{**t.describe(), "level": level_for(conn, t.name, None)} for t in all_tools()]}

    def on_post_call(self, req, resp, name):
        human = require_user(req, 1)
        try:
            arguments = read_json(req, {"type": "object"}, storable=False)
        except Invalid as exc:
            self._audit_refusal(human, name, exc)
            raise
        call = propose_direct(self._ctx.pool, self._ctx.settings, human, name, arguments)
        if call["status"] == "refused":
            resp.status = falcon.HTTP_403
            resp.media = {"title": "Refusé par SAFEGUARD", "description": call.get("decision_reason", "refused"),
                          **call_view(call)}
            return
        flush_outbox()
        resp.status = falcon.HTTP_200 if call["status"] == "ready" else falcon.HTTP_202
        resp.location = f"/tools/calls/{call['id']}"
        resp.media = {**call_view(call), "next": _NEXT[call["status"]].format(
            approve=self._policy.approve.get(call["level"], 4), request_id=call["request_id"],
            reason=call.get("decision_reason"))}

    def _audit_refusal(self, human, name: str, exc) -> None:
        """A body that cannot even be read never reaches the gate: audit its refusal here (the gate
        audits every other refusal itself)."""
        with db.transaction(self._ctx.pool) as conn:
            audit.record(conn, actor=human.label, actor_user_id=human.user_id, action="refused",
                         tool_name=name[:100], outcome="invalid", reason=exc.message)

    def on_get_one(self, req, resp, call_id):
        reader = require_user(req, 0)
        with db.transaction(self._ctx.pool) as conn:
            row = conn.execute("SELECT * FROM tool_calls WHERE id::text = %s", (call_id,)).fetchone()
        requester = row and row["requester_user_id"]
        if row is None or (reader.accreditation < 3 and requester != reader.user_id):
            raise falcon.HTTPNotFound(title="Introuvable", description=f"no tool call {call_id[:64]}")
        resp.media = call_view(row)


def register(app, ctx):
    tools = Tools(ctx)
    app.add_route("/tools", tools)
    app.add_route("/tools/calls/{call_id}", tools, suffix="one")
    app.add_route("/tools/{name}", tools, suffix="call")
