"""The operations snapshot behind GET /monitoring, and the gauges /metrics refreshes at scrape time.

Everything is read from where it already lives — integration statuses and broker queues in Redis,
the outbox, approvals and GLPI history in PostgreSQL, the Sentinel/Assist markers other pipelines
write — so the snapshot costs a handful of round trips and changes nothing. Problems an operator
must act on (a system down, outbox rows stuck for days, dead-lettered messages) are listed in
`problems` with a severity. This module reads; it never repairs.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

import redis
from psycopg import Connection
from psycopg_pool import ConnectionPool

from widip.functions import heartbeat, metrics, outbox

from widip.functions.integrations import circuit, glpi_health, status as integration_status
from widip.functions.sentinel import inventory, notifier
from widip.functions.db import transaction

logger = logging.getLogger(__name__)

#: Outbox rows still unsent after this long are an error for a human (no setting: a fixed SLO).
OUTBOX_STALE_AFTER_DAYS = 3
#: Dramatiq's Redis broker namespace and the queues widip declares (docs/architecture.md).
BROKER_NAMESPACE = "dramatiq"
QUEUES = ("default", "tools", "agent", "llm-remote", "llm.p0", "llm.p1", "llm.p2", "llm.p3")
LLM_QUEUES = ("llm.p0", "llm.p1", "llm.p2", "llm.p3", "llm-remote")
DEVICE_DOWN_PATTERN = "workflow:device_down:*"
MAX_DEVICES = 500
SENTINEL_TICK_KEY = "widip:sentinel:last_tick"
ASSIST_CYCLE_KEY = "widip:assist:last_cycle"


def snapshot(pool: ConnectionPool, client: redis.Redis, *, now: float | None = None) -> dict:
    """Everything GET /monitoring shows, as JSON-safe data."""
    now = time.time() if now is None else now
    with transaction(pool) as conn:
        glpi_history = glpi_health.history(conn)
        box = outbox_report(conn)
        approvals = pending_approvals(conn)
        failed_tickets = notifier.ticket_failures(conn)
        unknown = unknown_outcomes(conn)
        unmapped = inventory.unmapped(conn, now=datetime.fromtimestamp(now, timezone.utc), limit=50)
    report = {
        "generated_at": now,
        "integrations": integrations(client),
        "glpi": {"status": circuit.status_of(client, "glpi"), "effective_status": circuit.effective_status(client, "glpi"),
                 "last_probe": _json(client.get(glpi_health.LAST_PROBE_KEY)), "history": glpi_history},
        "queues": queues(client, now=now),
        "outbox": box,
        "approvals": approvals,
        "devices_down": devices_down(client),
        "scheduler": heartbeat.scheduler_status(client, now),
        "sentinel": {"last_tick": _json(client.get(SENTINEL_TICK_KEY)), "ticket_failures": failed_tickets,
                     "unmapped_devices": unmapped},
        "tool_calls_to_check": unknown,
        "assist": {"last_cycle": _json(client.get(ASSIST_CYCLE_KEY))},
    }
    report["problems"] = problems(report)
    return report


def integrations(client: redis.Redis) -> dict[str, dict]:
    """Per system: its status (GLPI's from the probe) and what its recent calls looked like."""
    names = integration_status.systems(client)
    current = circuit.statuses(client, names)
    return {name: {"status": current[name], **integration_status.details(client, name)} for name in names}


def queues(client: redis.Redis, *, now: float | None = None) -> dict[str, dict]:
    """Per broker queue: waiting, in progress (fetched, not acked), delayed, dead-lettered, oldest age."""
    now_ms = (time.time() if now is None else now) * 1000
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        base = f"{BROKER_NAMESPACE}:{queue}"
        pipe.llen(base)
        pipe.hlen(f"{base}.msgs")
        pipe.hlen(f"{base}.DQ.msgs")
        pipe.zcard(f"{base}.XQ")
        pipe.lindex(base, 0)
    values = pipe.execute()
    report, oldest_ids = {}, {}
    for i, queue in enumerate(QUEUES):
        waiting, stored, delayed, dead, first = values[i * 5:(i + 1) * 5]
        report[queue] = {"waiting": waiting, "in_progress": max(0, stored - waiting), "delayed": delayed,
                         "dead_lettered": dead, "oldest_message_age_seconds": None}
        if first is not None:
            oldest_ids[queue] = first
    if oldest_ids:
        pipe = client.pipeline(transaction=False)
        for queue, message_id in oldest_ids.items():
            pipe.hget(f"{BROKER_NAMESPACE}:{queue}.msgs", message_id)
        for queue, data in zip(oldest_ids, pipe.execute()):
            stamp = (_json(data) or {}).get("message_timestamp")
            if stamp:
                report[queue]["oldest_message_age_seconds"] = round(max(0.0, now_ms - float(stamp)) / 1000, 1)
    return report


def outbox_report(conn: Connection) -> dict:
    """outbox.summary plus the rows stuck longer than OUTBOX_STALE_AFTER_DAYS (pending or failed)."""
    report = outbox.summary(conn)
    stale = conn.execute(
        "SELECT id, actor_name, dependency, status, description, attempts, last_error, created_at FROM outbox "
        "WHERE status IN ('pending', 'failed') AND created_at < now() - make_interval(days => %s) "
        "ORDER BY id LIMIT 20", (OUTBOX_STALE_AFTER_DAYS,)).fetchall()
    count = conn.execute(
        "SELECT count(*) AS n FROM outbox WHERE status IN ('pending', 'failed') "
        "AND created_at < now() - make_interval(days => %s)", (OUTBOX_STALE_AFTER_DAYS,)).fetchone()["n"]
    report["stale_after_days"] = OUTBOX_STALE_AFTER_DAYS
    report["stale"] = count
    report["stale_rows"] = [{**r, "created_at": r["created_at"].isoformat()} for r in stale]
    return report


def pending_approvals(conn: Connection) -> dict:
    row = conn.execute("SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS oldest "
                       "FROM safeguard_requests WHERE status = 'pending'").fetchone()
    return {"pending": row["n"], "oldest_pending_seconds": round(float(row["oldest"]), 1) if row["oldest"] else None}


def devices_down(client: redis.Redis) -> list[dict]:
    """The Sentinel tracker's `workflow:device_down:{device_id}` hashes, if any (longest outage first)."""
    keys = []
    for key in client.scan_iter(match=DEVICE_DOWN_PATTERN, count=200):
        if key.decode().rsplit(":", 1)[1] == "index":  # the tracker's set of tracked ids, not a device
            continue
        keys.append(key)
        if len(keys) >= MAX_DEVICES:
            break
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    devices = []
    for key, fields in zip(keys, pipe.execute(raise_on_error=False)):
        if not isinstance(fields, dict):
            continue
        entry = {k.decode(): v.decode() for k, v in fields.items()}
        entry["device_id"] = key.decode().rsplit(":", 1)[1]
        devices.append(entry)
    return sorted(devices, key=lambda d: -_number(d.get("duration_minutes")))


def unknown_outcomes(conn, limit: int = 20) -> dict:
    """Actions interrupted after their request may have reached the system: a human checks each one."""
    rows = conn.execute("SELECT id, tool_name, error, finished_at FROM tool_calls WHERE status = 'unknown_outcome' "
                        "AND finished_at > now() - interval '7 days' ORDER BY finished_at DESC LIMIT %s",
                        (limit,)).fetchall()
    total = conn.execute("SELECT count(*) AS n FROM tool_calls WHERE status = 'unknown_outcome' "
                         "AND finished_at > now() - interval '7 days'").fetchone()["n"]
    return {"count": total, "recent": [{"call_id": str(r["id"]), "tool": r["tool_name"], "error": r["error"],
                                        "at": r["finished_at"].isoformat()} for r in rows]}


def problems(report: dict) -> list[dict]:
    """What needs a human, most severe first: {"severity": "error"|"warning", "what": str}."""
    found = []
    for name, info in report["integrations"].items():
        if info["status"] == "down":
            found.append(("error", f"{name} is down: {info.get('last_error') or 'no detail'}"))
    if report["glpi"]["status"] == "unknown":
        found.append(("warning", "no fresh GLPI health probe (status unknown, treated as degraded)"))
    box = report["outbox"]
    if box["stale"]:
        found.append(("error", f"{box['stale']} outbox row(s) unsent for more than {box['stale_after_days']} days"))
    if box["failed"]:
        found.append(("error", f"{box['failed']} outbox row(s) failed to reach the broker"))
    for queue, info in report["queues"].items():
        if info["dead_lettered"]:
            found.append(("warning", f"{info['dead_lettered']} dead-lettered message(s) in queue {queue}"))
    if not report["scheduler"]["ok"]:
        found.append(("error", f"scheduler: {report['scheduler']['detail']}"))
    if report["sentinel"]["ticket_failures"]["count"]:
        found.append(("error", f"{report['sentinel']['ticket_failures']['count']} incident(s) without their GLPI "
                               "ticket: open them by hand"))
    if report["sentinel"].get("unmapped_devices"):
        found.append(("warning", f"{len(report['sentinel']['unmapped_devices'])} alerting device(s) missing from the "
                                 "inventory: map them (PUT /inventory/devices/{hostname} or widip inventory import)"))
    if report["tool_calls_to_check"]["count"]:
        found.append(("warning", f"{report['tool_calls_to_check']['count']} action(s) interrupted with an unknown "
                                 "outcome: check the target system"))
    order = {"error": 0, "warning": 1}
    return [{"severity": s, "what": w} for s, w in sorted(found, key=lambda p: order[p[0]])]


def refresh_gauges(pool: ConnectionPool, client: redis.Redis) -> None:
    """Set the gauges that mirror shared state (outbox, LLM queues, integration up) just before a scrape.

    Each source is optional: a scrape must still answer when PostgreSQL or Redis does not.
    """
    try:
        with transaction(pool) as conn:
            pending = conn.execute("SELECT count(*) AS n FROM outbox WHERE status = 'pending'").fetchone()["n"]
        metrics.OUTBOX_PENDING.set(pending)
    except Exception as exc:  # noqa: BLE001 - keep serving the other metrics
        logger.warning("outbox gauge not refreshed: %s", type(exc).__name__)
    try:
        pipe = client.pipeline(transaction=False)
        for queue in LLM_QUEUES:
            pipe.llen(f"{BROKER_NAMESPACE}:{queue}")
        for queue, length in zip(LLM_QUEUES, pipe.execute()):
            metrics.LLM_QUEUE_LENGTH.labels(queue=queue).set(length)
        names = integration_status.systems(client)
        for name, status in circuit.statuses(client, names).items():
            if status != "unknown":
                metrics.INTEGRATION_UP.labels(system=name).set(0 if status == "down" else 1)
    except redis.RedisError as exc:
        logger.warning("queue and integration gauges not refreshed: %s", type(exc).__name__)


def _json(value):
    if value is None:
        return None
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return {"raw": value.decode(errors="replace") if isinstance(value, bytes) else str(value)}


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
