"""The device-down tracker (seed `device_down_tracker.py`) and the Sentinel tick that reconciles it.

Each tick asks Observium once for every down device (`GET /devices/?status=0`), which catches
outages no webhook announced, and reconciles:
- PostgreSQL `device_down_episodes` is the record: one open episode per down device, started at
  Observium's outage start. "Exactly one L3 alert-mail request per episode" rests on its
  `alert_call_id`, so it survives a Redis flush.
- Redis `workflow:device_down:{device_id}` (hash first_seen, last_seen, duration_minutes, alert_sent;
  TTL 7 days) mirrors it for readers, written in one pipeline; `workflow:device_down:index` lists the
  tracked ids so recoveries are found without SCAN.
- A device down ≥ ALERT_MAIL_THRESHOLD_MINUTES whose episode has no request gets one
  `smtp_send_alert` proposal as Sentinel (L3: an N3 approves; `alert_sent` becomes "requested", then
  "1" once the mail went out) — one per incident episode, not per device: the devices of one open
  incident share its request, which lists them. Devices under maintenance (matched through the
  inventory) or ignored in Observium get none.
- A tracked device that is up again: episode ended, hash deleted, and its open incident members
  recovered (the notifier then posts the recovery follow-up).
The work is a constant number of round trips plus one proposal per newly due device, so 5,000
down devices reconcile in about a second. `now` is a parameter: tests control the clock.
A failed Observium poll changes nothing (it must not read as "everything recovered").
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime, timedelta

from widip.functions import clock
from widip.functions.callers import system_persona
from widip.functions.db import transaction
from widip.functions.safeguard import calls
from widip.functions.sentinel import incidents, inventory, maintenance, texts

logger = logging.getLogger(__name__)

KEY = "workflow:device_down:{device_id}"
INDEX_KEY = "workflow:device_down:index"
LAST_TICK_KEY = "widip:sentinel:last_tick"
TTL_SECONDS = 7 * 86400
_EPISODES = uuid.UUID("5c3e2b8a-0e9f-4d1c-9b6a-747261636b72")


def clear(redis, device_ids) -> None:
    """Forget devices that are up again (best effort: PostgreSQL holds the record)."""
    ids = [str(d) for d in device_ids]
    if not ids:
        return
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.delete(*[KEY.format(device_id=d) for d in ids])
        pipe.srem(INDEX_KEY, *ids)
        pipe.execute()
    except Exception:  # noqa: BLE001 - the next tick clears it again
        logger.warning("device-down tracker not cleared for %d device(s): Redis unavailable", len(ids))


#: Why an unapproved alert mail is withdrawn when its device comes back.
RECOVERED_BEFORE_APPROVAL = "équipement rétabli avant validation de l'alerte"


def end_episodes(conn, device_ids, now: datetime) -> list[str]:
    rows = conn.execute("UPDATE device_down_episodes SET ended_at = %s WHERE ended_at IS NULL AND device_id = ANY(%s) "
                        "RETURNING device_id, alert_call_id", (now, [str(d) for d in device_ids])).fetchall()
    _withdraw_alerts(conn, rows)
    return [r["device_id"] for r in rows]


def _withdraw_alerts(conn, ended_rows) -> None:
    """Devices back up before their alert mail was approved: the request closes instead of waiting —
    unless another device of the same incident, still down, shares it."""
    ids = list({str(r["alert_call_id"]) for r in ended_rows if r["alert_call_id"]})
    if not ids:
        return
    shared = {str(r["alert_call_id"]) for r in conn.execute(
        "SELECT DISTINCT alert_call_id FROM device_down_episodes WHERE ended_at IS NULL "
        "AND alert_call_id = ANY(%s::uuid[])", (ids,)).fetchall()}
    calls.withdraw_pending(conn, [i for i in ids if i not in shared], RECOVERED_BEFORE_APPROVAL)


def tracked(redis) -> list[dict]:
    """Every tracked device's hash (GET /sentinel/devices-down), in one pipeline."""
    ids = sorted((i.decode() if isinstance(i, bytes) else i) for i in redis.smembers(INDEX_KEY))
    pipe = redis.pipeline(transaction=False)
    for device_id in ids:
        pipe.hgetall(KEY.format(device_id=device_id))
    out = []
    for device_id, entry in zip(ids, pipe.execute()):
        if entry:
            out.append({"device_id": device_id, **{k.decode(): v.decode() for k, v in entry.items()}})
    return out


