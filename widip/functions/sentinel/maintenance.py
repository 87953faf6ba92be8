"""Maintenance windows and ignored devices: alerts inside one are dropped and counted ("Log Filtrée").

A window targets one device (its Observium id or hostname), one site (the establishment, as the
inventory names it — or the Observium location without its room) or one client (the inventory's
client, else the location's part before " - "), from `starts_at` to `ends_at`; a window with no
end is an "ignore until removed" rule. Names compare case-insensitively.
"""

from __future__ import annotations

from datetime import datetime, timezone

from psycopg import Connection

from widip.errors import Invalid, NotFound
from widip.functions import clock

SCOPES = ("device", "site", "client")
FIELDS = ("scope", "value", "starts_at", "ends_at", "reason")

WINDOW_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["scope", "value"],
    "properties": {
        "scope": {"enum": list(SCOPES)},
        "value": {"type": "string", "minLength": 1, "maxLength": 255},
        "starts_at": {"type": "string", "format": "date-time", "maxLength": 64},
        "ends_at": {"type": ["string", "null"], "format": "date-time", "maxLength": 64},
        "reason": {"type": "string", "maxLength": 1000},
    },
}
UPDATE_SCHEMA = {**WINDOW_SCHEMA, "required": [], "minProperties": 1}


def create(conn: Connection, data: dict, *, actor: str) -> dict:
    starts, ends = _times(data.get("starts_at") or datetime.now(timezone.utc), data.get("ends_at"))
    return conn.execute(
        "INSERT INTO maintenance_windows (scope, value, starts_at, ends_at, reason, created_by) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
        (data["scope"], data["value"].strip(), starts or clock.now(), ends,
         data.get("reason", ""), actor)).fetchone()


def get(conn: Connection, window_id: int) -> dict:
    row = conn.execute("SELECT * FROM maintenance_windows WHERE id = %s", (window_id,)).fetchone()
    if row is None:
        raise NotFound(f"no maintenance window {window_id}")
    return row


def update(conn: Connection, window_id: int, data: dict) -> dict:
    current = get(conn, window_id)
    merged = {**{k: current[k] for k in FIELDS}, **data}
    starts, ends = _times(merged["starts_at"], merged["ends_at"])
    return conn.execute(
        "UPDATE maintenance_windows SET scope = %s, value = %s, starts_at = %s, ends_at = %s, reason = %s "
        "WHERE id = %s RETURNING *",
        (merged["scope"], str(merged["value"]).strip(), starts, ends, merged["reason"], window_id)).fetchone()


def delete(conn: Connection, window_id: int) -> dict:
    row = conn.execute("DELETE FROM maintenance_windows WHERE id = %s RETURNING *", (window_id,)).fetchone()
    if row is None:
        raise NotFound(f"no maintenance window {window_id}")
    return row


def list_windows(conn: Connection, *, active_at: datetime | None = None, limit: int = 500) -> list[dict]:
    if active_at is None:
        return conn.execute("SELECT * FROM maintenance_windows ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
    return conn.execute(
        "SELECT * FROM maintenance_windows WHERE starts_at <= %s AND (ends_at IS NULL OR ends_at > %s) "
        "ORDER BY id DESC LIMIT %s", (active_at, active_at, limit)).fetchall()


def matching(conn: Connection, *, device_id: str | None, hostname: str | None, site: str | None,
             client: str | None, now: datetime) -> dict | None:
    """The first window covering this device, its site or its client at `now`, or None."""
    candidates = [("device", v) for v in (device_id, hostname) if v] + \
                 [(scope, v) for scope, v in (("site", site), ("client", client)) if v]
    if not candidates:
        return None
    scopes = [c[0] for c in candidates]
    values = [c[1].lower() for c in candidates]
    return conn.execute(
        "SELECT w.* FROM maintenance_windows w JOIN unnest(%s::text[], %s::text[]) AS c(scope, value) "
        "ON w.scope = c.scope AND lower(w.value) = c.value "
        "WHERE w.starts_at <= %s AND (w.ends_at IS NULL OR w.ends_at > %s) ORDER BY w.id LIMIT 1",
        (scopes, values, now, now)).fetchone()


def _times(starts, ends) -> tuple[datetime | None, datetime | None]:
    starts, ends = _parse(starts, "starts_at"), _parse(ends, "ends_at")
    if starts and ends and ends <= starts:
        raise Invalid("ends_at must be after starts_at (a window without starts_at starts now)")
    return starts, ends


def _parse(value, name: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name} must be an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
