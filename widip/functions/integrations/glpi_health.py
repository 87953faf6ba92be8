"""The GLPI health probe (seed WIDIP_Health_Check_GLPI): classify, publish, alert once, recover.

One probe pings GLPI (an authenticated round trip), classifies the answer — ok (fast), degraded
(slower than GLPI_SLOW_THRESHOLD_MS, or failing but fewer than GLPI_DOWN_AFTER_FAILURES times in a
row), down (that many failures in a row) — and publishes it as `glpi_health_status` (TTL 60 s, so a
missing probe reads "unknown", never "ok"), with a history row in PostgreSQL.
Transitions, each guarded by an atomic Redis operation so concurrent probes agree:
- entering down: one alert mail to ALERT_MAIL_RECIPIENTS per outage; `glpi_down_alert_sent`
  (TTL 300 s) also keeps a flapping GLPI from sending more than one alert per 5 minutes;
- answering again after down ("Was Previously Down?"): `recovered` is reported so the caller flushes
  the outbox at once, and if an alert went out, one recovery mail ("Prepare Recovery Alert",
  "Clear Down Flag").
These are L2 system alerts (sent, then recorded in safeguard_audit), not agent tool calls. Plain
functions: the actor in widip/actors/health.py schedules them and acts on the result.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import redis
from psycopg_pool import ConnectionPool

from widip.errors import ServiceError
from widip.functions import metrics
from widip.functions.integrations import mail_templates
from widip.functions.integrations.circuit import GLPI_STATUS_KEY
from widip.functions.db import transaction
from widip.functions.integrations.status import safe_error
from widip.functions.safeguard import audit

logger = logging.getLogger(__name__)

STATUS_TTL_SECONDS = 60
ALERT_SENT_KEY = "glpi_down_alert_sent"
ALERT_SENT_TTL_SECONDS = 300
#: Consecutive failed probes (reset by any answer).
FAILURES_KEY = "widip:glpi:health:failures"
#: When the current outage began (the "down flag"); absent while GLPI answers.
DOWN_SINCE_KEY = "widip:glpi:health:down_since"
#: Set when this outage's alert mail went out: a recovery mail is owed.
ALERTED_KEY = "widip:glpi:health:alerted"
#: Held while one probe sends the recovery mail (concurrent probes skip it); outlives the probe's time limit.
RECOVERY_CLAIM_KEY = "widip:glpi:health:recovery_sending"
RECOVERY_CLAIM_TTL_SECONDS = 90
#: The last probe's result (JSON), for monitoring.
LAST_PROBE_KEY = "widip:glpi:health:last_probe"
#: Outage bookkeeping survives a week without probes, then starts afresh.
STATE_TTL_SECONDS = 7 * 24 * 3600
HISTORY_KEEP_DAYS = 30
AUDIT_ACTOR = "system:health"
AUDIT_TOOL = "smtp_send_alert"


@dataclass(frozen=True)
class ProbeResult:
    """One probe: the published status and what changed because of it."""

    status: str                 # ok | degraded | down
    latency_ms: float | None    # None when GLPI did not answer
    consecutive_failures: int
    error: str | None           # safe one-line message
    went_down: bool             # this probe began an outage
    recovered: bool             # this probe ended an outage: flush what waited for GLPI
    alert: str | None           # "down" | "recovery" when this probe sent that mail
    checked_at: float           # epoch seconds

    def to_dict(self) -> dict:
        return asdict(self)


def classify(latency_ms: float | None, failed: bool, consecutive_failures: int, *,
             slow_threshold_ms: float, down_after_failures: int) -> str:
    """ok | degraded | down for one probe, given the failures in a row including this one."""
    if failed:
        return "down" if consecutive_failures >= max(1, down_after_failures) else "degraded"
    return "degraded" if latency_ms is not None and latency_ms > slow_threshold_ms else "ok"


def probe_glpi(client: redis.Redis, pool: ConnectionPool, clients, settings, *,
               now: float | None = None) -> ProbeResult:
    """Ping GLPI once, publish the status, handle transitions and alerts; return what happened."""
    now = time.time() if now is None else now
    latency_ms, error = _ping(clients)
    if error is None:
        client.delete(FAILURES_KEY)
        failures = 0
    else:
        failures = int(client.incr(FAILURES_KEY))
        client.expire(FAILURES_KEY, STATE_TTL_SECONDS)
    status = classify(latency_ms, error is not None, failures, slow_threshold_ms=settings.glpi_slow_threshold_ms,
                      down_after_failures=settings.glpi_down_after_failures)
    client.set(GLPI_STATUS_KEY, status, ex=STATUS_TTL_SECONDS)
    went_down = recovered = False
    alert = None
    if status == "down":
        went_down, alert = _on_down(client, pool, clients, settings, now, failures, error)
    elif error is None:
        recovered, alert = _on_answer(client, pool, clients, settings, now)
    result = ProbeResult(status, latency_ms, failures, error, went_down, recovered, alert, now)
    _publish(client, pool, result)
    log = logger.warning if status != "ok" or recovered else logger.debug
    log("glpi health: %s (latency_ms=%s failures=%d%s%s)", status, latency_ms, failures,
        " went down" if went_down else "", " recovered" if recovered else "")
    return result


def _ping(clients) -> tuple[float | None, str | None]:
    """(latency_ms, None) when GLPI answered, (None, safe error) otherwise."""
    try:
        return clients.glpi.ping().latency_ms, None
    except ServiceError as exc:
        return None, safe_error(exc)
    except Exception as exc:  # noqa: BLE001 - an unexpected failure is still "GLPI did not answer"
        logger.exception("glpi health probe failed unexpectedly")
        return None, safe_error(exc)


def _on_down(client, pool, clients, settings, now, failures, error) -> tuple[bool, str | None]:
    went_down = bool(client.set(DOWN_SINCE_KEY, repr(now), nx=True, ex=STATE_TTL_SECONDS))
    since = float(client.get(DOWN_SINCE_KEY) or now)
    if client.exists(ALERTED_KEY) or not client.set(ALERT_SENT_KEY, "sent", nx=True, ex=ALERT_SENT_TTL_SECONDS):
        return went_down, None
    subject, body = mail_templates.glpi_down_alert(failures=failures, last_error=error, since=_local(since))
    # ALERTED_KEY is set the moment SMTP accepted the mail, before the audit row: a time limit after that
    # cannot cause a second alert. Killed during the SMTP exchange, the 5-minute ALERT_SENT_KEY holds any
    # resend, which then carries the same Message-ID.
    if _send_alert(pool, clients, settings, "down", subject, body, f"widip-glpi-down-{int(since)}",
                   on_sent=lambda: client.set(ALERTED_KEY, repr(since), ex=STATE_TTL_SECONDS)):
        return went_down, "down"
    client.delete(ALERT_SENT_KEY)  # not sent: the next probe tries again
    return went_down, None


def _on_answer(client, pool, clients, settings, now) -> tuple[bool, str | None]:
    """End the outage; send the recovery mail if one is owed.

    ALERTED_KEY ("a recovery mail is owed") is cleared only once SMTP accepted the mail, so a probe killed
    before that leaves it for the next answer. RECOVERY_CLAIM_KEY keeps concurrent probes from sending it
    twice; it is released when this probe stops for any reason it can see (and expires otherwise).
    """
    since = client.getdel(DOWN_SINCE_KEY)
    recovered = since is not None
    alerted = client.get(ALERTED_KEY)
    if alerted is None or not client.set(RECOVERY_CLAIM_KEY, alerted, nx=True, ex=RECOVERY_CLAIM_TTL_SECONDS):
        return recovered, None
    try:
        began = float(alerted)  # the outage start recorded with the alert: a stable Message-ID on a resend
        subject, body = mail_templates.glpi_recovery_alert(down_minutes=max(0, round((now - began) / 60)))
        sent = _send_alert(pool, clients, settings, "recovery", subject, body, f"widip-glpi-recovery-{int(began)}",
                           on_sent=lambda: _delete_if(client, ALERTED_KEY, alerted))
    finally:
        client.delete(RECOVERY_CLAIM_KEY)
    return recovered, "recovery" if sent else None


def _delete_if(client, key: str, value) -> None:
    """Delete `key` only if it still holds `value` (a newer outage's flag is kept)."""
    with client.pipeline() as pipe:
        try:
            pipe.watch(key)
            if pipe.get(key) == value:
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
        except redis.WatchError:
            pass


def _send_alert(pool, clients, settings, kind: str, subject: str, body: str, message_id: str, *,
                on_sent=lambda: None) -> bool:
    """Send one system alert and record it as an executed L2 action; False when it could not go out.

    `on_sent` runs as soon as SMTP accepted the mail, before the audit row is written.
    """
    recipients = list(settings.alert_mail_recipients)
    if not recipients:
        logger.warning("glpi %s alert not sent: ALERT_MAIL_RECIPIENTS is empty", kind)
        return False
    try:
        sent = clients.mail.send_email(recipients, subject, body, message_id=message_id)
    except ServiceError as exc:
        logger.warning("glpi %s alert not sent: %s", kind, exc.message)
        return False
    on_sent()
    with transaction(pool) as conn:
        audit.record(conn, actor=AUDIT_ACTOR, action="executed", tool_name=AUDIT_TOOL, level="L2",
                     arguments={"to": list(sent.recipients), "subject": subject, "alert": f"glpi_{kind}"},
                     outcome="done", reason=f"system alert: GLPI {kind} (health check)")
    logger.info("glpi %s alert sent to %d recipient(s)", kind, len(sent.recipients))
    return True


def _publish(client: redis.Redis, pool: ConnectionPool, result: ProbeResult) -> None:
    """History row, last-probe snapshot and metrics (the status key is already set)."""
    transition = "down" if result.went_down else "recovered" if result.recovered else None
    with transaction(pool) as conn:
        conn.execute(
            "INSERT INTO glpi_health_history (checked_at, status, latency_ms, consecutive_failures, error, "
            "transition, alert) VALUES (to_timestamp(%s), %s, %s, %s, %s, %s, %s)",
            (result.checked_at, result.status, result.latency_ms, result.consecutive_failures, result.error,
             transition, result.alert))
        conn.execute("DELETE FROM glpi_health_history WHERE checked_at < now() - make_interval(days => %s)",
                     (HISTORY_KEEP_DAYS,))
    client.set(LAST_PROBE_KEY, json.dumps(result.to_dict()), ex=STATE_TTL_SECONDS)
    metrics.GLPI_HEALTH_CHECKS.labels(status=result.status).inc()
    metrics.INTEGRATION_UP.labels(system="glpi").set(0 if result.status == "down" else 1)
    if result.latency_ms is not None:
        metrics.GLPI_LATENCY.observe(result.latency_ms / 1000)


def history(conn, *, hours: int = 24, recent: int = 20) -> dict:
    """The last `hours` of probes: counts by status, availability, transitions and the latest rows."""
    counts = conn.execute(
        "SELECT status, count(*) AS n, count(latency_ms) AS answered FROM glpi_health_history "
        "WHERE checked_at >= now() - make_interval(hours => %s) GROUP BY status", (hours,)).fetchall()
    events = conn.execute(
        "SELECT checked_at, status, transition, alert, error FROM glpi_health_history "
        "WHERE checked_at >= now() - make_interval(hours => %s) AND (transition IS NOT NULL OR alert IS NOT NULL) "
        "ORDER BY id DESC LIMIT 50", (hours,)).fetchall()
    rows = conn.execute(
        "SELECT checked_at, status, latency_ms, consecutive_failures, error FROM glpi_health_history "
        "ORDER BY id DESC LIMIT %s", (recent,)).fetchall()
    by_status = {r["status"]: r["n"] for r in counts}
    total = sum(by_status.values())
    answered = sum(r["answered"] for r in counts)
    return {
        "hours": hours, "probes": total, "by_status": by_status,
        "availability_percent": round(100 * answered / total, 2) if total else None,
        "transitions": [_row(r) for r in events], "recent": [_row(r) for r in rows],
    }


def _row(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _local(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).astimezone().strftime("%d/%m/%Y %H:%M:%S")
