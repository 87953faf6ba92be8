"""Sentinel over HTTP with the StubBroker running every actor: the webhook's authentication and answers, the
whole flow to a GLPI ticket and a team mail, idempotency, correlation, GLPI down, lost alerts, maintenance
windows, on-demand ticks and the incident story."""

from __future__ import annotations

import pytest
from falcon.testing import TestClient
from prometheus_client import REGISTRY

from tests.conftest import drain
from tests.test_sentinel_pipeline import body_for
from widip import deps as actor_deps
from widip.actors import sentinel as sentinel_actors
from widip.messaging.relay import flush_outbox
from widip.functions import identity
from widip.functions.sentinel import alerts
from widip.http.app import build_context, create_app

TOKEN = "obs-secret"


@pytest.fixture
def settings_(integrated_settings):
    return integrated_settings.with_overrides(webhook_token=TOKEN, llm_provider="rules")


@pytest.fixture
def api(settings_, stub_broker):
    client = TestClient(create_app(build_context(settings_)))
    actor_deps.configure(settings_)
    return client


def post_alert(api, body, headers=None, query=""):
    return api.simulate_post("/webhook/widip-alertes" + query, json=body,
                             headers=headers if headers is not None else {"Authorization": TOKEN})


def sentinel_tickets(glpi):
    return [t for t in glpi.state.items["Ticket"].values() if t["name"].startswith("[Sentinel]")]


def test_the_webhook_accepts_observium_tokens_and_refuses_others(api, conn, observium):
    scoped = identity.create_service_token(conn, name="observium", scopes=["webhook:observium"], actor="test").token
    other = identity.create_service_token(conn, name="frontend", scopes=["frontend"], actor="test").token
    body = observium.state.webhook_body(301)
    for headers, query in (({"Authorization": TOKEN}, ""), ({"Authorization": f"Bearer {TOKEN}"}, ""),
                           ({}, f"?token={TOKEN}"), ({"Authorization": scoped}, ""),
                           ({"Authorization": f"Bearer {scoped}"}, "")):
        answer = post_alert(api, body, headers, query)
        assert answer.status_code == 200 and answer.json["status"] == "successful", (headers, query, answer.text)
        assert answer.json["tracking_id"].startswith("ALT-")
    assert post_alert(api, body, {"Authorization": "Bearer nope"}).status_code == 401
    assert post_alert(api, body, {}).status_code == 401
    assert post_alert(api, body, {"Authorization": f"Bearer {other}"}).status_code == 403
    missing = post_alert(api, {k: v for k, v in body.items() if k != "ALERT_ID"})
    assert missing.status_code == 400 and "ALERT_ID is missing" in missing.json["description"]
    assert post_alert(api, ["not", "an", "object"]).status_code == 400


def test_an_alert_becomes_a_diagnosed_ticket_a_mail_a_log_row_and_metrics(api, people, stub_broker, stub_worker,
                                                                           observium, phibee, glpi, mail_sink, conn):
    success = REGISTRY.get_sample_value("widip_workflow_success_total", {"workflow": "proactif"}) or 0
    answer = post_alert(api, observium.state.webhook_body(301))
    assert answer.status_code == 200 and answer.json["status"] == "successful"
    tracking = answer.json["tracking_id"]
    assert conn.execute("SELECT count(*) AS n FROM alerts WHERE tracking_id = %s", (tracking,)).fetchone()["n"] == 1
    drain(stub_broker, stub_worker)
    tickets = sentinel_tickets(glpi)
    assert len(tickets) == 1 and "Responsabilité : opérateur d'accès (Phibee)" in tickets[0]["content"]
    team = [m for m in mail_sink.messages() if m["Subject"].startswith("[WIDIP Sentinel]")]
    assert len(team) == 1 and f"n° {tickets[0]['id']}" in team[0].get_content()
    log = conn.execute("SELECT * FROM incident_logs WHERE tracking_id = %s", (tracking,)).fetchone()
    assert log["ticket_id"] == str(tickets[0]["id"]) and log["responsibility"] == "OPERATEUR"
    assert (REGISTRY.get_sample_value("widip_workflow_success_total", {"workflow": "proactif"}) or 0) == success + 1
    story = api.simulate_get(f"/incidents/{tracking}", headers=people.tech.headers).json
    assert story["ticket"]["id"] == tickets[0]["id"] and story["diagnosis"]["severity"] == "critique"
    assert [a["tracking_id"] for a in story["alerts"]] == [tracking]
    assert [m["status"] for m in story["mails"]] == ["done"]
    assert [e["kind"] for e in story["timeline"]][:3] == ["opened", "diagnosed", "ticket_requested"]
    listed = api.simulate_get("/incidents?status=open&client=EHPAD Saint-Joseph", headers=people.tech.headers).json
    assert [i["tracking_id"] for i in listed["incidents"]] == [tracking] and listed["incidents"][0]["device_count"] == 1
    assert api.simulate_get(f"/incidents/{tracking}").status_code == 401
    # Observium re-sends the same notification: same answer, nothing new.
    again = post_alert(api, observium.state.webhook_body(301, now=None) | {"ALERT_UNIXTIME": answer_time(conn, tracking)})
    assert again.json["tracking_id"] == tracking
    drain(stub_broker, stub_worker)
    assert len(sentinel_tickets(glpi)) == 1


