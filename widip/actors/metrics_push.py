"""Each minute, when PROMETHEUS_PUSHGATEWAY is set: push this host's metrics there (seed §12)."""

from __future__ import annotations

import logging

from widip.actors import actor
from widip.deps import deps
from widip.functions import job_table, metrics

logger = logging.getLogger(__name__)


@actor(job_table.PUSH_METRICS, max_retries=0, time_limit=30_000)
def push_metrics() -> bool:
    gateway = deps().settings.prometheus_pushgateway
    if not gateway:
        return False
    try:
        metrics.push(gateway)
    except OSError as exc:  # an unreachable gateway is not worth a retry: the next minute pushes again
        logger.warning("metrics not pushed to the Pushgateway: %s", exc)
        return False
    return True
