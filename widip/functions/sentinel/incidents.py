"""Alerts into incidents: recovery, de-duplication, flapping and correlation — one decision per alert.

All of it runs under one transaction-scoped advisory lock (`ASSIGN_LOCK`), so concurrent workers
never open two incidents for one site or attach a device twice. The critical section is a handful of
indexed queries (no network call), so serialising it costs far less than it saves: the alert storm
(1,000 alerts in 10 s) spends a few milliseconds each in it. A per-site lock would not do, because
operator correlation crosses sites and clients.

Rules (times come from `now`, so tests control the clock):
- recovery: the member's open incident is marked recovered once every member has; a recovery with
  no open member is recorded as `orphan_recovery`.
- de-duplication: same member key (device × entity × condition) already open → attached
  (occurrences + 1, last seen), no diagnosis, no ticket.
- flapping: the member went down again within FLAP_WINDOW of its recovery → its incident is
  reopened (no new diagnosis or ticket); at FLAP_THRESHOLD re-downs it becomes `flapping`.
- correlation: an open incident with a member of the same site or client, or — for access devices
  only (those behind an operator line) — of the same operator, whose last device joined within
  CORRELATION_WINDOW (and opened less than MAX_CORRELATION_SPAN ago) takes the device; otherwise a
  new incident opens and needs a diagnosis. Site and client come from the inventory (pipeline.place),
  so three establishments of one client group, or ten sites behind one failing operator, make one
  incident, while a switch and a CPE of two unrelated clients do not.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import Connection

from widip.functions import clock
from widip.functions.db import Jsonb
from widip.functions.sentinel.alerts import AlertFacts

logger = logging.getLogger(__name__)

ASSIGN_LOCK = 0x53454E54  # "SENT"
CORRELATION_WINDOW = timedelta(seconds=int(os.environ.get("SENTINEL_CORRELATION_WINDOW_SECONDS") or 300))
MAX_CORRELATION_SPAN = timedelta(minutes=60)
FLAP_WINDOW = timedelta(minutes=10)
FLAP_THRESHOLD = 3


@dataclass(frozen=True)
class Assignment:
    """What happened to one alert: `outcome` and the incident it touched (None when nothing matched)."""

    outcome: str  # opened | attached | correlated | reopened | flapping | recovered | member_recovered | orphan_recovery
    incident_id: int | None
    needs_diagnosis: bool = False
    needs_sync: bool = False  # a ticket follow-up may be due (late device, recovery, flapping)


def event(conn: Connection, incident_id: int, kind: str, message: str, *, at: datetime | None = None,
          **data) -> None:
    """Add one line to the incident's history, at `at` or the pipeline clock's now (never PostgreSQL's)."""
    conn.execute("INSERT INTO incident_events (incident_id, at, kind, message, data) VALUES (%s, %s, %s, %s, %s)",
                 (incident_id, at or clock.now(), kind, message, Jsonb(data)))


def assign(conn: Connection, tracking_id: str, alert: AlertFacts, device: dict, now: datetime) -> Assignment:
    """Place one (already pre-filtered) alert; `device` holds Observium facts (ip…) when known."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ASSIGN_LOCK,))
    if alert.recovery:
        return _recover(conn, alert.member_key, now, source=f"alerte {tracking_id}")
    member = conn.execute(
        "SELECT m.*, i.status AS incident_status, i.recovered_at AS incident_recovered_at FROM incident_members m "
        "JOIN incidents i ON i.id = m.incident_id WHERE m.member_key = %s ORDER BY m.last_seen DESC LIMIT 1",
        (alert.member_key,)).fetchone()
    if member and member["recovered_at"] is None and member["incident_status"] == "open":
        conn.execute("UPDATE incidents SET last_seen_at = greatest(last_seen_at, %s) WHERE id = %s",
                     (now, member["incident_id"]))
        conn.execute("UPDATE incident_members SET occurrences = occurrences + 1, last_seen = greatest(last_seen, %s) "
                     "WHERE id = %s", (now, member["id"]))
        return Assignment("attached", member["incident_id"])
    if member and member["recovered_at"] is not None and now - member["recovered_at"] <= FLAP_WINDOW:
        return _reopen(conn, member, alert, now)
    return _correlate_or_open(conn, tracking_id, alert, device, now)


def _reopen(conn: Connection, member: dict, alert: AlertFacts, now: datetime) -> Assignment:
    flaps = member["flaps"] + 1
    incident_id = member["incident_id"]
    flapping = flaps >= FLAP_THRESHOLD
    conn.execute("UPDATE incidents SET status = 'open', recovered_at = NULL, last_seen_at = %s, "
                 "kind = CASE WHEN %s THEN 'flapping' ELSE kind END WHERE id = %s", (now, flapping, incident_id))
    conn.execute("UPDATE incident_members SET recovered_at = NULL, flaps = %s, occurrences = occurrences + 1, "
                 "last_seen = %s WHERE id = %s", (flaps, now, member["id"]))
    if flapping:
        event(conn, incident_id, "flapping", f"{alert.hostname} est instable : {flaps + 1} coupures en moins de "
              f"{int(FLAP_WINDOW.total_seconds() // 60)} min entre deux rétablissements.", at=now, flaps=flaps)
    else:
        event(conn, incident_id, "reopened", f"{alert.hostname} est de nouveau injoignable peu après son "
              "rétablissement : l'incident est rouvert.", at=now, flaps=flaps)
    return Assignment("flapping" if flapping else "reopened", incident_id, needs_sync=flapping)


def open_member(conn: Connection, member_key: str) -> bool:
    """Is this member down in an open incident (its recovery must be applied whatever the filters say)?"""
    return conn.execute("SELECT 1 FROM incident_members m JOIN incidents i ON i.id = m.incident_id "
                        "WHERE m.member_key = %s AND m.recovered_at IS NULL AND i.status = 'open' LIMIT 1",
                        (member_key,)).fetchone() is not None


def _correlate_or_open(conn: Connection, tracking_id: str, alert: AlertFacts, device: dict,
                       now: datetime) -> Assignment:
    site = device.get("site") or alert.site
    client = device.get("client") or alert.client
    operator = device["operator"] if "operator" in device else alert.operator
    incident = conn.execute(
        "SELECT i.* FROM incidents i WHERE i.status = 'open' AND i.kind = 'outage' AND i.last_joined_at >= %s "
        "AND i.opened_at >= %s AND EXISTS (SELECT 1 FROM incident_members m WHERE m.incident_id = i.id AND ("
        "lower(m.site) = lower(%s) OR lower(m.client) = lower(%s) OR m.operator = %s)) ORDER BY i.opened_at LIMIT 1",
        (now - CORRELATION_WINDOW, now - MAX_CORRELATION_SPAN, site, client, operator)).fetchone()
    if incident is None:
        incident = conn.execute(
            "INSERT INTO incidents (tracking_id, site, client, operator, primary_device_id, primary_hostname, "
            "primary_ip, opened_at, last_joined_at, last_seen_at, glpi_entity_id, scope, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'site', %s) RETURNING *",
            (tracking_id, site, client, operator, alert.device_id, alert.hostname, device.get("ip"), now, now, now,
             device.get("glpi_entity_id"), now)).fetchone()
        outcome = "opened"
        event(conn, incident["id"], "opened", f"Incident ouvert : {alert.hostname} injoignable"
              + (f" ({site})" if site else "") + ".", at=now, alert=tracking_id)
    else:
        outcome = "correlated"
        same = conn.execute(
            "SELECT bool_or(lower(site) = lower(%s)) AS site, bool_or(lower(client) = lower(%s)) AS client "
            "FROM incident_members WHERE incident_id = %s", (site, client, incident["id"])).fetchone()
        scope = "site" if same["site"] else "client" if same["client"] else "operator"
        widest = max(scope, incident["scope"] or "site", key=("site", "client", "operator").index)
        conn.execute("UPDATE incidents SET last_joined_at = %s, last_seen_at = greatest(last_seen_at, %s), "
                     "scope = %s, operator = coalesce(operator, %s) WHERE id = %s",
                     (now, now, widest, operator, incident["id"]))
        why = {"site": "même site", "client": "même client", "operator": "même opérateur d'accès"}[scope]
        event(conn, incident["id"], "correlated", f"{alert.hostname} rattaché à l'incident ({why}).", at=now,
              alert=tracking_id)
    conn.execute(
        "INSERT INTO incident_members (incident_id, member_key, device_id, hostname, ip_address, site, client, "
        "entity, condition, first_seen, last_seen, operator, role, service_ref) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
        "%s, %s, %s, %s, %s, %s) ON CONFLICT (incident_id, member_key) DO UPDATE SET recovered_at = NULL, "
        "last_seen = EXCLUDED.last_seen, occurrences = incident_members.occurrences + 1",
        (incident["id"], alert.member_key, alert.device_id, alert.hostname, device.get("ip"), site, client,
         f"{alert.entity_type}:{alert.entity_name or alert.entity_id or alert.hostname}"[:500], alert.condition,
         now, now, operator, device.get("role"), device.get("service_ref")))
    notified = incident["notified_at"] is not None
    return Assignment(outcome, incident["id"], needs_diagnosis=outcome == "opened", needs_sync=notified)


def _recover(conn: Connection, member_key: str, now: datetime, *, source: str) -> Assignment:
    members = conn.execute(
        "SELECT m.* FROM incident_members m JOIN incidents i ON i.id = m.incident_id WHERE m.member_key = %s "
        "AND m.recovered_at IS NULL AND i.status = 'open'", (member_key,)).fetchall()
    outcomes = _recover_members(conn, members, now, source)
    return outcomes[0] if outcomes else Assignment("orphan_recovery", None)


def _recover_members(conn: Connection, members: list[dict], now: datetime, source: str) -> list[Assignment]:
    """Mark members recovered; an incident whose members all are is recovered (one Assignment per incident)."""
    incident_ids = sorted({m["incident_id"] for m in members})
    if not incident_ids:
        return []
    # Lock order everywhere: incident rows, then their members (the notifier does the same).
    conn.execute("SELECT id FROM incidents WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (incident_ids,))
    for member in members:
        conn.execute("UPDATE incident_members SET recovered_at = %s WHERE id = %s", (now, member["id"]))
        event(conn, member["incident_id"], "device_recovered", f"{member['hostname']} répond de nouveau ({source}).",
              at=now)
    outcomes = []
    for incident_id in incident_ids:
        remaining = conn.execute("SELECT count(*) AS n FROM incident_members WHERE incident_id = %s "
                                 "AND recovered_at IS NULL", (incident_id,)).fetchone()["n"]
        if remaining:
            outcomes.append(Assignment("member_recovered", incident_id))
            continue
        conn.execute("UPDATE incidents SET status = 'recovered', recovered_at = %s, recovery_announced = false "
                     "WHERE id = %s", (now, incident_id))
        event(conn, incident_id, "recovered", "Tous les équipements de l'incident répondent de nouveau : "
              "incident rétabli.", at=now)
        outcomes.append(Assignment("recovered", incident_id, needs_sync=True))
    return outcomes


def recover_devices(conn: Connection, device_ids: list[str], now: datetime) -> list[Assignment]:
    """The tick saw these devices up again (a RECOVER webhook may never have come)."""
    if not device_ids:
        return []
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ASSIGN_LOCK,))
    members = conn.execute(
        "SELECT m.* FROM incident_members m JOIN incidents i ON i.id = m.incident_id "
        "WHERE m.device_id = ANY(%s) AND m.recovered_at IS NULL AND i.status = 'open'", (list(device_ids),)).fetchall()
    return _recover_members(conn, members, now, "constaté par le suivi Observium")


def get_incident(conn: Connection, incident_id: int, *, lock: bool = False) -> dict | None:
    return conn.execute("SELECT * FROM incidents WHERE id = %s" + (" FOR UPDATE" if lock else ""),
                        (incident_id,)).fetchone()


def members(conn: Connection, incident_id: int) -> list[dict]:
    return conn.execute("SELECT * FROM incident_members WHERE incident_id = %s ORDER BY first_seen, id",
                        (incident_id,)).fetchall()


def link_call(conn: Connection, incident_id: int, call_id: str, purpose: str) -> None:
    conn.execute("INSERT INTO incident_calls (incident_id, call_id, purpose) VALUES (%s, %s, %s) "
                 "ON CONFLICT DO NOTHING", (incident_id, call_id, purpose))
