"""Metrics start at zero (known label sets exist before the first event) and can be pushed to a Pushgateway."""

import http.server
import os
import subprocess
import sys
import threading

from prometheus_client.parser import text_string_to_metric_families

from widip.config import PROJECT_ROOT

SCRAPE = """
from falcon.testing import TestClient
from widip.http.app import create_app_from_env
print(TestClient(create_app_from_env()).simulate_get("/metrics").text)
"""


def series(text: str) -> dict:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_fresh_deployment_shows_every_known_series_at_zero(settings, tmp_path):
    prom = tmp_path / "prom"
    prom.mkdir()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "WIDIP_ENV": "test", "WIDIP_BROKER": "stub", "PROMETHEUS_MULTIPROC_DIR": str(prom)}
    out = subprocess.run([sys.executable, "-c", SCRAPE], env=env, cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    found = series(out.stdout)
    proactif = frozenset({("workflow", "proactif")})
    for name in ("widip_workflow_success_total", "widip_workflow_error_total", "widip_cache_hit_total"):
        assert found[(name, proactif)] == 0, name
    assert found[("widip_workflow_duration_seconds_count",
                  frozenset({("workflow", "proactif"), ("version", "v7")}))] == 0
    for system in ("glpi", "observium", "active_directory"):
        assert found[("widip_integration_calls_total", frozenset({("system", system), ("outcome", "error")}))] == 0
    assert ("widip_llm_queue_length", frozenset({("queue", "llm.p0")})) in found


def test_metrics_are_pushed_to_the_pushgateway_under_job_and_instance():
    from widip.functions import metrics

    received = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"])).decode()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        metrics.WORKFLOW_SUCCESS.labels(workflow="proactif").inc()
        metrics.push(f"http://127.0.0.1:{server.server_port}", instance="host-a")
    finally:
        server.shutdown()
    (path, body), = received
    assert path == "/metrics/job/widip/instance/host-a"
    assert series(body)[("widip_workflow_success_total", frozenset({("workflow", "proactif")}))] >= 1
