"""Sentinel actors: thin wrappers over widip.functions.sentinel, plus its tick and sweeper.

Flow: `process_alert` (default) → `start_diagnosis` (default, after a short hold so an alert burst
lands in one incident before its ticket is written) → LLM job "sentinel_diagnosis" on the Sentinel
priority class (`llm.p0`, priority 1000, GPU mutex; `llm-remote` for a remote provider) →
`notify_incident` (default) → `sync_incident` for follow-ups. The tick runs every
WORKFLOW_INTERVAL_SECONDS (rounded to whole minutes: periodiq's granularity) when WORKFLOW_ENABLED.
The sweeper, each minute, re-sends what a lost message or a Redis outage left behind.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq
from periodiq import cron

from widip.deps import deps
from widip.actors.llm import enqueue_llm
from widip.actors.tools import flush_outbox
from widip.functions import db
from widip.functions.llm import queue as llm_queue
from widip.functions.llm.factory import provider_for
from widip.functions.safeguard.policy import load_policy
from widip.functions.sentinel import alerts, diagnosis, notifier, pipeline, tracker
from widip.ticks import schedule

logger = logging.getLogger(__name__)

DIAGNOSIS_KIND = "sentinel_diagnosis"
#: Hold before diagnosing a new incident: devices of the same outage arriving meanwhile are in the ticket.
CORRELATION_HOLD_MS = 3_000
#: A re-send of a stuck diagnosis or notification at most this often per incident.
RESEND_GUARD_SECONDS = 300


TICK_CRON = schedule()["tick_sentinel"]  # the scheduler process reads the same table


def _policy(settings):
    return load_policy(settings.policy_dir)


def _ttl(settings) -> timedelta:
    return timedelta(hours=settings.approval_ttl_hours)


def enqueue_alert(pool, alert_id: int) -> bool:
    """Hand an accepted alert to the broker; False (and nothing raised) when the broker is unreachable."""
    try:
        process_alert.send(alert_id)
    except Exception as exc:  # noqa: BLE001 - the alert is persisted; the sweeper sends it later
        logger.warning("alert %s persisted but not enqueued (%s); the sweeper will send it", alert_id,
                       type(exc).__name__)
        return False
    with db.transaction(pool) as conn:
        alerts.mark_enqueued(conn, [alert_id])
    return True


@dramatiq.actor(queue_name="default", max_retries=5, min_backoff=1_000, max_backoff=60_000, time_limit=60_000,
                throws=(LookupError,))
def process_alert(alert_id: int) -> dict:
    d = deps()
    try:
        result = pipeline.process(d.pool, d.redis, d.clients, alert_id)
    except Exception:
        notifier.count_error()
        raise
    if result.diagnose:
        start_diagnosis.send_with_options(args=(result.incident_id,), delay=CORRELATION_HOLD_MS)
    if result.sync:
        sync_incident.send(result.incident_id)
    return {"alert_id": alert_id, "outcome": result.outcome, "incident_id": result.incident_id}


@dramatiq.actor(queue_name="default", max_retries=5, time_limit=30_000)
def start_diagnosis(incident_id: int) -> None:
    """Queue the diagnosis on the Sentinel LLM priority class."""
    provider = provider_for(deps().settings)
    enqueue_llm(DIAGNOSIS_KIND, str(incident_id), "sentinel", remote=not getattr(provider, "local", False))


def run_diagnosis_job(job_id: str, d) -> list:
    """LLM job handler: diagnose (≤ 20 s), then hand over to the Notificateur."""
    settings = d.settings
    try:
        outcome = diagnosis.diagnose(d.pool, d.redis, d.clients, provider_for(settings), int(job_id),
                                     policy=_policy(settings), approval_ttl=_ttl(settings),
                                     llm_timeout=settings.llm_timeout_seconds)
    except Exception:
        notifier.count_error()
        raise
    logger.info("incident %s diagnosed (%s) in %.2f s", job_id, outcome.source, outcome.seconds)
    return [llm_queue.NextStep("notify_incident", (int(job_id),))]


llm_queue.register_llm_job(DIAGNOSIS_KIND, run_diagnosis_job)


#: Entity lookup + inline GLPI ticket (each ≤ 2 × INTEGRATION_TIMEOUT_SECONDS with a session to open) + DB work.
#: notifier.UNFINISHED_AFTER must stay above it: a younger unmailed notification may still be running.
NOTIFY_TIME_LIMIT_MS = 120_000


@dramatiq.actor(queue_name="default", max_retries=5, min_backoff=2_000, max_backoff=60_000,
                time_limit=NOTIFY_TIME_LIMIT_MS)
def notify_incident(incident_id: int) -> dict:
    d = deps()
    try:
        result = notifier.notify(d.pool, d.redis, d.clients, d.settings, incident_id, policy=_policy(d.settings),
                                 approval_ttl=_ttl(d.settings))
    except Exception:
        notifier.count_error()
        raise
    flush_outbox()
    return {"incident_id": incident_id, "status": result.status, "ticket_id": result.ticket_id,
            "degraded": result.degraded}


@dramatiq.actor(queue_name="default", max_retries=3, time_limit=30_000)
def sync_incident(incident_id: int) -> list:
    d = deps()
    posted = notifier.sync(d.pool, incident_id, policy=_policy(d.settings), approval_ttl=_ttl(d.settings))
    flush_outbox()
    return posted


def run_tick() -> dict:
    d = deps()
    if not d.settings.observium_url:
        return {"skipped": "OBSERVIUM_URL is not set"}
    result = tracker.tick(d.pool, d.redis, d.clients, d.settings, policy=_policy(d.settings),
                          approval_ttl=_ttl(d.settings))
    flush_outbox()  # effects held for GLPI go out now if it is back
    with db.transaction(d.pool) as conn:
        due = notifier.needing_attention(conn)["sync"]
    for incident_id in sorted(set(result["sync_incidents"]) | set(due)):
        sync_incident.send(incident_id)
    return result


@dramatiq.actor(queue_name="ticks", periodic=cron(TICK_CRON), max_retries=0, time_limit=240_000)
def tick_sentinel() -> dict:
    """Every WORKFLOW_INTERVAL_SECONDS: reconcile down devices (skipped when WORKFLOW_ENABLED is false)."""
    if not deps().settings.workflow_enabled:
        logger.info("sentinel tick skipped: WORKFLOW_ENABLED is false")
        return {"skipped": "WORKFLOW_ENABLED is false"}
    return run_tick()


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=240_000)
def run_sentinel_tick() -> dict:
    """One tick now, on demand (POST /sentinel/ticks), whatever WORKFLOW_ENABLED says."""
    return run_tick()


@dramatiq.actor(queue_name="ticks", periodic=cron("* * * * *"), max_retries=0, time_limit=60_000)
def sweep_sentinel() -> dict:
    """Each minute: send alerts no job took (Redis was down), and restart stuck incidents."""
    d = deps()
    with db.transaction(d.pool) as conn:
        lost = alerts.lost(conn)
        todo = notifier.needing_attention(conn)
    resent = sum(1 for alert_id in lost if enqueue_alert(d.pool, alert_id))
    for incident_id in todo["diagnose"]:
        if _first_in_a_while(d.redis, "diagnose", incident_id):
            start_diagnosis.send(incident_id)
    for incident_id in todo["notify"] + todo["mail"]:  # notify also finishes a notification stopped before its mail
        if _first_in_a_while(d.redis, "notify", incident_id):
            notify_incident.send(incident_id)
    for incident_id in todo["sync"]:
        sync_incident.send(incident_id)
    return {"alerts_resent": resent, **{k: len(v) for k, v in todo.items()}}


def _first_in_a_while(redis, what: str, incident_id: int) -> bool:
    try:
        return bool(redis.set(f"widip:sentinel:resent:{what}:{incident_id}", "1", nx=True, ex=RESEND_GUARD_SECONDS))
    except Exception:  # noqa: BLE001
        return True
