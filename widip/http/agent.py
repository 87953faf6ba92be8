"""Agent sessions over HTTP: start a WIBOT session, follow its status and poll its events."""

from __future__ import annotations

import falcon

from widip.messaging.relay import flush_outbox
from widip.functions import db, job_table, outbox
from widip.functions.agent import sessions
from widip.functions.callers import Caller
from widip.functions.integrations import secret_links
from widip.http.auth import require_user
from widip.http.openapi_doc import error, json_body, json_response
from widip.http.validation import read_json

START_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["message"],
                "properties": {"message": {"type": "string", "minLength": 1, "maxLength": 8000}}}
#: A passage an answer cites: the id in its text ("[doc12-3f2a9c1b]") and what to link it to.
CITATION_SCHEMA = {"type": "object", "required": ["citation"], "properties": {
    "citation": {"type": "string"}, "document_id": {"type": ["integer", "null"]}, "title": {"type": ["string", "null"]},
    "heading": {"type": ["string", "null"]}, "source": {"type": ["string", "null"]}}}
#: One event (docs/architecture.md §7); `citations` is on a `response` that quotes the documentation.
EVENT_SCHEMA = {"type": "object", "required": ["seq", "type", "session_id", "at"], "properties": {
    "seq": {"type": "integer"}, "type": {"type": "string"}, "session_id": {"type": "string"},
    "at": {"type": "string"}, "message": {"type": "string"}, "tool": {"type": "string"},
    "citations": {"type": "array", "items": CITATION_SCHEMA}}}
SESSION_PARAM = [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}]
SECURED = [{"bearer": []}]
OPENAPI_PATHS = {
    "/agent/sessions": {"post": {
        "summary": "Start a WIBOT agent session acting with the caller's rights (N1+)", "operationId": "startSession",
        "security": SECURED, "requestBody": json_body(START_SCHEMA),
        "responses": {"202": json_response("started; poll Location and its /events"), "400": error("invalid body"),
                      "401": error("not logged in"), "403": error("accreditation too low")}}},
    "/agent/sessions/{session_id}": {"get": {
        "summary": "A session's status, persona and pending approval (owner or N3+)", "operationId": "getSession",
        "security": SECURED, "parameters": SESSION_PARAM,
        "responses": {"200": json_response("the session"), "401": error("not logged in"),
                      "403": error("not yours"), "404": error("no such session")}}},
    "/agent/sessions/{session_id}/events": {"get": {
        "summary": "Ordered events after a sequence number (owner or N3+)", "operationId": "getSessionEvents",
        "security": SECURED,
        "parameters": SESSION_PARAM + [{"name": "after", "in": "query", "required": False,
                                        "schema": {"type": "integer", "minimum": 0}}],
        "responses": {"200": json_response("events", {"type": "object", "properties": {
            "events": {"type": "array", "items": EVENT_SCHEMA}, "status": {"type": "string"}}}),
            "400": error("bad parameter"), "401": error("not logged in"), "403": error("not yours"),
            "404": error("no such session")}}},
}


class Sessions:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_post(self, req, resp):
        user = require_user(req, 1)
        body = read_json(req, START_SCHEMA)
        # The assistant carries the user's accreditation: the gate never lets it exceed the user's rights.
        agent = Caller(kind="ai", username="wibot", persona="wibot", on_behalf_of=user.user_id,
                       accreditation=user.accreditation)
        with db.transaction(self._ctx.pool) as conn:
            session = sessions.create_session(conn, "wibot", agent, body["message"])
            outbox.add(conn, job_table.CONTINUE_SESSION, {"session_id": str(session["id"])},
                       dedup_key=f"start:{session['id']}")
        flush_outbox()
        sid = str(session["id"])
        resp.status = falcon.HTTP_202
        resp.location = f"/agent/sessions/{sid}"
        resp.media = {"session_id": sid, "status": session["status"], "events": f"/agent/sessions/{sid}/events"}


class Session:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp, session_id):
        reader = require_user(req)
        with db.transaction(self._ctx.pool) as conn:
            session = sessions.get_session(conn, session_id)
            sessions.check_reader(session, reader)
        resp.media = secret_links.for_reader(None, sessions.public_view(session), owner=False)

    def on_get_events(self, req, resp, session_id):
        reader = require_user(req)
        after = req.get_param_as_int("after", min_value=0, default=0)
        with db.transaction(self._ctx.pool) as conn:
            session = sessions.get_session(conn, session_id)
            sessions.check_reader(session, reader)
            events = sessions.events_after(conn, session_id, after)
        # A secret link appears once, in its owner's chat; everyone else (approvers included) sees it masked.
        owner = reader.user_id is not None and session["owner_user_id"] == reader.user_id
        events = secret_links.for_reader(secret_links.SecretLinkStore(self._ctx.redis), events, owner=owner)
        resp.media = {"session_id": session_id, "status": session["status"], "events": events,
                      "next_after": events[-1]["seq"] if events else after}


def register(app, ctx):
    app.add_route("/agent/sessions", Sessions(ctx))
    session = Session(ctx)
    app.add_route("/agent/sessions/{session_id}", session)
    app.add_route("/agent/sessions/{session_id}/events", session, suffix="events")
