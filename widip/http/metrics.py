"""GET /metrics: Prometheus text, summed over every process of this host (multiprocess mode).

Gunicorn workers and Dramatiq processes each write their own files under PROMETHEUS_MULTIPROC_DIR;
whichever worker answers the scrape reads them all, so counters sum across processes. Gauges that
mirror shared state (outbox size, LLM queue lengths, integration up) are refreshed from PostgreSQL
and Redis just before the answer. Public, like /health: it carries counts, never data.
"""

from __future__ import annotations

import logging
import time

from widip.functions import metrics, monitoring  # noqa: F401  (defines every widip_* metric)

logger = logging.getLogger(__name__)

OPENAPI_PATHS = {
    "/metrics": {"get": {"summary": "Prometheus metrics (text exposition format)", "operationId": "metrics",
                         "responses": {"200": {"description": "metrics",
                                               "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
}


class Metrics:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        started = time.perf_counter()
        monitoring.refresh_gauges(self._ctx.pool, self._ctx.redis)
        resp.content_type = CONTENT_TYPE_LATEST
        resp.text = generate_latest(metrics.host_registry()).decode()
        elapsed = time.perf_counter() - started
        metrics.METRICS_SCRAPE.observe(elapsed)  # seen by the next scrape
        logger.debug("metrics scraped in %.1f ms", elapsed * 1000)


def register(app, ctx):
    from widip.functions.integrations.status import KNOWN_SYSTEMS

    metrics.initialise(KNOWN_SYSTEMS, monitoring.LLM_QUEUES)  # dashboards read 0, not "no data"
    app.add_route("/metrics", Metrics(ctx))