def tick(pool, redis, clients, settings, *, policy, now: datetime | None = None) -> dict:
    """One reconciliation; returns (and stores under LAST_TICK_KEY) its outcome, with incidents to sync."""
    started = time.monotonic()
    now = now or clock.now()
    try:
        down = [d for d in clients.observium.list_devices(status="down") if not d.disabled]
    except Exception as exc:  # noqa: BLE001 - recorded for monitoring, nothing reconciled
        outcome = {"at": now.isoformat(), "ok": False, "error": getattr(exc, "message", type(exc).__name__)}
        _store(redis, outcome)
        raise
    by_id = {str(d.id): d for d in down}
    threshold = timedelta(minutes=settings.alert_mail_threshold_minutes)
    with transaction(pool) as conn:
        episodes = _open_episodes(conn, down, now)
        ended = conn.execute("UPDATE device_down_episodes SET ended_at = %s WHERE ended_at IS NULL "
                             "AND NOT (device_id = ANY(%s)) RETURNING device_id, alert_call_id",
                             (now, list(by_id))).fetchall()
        _withdraw_alerts(conn, ended)
        recovered = sorted({r["device_id"] for r in ended} | _tracked_ids(redis) - set(by_id))
        requested = _request_alert_mails(conn, episodes, by_id, threshold, now, policy)
        sent = _mark_sent(conn)
        assignments = incidents.recover_devices(conn, recovered, now)
    _mirror(redis, episodes, by_id, requested, sent, now)
    clear(redis, recovered)
    outcome = {"at": now.isoformat(), "ok": True, "down": len(by_id), "recovered": len(recovered),
               "alert_mails_requested": len(requested), "alert_mails_sent": len(sent),
               "duration_ms": round((time.monotonic() - started) * 1000, 1)}
    _store(redis, outcome)
    logger.info("sentinel tick: %s", outcome)
    return {**outcome, "sync_incidents": sorted({a.incident_id for a in assignments if a.needs_sync})}


def _open_episodes(conn, down: list, now: datetime) -> dict[str, dict]:
    """Open an episode for every down device that has none; return every open episode by device id."""
    if down:
        conn.execute(
            "INSERT INTO device_down_episodes (device_id, hostname, started_at) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) "
            "ON CONFLICT (device_id) WHERE ended_at IS NULL DO NOTHING",
            ([str(d.id) for d in down], [d.hostname for d in down], [min(d.down_since or now, now) for d in down]))
    rows = conn.execute("SELECT * FROM device_down_episodes WHERE ended_at IS NULL AND device_id = ANY(%s)",
                        ([str(d.id) for d in down],)).fetchall()
    return {r["device_id"]: r for r in rows}


