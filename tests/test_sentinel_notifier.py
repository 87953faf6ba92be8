"""The Notificateur on the GLPI simulator and the SMTP sink: one ticket (French, entity, urgency), one team mail,
degraded mode while GLPI is down, follow-ups for late devices and recovery, the seed's incident_logs row."""

from __future__ import annotations

from datetime import datetime, timezone

from prometheus_client import REGISTRY

from tests.test_sentinel_pipeline import body_for, env, ingest  # noqa: F401 - fixture
from widip.functions import db
from widip.functions.safeguard import runs as tool_runs
from widip.functions.llm.rules import RulesProvider
from widip.functions.sentinel import diagnosis, incidents, notifier


def diagnosed(env, observium, device_id: int = 301) -> int:
    now = datetime.now(timezone.utc)
    observium.state.set_down(device_id, since_seconds=600)
    incident_id = ingest(env, observium.state.webhook_body(device_id, now=now.timestamp()), now).incident_id
    diagnosis.diagnose(env.pool, env.redis, env.clients, RulesProvider(), incident_id, policy=env.policy,
                       llm_timeout=5.0)
    return incident_id


def notify(env, incident_id):
    return notifier.notify(env.pool, env.redis, env.clients, env.settings, incident_id, policy=env.policy)


def calls_of(env, incident_id, purpose=None):
    with db.transaction(env.pool) as conn:
        return conn.execute("SELECT c.* FROM incident_calls ic JOIN tool_calls c ON c.id = ic.call_id WHERE "
                            "ic.incident_id = %s AND (%s::text IS NULL OR ic.purpose LIKE %s) ORDER BY c.created_at",
                            (incident_id, purpose, f"{purpose}%")).fetchall()


def run_pending(env, tool_name):
    with db.transaction(env.pool) as conn:
        ids = [r["id"] for r in conn.execute("SELECT id FROM tool_calls WHERE tool_name = %s AND status = 'ready'",
                                             (tool_name,))]
    return [tool_runs.run_call(env.pool, str(i), env.clients).call for i in ids]


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_diagnosed_incident_gets_one_french_ticket_in_the_client_entity_and_a_team_mail(env, observium, phibee,
                                                                                        glpi, mail_sink):
    incident_id = diagnosed(env, observium)
    before = metric("widip_workflow_success_total", workflow="proactif")
    result = notify(env, incident_id)
    assert result.status == "notified" and result.ticket_id and not result.degraded
    ticket = glpi.state.items["Ticket"][result.ticket_id]
    assert ticket["name"].startswith("[Sentinel] Critique – EHPAD Saint-Joseph")
    assert "Responsabilité : opérateur d'accès (Phibee)" in ticket["content"]
    assert "cpe-stjoseph-ftth.widip.net (10.13.0.1)" in ticket["content"]
    assert ticket["urgency"] == 5 and ticket["entities_id"] == 3
    mail_call = calls_of(env, incident_id, "mail")[0]
    assert mail_call["level"] == "L2" and mail_call["caller"]["persona"] == "notificateur"
    assert f"n° {result.ticket_id}" in mail_call["arguments"]["body"]
    run_pending(env, "smtp_send_email")
    sent = mail_sink.messages()
    assert len(sent) == 1 and "[WIDIP Sentinel] Critique" in sent[0]["Subject"]
    with db.transaction(env.pool) as conn:
        log = conn.execute("SELECT * FROM incident_logs").fetchone()
    assert log["device_name"] == "cpe-stjoseph-ftth.widip.net" and log["ip_address"] == "10.13.0.1"
    assert log["responsibility"] == "OPERATEUR" and log["severity"] == "critique"
    assert log["ticket_id"] == str(result.ticket_id) and log["cache_used"] is False
    assert log["workflow_duration_ms"] >= 0
    assert metric("widip_workflow_success_total", workflow="proactif") == before + 1
    assert notify(env, incident_id).status == "already"
    assert len([t for t in glpi.state.items["Ticket"].values() if t["name"].startswith("[Sentinel]")]) == 1


