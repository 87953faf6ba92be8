"""Sentinel over HTTP: Observium's webhook, incidents, down devices, maintenance windows, on-demand ticks.

The webhook does only what must happen before answering: authenticate, validate, persist the body
(one INSERT), try to enqueue, answer `{"status": "successful", "tracking_id": …}` — Observium's
`webhook` transport treats any other JSON answer as a failed delivery. If the broker is down the
alert is still accepted (it is in PostgreSQL; the Sentinel sweeper sends it within a minute).

Webhook credentials: Observium's `webhook-json` transport sends its token verbatim as
`Authorization: <token>` (so with or without "Bearer "), its plain `webhook` transport only has a
URL (so `?token=` is accepted too — keep such URLs out of access logs you share). Accepted tokens:
WEBHOOK_TOKEN (constant-time comparison) or a service token holding scope `webhook:observium`.
"""

from __future__ import annotations

import hmac
import json

import falcon

from widip.errors import Forbidden, Unauthorized
from widip.functions import db, identity, job_table
from widip.functions.sentinel import alerts, maintenance, pipeline, tracker, views
from widip.http.auth import require_user
from widip.http.jobs import BROKER_UNAVAILABLE, accept_job
from widip.http.openapi_doc import error, json_body, json_response, operation
from widip.http.validation import ROW_ID, query_bool, query_text, read_json
from widip.messaging import door

SCOPE = "webhook:observium"
_WINDOW_ID = [{"name": "window_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}]
WEBHOOK_REPLY = {"type": "object", "required": ["status", "tracking_id"],
                 "properties": {"status": {"const": "successful"}, "tracking_id": {"type": "string"}}}
ALERT_BODY = {"type": "object", "required": ["ALERT_ID"], "additionalProperties": True,
              "description": "Observium message tags (docs/integrations.md); unknown tags are kept",
              "properties": {k: {"type": ["string", "number", "null"]} for k in (
                  "ALERT_STATE", "ALERT_ID", "ALERT_STATUS", "ALERT_UNIXTIME", "DEVICE_ID", "DEVICE_HOSTNAME",
                  "DEVICE_LOCATION", "ENTITY_TYPE", "ENTITY_ID", "CONDITIONS", "METRICS", "DURATION", "TITLE")}}


_op = operation



OPENAPI_PATHS = {
    "/webhook/widip-alertes": {"post": {
        "summary": "Observium alert webhook (webhook / webhook-json transports): persisted, then processed",
        "operationId": "postObserviumAlert", "requestBody": json_body(ALERT_BODY),
        "parameters": [{"name": "token", "in": "query", "schema": {"type": "string"},
                        "description": "for Observium's plain webhook transport, which cannot set headers"}],
        "responses": {"200": json_response("accepted (idempotent on ALERT_ID + ALERT_STATE + time)", WEBHOOK_REPLY),
                      "400": error("not an alert: the description names the missing field"),
                      "401": error("missing or wrong token"), "403": error("token without scope webhook:observium"),
                      "503": error("database unavailable: Observium retries")}}},
    "/incidents": {"get": _op("Incidents, newest first (N1+)", "listIncidents", {
        "200": json_response("incidents and the count of alerts filtered in 24 h"), "400": error("bad filter")},
        params=[{"name": "status", "in": "query", "schema": {"enum": list(views.STATUSES)}},
                {"name": "client", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}])},
    "/incidents/{tracking_id}": {"get": _op(
        "An incident's whole story: alerts, devices, diagnosis, ticket, mails, approvals, timeline (N1+)",
        "getIncident", {"200": json_response("the story"), "404": error("unknown tracking id")},
        params=[{"name": "tracking_id", "in": "path", "required": True, "schema": {"type": "string"}}])},
    "/sentinel/devices-down": {"get": _op("Devices the tracker sees down, and the last tick (N1+)",
                                          "listDevicesDown", {"200": json_response("tracked devices")})},
    "/sentinel/ticks": {"post": _op("Run one Sentinel tick now (N3+)", "postSentinelTick", {
        "202": json_response("queued; poll Location"), "503": BROKER_UNAVAILABLE})},
    "/sentinel/maintenance-windows": {
        "get": _op("Maintenance windows and ignore rules (N1+)", "listMaintenanceWindows", {
            "200": json_response("windows"), "400": error("bad filter")},
            params=[{"name": "active", "in": "query", "schema": {"type": "boolean"}}]),
        "post": _op("Create a window (N2+); no ends_at = ignore until removed", "createMaintenanceWindow", {
            "201": json_response("created"), "400": error("invalid body")}, body=maintenance.WINDOW_SCHEMA)},
    "/sentinel/maintenance-windows/{window_id}": {
        "get": _op("One window (N1+)", "getMaintenanceWindow", {"200": json_response("the window"),
                                                              "404": error("no such window")}, params=_WINDOW_ID),
        "put": _op("Change a window (N2+)", "updateMaintenanceWindow", {
            "200": json_response("changed"), "400": error("invalid body"), "404": error("no such window")},
            body=maintenance.UPDATE_SCHEMA, params=_WINDOW_ID),
        "delete": _op("Remove a window (N2+)", "deleteMaintenanceWindow", {
            "200": json_response("removed"), "404": error("no such window")}, params=_WINDOW_ID)},
}


class Webhook:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_post(self, req, resp):
        self._authenticate(req)
        body = alerts.validate(read_json(req, {"type": "object"}))
        with db.transaction(self._ctx.pool) as conn:
            alert_id, tracking_id = alerts.accept(conn, body, claim=True)
        # Persisted first; the broker's calls are bounded (WEB_REDIS_TIMEOUT_S): with Redis frozen the
        # webhook still answers and the sweeper enqueues what is left.
        if alert_id is not None:
            alerts.hand_to_broker(self._ctx.pool, alert_id, door.send)
        resp.status = falcon.HTTP_200
        resp.media = {"status": "successful", "tracking_id": tracking_id}

    def _authenticate(self, req) -> None:
        header = (req.get_header("Authorization") or "").strip()
        verbatim = header[7:].strip() if header.lower().startswith("bearer ") else header
        tokens = [t for t in (verbatim, req.get_param("token")) if t]
        if not tokens:
            raise Unauthorized("a webhook token is required (Authorization header or ?token=)")
        expected = self._ctx.settings.webhook_token
        if expected and any(hmac.compare_digest(t.encode(), expected.encode()) for t in tokens):
            return
        caller = getattr(req.context, "caller", None)  # a Bearer service token, resolved by the middleware
        if caller is None:
            with db.transaction(self._ctx.pool) as conn:
                found = next((a for a in (identity.authenticate_token(conn, t) for t in tokens) if a), None)
            caller = found.caller if found else None
        if caller is None:
            raise Unauthorized("invalid webhook token")
        if caller.kind != "service" or SCOPE not in caller.scopes:
            raise Forbidden(f"requires WEBHOOK_TOKEN or a service token with scope {SCOPE!r}")


class Incidents:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp):
        require_user(req, 1)
        limit = req.get_param_as_int("limit", min_value=1, max_value=500, default=100)
        with db.transaction(self._ctx.pool) as conn:
            found = views.list_incidents(conn, status=query_text(req, "status"), client=query_text(req, "client"),
                                         limit=limit)
            filtered = pipeline.filtered_count(conn)
        resp.media = {"incidents": found, "filtered_last_24h": filtered}

    def on_get_one(self, req, resp, tracking_id):
        require_user(req, 1)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = views.story(conn, tracking_id[:80])


class DevicesDown:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp):
        require_user(req, 1)
        devices = tracker.tracked(self._ctx.redis)
        with db.transaction(self._ctx.pool) as conn:
            rows = conn.execute(
                "SELECT e.device_id, e.alert_call_id, c.status AS alert_call_status, c.request_id "
                "FROM device_down_episodes e LEFT JOIN tool_calls c ON c.id = e.alert_call_id "
                "WHERE e.ended_at IS NULL").fetchall()
        episodes = {r["device_id"]: r for r in rows}
        for device in devices:
            episode = episodes.get(device["device_id"]) or {}
            device["alert_request_id"] = episode.get("request_id")
            device["alert_call_status"] = episode.get("alert_call_status")
        raw = self._ctx.redis.get(tracker.LAST_TICK_KEY)
        resp.media = {"devices": devices, "count": len(devices), "last_tick": json.loads(raw) if raw else None}