def _request_alert_mails(conn, episodes: dict, by_id: dict, threshold: timedelta, now: datetime,
                         policy) -> dict[str, str]:
    """One L3 `smtp_send_alert` proposal per due incident episode (or lone device); {device_id: call_id}."""
    due = [e for e in episodes.values() if e["alert_call_id"] is None and now - e["started_at"] >= threshold]
    requested: dict[str, str] = {}
    sentinel = system_persona("sentinel")
    for episode in sorted(due, key=lambda e: e["started_at"]):
        device = by_id[episode["device_id"]].to_dict()
        if device["ignored"] or _in_maintenance(conn, device, now):
            continue
        incident = conn.execute("SELECT DISTINCT m.incident_id FROM incident_members m JOIN incidents i ON "
                                "i.id = m.incident_id WHERE m.device_id = %s AND i.status = 'open' "
                                "ORDER BY m.incident_id LIMIT 1", (episode["device_id"],)).fetchone()
        call_id = _shared_request(conn, incident["incident_id"]) if incident else None
        if call_id is None:
            minutes = int((now - episode["started_at"]).total_seconds() // 60)
            call_id = str(uuid.uuid5(_EPISODES, f"{episode['id']}"))
            companions = _incident_devices(conn, incident["incident_id"], by_id) if incident else []
            details = texts.alert_mail_details(device, minutes)
            if len(companions) > 1:
                details += (f" Incident de {len(companions)} équipements injoignables : "
                            + ", ".join(companions[:20]) + (" …" if len(companions) > 20 else "") + ".")
            calls.propose(conn, calls.Proposal(
                "smtp_send_alert", {"device": device["hostname"][:255], "duration_minutes": minutes,
                                    "details": details[:4000]}, sentinel, call_id=call_id,
                reason=f"équipement injoignable depuis {minutes} min "
                       f"(seuil {int(threshold.total_seconds() // 60)} min)"), policy)
            if incident:
                incidents.link_call(conn, incident["incident_id"], call_id, "alert_mail")
        conn.execute("UPDATE device_down_episodes SET alert_call_id = %s, alert_requested_at = %s WHERE id = %s",
                     (call_id, now, episode["id"]))
        episode["alert_call_id"] = call_id
        requested[episode["device_id"]] = call_id
    return requested


def _in_maintenance(conn, device: dict, now: datetime) -> bool:
    estate = inventory.lookup(conn, device_id=str(device["id"]), hostname=device["hostname"])
    site, _room, client = ((estate["site"], None, estate["client"]) if estate
                           else inventory.parse_location(device.get("location")))
    return maintenance.matching(conn, device_id=device["id"] and str(device["id"]), hostname=device["hostname"],
                                site=site, client=client, now=now) is not None


def _shared_request(conn, incident_id: int) -> str | None:
    """The alert-mail request already made for this incident's episode, if one of its devices has it."""
    row = conn.execute("SELECT call_id FROM incident_calls WHERE incident_id = %s AND purpose = 'alert_mail' "
                       "AND call_id IN (SELECT alert_call_id FROM device_down_episodes WHERE ended_at IS NULL) "
                       "LIMIT 1", (incident_id,)).fetchone()
    return str(row["call_id"]) if row else None


def _incident_devices(conn, incident_id: int, by_id: dict) -> list[str]:
    rows = conn.execute("SELECT DISTINCT device_id, hostname FROM incident_members WHERE incident_id = %s "
                        "AND recovered_at IS NULL ORDER BY hostname", (incident_id,)).fetchall()
    return [r["hostname"] for r in rows if r["device_id"] in by_id]


def _mark_sent(conn) -> list[str]:
    rows = conn.execute(
        "UPDATE device_down_episodes e SET alert_sent_at = c.finished_at FROM tool_calls c "
        "WHERE c.id = e.alert_call_id AND e.alert_sent_at IS NULL AND c.status = 'done' RETURNING e.device_id, "
        "e.ended_at").fetchall()
    return [r["device_id"] for r in rows if r["ended_at"] is None]


def _tracked_ids(redis) -> set[str]:
    try:
        return {(i.decode() if isinstance(i, bytes) else i) for i in redis.smembers(INDEX_KEY)}
    except Exception:  # noqa: BLE001 - PostgreSQL's episodes still find recoveries
        return set()


def _mirror(redis, episodes: dict, by_id: dict, requested: dict, sent: list[str], now: datetime) -> None:
    """Write every down device's hash in one pipeline (7-day TTL)."""
    sent_ids = set(sent)
    try:
        pipe = redis.pipeline(transaction=False)
        for device_id, episode in episodes.items():
            key = KEY.format(device_id=device_id)
            alert_sent = ("1" if episode["alert_sent_at"] or device_id in sent_ids else
                          "requested" if episode["alert_call_id"] or device_id in requested else "0")
            pipe.hset(key, mapping={
                "first_seen": episode["started_at"].isoformat(), "last_seen": now.isoformat(),
                "duration_minutes": int((now - episode["started_at"]).total_seconds() // 60),
                "alert_sent": alert_sent, "hostname": by_id[device_id].hostname})
            pipe.expire(key, TTL_SECONDS)
        if episodes:
            pipe.sadd(INDEX_KEY, *episodes)
            pipe.expire(INDEX_KEY, TTL_SECONDS)
        pipe.execute()
    except Exception:  # noqa: BLE001 - the mirror is rebuilt by the next tick
        logger.warning("device-down tracker mirror not written: Redis unavailable")


def _store(redis, outcome: dict) -> None:
    try:
        redis.set(LAST_TICK_KEY, json.dumps(outcome), ex=7 * 86400)
    except Exception:  # noqa: BLE001
        logger.warning("last sentinel tick not recorded: Redis unavailable")
