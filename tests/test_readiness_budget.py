"""A frozen Valkey (SIGSTOP) or a PostgreSQL that stopped answering never stalls the web tier: the
webhook persists the alert and answers within its budget, leaving the enqueueing to the sweeper, and
/ready answers 503 within 2 s naming the slow component. The Valkey frozen here is this test's own,
never the session's shared server."""

import os
import signal
import socket
import time

import httpx
import pytest

from tests.stack import Stack, poll
from widip.functions import db, readiness

WEBHOOK_TOKEN = "frozen-redis-webhook-token"
ALERT = {"ALERT_STATE": "ALERT", "DEVICE_HOSTNAME": "rtr-lyon-01", "DEVICE_ID": "12", "ALERT_ID": "77",
         "ENTITY_TYPE": "device", "ENTITY_NAME": "rtr-lyon-01", "ALERT_MESSAGE": "Device down",
         "DEVICE_LOCATION": "EHPAD Les Tilleuls - Lyon", "ALERT_TIMESTAMP": "2026-12-02 08:00:00"}


@pytest.fixture
def own_valkey(tmp_path):
    from widip.embedded import start_valkey

    server = start_valkey(tmp_path / "valkey", persist=False)
    yield server
    try:
        os.kill(server._process.pid, signal.SIGCONT)
    except (ProcessLookupError, AttributeError):
        pass
    server.stop()


@pytest.fixture
def blackhole():
    """A TCP port that accepts connections (kernel backlog) but never answers: a frozen server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def test_with_valkey_frozen_the_webhook_answers_fast_and_ready_names_redis(database_url, tmp_path, own_valkey):
    prom = tmp_path / "prometheus"
    prom.mkdir()
    stack = Stack({"DATABASE_URL": database_url, "REDIS_URL": own_valkey.connection_url, "WIDIP_ENV": "test",
                   "WIDIP_VAR_DIR": str(tmp_path / "var"), "PROMETHEUS_MULTIPROC_DIR": str(prom),
                   "dramatiq_prom_db": str(prom), "WEBHOOK_TOKEN": WEBHOOK_TOKEN}, tmp_path)
    try:
        try:
            stack.start("web")
        except TimeoutError:  # a loaded machine imports slowly
            stack.wait_http("/health", timeout=180)
        os.kill(own_valkey._process.pid, signal.SIGSTOP)
        started = time.monotonic()
        answer = httpx.post(f"{stack.url}/webhook/widip-alertes", json=ALERT,
                            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}, timeout=20)
        took = time.monotonic() - started
        assert answer.status_code == 200 and took < 2.0, (answer.status_code, took)
        with db.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"] == 1
        started = time.monotonic()
        ready = httpx.get(f"{stack.url}/ready", timeout=20)
        took = time.monotonic() - started
        assert ready.status_code == 503 and took < 2.0, took
        assert "redis" in ready.json()["down"] and ready.json()["components"]["postgres"]["ok"] is True
    finally:
        os.kill(own_valkey._process.pid, signal.SIGCONT)
        stack.stop()


def test_with_postgres_not_answering_ready_says_so_within_two_seconds(settings, redis_client, blackhole):
    frozen = db.make_pool(f"postgresql://widip@127.0.0.1:{blackhole}/widip?connect_timeout=30")
    try:
        started = time.monotonic()
        report = readiness.readiness(frozen, redis_client, object())
        took = time.monotonic() - started
    finally:
        frozen.close()
    assert took < 2.0 and report["ready"] is False and "postgres" in report["down"], (took, report)
    assert report["components"]["redis"]["ok"] is True


def test_the_web_broker_gives_up_on_a_silent_redis_within_its_budget(blackhole):
    import dramatiq
    from widip.messaging.broker import WEB_REDIS_TIMEOUT_S, build_broker

    broker = build_broker("redis", f"redis://127.0.0.1:{blackhole}/0", timeout=WEB_REDIS_TIMEOUT_S)
    started = time.monotonic()
    with pytest.raises(Exception):
        broker.enqueue(dramatiq.Message(queue_name="default", actor_name="process_alert", args=(1,),
                                        kwargs={}, options={}))
    assert time.monotonic() - started < 1.0
