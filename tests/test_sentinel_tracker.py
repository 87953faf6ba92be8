"""The Sentinel tick on the Observium simulator: the device-down tracker hash, exactly one L3 alert-mail
request per outage episode (even across a Redis flush), approval → one mail, recovery, and a large fleet."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from tests.test_sentinel_pipeline import env, ingest  # noqa: F401 - fixture
from widip.functions import db, identity
from widip.functions.safeguard import runs as tool_runs
from widip.functions.safeguard import calls
from widip.functions.sentinel import notifier, tracker


def tick(env, now=None, **overrides):
    settings = env.settings.with_overrides(**overrides) if overrides else env.settings
    return tracker.tick(env.pool, env.redis, env.clients, settings, policy=env.policy, now=now)


def requests(env):
    with db.transaction(env.pool) as conn:
        return conn.execute("SELECT * FROM safeguard_requests WHERE tool_name = 'smtp_send_alert' ORDER BY id").fetchall()


def approver(env):
    with db.transaction(env.pool) as conn:
        user = identity.create_user(conn, username="astreinte", password="correct-horse-battery-staple",
                                    email="astreinte@widip.fr", accreditation_level=3)
        return identity.caller_for_user(conn, user.id)


def test_a_device_down_21_minutes_gets_exactly_one_l3_alert_mail_request_across_ticks(env, observium, mail_sink):
    observium.state.set_up(204)
    observium.state.set_down(204, since_seconds=21 * 60)  # plus the demo's 301, down 35 min
    now = datetime.now(timezone.utc)
    first = tick(env, now)
    assert first["down"] == 2 and first["alert_mails_requested"] == 2
    for minutes in (5, 10, 15):
        assert tick(env, now + timedelta(minutes=minutes))["alert_mails_requested"] == 0
    env.redis.flushall()  # Redis holds nothing that cannot be lost
    assert tick(env, now + timedelta(minutes=20))["alert_mails_requested"] == 0
    pending = requests(env)
    assert len(pending) == 2 and {r["level"] for r in pending} == {"L3"} and {r["status"] for r in pending} == {"pending"}
    entry = {k.decode(): v.decode() for k, v in env.redis.hgetall("workflow:device_down:204").items()}
    assert entry["alert_sent"] == "requested" and int(entry["duration_minutes"]) >= 41
    assert 0 < env.redis.ttl("workflow:device_down:204") <= 7 * 86400
    request = next(r for r in pending if r["args_redacted"]["device"] == "sw-parc-bloc-a.widip.net")
    decider = approver(env)
    with db.transaction(env.pool) as conn:
        calls.approve(conn, request["id"], decider, env.policy)
    done = tool_runs.run_call(env.pool, str(request["call_id"]), env.clients).call
    assert done["status"] == "done"
    sent = mail_sink.messages()
    assert len(sent) == 1 and "sw-parc-bloc-a.widip.net" in sent[0]["Subject"] + sent[0].get_content()
    tick(env, now + timedelta(minutes=25))
    assert env.redis.hget("workflow:device_down:204", "alert_sent") == b"1"
    assert len(requests(env)) == 2 and len(mail_sink.messages()) == 1


def test_a_device_under_threshold_gets_no_request_and_recovery_clears_the_tracker(env, observium, phibee, glpi):
    now = datetime.now(timezone.utc)
    observium.state.set_down(204, since_seconds=8 * 60)
    incident_id = ingest(env, observium.state.webhook_body(204, now=now.timestamp()), now).incident_id
    with db.transaction(env.pool) as conn:  # the incident already has its ticket
        conn.execute("UPDATE incidents SET diagnosis = %s, notified_at = now(), ticket_call_id = gen_random_uuid(), "
                     "ticket_id = 1 WHERE id = %s", (json.dumps({"summary": "x"}), incident_id))
        conn.execute("UPDATE incident_members SET announced = true")
    assert tick(env, now)["alert_mails_requested"] == 1  # only the demo's 301
    assert env.redis.hget("workflow:device_down:204", "alert_sent") == b"0"
    observium.state.set_up(204)
    result = tick(env, now + timedelta(minutes=5))
    assert result["recovered"] == 1 and result["sync_incidents"] == [incident_id]
    assert not env.redis.exists("workflow:device_down:204")
    assert b"204" not in env.redis.smembers("workflow:device_down:index")
    with db.transaction(env.pool) as conn:
        assert conn.execute("SELECT ended_at FROM device_down_episodes WHERE device_id = '204'").fetchone()["ended_at"]
        assert conn.execute("SELECT status FROM incidents WHERE id = %s", (incident_id,)).fetchone()["status"] == "recovered"
    assert notifier.sync(env.pool, incident_id, policy=env.policy) == ["recovery"]
    followup = [c for c in _calls(env) if c["tool_name"] == "glpi_add_ticket_followup"][0]
    assert followup["arguments"]["ticket_id"] == 1 and "Rétablissement" in followup["arguments"]["content"]
    assert json.loads(env.redis.get("widip:sentinel:last_tick"))["ok"] is True


def _calls(env):
    with db.transaction(env.pool) as conn:
        return conn.execute("SELECT * FROM tool_calls ORDER BY created_at").fetchall()


def test_a_failed_observium_poll_changes_nothing(env, observium):
    tick(env)
    observium.state.fault = {"status": 503}
    try:
        try:
            tick(env)
        except Exception as exc:  # noqa: BLE001
            assert "503" in str(exc) or "observium" in str(exc)
    finally:
        observium.state.fault = {}
    assert env.redis.exists("workflow:device_down:301")
    assert json.loads(env.redis.get("widip:sentinel:last_tick"))["ok"] is False


def test_a_tick_over_a_large_fleet_tracks_requests_and_recovers_every_device(env, observium):
    # Its speed at 5,000 devices is measured by bench/sentinel_tick.py, not here.
    observium.state.seed_synthetic(400, down=400)
    first = tick(env, alert_mail_threshold_minutes=24 * 60)  # reconciling only: no mail due
    assert first["down"] == 400 and first["alert_mails_requested"] == 0
    assert env.redis.scard("workflow:device_down:index") == 400
    second = tick(env, alert_mail_threshold_minutes=30)  # down since 5..60 min: those past 30 min are due
    assert 0 < second["alert_mails_requested"] < 400 and len(requests(env)) == second["alert_mails_requested"]
    observium.state.seed_synthetic(400, down=0)
    assert tick(env)["recovered"] == 400 and env.redis.scard("workflow:device_down:index") == 0


def test_a_device_back_up_before_approval_withdraws_its_alert_mail_request(env, observium, mail_sink):
    # Given a device down 25 minutes with an L3 alert-mail request nobody approved yet
    observium.state.set_up(204)
    observium.state.set_down(204, since_seconds=25 * 60)
    now = datetime.now(timezone.utc)
    tick(env, now)
    request = next(r for r in requests(env) if r["args_redacted"]["device"] == "sw-parc-bloc-a.widip.net")
    # When it comes back before anyone approves
    observium.state.set_up(204)
    tick(env, now + timedelta(minutes=5))
    # Then the request is closed and a late approval cannot send a stale alert
    closed = next(r for r in requests(env) if r["id"] == request["id"])
    assert closed["status"] == "expired" and "rétabli" in closed["decision_comment"]
    import pytest as _pytest

    from widip.errors import Conflict
    with db.transaction(env.pool) as conn, _pytest.raises(Conflict):
        calls.approve(conn, request["id"], approver(env), env.policy)
    assert mail_sink.count() == 0


def test_the_devices_of_one_incident_share_one_l3_alert_mail_request_until_the_last_is_back(env, observium):
    now = datetime.now(timezone.utc)
    for device_id in (303, 304):  # Saint-Joseph's firewall and switch join the demo's CPE 301, down 35 min
        observium.state.set_down(device_id, since_seconds=25 * 60)
        body = observium.state.webhook_body(device_id, now=now.timestamp())
        assert ingest(env, body, now).outcome in ("opened", "correlated")
    ingest(env, observium.state.webhook_body(301, now=now.timestamp()), now)
    assert tick(env, now)["alert_mails_requested"] == 3  # three devices, one episode of one incident
    pending = requests(env)
    assert len(pending) == 1 and "3 équipements injoignables" in pending[0]["args_redacted"]["details"]
    observium.state.set_up(303)
    tick(env, now + timedelta(minutes=5))
    assert [r["status"] for r in requests(env)] == ["pending"]  # still down: 301, 304
    for device_id in (301, 304):
        observium.state.set_up(device_id)
    tick(env, now + timedelta(minutes=10))
    assert [r["status"] for r in requests(env)] == ["expired"]  # everyone back: withdrawn
