"""The SAFEGUARD desk over HTTP: requests and decisions, deferred actions, live levels, the audit log.

Responses say what happens next in plain words. Every decision is taken by widip.functions.safeguard
(the gate and its state transitions); these resources only authenticate, validate and translate.
"""

from __future__ import annotations

from datetime import datetime

from widip.messaging.relay import flush_outbox
from widip.errors import Invalid, NotFound
from widip.functions import db
from widip.functions.safeguard import audit, calls, deferred
from widip.functions.safeguard.policy import LEVELS, list_config, policy_for, set_level
from widip.http.auth import require_user
from widip.http.openapi_doc import error, json_response, operation
from widip.http.validation import ROW_ID, query_choice, query_datetime, query_text, read_json

COMMENT = {"type": "object", "additionalProperties": False, "properties": {"comment": {"type": "string", "maxLength": 2000}}}
REASON = {"type": "object", "additionalProperties": False, "required": ["reason"],
          "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 2000}}}
SCHEDULE = {"type": "object", "additionalProperties": False, "required": ["run_at"],
            "properties": {"run_at": {"type": "string", "format": "date-time", "maxLength": 64}}}
LEVEL_CHANGE = {"type": "object", "additionalProperties": False, "required": ["level", "reason"],
                "properties": {"level": {"enum": list(LEVELS)}, "reason": {"type": "string", "minLength": 3, "maxLength": 500},
                               "persona": {"enum": ["", "sentinel", "notificateur", "assist", "wibot"]}}}
_ID = [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}]


def _op(summary, op_id, responses, body=None, params=None):
    return operation(summary, op_id, responses, body=body, params=params)


OPENAPI_PATHS = {
    "/safeguard/requests": {"get": _op("Approval requests (N1+)", "listRequests", {"200": json_response("requests"),
                                       "400": error("bad status")}, params=[{"name": "status", "in": "query",
                                       "schema": {"enum": ["pending", "approved", "rejected", "expired"]}}])},
    "/safeguard/requests/{item_id}": {"get": _op("One request", "getRequest", {
        "200": json_response("the request"), "404": error("no such request")}, params=_ID)},
    "/safeguard/requests/{item_id}/approve": {"post": _op("Approve (N3+, not your own request)", "approveRequest", {
        "200": json_response("approved; the action is queued"), "400": error("invalid body"),
        "404": error("no such request"), "409": error("already decided or expired")}, COMMENT, _ID)},
    "/safeguard/requests/{item_id}/reject": {"post": _op("Reject with a reason (N3+)", "rejectRequest", {
        "200": json_response("rejected"), "400": error("invalid body"), "404": error("no such request"),
        "409": error("already decided or expired")}, REASON, _ID)},
    "/safeguard/deferred": {"get": _op("Deferred human-only (L4) actions (N3+)", "listDeferred",
                                       {"200": json_response("deferred actions")})},
    "/safeguard/deferred/{item_id}/schedule": {"post": _op("Schedule 24–48 h ahead (N4, not your own)", "scheduleDeferred", {
        "200": json_response("scheduled"), "400": error("bad run_at"), "404": error("no such action"),
        "409": error("already decided")}, SCHEDULE, _ID)},
    "/safeguard/deferred/{item_id}/cancel": {"post": _op("Cancel until it runs (N4)", "cancelDeferred", {
        "200": json_response("cancelled"), "400": error("invalid body"), "404": error("no such action"),
        "409": error("already ran or decided")}, COMMENT, _ID)},
    "/safeguard/deferred/{item_id}/refuse": {"post": _op("Refuse (N4)", "refuseDeferred", {
        "200": json_response("refused"), "400": error("invalid body"), "404": error("no such action"),
        "409": error("already decided")}, REASON, _ID)},
    "/safeguard/config": {"get": _op("Live SAFEGUARD levels (N1+)", "getSafeguardConfig", {"200": json_response("levels")})},
    "/safeguard/config/{tool}": {"put": _op("Change a tool's level (N4, audited)", "putSafeguardLevel", {
        "200": json_response("changed"), "400": error("invalid body"), "404": error("unknown tool")}, LEVEL_CHANGE,
        [{"name": "tool", "in": "path", "required": True, "schema": {"type": "string"}}])},
    "/safeguard/audit": {"get": _op("The audit log, newest first (N3+)", "getAudit", {
        "200": json_response("audit rows"), "400": error("bad filter")}, params=[
        {"name": "tool", "in": "query", "schema": {"type": "string"}},
        {"name": "user", "in": "query", "schema": {"type": "string"}},
        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}}])},
}


class _Base:
    def __init__(self, ctx):
        self._ctx = ctx
        self._policy = policy_for(ctx.settings)


