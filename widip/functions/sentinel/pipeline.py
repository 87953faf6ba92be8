"""Processing one accepted alert: Observium facts, pre-filter, then incidents.assign — idempotently.

The alert row is locked and its status re-checked inside the transaction, so an alert enqueued twice
(webhook + sweeper, broker redelivery) is processed once. Observium is asked about the device
before the lock is taken (IP address, ignore/disabled flags, site/client), cached 10 minutes per
device so that an alert storm costs one API call per device; if Observium cannot answer, the
webhook's own tags are used and nothing is filtered on flags. Then `place` puts the device in the
estate (inventory: site, client, GLPI entity, role, operator line); an unmapped device keeps what its
location says (site without the room, client before " - ").

Recoveries go through the same pre-filter: a recovery of an ignored or in-maintenance device is
filtered and counted — unless that device is a member of an open incident (it went down before the
window began), whose recovery must still close it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from widip.errors import IntegrationError
from widip.functions import clock
from widip.functions.db import transaction
from widip.functions.sentinel import alerts, incidents, inventory, maintenance, tracker

logger = logging.getLogger(__name__)

DEVICE_KEY = "widip:sentinel:device:{ref}"
DEVICE_TTL_SECONDS, DEVICE_MISS_TTL_SECONDS = 600, 60


@dataclass(frozen=True)
class Processed:
    alert_id: int
    outcome: str
    incident_id: int | None = None
    diagnose: bool = False
    sync: bool = False
    notes: dict = field(default_factory=dict)


def lookup_device(redis, clients, facts: alerts.AlertFacts) -> dict:
    """Observium's view of the alert's device as a dict (Device.to_dict()), or {} when unknown."""
    ref = facts.device_id or facts.hostname
    key = DEVICE_KEY.format(ref=ref)
    try:
        raw = redis.get(key)
        if raw is not None:
            return json.loads(raw)
    except Exception:  # noqa: BLE001 - no cache: ask Observium
        pass
    try:
        device = clients.observium.get_device(int(ref) if str(ref).isdigit() else ref).to_dict()
    except (IntegrationError, ValueError) as exc:
        logger.info("observium facts for %s unavailable: %s", ref, getattr(exc, "message", exc))
        device = {}
    try:
        redis.set(key, json.dumps(device), ex=DEVICE_TTL_SECONDS if device else DEVICE_MISS_TTL_SECONDS)
    except Exception:  # noqa: BLE001
        pass
    return device


def process(pool, redis, clients, alert_id: int, *, now: datetime | None = None) -> Processed:
    now = now or clock.now()
    with transaction(pool) as conn:
        row = conn.execute("SELECT id, status, tracking_id, body FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None:
        raise LookupError(f"no alert {alert_id}")
    if row["status"] != "received":
        return Processed(alert_id, "already")
    facts = alerts.facts(row["body"])
    device = lookup_device(redis, clients, facts)
    with transaction(pool) as conn:
        current = conn.execute("SELECT status FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
        if current["status"] != "received":
            return Processed(alert_id, "already")
        device = place(conn, facts, device)
        reason = _filtered(conn, facts, device, now)
        if reason and facts.recovery and incidents.open_member(conn, facts.member_key):
            reason = None
        if reason:
            conn.execute("UPDATE alerts SET status = 'filtered', outcome = %s, processed_at = %s WHERE id = %s",
                         (f"filtered:{reason}", now, alert_id))
            logger.info("alert %s filtered (%s)", row["tracking_id"], reason)
            return Processed(alert_id, f"filtered:{reason}")
        device_up = facts.recovery and facts.device_id and facts.entity_type == "device"
        if device_up:  # before assign: lock order is episodes, then the assignment lock (as in the tick)
            tracker.end_episodes(conn, [facts.device_id], now)
        assignment = incidents.assign(conn, row["tracking_id"], facts, device, now)
        conn.execute("UPDATE alerts SET status = 'processed', outcome = %s, incident_id = %s, processed_at = %s "
                     "WHERE id = %s", (assignment.outcome, assignment.incident_id, now, alert_id))
    if device_up:
        tracker.clear(redis, [facts.device_id])
    return Processed(alert_id, assignment.outcome, assignment.incident_id, assignment.needs_diagnosis,
                     assignment.needs_sync)


def place(conn, facts: alerts.AlertFacts, device: dict) -> dict:
    """Observium's device facts completed by the inventory (or, unmapped, by the alert's location)."""
    estate = inventory.lookup(conn, device_id=facts.device_id, hostname=facts.hostname)
    if estate is None:
        site, room, client = inventory.parse_location(device.get("location") or facts.location)
        site, client = site or facts.site, client or facts.client
        return {**device, "site": site, "sub_location": room, "client": client, "mapped": False,
                "role": "access" if facts.line_reference else None, "service_ref": facts.line_reference,
                "operator": facts.operator, "glpi_entity_id": None}
    access = estate["role"] == "access" or bool(estate["service_ref"])
    return {**device, "site": estate["site"], "sub_location": estate["sub_location"], "client": estate["client"],
            "mapped": True, "role": estate["role"], "service_ref": estate["service_ref"],
            "operator": estate["operator"] if access else None, "glpi_entity_id": estate["glpi_entity_id"],
            "widip": estate["widip"]}


def _filtered(conn, facts: alerts.AlertFacts, device: dict, now: datetime) -> str | None:
    if device.get("disabled"):
        return "disabled"
    if device.get("ignored"):
        return "ignored"
    window = maintenance.matching(conn, device_id=facts.device_id, hostname=facts.hostname,
                                  site=device.get("site"), client=device.get("client"), now=now)
    if window:
        return f"maintenance:{window['id']}"
    return None


def filtered_count(conn, *, hours: int = 24) -> int:
    """Alerts dropped by the pre-filter in the last `hours` ("Log Filtrée")."""
    return conn.execute("SELECT count(*) AS n FROM alerts WHERE status = 'filtered' AND processed_at > %s - "
                        "make_interval(hours => %s)", (clock.now(), hours)).fetchone()["n"]
