"""GET /monitoring: who may read it and what it shows (real PostgreSQL, Redis, GLPI simulator, SMTP sink)."""

import json
import time

import dramatiq
import falcon
import pytest
from falcon.testing import TestClient

from widip.config import PROJECT_ROOT
from widip.functions import db, identity, job_table, outbox
from widip.functions.integrations import glpi_health
from widip.functions.callers import Caller
from widip.functions.safeguard import calls
from widip.functions.safeguard.policy import load_policy
from widip.functions.integrations.clients import Clients
from widip.http.auth import Authenticate

POLICY = load_policy(PROJECT_ROOT / "policy")


def build_app(settings):
    """The real app when it authenticates; else (app.py not wired yet) the same resources behind Authenticate."""
    from widip.http.app import build_context, create_app

    app = create_app(build_context(settings))
    if any(isinstance(m, Authenticate) for m in getattr(app, "_unprepared_middleware", ())):
        return app
    from widip import deps as actor_deps
    from widip.http import metrics as metrics_http
    from widip.http import monitoring as monitoring_http
    from widip.http.app import AppContext
    from widip.http.errors import register_error_handlers
    from widip.http.middleware import RequestId

    ctx = AppContext(settings=settings, deps=actor_deps.configure(settings))
    app = falcon.App(middleware=[RequestId(), Authenticate(ctx)])
    register_error_handlers(app)
    monitoring_http.register(app, ctx)
    metrics_http.register(app, ctx)
    return app


def token_for(conn, username, level):
    user = identity.create_user(conn, username=username, password="a long enough password", accreditation_level=level)
    return identity.issue_session(conn, user.id, ttl_hours=1).token


@pytest.fixture
def web(integrated_settings):
    return TestClient(build_app(integrated_settings))


def get(web, token):
    return web.simulate_get("/monitoring", headers={"Authorization": f"Bearer {token}"})


def test_monitoring_needs_a_logged_in_n1_user(web, conn):
    assert web.simulate_get("/monitoring").status_code == 401
    assert get(web, token_for(conn, "stagiaire", 0)).status_code == 403
    assert get(web, token_for(conn, "tech", 1)).status_code == 200


@pytest.fixture
def recording(redis_client):
    """Integration outcomes recorded into this test's Redis (as every process does once actors load)."""
    from widip.functions.integrations import status as integration_status
    from widip.functions.integrations.http_client import OUTCOME_LISTENERS

    previous, installed = integration_status._source, integration_status.listener in OUTCOME_LISTENERS
    integration_status.install(redis_client)
    yield
    integration_status.uninstall()
    if installed:
        integration_status.install(previous)


def test_monitoring_shows_glpi_down_its_history_and_the_problem(web, conn, pool, redis_client, integrated_settings,
                                                               glpi, mail_sink, recording):
    settings = integrated_settings.with_overrides(glpi_down_after_failures=2)
    clients = Clients(settings, redis_client)
    try:
        glpi_health.probe_glpi(redis_client, pool, clients, settings)
        glpi.state.fault = {"status": 503}
        for _ in range(3):
            glpi_health.probe_glpi(redis_client, pool, clients, settings)
    finally:
        glpi.state.fault = {}
        clients.close()
    report = get(web, token_for(conn, "tech", 1)).json
    assert report["glpi"]["status"] == "down" and report["integrations"]["glpi"]["status"] == "down"
    assert report["glpi"]["last_probe"]["consecutive_failures"] == 3
    history = report["glpi"]["history"]
    assert history["probes"] == 4 and history["by_status"] == {"ok": 1, "degraded": 1, "down": 2}
    assert history["availability_percent"] == 25.0
    assert [t["transition"] for t in history["transitions"]] == ["down"]
    assert any(p["severity"] == "error" and p["what"].startswith("glpi is down") for p in report["problems"])
    assert "server error 503" in report["integrations"]["glpi"]["last_error"]


