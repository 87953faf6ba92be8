"""Sentinel's plain functions on the real database, Redis and simulators: accepting alerts, the pre-filter,
de-duplication, flapping, correlation under concurrency, recovery."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from simulators import observium as observium_sim
from widip.errors import Invalid
from widip.functions import db
from widip.functions.safeguard.policy import load_policy
from widip.functions.sentinel import alerts, incidents, maintenance, pipeline
from widip.functions.integrations.clients import Clients

T0 = datetime(2026, 8, 20, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def env(integrated_settings, redis_client):
    settings = integrated_settings.with_overrides(webhook_token="obs-secret")
    pool = db.make_pool(settings.database_url, max_size=12)
    clients = Clients(settings, redis_client)
    yield SimpleNamespace(settings=settings, pool=pool, redis=redis_client, clients=clients,
                          policy=load_policy(settings.policy_dir))
    clients.close()
    pool.close()


def body_for(device_id: int, state: str = "ALERT", *, at: float = T0.timestamp(), location: str | None = None,
             hostname: str | None = None, description: str = "Commutateur") -> dict:
    """An Observium webhook-json body for a synthetic device (simulator's own builder)."""
    row = {"device_id": str(device_id), "hostname": hostname or f"sw-{device_id}.widip.net", "sysName": f"sw{device_id}",
           "status": "0", "status_type": "ping", "type": "network", "os": "procurve", "hardware": "Aruba",
           "location": location or "EHPAD Les Lilas - Nantes", "purpose": description, "last_polled": ""}
    return observium_sim.webhook_body(row, state, alert_id=90000 + device_id, since=at - 300, now=at)


def ingest(env, body: dict, now: datetime = T0) -> pipeline.Processed:
    with db.transaction(env.pool) as conn:
        alert_id, _ = alerts.accept(conn, alerts.validate(body), now=now)
    return pipeline.process(env.pool, env.redis, env.clients, alert_id, now=now)


def count(env, sql: str, *params) -> int:
    with db.transaction(env.pool) as conn:
        return conn.execute(sql, params).fetchone()["n"]


def test_an_accepted_body_is_stored_once_and_keeps_its_tracking_id(env):
    body = {**body_for(1007), "X_CUSTOM_TAG": "kept"}
    with db.transaction(env.pool) as conn:
        first = alerts.accept(conn, alerts.validate(body))
        retry = alerts.accept(conn, alerts.validate(dict(body)))  # not yet enqueued: handed back to enqueue
        alerts.mark_enqueued(conn, [first[0]])
        again = alerts.accept(conn, alerts.validate(dict(body)))
        reminder = alerts.accept(conn, {**body, "ALERT_STATE": "ALERT REMINDER", "ALERT_UNIXTIME": "1755690000"})
        stored = conn.execute("SELECT body FROM alerts WHERE id = %s", (first[0],)).fetchone()["body"]
    assert first[1].startswith("ALT-") and retry == first and again == (None, first[1])
    assert reminder[1] != first[1]
    assert stored["X_CUSTOM_TAG"] == "kept" and count(env, "SELECT count(*) AS n FROM alerts") == 2


@pytest.mark.parametrize("body, field", [
    ({"ALERT_STATE": "ALERT", "DEVICE_HOSTNAME": "x"}, "ALERT_ID"),
    ({"ALERT_ID": "1", "DEVICE_HOSTNAME": "x"}, "ALERT_STATE"),
    ({"ALERT_ID": "1", "ALERT_STATE": "ALERT"}, "DEVICE_HOSTNAME"),
    ({"ALERT_ID": "1", "ALERT_STATE": "ALERT", "DEVICE_HOSTNAME": "x", "TITLE": {"a": 1}}, "TITLE"),
])
def test_a_body_that_is_not_an_alert_is_refused_naming_the_field(body, field):
    with pytest.raises(Invalid) as caught:
        alerts.validate(body)
    assert field in caught.value.message


def test_the_same_condition_again_attaches_to_the_open_incident(env):
    opened = ingest(env, body_for(1011))
    reminder = ingest(env, body_for(1011, "ALERT REMINDER", at=T0.timestamp() + 600), T0 + timedelta(minutes=10))
    assert opened.outcome == "opened" and opened.diagnose
    assert reminder.outcome == "attached" and reminder.incident_id == opened.incident_id and not reminder.diagnose
    with db.transaction(env.pool) as conn:
        member = incidents.members(conn, opened.incident_id)[0]
    assert member["occurrences"] == 2 and member["last_seen"] == T0 + timedelta(minutes=10)


def test_thirty_devices_of_one_site_from_eight_workers_make_one_incident(env):
    bodies = [body_for(1100 + i, at=T0.timestamp() + i * 4) for i in range(30)]
    with db.transaction(env.pool) as conn:
        ids = [alerts.accept(conn, b)[0] for b in bodies]
    results, lock = [], threading.Lock()

    def work(chunk):
        for alert_id in chunk:
            out = pipeline.process(env.pool, env.redis, env.clients, alert_id, now=T0 + timedelta(seconds=60))
            with lock:
                results.append(out)

    threads = [threading.Thread(target=work, args=(ids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results).count("opened") == 1
    assert len({r.incident_id for r in results}) == 1
    assert sum(r.diagnose for r in results) == 1
    assert count(env, "SELECT count(*) AS n FROM incident_members WHERE incident_id = %s", results[0].incident_id) == 30


def test_an_operator_outage_across_clients_is_one_incident_but_unrelated_sites_are_not(env):
    phibee = [body_for(1200 + i, location=f"EHPAD Client {i} - Ville {i}", description=f"CPE FTTH Phibee FTTH-V{i}-00{i}12")
              for i in range(5)]
    outcomes = [ingest(env, b, T0 + timedelta(seconds=i)) for i, b in enumerate(phibee)]
    assert len({o.incident_id for o in outcomes}) == 1
    other = ingest(env, body_for(1300, location="Clinique Autre - Lille"), T0 + timedelta(seconds=10))
    later = ingest(env, body_for(1301, location="EHPAD Les Lilas - Nantes"), T0 + timedelta(minutes=20))
    assert other.outcome == "opened" and later.outcome == "opened"


def test_a_flapping_device_stays_one_incident_marked_flapping(env):
    first = ingest(env, body_for(1400))
    for n in range(1, 5):
        up = ingest(env, body_for(1400, "RECOVER", at=T0.timestamp() + n * 60), T0 + timedelta(minutes=n))
        assert up.outcome == "recovered"
        down = ingest(env, body_for(1400, at=T0.timestamp() + n * 60 + 30), T0 + timedelta(minutes=n, seconds=30))
        assert down.incident_id == first.incident_id and not down.diagnose
    with db.transaction(env.pool) as conn:
        incident = incidents.get_incident(conn, first.incident_id)
    assert incident["kind"] == "flapping" and incident["status"] == "open"
    assert count(env, "SELECT count(*) AS n FROM incidents") == 1


def test_a_recovery_closes_the_incident_and_a_lone_recovery_is_recorded(env):
    opened = ingest(env, body_for(1500))
    recovered = ingest(env, body_for(1500, "RECOVER", at=T0.timestamp() + 120), T0 + timedelta(minutes=2))
    assert recovered.outcome == "recovered" and recovered.incident_id == opened.incident_id
    with db.transaction(env.pool) as conn:
        assert incidents.get_incident(conn, opened.incident_id)["status"] == "recovered"
    assert ingest(env, body_for(1501, "RECOVER")).outcome == "orphan_recovery"


def test_alerts_in_a_maintenance_window_or_for_ignored_devices_are_dropped_and_counted(env, observium):
    with db.transaction(env.pool) as conn:
        maintenance.create(conn, {"scope": "site", "value": "ehpad les lilas - nantes",
                                  "starts_at": (T0 - timedelta(hours=1)).isoformat(),
                                  "ends_at": (T0 + timedelta(hours=1)).isoformat()}, actor="test")
    assert ingest(env, body_for(1600)).outcome.startswith("filtered:maintenance")
    assert ingest(env, body_for(1600, at=T0.timestamp() + 7200), T0 + timedelta(hours=2)).outcome == "opened"
    observium.state.devices[104]["ignore"] = "1"
    demo = observium.state.webhook_body(104)
    assert ingest(env, demo, datetime.now(timezone.utc)).outcome == "filtered:ignored"
    assert count(env, "SELECT count(*) AS n FROM alerts WHERE status = 'filtered'") == 2
    with db.transaction(env.pool) as conn:
        assert pipeline.filtered_count(conn) == 1  # "Log Filtrée" of the last 24 h (the first is months old)


def test_observium_facts_fill_the_ip_address_and_the_site(env, observium):
    observium.state.set_down(204, since_seconds=300)
    out = ingest(env, observium.state.webhook_body(204), datetime.now(timezone.utc))
    with db.transaction(env.pool) as conn:
        incident = incidents.get_incident(conn, out.incident_id)
    assert incident["primary_ip"] == "10.12.0.4"
    assert incident["site"] == "Clinique du Parc - Villeurbanne" and incident["client"] == "Clinique du Parc"


def test_an_alert_processed_twice_is_assigned_once(env):
    with db.transaction(env.pool) as conn:
        alert_id, _ = alerts.accept(conn, body_for(1700))
    first = pipeline.process(env.pool, env.redis, env.clients, alert_id, now=T0)
    second = pipeline.process(env.pool, env.redis, env.clients, alert_id, now=T0)
    assert first.outcome == "opened" and second.outcome == "already"
    assert count(env, "SELECT occurrences AS n FROM incident_members") == 1


def test_when_the_broker_is_unreachable_the_sweep_releases_every_claim_for_the_next_minute(env):
    import dramatiq

    from widip.messaging.broker import WEB_REDIS_TIMEOUT_S, build_broker

    dead = build_broker("redis", "redis://127.0.0.1:1/0", timeout=WEB_REDIS_TIMEOUT_S)  # nothing listens there
    attempts = []

    def send(job, *args):
        attempts.append(args)
        return dead.enqueue(dramatiq.Message(queue_name=job.queue, actor_name=job.name, args=args, kwargs={},
                                             options={}))

    with db.transaction(env.pool) as conn:
        for device in (2101, 2102, 2103):
            alerts.accept(conn, alerts.validate(body_for(device)), now=datetime.now(timezone.utc) - timedelta(minutes=1))
        claimed = alerts.claim_lost(conn)
    assert len(claimed) == 3
    assert alerts.hand_all_to_broker(env.pool, claimed, send) == 0
    assert len(attempts) == 1  # one timeout, not one per alert (a sweep has 60 s; a send can take 45)
    with db.transaction(env.pool) as conn:
        assert alerts.claim_lost(conn) == claimed  # all back in the next sweep, not in 15 minutes
