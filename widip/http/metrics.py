"""GET /metrics: Prometheus text, summed over every process of this host (multiprocess mode)."""

from __future__ import annotations

import os

from widip.http.openapi_doc import json_response

OPENAPI_PATHS = {
    "/metrics": {"get": {"summary": "Prometheus metrics (text exposition format)", "operationId": "metrics",
                         "responses": {"200": {"description": "metrics",
                                               "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
}


class Metrics:
    def on_get(self, req, resp):
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        resp.content_type = CONTENT_TYPE_LATEST
        resp.text = generate_latest(registry).decode()


def register(app, ctx):
    app.add_route("/metrics", Metrics())
