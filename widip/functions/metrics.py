"""Every Prometheus metric of widip, defined once; other modules import the objects from here.

Multiprocess-safe: gunicorn workers and Dramatiq processes each write their own files under
PROMETHEUS_MULTIPROC_DIR (set by the launcher and the test stack before prometheus_client is
imported) and GET /metrics sums them. Gauges that mirror shared state (Redis, PostgreSQL) use
multiprocess_mode "mostrecent": the latest writer wins, whichever process it was, and a dead
process's old value never shadows a newer one. Names are a public contract (dashboards, alerts):
do not rename. Label values must stay few (no ticket ids, device names or tracking ids).
This module only defines and updates metrics; serving them is widip/http/metrics.py.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

#: Buckets for things measured in seconds that range from a fast API call to an LLM answer.
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
#: GLPI answers in tens of milliseconds when healthy; the slow threshold defaults to 2 s.
GLPI_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

# --- seed metrics (WIDIP_Proactif_v7 "Export Prometheus") -----------------------------------------

#: Duration of one pipeline run (Sentinel tick, Assist cycle…), by workflow and code version.
WORKFLOW_DURATION = Histogram("widip_workflow_duration_seconds", "Duration of one workflow run.",
                              ["workflow", "version"], buckets=SECONDS_BUCKETS)
#: Duration of one Sentinel diagnosis (the seed labelled it by tracking_id; dropped: unbounded cardinality).
SENTINEL_DURATION = Histogram("widip_sentinel_duration_seconds", "Duration of one Sentinel diagnosis.",
                              buckets=SECONDS_BUCKETS)
#: Workflow runs answered from cache (e.g. a Phibee diagnosis still fresh in Redis).
CACHE_HIT = Counter("widip_cache_hit_total", "Workflow steps answered from cache.", ["workflow"])
#: Workflow runs that ended well.
WORKFLOW_SUCCESS = Counter("widip_workflow_success_total", "Successful workflow runs.", ["workflow"])
#: Workflow runs that ended in error.
WORKFLOW_ERROR = Counter("widip_workflow_error_total", "Failed workflow runs.", ["workflow"])

# --- integrations and the GLPI circuit breaker ----------------------------------------------------

#: 1 while an integration is usable (ok or degraded), 0 while it is down; last writer wins.
INTEGRATION_UP = Gauge("widip_integration_up", "1 if the integration is usable, 0 if down.", ["system"],
                       multiprocess_mode="mostrecent")
#: Every call to an integration, by outcome ok | error (a 4xx answer counts as ok: the system is up).
INTEGRATION_CALLS = Counter("widip_integration_calls_total", "Calls to external systems by outcome.",
                            ["system", "outcome"])
#: Round trip of the GLPI health probe (authenticated getMyProfiles), when GLPI answered.
GLPI_LATENCY = Histogram("widip_glpi_latency_seconds", "GLPI health probe latency.", buckets=GLPI_BUCKETS)
#: GLPI health probes by the status they concluded: ok | degraded | down.
GLPI_HEALTH_CHECKS = Counter("widip_glpi_health_checks_total", "GLPI health probes by resulting status.",
                             ["status"])

# --- LLM queue and providers ----------------------------------------------------------------------

#: Messages waiting in each LLM broker queue (llm.p0…llm.p3, llm-remote), refreshed at scrape time.
LLM_QUEUE_LENGTH = Gauge("widip_llm_queue_length", "Messages waiting in an LLM queue.", ["queue"],
                         multiprocess_mode="mostrecent")
#: Time one LLM call took, by persona (sentinel, notificateur, assist, wibot, gateway) and provider.
LLM_PROCESSING = Histogram("widip_llm_processing_seconds", "Duration of one LLM call.", ["persona", "provider"],
                           buckets=SECONDS_BUCKETS)
#: Times the configured LLM was unreachable and the rules provider answered instead.
LLM_FALLBACK = Counter("widip_llm_fallback_total", "LLM calls answered by the fallback provider.")

# --- SAFEGUARD and the outbox ---------------------------------------------------------------------

#: Gate decisions and human decisions, by level L0…L4 and outcome (run, notify, approval, deferred,
#: refused, approved, rejected, expired).
SAFEGUARD_REQUESTS = Counter("widip_safeguard_requests_total", "SAFEGUARD decisions by level and outcome.",
                             ["level", "outcome"])
#: Outbox rows not yet handed to the broker (most wait for a dependency that is down), at scrape time.
OUTBOX_PENDING = Gauge("widip_outbox_pending", "Outbox rows waiting to be sent.", multiprocess_mode="mostrecent")

# --- the service itself ---------------------------------------------------------------------------

#: Time GET /metrics took (refreshing gauges + reading every process's files), observed by the web worker.
METRICS_SCRAPE = Histogram("widip_metrics_scrape_seconds", "Time spent answering GET /metrics.",
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))


def record_safeguard(level: str | None, outcome: str) -> None:
    """Count one SAFEGUARD decision; never raises (metrics must not break a decision)."""
    try:
        SAFEGUARD_REQUESTS.labels(level=level or "none", outcome=outcome).inc()
    except Exception:  # noqa: BLE001 - a metrics failure is not the caller's problem
        logger.debug("safeguard metric not recorded", exc_info=True)


def record_integration_call(system: str, ok: bool, status: str | None = None) -> None:
    """Count one integration call and, when known, publish the system's up/down state."""
    INTEGRATION_CALLS.labels(system=system, outcome="ok" if ok else "error").inc()
    if status in ("ok", "degraded", "down"):
        INTEGRATION_UP.labels(system=system).set(0 if status == "down" else 1)


# --- start at zero, and the optional Pushgateway ---------------------------------------------------

#: The seed's workflows and the code version they report.
WORKFLOWS = {"proactif": "v7"}


def initialise(systems: tuple[str, ...], queues: tuple[str, ...]) -> None:
    """Create every label set known in advance, so /metrics shows each series at 0 before its first event.

    Gauges whose 0 would mean something (an integration down) are left alone until measured.
    """
    for workflow, version in WORKFLOWS.items():
        WORKFLOW_DURATION.labels(workflow=workflow, version=version)
        for counter in (WORKFLOW_SUCCESS, WORKFLOW_ERROR, CACHE_HIT):
            counter.labels(workflow=workflow)
    for system in systems:
        for outcome in ("ok", "error"):
            INTEGRATION_CALLS.labels(system=system, outcome=outcome)
    for queue in queues:
        LLM_QUEUE_LENGTH.labels(queue=queue)


def host_registry():
    """The multiprocess aggregate of this host when values live in files, else this process's registry."""
    from prometheus_client import REGISTRY, CollectorRegistry, values

    if getattr(values.ValueClass, "_multiprocess", False):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def push(gateway: str, *, job: str = "widip", instance: str | None = None) -> None:
    """Push this host's metrics (every process's, summed) to a Prometheus Pushgateway (seed §12)."""
    import socket

    from prometheus_client import pushadd_to_gateway

    pushadd_to_gateway(gateway, job=job, registry=host_registry(), timeout=10,
                       grouping_key={"instance": instance or socket.gethostname()})