class Ticks:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_post(self, req, resp):
        require_user(req, 3)
        accept_job(resp, self._ctx.pool, job_table.RUN_SENTINEL_TICK, "sentinel_tick", {})


class Windows:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp):
        require_user(req, 1)
        active = query_bool(req, "active", default=False)
        with db.transaction(self._ctx.pool) as conn:
            rows = maintenance.list_windows(conn, active_at=conn.execute("SELECT now() AS t").fetchone()["t"]
                                            if active else None)
        resp.media = {"windows": rows}

    def on_post(self, req, resp):
        user = require_user(req, 2)
        body = read_json(req, maintenance.WINDOW_SCHEMA)
        with db.transaction(self._ctx.pool) as conn:
            row = maintenance.create(conn, body, actor=user.username)
        resp.status, resp.media = falcon.HTTP_201, row
        resp.location = f"/sentinel/maintenance-windows/{row['id']}"

    def on_get_one(self, req, resp, window_id):
        require_user(req, 1)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = maintenance.get(conn, window_id)

    def on_put_one(self, req, resp, window_id):
        require_user(req, 2)
        body = read_json(req, maintenance.UPDATE_SCHEMA)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = maintenance.update(conn, window_id, body)

    def on_delete_one(self, req, resp, window_id):
        require_user(req, 2)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = {"deleted": maintenance.delete(conn, window_id)}


def register(app, ctx):
    app.add_route("/webhook/widip-alertes", Webhook(ctx))
    incidents = Incidents(ctx)
    app.add_route("/incidents", incidents)
    app.add_route("/incidents/{tracking_id}", incidents, suffix="one")
    app.add_route("/sentinel/devices-down", DevicesDown(ctx))
    app.add_route("/sentinel/ticks", Ticks(ctx))
    windows = Windows(ctx)
    app.add_route("/sentinel/maintenance-windows", windows)
    app.add_route(f"/sentinel/maintenance-windows/{{window_id:{ROW_ID}}}", windows, suffix="one")