def test_monitoring_counts_queues_outbox_approvals_devices_and_pipeline_markers(web, conn, redis_client, settings):
    # Given two messages waiting in the tools queue, enqueued 5 s ago through the real Redis broker layout
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=settings.redis_url)
    for _ in range(2):
        broker.enqueue(dramatiq.Message(queue_name="tools", actor_name="run_tool", args=(), kwargs={"call_id": "x"},
                                        options={}, message_timestamp=int((time.time() - 5) * 1000)))
    broker.close()
    # an outbox row waiting for GLPI, and one stuck for 4 days
    outbox.add(conn, job_table.RUN_TOOL, {"call_id": "a"}, dependency="glpi", dedup_key="a")
    old = outbox.add(conn, job_table.RUN_TOOL, {"call_id": "b"}, dependency="glpi", dedup_key="b")
    conn.execute("UPDATE outbox SET created_at = now() - interval '4 days' WHERE id = %s", (old,))
    # an L3 request waiting for a human, asked through WIBOT by a technician with GLPI access
    from widip.functions import identity
    from widip.functions.access_matrix import AccessRights, set_access

    asker = identity.create_user(conn, username="asker", password="correct-horse-battery-staple", accreditation_level=1)
    set_access(conn, asker.id, AccessRights(acces_glpi=True, clients_autorises=("*",), categories_tickets=("*",)),
               actor="test")
    calls.propose(conn, calls.Proposal(
        "glpi_create_ticket", {"title": "Imprimante", "content": "HS"},
        Caller(kind="ai", username="wibot", persona="wibot", on_behalf_of=asker.id, accreditation=1)), POLICY)
    # Sentinel's device tracker and pipeline markers
    redis_client.hset("workflow:device_down:42", mapping={"first_seen": "2025-01-01T10:00:00", "duration_minutes": "25",
                                                          "alert_sent": "1"})
    redis_client.hset("workflow:device_down:7", mapping={"duration_minutes": "3", "alert_sent": "0"})
    redis_client.sadd("workflow:device_down:index", "42", "7")  # the Sentinel tracker's own index set
    redis_client.set("widip:sentinel:last_tick", json.dumps({"at": "2025-01-01T10:05:00", "devices": 12}))

    report = get(web, token_for(conn, "tech", 1)).json

    tools = report["queues"]["tools"]
    assert tools["waiting"] == 2 and tools["in_progress"] == 0 and 4 <= tools["oldest_message_age_seconds"] < 60
    assert report["queues"]["default"]["waiting"] == 0
    assert report["outbox"]["pending"] == 2  # the L3 proposal waits for a human: no outbox row yet
    assert report["outbox"]["waiting_for"] == {"glpi": 2} and report["outbox"]["stale"] == 1
    assert report["outbox"]["stale_rows"][0]["id"] == old
    assert report["approvals"]["pending"] == 1
    assert [d["device_id"] for d in report["devices_down"]] == ["42", "7"]
    assert report["sentinel"]["last_tick"]["devices"] == 12 and report["assist"]["last_cycle"] is None
    assert any(p["severity"] == "error" and "more than 3 days" in p["what"] for p in report["problems"])
    assert set(report["integrations"]) >= {"glpi", "observium", "phibee", "smtp", "active_directory", "mysecret",
                                           "ollama", "anthropic"}


def test_the_monitoring_endpoint_is_described_in_the_openapi_document():
    from widip.http import monitoring as monitoring_http
    from widip.http.openapi_doc import build_document

    doc = build_document([monitoring_http])
    op = doc["paths"]["/monitoring"]["get"]
    assert set(op["responses"]) >= {"200", "401", "403"}


def test_monitoring_answers_quickly(web, conn):
    token = token_for(conn, "tech", 1)
    get(web, token)
    started = time.perf_counter()
    for _ in range(20):
        assert get(web, token).status_code == 200
    per_request_ms = (time.perf_counter() - started) * 1000 / 20
    print(f"\nGET /monitoring: {per_request_ms:.1f} ms")
    assert per_request_ms < 200


def test_an_interrupted_action_with_an_unknown_outcome_is_listed_for_a_human(web, conn):
    from widip.functions.callers import system_persona

    call = calls.propose(conn, calls.Proposal("smtp_send_email", {"to": ["a@widip.fr"], "subject": "s", "body": "b"},
                                              system_persona("notificateur")), POLICY)
    conn.execute("UPDATE tool_calls SET status = 'unknown_outcome', error = 'outcome unknown', finished_at = now() "
                 "WHERE id = %s", (call["id"],))
    report = get(web, token_for(conn, "tech", 1)).json
    assert report["tool_calls_to_check"]["count"] == 1
    assert report["tool_calls_to_check"]["recent"][0]["tool"] == "smtp_send_email"
    assert any("unknown outcome" in p["what"] for p in report["problems"])
