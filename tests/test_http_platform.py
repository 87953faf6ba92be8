"""The web app's platform endpoints: health, readiness, OpenAPI, job polling, and clear 4xx answers."""

import re
import uuid

import pytest
from falcon import routing

from widip.functions import db, jobs
from widip.http.app import build_context, create_app


def test_health_answers_while_the_process_lives(app_client):
    result = app_client.simulate_get("/health")
    assert result.status_code == 200 and result.json == {"status": "ok"}


def test_every_response_carries_a_request_id_and_reuses_a_sane_incoming_one(app_client):
    assert len(app_client.simulate_get("/health").headers["X-Request-ID"]) == 32
    echoed = app_client.simulate_get("/health", headers={"X-Request-ID": "proxy-123"})
    assert echoed.headers["X-Request-ID"] == "proxy-123"
    hostile = app_client.simulate_get("/health", headers={"X-Request-ID": "a\nb<script>"})
    assert "script" not in hostile.headers["X-Request-ID"]


def test_ready_reports_each_component_and_names_a_dead_scheduler(app_client, redis_client):
    # Given no scheduler tick was ever recorded
    result = app_client.simulate_get("/ready")
    assert result.status_code == 503
    assert result.json["down"] == ["scheduler"]
    assert result.json["components"]["postgres"]["ok"] and result.json["components"]["redis"]["ok"]
    # When the scheduler ticks
    from widip.functions import heartbeat
    heartbeat.record_tick(redis_client)
    result = app_client.simulate_get("/ready")
    assert result.status_code == 200 and result.json["ready"] is True


def test_a_stale_scheduler_tick_makes_ready_fail(app_client, redis_client):
    import time

    from widip.functions import heartbeat
    heartbeat.record_tick(redis_client, now=time.time() - 600)
    result = app_client.simulate_get("/ready")
    assert result.status_code == 503 and "no tick for" in result.json["components"]["scheduler"]["detail"]


def _routes(app):
    """Every route template, as OpenAPI writes it: `{item_id:int(...)}` (a Falcon converter) is `{item_id}`."""
    found = []

    def walk(nodes):
        for node in nodes:
            if node.resource is not None:
                found.append(re.sub(r"\{(\w+):[^}]*\}", r"{\1}", node.uri_template))
            walk(node.children)

    walk(app._router._roots)
    return found



def test_openapi_describes_every_route_and_is_3_1(app_client, settings):
    doc = app_client.simulate_get("/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    app = create_app(build_context(settings))
    routes = {r.replace("{job_id}", "{job_id}") for r in _routes(app)}
    assert routes <= set(doc["paths"]), f"undocumented routes: {routes - set(doc['paths'])}"
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert op.get("responses"), f"{method} {path} lists no responses"


def test_unknown_job_ids_get_a_404_with_a_message(app_client, people):
    for job_id in (str(uuid.uuid4()), "not-a-uuid", "1; DROP TABLE jobs"):
        result = app_client.simulate_get(f"/jobs/{job_id}", headers=people.tech.headers)
        assert result.status_code == 404
        assert result.json["description"]


@pytest.mark.parametrize("body, expected", [
    ("{not json", "not valid JSON"),
    ("", "JSON body is required"),
    ('{"message": 12}', "message"),
    ('{"message": ""}', "message"),
    ('{"message": "ok", "extra": 1}', "extra"),
    ("[1, 2]", "object"),
])
def test_bad_echo_bodies_get_a_400_saying_what_is_wrong(app_client, people, body, expected):
    result = app_client.simulate_post("/jobs/echo", body=body,
                                      headers={"Content-Type": "application/json", **people.admin.headers})
    assert result.status_code == 400
    assert expected in result.json["description"]
    assert "Traceback" not in result.text


def test_the_echo_job_is_for_administrators_and_polling_needs_a_login(app_client, people):
    assert app_client.simulate_post("/jobs/echo", json={"message": "x"}).status_code == 401
    assert app_client.simulate_post("/jobs/echo", json={"message": "x"}, headers=people.tech.headers).status_code == 403
    assert app_client.simulate_get(f"/jobs/{uuid.uuid4()}").status_code == 401


def test_accepted_echo_is_a_202_with_the_id_and_a_location_to_poll(app_client, stub_broker, settings, people):
    result = app_client.simulate_post("/jobs/echo", json={"message": "bonjour"}, headers=people.admin.headers)
    assert result.status_code == 202
    job_id = result.json["job_id"]
    assert result.headers["Location"] == f"/jobs/{job_id}"
    assert app_client.simulate_get(f"/jobs/{job_id}", headers=people.admin.headers).json["status"] == "queued"
    assert stub_broker.queues["default"].qsize() == 1


@pytest.mark.parametrize("frozen", [False, True], ids=["refused", "silent"])
def test_a_broker_outage_is_a_503_saying_whether_to_resend_or_poll(app_client, people, monkeypatch, frozen):
    import socket

    from widip.messaging import door
    from widip.messaging.broker import WEB_REDIS_TIMEOUT_S, build_broker

    silent = socket.socket()  # accepts the connection (kernel backlog), never answers: a frozen Redis
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    port = silent.getsockname()[1] if frozen else 1  # port 1: nothing listens, the connection is refused
    monkeypatch.setattr(door, "current", lambda: build_broker("redis", f"redis://127.0.0.1:{port}/0",
                                                              timeout=WEB_REDIS_TIMEOUT_S))
    try:
        result = app_client.simulate_post("/jobs/echo", json={"message": "bonjour"}, headers=people.admin.headers)
    finally:
        silent.close()
    assert result.status_code == 503 and "Traceback" not in result.text
    job_id = result.text.split("echo job ")[1].split()[0]
    status = app_client.simulate_get(f"/jobs/{job_id}", headers=people.admin.headers).json["status"]
    if frozen:  # the message may have reached Redis: poll, do not run it twice
        assert f"poll /jobs/{job_id}" in result.text and status == "queued"
    else:  # nothing was sent: the job says so and the client may send it again
        assert "send it again" in result.text and status == "failed"


def test_the_echo_job_runs_on_a_worker_and_polling_shows_done(app_client, stub_broker, stub_worker, people):
    job_id = app_client.simulate_post("/jobs/echo", json={"message": "bonjour"},
                                      headers=people.admin.headers).json["job_id"]
    stub_broker.join("default")
    stub_worker.join()
    job = app_client.simulate_get(f"/jobs/{job_id}", headers=people.admin.headers).json
    assert job["status"] == "done"
    assert job["result"]["echo"] == "bonjour"
    assert job["started_at"] and job["finished_at"] and job["attempts"] == 1


def test_a_redelivered_echo_writes_one_row(settings, conn):
    from widip.functions import echo

    job_id = str(uuid.uuid4())
    jobs.create_job(conn, job_id, "echo", {})
    first = echo.record_echo(conn, job_id, "bonjour")
    second = echo.record_echo(conn, job_id, "bonjour")
    assert first["row_id"] == second["row_id"]
    assert conn.execute("SELECT count(*) AS n FROM echo_messages").fetchone()["n"] == 1


def test_database_down_is_a_503_not_a_500(settings):
    from falcon.testing import TestClient

    broken = settings.with_overrides(database_url="postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    client = TestClient(create_app(build_context(broken)))
    result = client.simulate_get(f"/jobs/{uuid.uuid4()}", headers={"Authorization": "Bearer widu_whatever"})
    assert result.status_code == 503
    assert "Traceback" not in result.text
