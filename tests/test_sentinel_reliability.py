"""Sentinel when a worker dies or a call fails for good, on the real database and simulators: the team mail
still goes out exactly once after a kill during the ticket, a ticket that will never exist stops being synced
and shows up instead, and a read the diagnosis gave up on is not re-run by the stuck-call sweep.

A worker's time limit is Dramatiq's own TimeLimitExceeded, raised where the real worker would raise it: right
after the GLPI simulator created the ticket, before widip recorded anything.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
from dramatiq.middleware.time_limit import TimeLimitExceeded
import pytest

from tests.test_sentinel_notifier import calls_of, diagnosed, run_pending
from tests.test_sentinel_pipeline import env, ingest  # noqa: F401 - fixture
from widip.functions import db
from widip.functions.safeguard import runs as tool_runs
from widip.functions.llm.rules import RulesProvider
from widip.functions.safeguard import calls
from widip.functions.sentinel import diagnosis, incidents, notifier, views


class KilledAfterTicket:
    """The integration clients of a worker whose time limit strikes just after GLPI created the ticket."""

    def __init__(self, clients):
        self._clients = clients

    def __getattr__(self, name):
        return getattr(self._clients, name)

    @property
    def glpi(self):
        return _GlpiThenTimeLimit(self._clients.glpi)


class _GlpiThenTimeLimit:
    def __init__(self, glpi):
        self._glpi = glpi

    def __getattr__(self, name):
        return getattr(self._glpi, name)

    def create_ticket(self, *args, **kwargs):
        self._glpi.create_ticket(*args, **kwargs)
        raise TimeLimitExceeded()


def notify(env, incident_id, now, clients=None):
    return notifier.notify(env.pool, env.redis, clients or env.clients, env.settings, incident_id,
                           policy=env.policy, now=now)


def incident(env, incident_id):
    with db.transaction(env.pool) as conn:
        return incidents.get_incident(conn, incident_id)


def attention(env, now=None):
    with db.transaction(env.pool) as conn:
        return notifier.needing_attention(conn, now=now)


def sentinel_tickets(glpi):
    return [t for t in glpi.state.items["Ticket"].values() if t["name"].startswith("[Sentinel]")]


def team_mails(mail_sink):
    return [m for m in mail_sink.messages() if m["Subject"].startswith("[WIDIP Sentinel]")]


def glpi_fault(glpi, **body):
    httpx.post(glpi.url.replace("/apirest.php", "") + "/_sim/fault", json=body, timeout=5).raise_for_status()


def test_a_worker_killed_during_the_ticket_still_mails_the_team_exactly_once(env, observium, phibee, glpi,
                                                                           mail_sink):
    incident_id = diagnosed(env, observium)
    t0 = datetime.now(timezone.utc)
    with pytest.raises(TimeLimitExceeded):
        notify(env, incident_id, t0, KilledAfterTicket(env.clients))
    stopped = incident(env, incident_id)
    assert stopped["notified_at"] == t0 and stopped["mailed_at"] is None and stopped["ticket_id"] is None
    assert len(sentinel_tickets(glpi)) == 1 and calls_of(env, incident_id, "mail") == []
    assert calls_of(env, incident_id, "ticket")[0]["status"] == "running"

    # The actor's quick retry: the first run may still be busy with GLPI, so no mail without its ticket yet
    assert notify(env, incident_id, t0 + timedelta(seconds=5)).status == "already"
    assert calls_of(env, incident_id, "mail") == []
    assert attention(env, t0 + timedelta(seconds=60))["mail"] == []
    later = t0 + notifier.UNFINISHED_AFTER + timedelta(seconds=30)
    assert attention(env, later)["mail"] == [incident_id]

    # The sweeper's notify finishes the job: one mail request, the log row, and never again
    finished = notify(env, incident_id, later)
    assert finished.status == "notified" and finished.ticket_id is None
    assert notify(env, incident_id, later + timedelta(minutes=5)).status == "already"
    assert attention(env, later)["mail"] == []
    [mail] = calls_of(env, incident_id, "mail")
    assert "en cours de création" in mail["arguments"]["body"]
    run_pending(env, "smtp_send_email")
    run_pending(env, "smtp_send_email")
    assert len(team_mails(mail_sink)) == 1

    # The interrupted ticket call, re-sent by the stuck-call sweep, finds its own ticket instead of a twin
    ticket_call = calls_of(env, incident_id, "ticket")[0]
    done = tool_runs.run_call(env.pool, str(ticket_call["id"]), env.clients).call
    assert done["status"] == "done" and done["result"]["created"] is False
    assert notifier.sync(env.pool, incident_id, policy=env.policy) == ["ticket_id"]
    [ticket] = sentinel_tickets(glpi)
    assert incident(env, incident_id)["ticket_id"] == ticket["id"]
    with db.transaction(env.pool) as conn:
        log = conn.execute("SELECT ticket_id FROM incident_logs").fetchall()
    assert log == [{"ticket_id": str(ticket["id"])}]


def test_a_ticket_glpi_refuses_is_shown_as_failed_once_and_no_longer_synced(env, observium, phibee, glpi,
                                                                          mail_sink):
    incident_id = diagnosed(env, observium)
    glpi_fault(glpi, status=400)  # GLPI answers, and refuses: a permanent failure, not a retry
    try:
        result = notify(env, incident_id, datetime.now(timezone.utc))
    finally:
        glpi_fault(glpi, clear=True)
    assert result.status == "notified" and result.ticket_id is None
    assert calls_of(env, incident_id, "ticket")[0]["status"] == "failed"
    body = calls_of(env, incident_id, "mail")[0]["arguments"]["body"]
    assert "la création automatique a échoué" in body
    stored = incident(env, incident_id)
    assert stored["ticket_failed_at"] is not None and stored["mailed_at"] is not None
    assert incident_id not in attention(env)["sync"]
    with db.transaction(env.pool) as conn:
        events = [e["kind"] for e in conn.execute("SELECT kind FROM incident_events WHERE incident_id = %s",
                                                  (incident_id,))]
        failures = notifier.ticket_failures(conn)
        story = views.story(conn, stored["tracking_id"])
    assert events.count("ticket_failed") == 1
    assert failures["count"] == 1 and failures["recent"][0]["tracking_id"] == stored["tracking_id"]
    assert failures["recent"][0]["call_status"] == "failed"
    assert story["ticket"]["failed"] and not story["ticket"]["pending"] and story["incident"]["ticket_failed_at"]


def test_a_held_ticket_that_fails_on_recovery_is_synced_once_then_left_out(env, observium, phibee, glpi):
    old_id = diagnosed(env, observium, 301)
    env.redis.set("glpi_health_status", "down")
    assert notify(env, old_id, datetime.now(timezone.utc)).degraded
    env.redis.set("glpi_health_status", "ok")
    assert attention(env)["sync"] == [old_id]  # waiting for its ticket: polled
    ticket_call = calls_of(env, old_id, "ticket")[0]
    glpi_fault(glpi, status=400)
    try:
        assert tool_runs.run_call(env.pool, str(ticket_call["id"]), env.clients).call["status"] == "failed"
    finally:
        glpi_fault(glpi, clear=True)
    assert attention(env)["sync"] == [old_id]  # once more, to record the failure
    assert notifier.sync(env.pool, old_id, policy=env.policy) == ["ticket_failed"]
    assert attention(env)["sync"] == []
    assert notifier.sync(env.pool, old_id, policy=env.policy) == []

    # A late device on that incident does not bring it back (no ticket to post on); a newer incident is synced
    now = datetime.now(timezone.utc)
    observium.state.set_down(303, since_seconds=60)
    assert ingest(env, observium.state.webhook_body(303, now=now.timestamp()), now).incident_id == old_id
    assert attention(env)["sync"] == []
    with db.transaction(env.pool) as conn:
        conn.execute("UPDATE incidents SET status = 'recovered', recovered_at = now() WHERE id = %s", (old_id,))
        conn.execute("UPDATE incident_members SET recovered_at = now() WHERE incident_id = %s", (old_id,))
    new_id = diagnosed(env, observium, 204)
    env.redis.set("glpi_health_status", "down")
    notify(env, new_id, datetime.now(timezone.utc))
    assert attention(env)["sync"] == [new_id]


def test_a_read_the_diagnosis_gave_up_on_is_closed_and_not_rerun_by_the_stuck_call_sweep(env, observium, phibee):
    now = datetime.now(timezone.utc)
    observium.state.set_down(301, since_seconds=600)
    incident_id = ingest(env, observium.state.webhook_body(301, now=now.timestamp()), now).incident_id
    httpx.post(observium.url + "/_sim/fault", json={"status": 503}, timeout=5).raise_for_status()
    try:
        outcome = diagnosis.diagnose(env.pool, env.redis, env.clients, RulesProvider(), incident_id,
                                     policy=env.policy, llm_timeout=5.0)
    finally:
        httpx.post(observium.url + "/_sim/fault", json={}, timeout=5).raise_for_status()
    assert outcome.diagnosis["responsibility"] in diagnosis.RESPONSIBILITIES
    with db.transaction(env.pool) as conn:
        rows = conn.execute("SELECT id, tool_name, status, error, finished_at FROM tool_calls").fetchall()
        read = next(r for r in rows if r["tool_name"] == "observium_get_device")
        assert read["status"] == "failed" and "503" in read["error"] and read["finished_at"] is not None
        assert not [r for r in rows if r["status"] in ("ready", "running")]
        assert calls.resend_stuck(conn, timedelta(0)) == []
        audit = conn.execute("SELECT actor, action, outcome FROM safeguard_audit WHERE call_id = %s AND "
                             "action = 'failed'", (read["id"],)).fetchall()
    assert audit == [{"actor": "system:sentinel", "action": "failed", "outcome": "failed"}]
