"""Sentinel actors: thin wrappers over widip.functions.sentinel, plus its tick and sweeper.

Flow: `process_alert` (default) → `start_diagnosis` (default, after a short hold so an alert burst
lands in one incident before its ticket is written) → LLM job "sentinel_diagnosis" on the Sentinel
priority class (`llm.p0`, GPU mutex; `llm-remote` for a remote provider) → `notify_incident`
(default) → `sync_incident` for follow-ups. The tick runs every WORKFLOW_INTERVAL_SECONDS (rounded
to whole minutes: periodiq's granularity) when WORKFLOW_ENABLED. The sweeper, each minute,
re-sends what a lost message or a Redis outage left behind. Each hour `sync_inventory` adds the
Observium devices the inventory lacks, so a new device is placed in its site before its first alert.
"""

from __future__ import annotations

import logging
import os

from widip.actors import actor
from widip.deps import deps
from widip.functions import db, job_table
from widip.functions.llm.factory import provider_for
from widip.functions.safeguard.policy import policy_for
from widip.functions.sentinel import alerts, diagnosis_job, inventory, notifier, pipeline, tracker
from widip.messaging import door
from widip.messaging.relay import flush_outbox

logger = logging.getLogger(__name__)

#: Hold before diagnosing a new incident: devices of the same outage arriving meanwhile are in the ticket
#: (SENTINEL_HOLD_SECONDS); later ones are batched into one follow-up (notifier.ADDITIONS_BATCH).
CORRELATION_HOLD_MS = int(float(os.environ.get("SENTINEL_HOLD_SECONDS") or 30) * 1000)
#: A re-send of a stuck diagnosis or notification at most this often per incident.
RESEND_GUARD_SECONDS = 300


@actor(job_table.PROCESS_ALERT, max_retries=5, min_backoff=1_000, max_backoff=60_000, time_limit=60_000,
       throws=(LookupError,))
def process_alert(alert_id: int) -> dict:
    d = deps()
    try:
        result = pipeline.process(d.pool, d.redis, d.clients, alert_id)
    except Exception:
        notifier.count_error()
        raise
    if result.diagnose:
        door.send(job_table.START_DIAGNOSIS, result.incident_id, delay_ms=CORRELATION_HOLD_MS)
    if result.sync:  # after the batching delay: the last device of a burst posts the whole batch
        door.send(job_table.SYNC_INCIDENT, result.incident_id,
                  delay_ms=int(notifier.ADDITIONS_BATCH.total_seconds() * 1000) + 500)
    return {"alert_id": alert_id, "outcome": result.outcome, "incident_id": result.incident_id}


@actor(job_table.START_DIAGNOSIS, max_retries=5, time_limit=30_000)
def start_diagnosis(incident_id: int) -> None:
    """Queue the diagnosis on the Sentinel LLM priority class."""
    provider = provider_for(deps().settings)
    door.send_llm(diagnosis_job.KIND, str(incident_id), "sentinel", remote=not provider.local)


#: Entity lookup + inline GLPI ticket (each ≤ 2 × INTEGRATION_TIMEOUT_SECONDS with a session to open) + DB work.
#: notifier.UNFINISHED_AFTER must stay above it: a younger unmailed notification may still be running.
NOTIFY_TIME_LIMIT_MS = 120_000


@actor(job_table.NOTIFY_INCIDENT, max_retries=5, min_backoff=2_000, max_backoff=60_000,
       time_limit=NOTIFY_TIME_LIMIT_MS)
def notify_incident(incident_id: int) -> dict:
    d = deps()
    try:
        result = notifier.notify(d.pool, d.redis, d.clients, d.settings, incident_id, policy=policy_for(d.settings))
    except Exception:
        notifier.count_error()
        raise
    flush_outbox()
    return {"incident_id": incident_id, "status": result.status, "ticket_id": result.ticket_id,
            "degraded": result.degraded}


@actor(job_table.SYNC_INCIDENT, max_retries=3, time_limit=30_000)
def sync_incident(incident_id: int) -> list:
    d = deps()
    posted = notifier.sync(d.pool, incident_id, policy=policy_for(d.settings))
    flush_outbox()
    return posted


def run_tick() -> dict:
    d = deps()
    if not d.settings.observium_url:
        return {"skipped": "OBSERVIUM_URL is not set"}
    result = tracker.tick(d.pool, d.redis, d.clients, d.settings, policy=policy_for(d.settings))
    flush_outbox()  # effects held for GLPI go out now if it is back
    with db.transaction(d.pool) as conn:
        due = notifier.needing_attention(conn)["sync"]
    for incident_id in sorted(set(result["sync_incidents"]) | set(due)):
        door.send(job_table.SYNC_INCIDENT, incident_id)
    return result


@actor(job_table.TICK_SENTINEL, max_retries=0, time_limit=240_000)
def tick_sentinel() -> dict:
    """Every WORKFLOW_INTERVAL_SECONDS: reconcile down devices (skipped when WORKFLOW_ENABLED is false)."""
    if not deps().settings.workflow_enabled:
        logger.info("sentinel tick skipped: WORKFLOW_ENABLED is false")
        return {"skipped": "WORKFLOW_ENABLED is false"}
    return run_tick()


@actor(job_table.RUN_SENTINEL_TICK, max_retries=0, time_limit=240_000)
def run_sentinel_tick() -> dict:
    """One tick now, on demand (POST /sentinel/ticks), whatever WORKFLOW_ENABLED says."""
    return run_tick()


@actor(job_table.SWEEP_SENTINEL, max_retries=0, time_limit=60_000)
def sweep_sentinel() -> dict:
    """Each minute: send alerts no job took (Redis was down), and restart stuck incidents."""
    d = deps()
    with db.transaction(d.pool) as conn:
        lost = alerts.claim_lost(conn)
        todo = notifier.needing_attention(conn)
    resent = alerts.hand_all_to_broker(d.pool, lost, door.send)
    for incident_id in todo["diagnose"]:
        if _first_in_a_while(d.redis, "diagnose", incident_id):
            door.send(job_table.START_DIAGNOSIS, incident_id)
    for incident_id in todo["notify"] + todo["mail"]:  # notify also finishes a notification stopped before its mail
        if _first_in_a_while(d.redis, "notify", incident_id):
            door.send(job_table.NOTIFY_INCIDENT, incident_id)
    for incident_id in todo["sync"]:
        door.send(job_table.SYNC_INCIDENT, incident_id)
    return {"alerts_resent": resent, **{k: len(v) for k, v in todo.items()}}


def _first_in_a_while(redis, what: str, incident_id: int) -> bool:
    try:
        return bool(redis.set(f"widip:sentinel:resent:{what}:{incident_id}", "1", nx=True, ex=RESEND_GUARD_SECONDS))
    except Exception:  # noqa: BLE001
        return True


@actor(job_table.SYNC_INVENTORY, max_retries=0, time_limit=300_000)
def sync_inventory() -> dict:
    """Hourly: add the Observium devices the inventory lacks (rows ops imported are kept)."""
    d = deps()
    if not d.settings.observium_url:
        return {"skipped": "OBSERVIUM_URL is not set"}
    report = inventory.sync_observium(d.pool, d.clients, ask_glpi=bool(d.settings.glpi_url))
    logger.info("inventory synced from Observium: %s", report)
    return report