def test_glpi_down_holds_the_ticket_in_the_outbox_and_the_mail_says_it_is_pending(env, observium, phibee, glpi):
    incident_id = diagnosed(env, observium)
    env.redis.set("glpi_health_status", "down")
    result = notify(env, incident_id)
    assert result.degraded and result.ticket_id is None
    with db.transaction(env.pool) as conn:
        held = conn.execute("SELECT * FROM outbox WHERE dependency = 'glpi' AND status = 'pending'").fetchall()
    assert [h["actor_name"] for h in held] == ["run_tool"]
    mail = calls_of(env, incident_id, "mail")[0]["arguments"]["body"]
    assert "en attente" in mail and "GLPI est indisponible" in mail
    assert not [t for t in glpi.state.items["Ticket"].values() if t["name"].startswith("[Sentinel]")]
    env.redis.set("glpi_health_status", "ok")  # recovery: the relayed call runs (twice: redelivery), once in GLPI
    for _ in range(2):
        tool_runs.run_call(env.pool, str(held[0]["kwargs"]["call_id"]), env.clients)
    assert notifier.sync(env.pool, incident_id, policy=env.policy) == ["ticket_id"]
    tickets = [t for t in glpi.state.items["Ticket"].values() if t["name"].startswith("[Sentinel]")]
    assert len(tickets) == 1
    with db.transaction(env.pool) as conn:
        assert incidents.get_incident(conn, incident_id)["ticket_id"] == tickets[0]["id"]
        assert conn.execute("SELECT ticket_id FROM incident_logs").fetchone()["ticket_id"] == str(tickets[0]["id"])


def test_late_devices_are_batched_and_the_recovery_becomes_follow_ups_on_the_same_ticket(env, observium, phibee, glpi):
    incident_id = diagnosed(env, observium)
    ticket_id = notify(env, incident_id).ticket_id
    now = datetime.now(timezone.utc)
    observium.state.set_down(303, since_seconds=60)
    late = ingest(env, observium.state.webhook_body(303, now=now.timestamp()), now)
    assert late.outcome == "correlated" and late.sync and late.incident_id == incident_id
    # Batched: nothing while devices may still be joining, then one follow-up for all of them.
    assert notifier.sync(env.pool, incident_id, policy=env.policy, now=now) == []
    assert notifier.sync(env.pool, incident_id, policy=env.policy,
                         now=now + notifier.ADDITIONS_BATCH) == ["additions"]
    for device_id in (301, 303):
        observium.state.set_up(device_id)
        ingest(env, observium.state.webhook_body(device_id, "RECOVER", now=now.timestamp() + 60), now)
    assert notifier.sync(env.pool, incident_id, policy=env.policy) == ["recovery"]
    assert notifier.sync(env.pool, incident_id, policy=env.policy) == []
    done = run_pending(env, "glpi_add_ticket_followup")
    assert [c["status"] for c in done] == ["done", "done"]
    followups = [f["content"] for f in glpi.state.items["ITILFollowup"].values() if f["items_id"] == ticket_id]
    assert any("fw-stjoseph-vienne.widip.net" in f for f in followups)
    assert any("Rétablissement" in f for f in followups)
    assert {c["level"] for c in calls_of(env, incident_id, "followup")} == {"L2"}


def test_an_incident_on_a_pinned_clock_is_dated_by_that_clock_not_by_postgresql(env, observium, phibee, glpi,
                                                                                   mail_sink):
    from widip.functions import clock

    # Given the pipeline clock pinned months away from the wall clock (a replay, a shifted deployment)
    past = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
    clock.set_now(past)
    try:
        # When an alert opens an incident that is diagnosed and notified
        observium.state.set_down(301, since_seconds=600)
        incident_id = ingest(env, observium.state.webhook_body(301, now=past.timestamp()), past).incident_id
        diagnosis.diagnose(env.pool, env.redis, env.clients, RulesProvider(), incident_id, policy=env.policy,
                           llm_timeout=5.0)
        assert notify(env, incident_id).status == "notified"
    finally:
        clock.set_now(None)
    # Then the incident, every line of its history and its log row carry the pinned instant
    with db.transaction(env.pool) as conn:
        created = conn.execute("SELECT created_at FROM incidents WHERE id = %s", (incident_id,)).fetchone()["created_at"]
        moments = {r["kind"]: r["at"] for r in conn.execute(
            "SELECT kind, at FROM incident_events WHERE incident_id = %s", (incident_id,)).fetchall()}
        logged = conn.execute("SELECT created_at AT TIME ZONE current_setting('TimeZone') AT TIME ZONE 'UTC' AS at "
                              "FROM incident_logs").fetchone()["at"]
    assert created == past
    assert {"opened", "diagnosed", "ticket_requested"} <= set(moments) and set(moments.values()) == {past}
    assert logged.replace(tzinfo=timezone.utc) == past