class Requests(_Base):
    def on_get(self, req, resp):
        reader = require_user(req, 1)
        status = query_choice(req, "status", ("pending", "approved", "rejected", "expired"))
        with db.transaction(self._ctx.pool) as conn:
            rows = [r for r in calls.list_requests(conn, status) if calls.visible_to(r, reader)]
        resp.media = {"requests": rows}

    def on_get_one(self, req, resp, item_id):
        reader = require_user(req, 1)
        with db.transaction(self._ctx.pool) as conn:
            request = calls.get_request(conn, item_id)
        if not calls.visible_to(request, reader):
            raise NotFound(f"no SAFEGUARD request {item_id}")
        resp.media = request

    def on_post_approve(self, req, resp, item_id):
        approver = require_user(req, 1)
        body = read_json(req, COMMENT) if req.content_length else {}
        with db.transaction(self._ctx.pool) as conn:
            request = calls.approve(conn, item_id, approver, self._policy, body.get("comment", ""))
        flush_outbox()
        resp.media = {**request, "next": f"approved: {request['tool_name']} is queued to run now"}

    def on_post_reject(self, req, resp, item_id):
        approver = require_user(req, 1)
        body = read_json(req, REASON)
        with db.transaction(self._ctx.pool) as conn:
            request = calls.reject(conn, item_id, approver, self._policy, body["reason"])
        flush_outbox()
        resp.media = {**request, "next": "rejected: the action will not run; the agent is told why"}


class Deferred(_Base):
    def on_get(self, req, resp):
        require_user(req, 3)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = {"deferred": deferred.list_deferred(conn, query_choice(req, "status", deferred.STATUSES))}

    def on_post_schedule(self, req, resp, item_id):
        human = require_user(req, 1)
        body = read_json(req, SCHEDULE)
        try:
            run_at = datetime.fromisoformat(body["run_at"])
        except ValueError:
            raise Invalid("run_at must be an ISO 8601 date-time with a timezone") from None
        with db.transaction(self._ctx.pool) as conn:
            row = deferred.schedule(conn, item_id, human, self._policy, run_at)
        resp.media = {**row, "next": f"will run at {row['run_at'].isoformat()} unless cancelled"}

    def on_post_cancel(self, req, resp, item_id):
        human = require_user(req, 1)
        body = read_json(req, COMMENT) if req.content_length else {}
        with db.transaction(self._ctx.pool) as conn:
            row = deferred.cancel(conn, item_id, human, self._policy, body.get("comment", ""))
        resp.media = {**row, "next": "cancelled: it will not run"}

    def on_post_refuse(self, req, resp, item_id):
        human = require_user(req, 1)
        body = read_json(req, REASON)
        with db.transaction(self._ctx.pool) as conn:
            row = deferred.refuse(conn, item_id, human, self._policy, body["reason"])
        resp.media = {**row, "next": "refused: it will not run"}


class Config(_Base):
    def on_get(self, req, resp):
        require_user(req, 1)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = {"levels": list_config(conn)}

    def on_put_tool(self, req, resp, tool):
        admin = require_user(req, 4)
        body = read_json(req, LEVEL_CHANGE)
        persona = body.get("persona", "")
        with db.transaction(self._ctx.pool) as conn:
            row = set_level(conn, tool, persona, body["level"], reason=body["reason"], changed_by=admin.username)
            audit.record(conn, actor=f"human:{admin.username}", actor_user_id=admin.user_id, action="config_changed",
                         tool_name=tool, level=body["level"], outcome=f"{row['previous_level']} -> {body['level']}",
                         reason=body["reason"] + (f" (persona {persona})" if persona else ""))
        resp.media = {**row, "next": f"{tool} is now {body['level']} for new calls"}


class Audit(_Base):
    def on_get(self, req, resp):
        require_user(req, 3)
        since = query_datetime(req, "since")
        with db.transaction(self._ctx.pool) as conn:
            rows = audit.search(conn, tool=query_text(req, "tool"), user=query_text(req, "user"), since=since)
        resp.media = {"audit": rows}


def register(app, ctx):
    requests = Requests(ctx)
    app.add_route("/safeguard/requests", requests)
    app.add_route(f"/safeguard/requests/{{item_id:{ROW_ID}}}", requests, suffix="one")
    app.add_route(f"/safeguard/requests/{{item_id:{ROW_ID}}}/approve", requests, suffix="approve")
    app.add_route(f"/safeguard/requests/{{item_id:{ROW_ID}}}/reject", requests, suffix="reject")
    actions = Deferred(ctx)
    app.add_route("/safeguard/deferred", actions)
    app.add_route(f"/safeguard/deferred/{{item_id:{ROW_ID}}}/schedule", actions, suffix="schedule")
    app.add_route(f"/safeguard/deferred/{{item_id:{ROW_ID}}}/cancel", actions, suffix="cancel")
    app.add_route(f"/safeguard/deferred/{{item_id:{ROW_ID}}}/refuse", actions, suffix="refuse")
    config = Config(ctx)
    app.add_route("/safeguard/config", config)
    app.add_route("/safeguard/config/{tool}", config, suffix="tool")
    app.add_route("/safeguard/audit", Audit(ctx))
