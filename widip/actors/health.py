"""GLPI health probe actors: a periodiq tick each minute plus a probe delayed 30 s (docs/architecture.md).

periodiq has minute granularity, so the seed's 30-second cadence is the tick's own probe plus a
second one sent with a 30 s delay. On a recovery the outbox is flushed at once, so effects that
waited for GLPI run now rather than at the next sweep.
"""

from __future__ import annotations

import logging

from widip.actors import actor
from widip.deps import deps
from widip.functions import job_table
from widip.functions.integrations import glpi_health
from widip.messaging import door
from widip.messaging.relay import flush_outbox

logger = logging.getLogger(__name__)

#: The second probe of each minute, after the tick's own.
SECOND_PROBE_DELAY_MS = 30_000
#: Ping (≤ 2 × INTEGRATION_TIMEOUT_SECONDS with a session to open) + one alert mail, with margin.
PROBE_TIME_LIMIT_MS = 45_000


@actor(job_table.TICK_GLPI_HEALTH, max_retries=0, time_limit=PROBE_TIME_LIMIT_MS)
def tick_glpi_health() -> None:
    """Each minute: probe GLPI now and schedule the probe of the half minute."""
    door.send(job_table.PROBE_GLPI_HEALTH, delay_ms=SECOND_PROBE_DELAY_MS)
    run_probe()


@actor(job_table.PROBE_GLPI_HEALTH, max_retries=0, time_limit=PROBE_TIME_LIMIT_MS)
def probe_glpi_health() -> None:
    """One GLPI health probe (no retry: the next probe is at most 30 s away)."""
    run_probe()  # NOTE: nothing returned: results are not stored, and Dramatiq warns on a discarded value


def run_probe() -> dict | None:
    """Probe GLPI and, when it just recovered, hand the waiting outbox rows to the broker."""
    d = deps()
    if not d.settings.glpi_url:
        logger.debug("glpi health probe skipped: GLPI_URL is not set")
        return None
    result = glpi_health.probe_glpi(d.redis, d.pool, d.clients, d.settings)
    outcome = result.to_dict()
    if result.recovered:
        outcome["relayed"] = flush_outbox()
        logger.info("glpi recovered: %d waiting outbox row(s) relayed", outcome["relayed"])
    return outcome
