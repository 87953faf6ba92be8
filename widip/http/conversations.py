"""WIBOT conversations over HTTP: mine only; each message starts a turn whose events are polled."""

from __future__ import annotations

import falcon

from widip.messaging.relay import flush_outbox
from widip.functions import db
from widip.functions.wibot import conversations
from widip.http.auth import require_user
from widip.http.openapi_doc import error, json_response, operation
from widip.http.validation import read_json

#: Accreditation to chat with WIBOT (as for agent sessions).
CHAT_LEVEL = 1
CREATE_SCHEMA = {"type": "object", "additionalProperties": False,
                 "properties": {"title": {"type": "string", "maxLength": 200}}}
MESSAGE_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["content"],
                  "properties": {"content": {"type": "string", "minLength": 1, "maxLength": 8000}}}
TURN_SCHEMA = {"type": "object", "required": ["session_id", "events_url"],
               "properties": {"session_id": {"type": "string"}, "events_url": {"type": "string"}}}
ID = [{"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}]
OPENAPI_PATHS = {
    "/conversations": {
        "post": operation("Start a WIBOT conversation (N1+)", "createConversation",
                          {"201": json_response("the conversation"), "400": error("invalid body")},
                          body=CREATE_SCHEMA),
        "get": operation("My conversations, newest activity first", "listConversations",
                         {"200": json_response("conversations")})},
    "/conversations/{conversation_id}": {
        "delete": operation("Delete my conversation and what its turns recorded (GDPR)", "deleteConversation",
                            {"204": {"description": "deleted"}, "404": error("no such conversation of mine")},
                            params=ID)},
    "/conversations/{conversation_id}/messages": {
        "get": operation("The conversation's messages, answers with their citations", "listMessages",
                         {"200": json_response("messages"), "404": error("no such conversation of mine")},
                         params=ID),
        "post": operation("Send a message: starts a wibot session; poll events_url", "postMessage",
                          {"202": json_response("turn started", TURN_SCHEMA), "400": error("invalid body"),
                           "404": error("no such conversation of mine"),
                           "409": error("the previous turn is still running")},
                          body=MESSAGE_SCHEMA, params=ID)},
}


class Conversations:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_post(self, req, resp):
        user = require_user(req, CHAT_LEVEL)
        body = read_json(req, CREATE_SCHEMA) if req.content_length else {}
        with db.transaction(self._ctx.pool) as conn:
            row = conversations.create(conn, user, body.get("title"))
        resp.status = falcon.HTTP_201
        resp.location = f"/conversations/{row['id']}/messages"
        resp.media = conversations.public_view(row)

    def on_get(self, req, resp):
        user = require_user(req, CHAT_LEVEL)
        with db.transaction(self._ctx.pool) as conn:
            rows = conversations.list_mine(conn, user)
        resp.media = {"conversations": [conversations.public_view(r) for r in rows]}


class Conversation:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_delete(self, req, resp, conversation_id):
        user = require_user(req, CHAT_LEVEL)
        with db.transaction(self._ctx.pool) as conn:
            conversations.delete(conn, conversation_id, user)
        resp.status = falcon.HTTP_204

    def on_get_messages(self, req, resp, conversation_id):
        user = require_user(req, CHAT_LEVEL)
        with db.transaction(self._ctx.pool) as conn:
            row = conversations.sync_answers(conn, conversations.get_owned(conn, conversation_id, user, lock=True))
            messages = conversations.messages(conn, row["id"])
        resp.media = {"conversation": conversations.public_view(row), "messages": messages}

    def on_post_messages(self, req, resp, conversation_id):
        user = require_user(req, CHAT_LEVEL)
        body = read_json(req, MESSAGE_SCHEMA)
        with db.transaction(self._ctx.pool) as conn:
            turn = conversations.post_message(conn, conversation_id, user, body["content"], self._ctx.settings)
        flush_outbox()
        resp.status = falcon.HTTP_202
        resp.location = turn["events_url"]
        resp.media = turn


def register(app, ctx):
    app.add_route("/conversations", Conversations(ctx))
    one = Conversation(ctx)
    app.add_route("/conversations/{conversation_id}", one)
    app.add_route("/conversations/{conversation_id}/messages", one, suffix="messages")
