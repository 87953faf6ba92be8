"""GET /metrics: every widip metric is exposed and moves; counters sum over gunicorn and Dramatiq processes."""

import json
import threading
import time
from pathlib import Path

import dramatiq
import httpx
import pytest
import redis as redis_lib
from falcon.testing import TestClient
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.stack import poll
from tests.test_monitoring import build_app
from widip.functions import db, job_table, metrics, outbox
from widip.functions.integrations import glpi_health
from widip.functions.integrations.clients import Clients

LISTED = ("widip_workflow_duration_seconds", "widip_sentinel_duration_seconds", "widip_cache_hit_total",
          "widip_workflow_success_total", "widip_workflow_error_total", "widip_integration_up",
          "widip_glpi_latency_seconds", "widip_llm_queue_length", "widip_llm_processing_seconds",
          "widip_llm_fallback_total", "widip_safeguard_requests_total", "widip_outbox_pending")


def samples(text: str) -> dict:
    """{(sample name, frozenset(labels)): value} from an exposition text."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def web(integrated_settings):
    return TestClient(build_app(integrated_settings))


def scrape(web) -> dict:
    result = web.simulate_get("/metrics")
    assert result.status_code == 200 and result.headers["content-type"].startswith("text/plain")
    return samples(result.text)


def test_every_listed_metric_is_exposed_and_its_value_moves(web, conn, pool, redis_client, integrated_settings,
                                                            glpi, mail_sink):
    before = scrape(web)
    # Pipelines (Sentinel, Assist, LLM queue, SAFEGUARD) will use these objects; exercise each once.
    metrics.WORKFLOW_DURATION.labels(workflow="sentinel", version="v1").observe(1.5)
    metrics.SENTINEL_DURATION.observe(0.7)
    metrics.CACHE_HIT.labels(workflow="sentinel").inc()
    metrics.WORKFLOW_SUCCESS.labels(workflow="sentinel").inc(2)
    metrics.WORKFLOW_ERROR.labels(workflow="assist").inc()
    metrics.LLM_PROCESSING.labels(persona="wibot", provider="rules").observe(0.2)
    metrics.LLM_FALLBACK.inc()
    metrics.record_safeguard("L3", "approval")
    # What this module wires itself: the GLPI probe, the outbox and LLM queue gauges.
    clients = Clients(integrated_settings, redis_client)
    try:
        glpi_health.probe_glpi(redis_client, pool, clients, integrated_settings)
    finally:
        clients.close()
    for key in ("a", "b", "c"):
        outbox.add(conn, job_table.RUN_TOOL, {"call_id": key}, dependency="glpi", dedup_key=key)
    redis_client.rpush("dramatiq:llm.p1", "m1", "m2", "m3")

    after = scrape(web)
    started = time.perf_counter()
    for _ in range(20):
        scrape(web)
    print(f"\n/metrics in-process: {(time.perf_counter() - started) * 50:.1f} ms per scrape")

    for name in LISTED:
        assert any(key[0].startswith(name) for key in after), name
    moved = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert moved("widip_workflow_duration_seconds_count", workflow="sentinel", version="v1") == 1
    assert moved("widip_workflow_duration_seconds_sum", workflow="sentinel", version="v1") == pytest.approx(1.5)
    assert moved("widip_sentinel_duration_seconds_count") == 1
    assert moved("widip_cache_hit_total", workflow="sentinel") == 1
    assert moved("widip_workflow_success_total", workflow="sentinel") == 2
    assert moved("widip_workflow_error_total", workflow="assist") == 1
    assert moved("widip_llm_processing_seconds_count", persona="wibot", provider="rules") == 1
    assert moved("widip_llm_fallback_total") == 1
    assert moved("widip_safeguard_requests_total", level="L3", outcome="approval") == 1
    assert moved("widip_glpi_latency_seconds_count") == 1
    assert moved("widip_glpi_health_checks_total", status="ok") == 1
    assert value(after, "widip_integration_up", system="glpi") == 1
    assert value(after, "widip_outbox_pending") == 3
    assert value(after, "widip_llm_queue_length", queue="llm.p1") == 3
    assert value(after, "widip_llm_queue_length", queue="llm.p0") == 0


def test_integration_up_follows_the_glpi_probe_and_the_call_outcomes(web, pool, redis_client, integrated_settings,
                                                                    glpi, mail_sink):
    settings = integrated_settings.with_overrides(glpi_down_after_failures=1)
    clients = Clients(settings, redis_client)
    glpi.state.fault = {"status": 503}
    try:
        glpi_health.probe_glpi(redis_client, pool, clients, settings)
        assert value(scrape(web), "widip_integration_up", system="glpi") == 0
        glpi.state.fault = {}
        glpi_health.probe_glpi(redis_client, pool, clients, settings)
        assert value(scrape(web), "widip_integration_up", system="glpi") == 1
    finally:
        glpi.state.fault = {}
        clients.close()
    redis_client.set("widip:integration:phibee:status", "down", ex=60)
    assert value(scrape(web), "widip_integration_up", system="phibee") == 0


def test_a_scrape_still_answers_when_redis_and_postgres_are_gone(integrated_settings):
    broken = integrated_settings.with_overrides(database_url="postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
                                                redis_url="redis://127.0.0.1:1/0")
    result = TestClient(build_app(broken)).simulate_get("/metrics")
    assert result.status_code == 200 and "widip_glpi_latency_seconds" in result.text


# --- real processes: 2 gunicorn workers + 2 Dramatiq processes writing one multiprocess directory ----

def integration_env(glpi, mail_sink, **extra) -> dict:
    return {"GLPI_URL": glpi.url, "GLPI_APP_TOKEN": "sim-app-token", "GLPI_USER_TOKEN": "sim-user-token",
            "SMTP_HOST": mail_sink.host, "SMTP_PORT": str(mail_sink.port), "SMTP_USE_TLS": "none",
            "ALERT_MAIL_RECIPIENTS": "astreinte@widip.fr", "INTEGRATION_TIMEOUT_SECONDS": "5", **extra}


def send_probes(redis_url: str, count: int) -> None:
    """Enqueue probe messages on the Redis broker, as the scheduler would."""
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url)
    try:
        for _ in range(count):
            broker.enqueue(dramatiq.Message(queue_name="default", actor_name="probe_glpi_health", args=(),
                                            kwargs={}, options={}))
    finally:
        broker.close()


def observations_per_process(prom_dir: Path, histogram: str) -> dict[int, float]:
    """{pid: observations} of one histogram in the multiprocess files (what the collector sums).

    The files hold per-bucket (non-cumulative) counts; a process's observations are their sum.
    """
    found: dict[int, float] = {}
    for path in prom_dir.glob("histogram_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, val, _ts, _pos in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[1] == histogram + "_bucket" and val:
                found[pid] = found.get(pid, 0.0) + val
    return found


@pytest.mark.e2e
def test_counters_sum_over_two_gunicorn_workers_and_two_dramatiq_processes(stack, glpi, mail_sink, conn, redis_url):
    stack.start("web", "worker", WEB_WORKERS="2", WORKER_PROCESSES="2", **integration_env(glpi, mail_sink))
    probes, scrapes = 12, 24
    for key in ("a", "b"):
        outbox.add(conn, job_table.RUN_TOOL, {"call_id": key}, dependency="glpi", dedup_key=key)
    client = redis_lib.Redis.from_url(redis_url)
    client.rpush("dramatiq:llm.p2", "x", "y")  # nothing consumes llm.* here (no llm process)
    client.close()

    send_probes(redis_url, probes)
    poll(lambda: conn.execute("SELECT count(*) AS n FROM glpi_health_history").fetchone()["n"],
         lambda n: n == probes, timeout=60, interval=0.2)

    # Scrape concurrently so both gunicorn workers answer some scrapes.
    timings, errors = [], []

    def scrape_some():
        for _ in range(scrapes // 4):
            started = time.perf_counter()
            try:
                r = httpx.get(stack.url + "/metrics", timeout=10)
                r.raise_for_status()
                found = samples(r.text)
                assert value(found, "widip_glpi_health_checks_total", status="ok") == probes
                assert value(found, "widip_outbox_pending") == 2
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            timings.append(time.perf_counter() - started)

    threads = [threading.Thread(target=scrape_some) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    final = samples(httpx.get(stack.url + "/metrics", timeout=10).text)
    server_ms = 1000 * value(final, "widip_metrics_scrape_seconds_sum") / value(final, "widip_metrics_scrape_seconds_count")
    print(f"\n/metrics scrape over HTTP (4 concurrent clients): median {sorted(timings)[len(timings) // 2] * 1000:.1f} ms, "
          f"max {max(timings) * 1000:.1f} ms; server-side mean {server_ms:.1f} ms")

    prom_dir = Path(stack.env["PROMETHEUS_MULTIPROC_DIR"])
    # Each gunicorn worker observed its own scrapes; the answer is their sum.
    scrape_counts = observations_per_process(prom_dir, "widip_metrics_scrape_seconds")
    assert len(scrape_counts) == 2, scrape_counts
    assert value(final, "widip_metrics_scrape_seconds_count") == scrapes  # the final scrape counts itself after
    assert sum(scrape_counts.values()) == scrapes + 1
    # The probes ran in Dramatiq processes; every gunicorn worker reports the same total.
    probe_counts = observations_per_process(prom_dir, "widip_glpi_latency_seconds")
    assert sum(probe_counts.values()) == probes == value(final, "widip_glpi_latency_seconds_count")
    assert value(final, "widip_integration_up", system="glpi") == 1
    assert value(final, "widip_llm_queue_length", queue="llm.p2") == 2
    assert value(final, "widip_integration_calls_total", system="glpi", outcome="ok") >= probes
    assert value(final, "dramatiq_messages_total", queue_name="default", actor_name="probe_glpi_health") == probes
