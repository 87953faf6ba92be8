"""Read models for the HTTP API: incident lists and an incident's whole story, JSON-safe."""

from __future__ import annotations

from psycopg import Connection

from widip.errors import Invalid, NotFound
from widip.functions.jsonable import json_safe

STATUSES = ("open", "recovered")
_LIST_COLUMNS = ("id, tracking_id, status, kind, site, client, operator, primary_hostname, opened_at, recovered_at, "
                 "last_seen_at, diagnosis, diagnosis_source, cache_used, ticket_id, degraded, notified_at, mailed_at, "
                 "ticket_failed_at, scope, glpi_entity_id")


def list_incidents(conn: Connection, *, status: str | None = None, client: str | None = None,
                   limit: int = 100) -> list[dict]:
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    where, params = [], []
    if status:
        where.append("i.status = %s")
        params.append(status)
    if client:
        where.append("lower(i.client) = lower(%s)")
        params.append(client)
    sql = (f"SELECT {', '.join('i.' + c.strip() for c in _LIST_COLUMNS.split(','))}, "
           "(SELECT count(*) FROM incident_members m WHERE m.incident_id = i.id) AS device_count, "
           "(SELECT count(*) FROM alerts a WHERE a.incident_id = i.id) AS alert_count FROM incidents i"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY i.opened_at DESC LIMIT %s")
    return [json_safe(r) for r in conn.execute(sql, (*params, limit)).fetchall()]


def story(conn: Connection, tracking_id: str) -> dict:
    """An incident by its tracking id or any of its alerts' — alerts, devices, diagnosis, ticket, mails, approvals."""
    incident = conn.execute("SELECT * FROM incidents WHERE tracking_id = %s", (tracking_id,)).fetchone()
    if incident is None:
        alert = conn.execute("SELECT incident_id, status, outcome FROM alerts WHERE tracking_id = %s",
                             (tracking_id,)).fetchone()
        if alert is None:
            raise NotFound(f"no incident or alert {tracking_id[:60]!r}")
        if alert["incident_id"] is None:
            raise NotFound(f"alert {tracking_id} belongs to no incident ({alert['outcome'] or alert['status']})")
        incident = conn.execute("SELECT * FROM incidents WHERE id = %s", (alert["incident_id"],)).fetchone()
    iid = incident["id"]
    calls = conn.execute(
        "SELECT ic.purpose, c.id, c.tool_name, c.arguments, c.level, c.decision, c.status, c.result, c.error, "
        "c.request_id, c.created_at, c.finished_at FROM incident_calls ic JOIN tool_calls c ON c.id = ic.call_id "
        "WHERE ic.incident_id = %s ORDER BY c.created_at", (iid,)).fetchall()
    request_ids = [c["request_id"] for c in calls if c["request_id"]]
    approvals = conn.execute("SELECT id, call_id, tool_name, level, status, requested_by, decided_by, decided_at, "
                             "expires_at FROM safeguard_requests WHERE id = ANY(%s) ORDER BY id",
                             (request_ids,)).fetchall() if request_ids else []
    devices = conn.execute("SELECT device_id, hostname, ip_address, site, client, role, operator, entity, condition, "
                           "first_seen, "
                           "last_seen, occurrences, flaps, recovered_at FROM incident_members WHERE incident_id = %s "
                           "ORDER BY first_seen, id", (iid,)).fetchall()
    alert_rows = conn.execute("SELECT tracking_id, alert_id, alert_state, hostname, received_at, status, outcome "
                              "FROM alerts WHERE incident_id = %s ORDER BY id", (iid,)).fetchall()
    timeline = conn.execute("SELECT at, kind, message, data FROM incident_events WHERE incident_id = %s ORDER BY id",
                            (iid,)).fetchall()
    log = conn.execute("SELECT * FROM incident_logs WHERE tracking_id = %s", (incident["tracking_id"],)).fetchone()
    ticket_call = next((c for c in calls if c["purpose"] == "ticket"), None)
    ticket_id = incident["ticket_id"]
    if ticket_id is None and ticket_call and ticket_call["status"] == "done" and ticket_call["result"]:
        ticket_id = ticket_call["result"].get("ticket_id")  # created; the next sync records it on the incident
    return json_safe({
        "incident": {k: v for k, v in incident.items() if k not in ("diagnosis", "evidence")},
        "diagnosis": incident["diagnosis"], "evidence": incident["evidence"], "devices": devices, "alerts": alert_rows,
        "ticket": {"id": ticket_id, "status": ticket_call["status"] if ticket_call else None,
                   "pending": ticket_id is None and ticket_call is not None and incident["ticket_failed_at"] is None,
                   "failed": incident["ticket_failed_at"] is not None,
                   "call_id": ticket_call["id"] if ticket_call else None},
        "mails": [c for c in calls if c["tool_name"] in ("smtp_send_email", "smtp_send_alert")],
        "followups": [c for c in calls if c["purpose"].startswith("followup")],
        "tool_calls": calls, "approvals": approvals, "timeline": timeline, "log": log,
    })