def answer_time(conn, tracking):
    return conn.execute("SELECT body->>'ALERT_UNIXTIME' AS t FROM alerts WHERE tracking_id = %s",
                        (tracking,)).fetchone()["t"]


def test_thirty_devices_of_one_site_make_one_incident_and_one_ticket_listing_all(api, people, stub_broker,
                                                                                  stub_worker, glpi, conn):
    for i in range(30):
        assert post_alert(api, body_for(2000 + i)).status_code == 200
    drain(stub_broker, stub_worker)
    tickets = sentinel_tickets(glpi)
    assert len(tickets) == 1 and "30 équipements injoignables" in tickets[0]["name"]
    followups = " ".join(f["content"] for f in glpi.state.items["ITILFollowup"].values()
                         if f["items_id"] == tickets[0]["id"])
    assert all(f"sw-{2000 + i}.widip.net" in tickets[0]["content"] + followups for i in range(30))
    assert conn.execute("SELECT count(*) AS n FROM incidents").fetchone()["n"] == 1
    assert conn.execute("SELECT count(*) AS n FROM agent_sessions").fetchone()["n"] == 1


def test_glpi_down_during_an_alert_gives_exactly_one_ticket_after_recovery(api, stub_broker, stub_worker, observium,
                                                                          phibee, glpi, mail_sink, redis_client):
    redis_client.set("glpi_health_status", "down")
    post_alert(api, observium.state.webhook_body(301))
    drain(stub_broker, stub_worker)
    assert sentinel_tickets(glpi) == []
    team = [m for m in mail_sink.messages() if m["Subject"].startswith("[WIDIP Sentinel]")]
    assert len(team) == 1 and "en attente" in team[0].get_content()
    redis_client.set("glpi_health_status", "ok")
    flush_outbox()
    sentinel_actors.sweep_sentinel.send()
    drain(stub_broker, stub_worker)
    sentinel_actors.sweep_sentinel.send()
    drain(stub_broker, stub_worker)
    assert len(sentinel_tickets(glpi)) == 1


def test_an_alert_the_broker_never_took_is_sent_by_the_sweeper(api, people, stub_broker, stub_worker, glpi, conn):
    from datetime import datetime, timedelta, timezone

    alerts.accept(conn, body_for(3000), now=datetime.now(timezone.utc) - timedelta(minutes=1))
    sentinel_actors.sweep_sentinel.send()
    drain(stub_broker, stub_worker)
    row = conn.execute("SELECT status, outcome, enqueued_at FROM alerts").fetchone()
    assert row["status"] == "processed" and row["outcome"] == "opened" and row["enqueued_at"]
    assert len(sentinel_tickets(glpi)) == 1


def test_maintenance_windows_are_managed_by_n2_and_filter_alerts(api, people, stub_broker, stub_worker, glpi, conn):
    window = {"scope": "client", "value": "EHPAD Les Lilas", "reason": "Travaux électriques"}
    assert api.simulate_post("/sentinel/maintenance-windows", json=window, headers=people.tech.headers).status_code == 403
    created = api.simulate_post("/sentinel/maintenance-windows", json=window, headers=people.approver.headers)
    assert created.status_code == 201 and created.json["ends_at"] is None
    path = created.headers["Location"]
    assert api.simulate_get("/sentinel/maintenance-windows?active=true",
                            headers=people.tech.headers).json["windows"][0]["id"] == created.json["id"]
    post_alert(api, body_for(4000))
    drain(stub_broker, stub_worker)
    assert sentinel_tickets(glpi) == []
    assert api.simulate_get("/incidents", headers=people.tech.headers).json["filtered_last_24h"] == 1
    bad = api.simulate_put(path, json={"ends_at": "2000-01-01T00:00:00Z"}, headers=people.approver.headers)
    assert bad.status_code == 400
    assert api.simulate_put(path, json={"reason": "fini"}, headers=people.approver.headers).json["reason"] == "fini"
    assert api.simulate_delete(path, headers=people.approver.headers).status_code == 200
    assert api.simulate_get(path, headers=people.tech.headers).status_code == 404


def test_an_n3_runs_a_tick_now_and_everyone_sees_the_devices_down(api, people, stub_broker, stub_worker, observium):
    assert api.simulate_post("/sentinel/ticks", headers=people.tech.headers).status_code == 403
    queued = api.simulate_post("/sentinel/ticks", headers=people.approver.headers)
    assert queued.status_code == 202
    drain(stub_broker, stub_worker)
    job = api.simulate_get(queued.headers["Location"], headers=people.approver.headers).json
    assert job["status"] == "done" and job["result"]["down"] == 2
    down = api.simulate_get("/sentinel/devices-down", headers=people.tech.headers).json
    assert sorted(d["device_id"] for d in down["devices"]) == ["204", "301"]
    stjoseph = next(d for d in down["devices"] if d["device_id"] == "301")
    assert stjoseph["alert_sent"] == "requested" and stjoseph["alert_request_id"]
    assert down["last_tick"]["ok"] is True
