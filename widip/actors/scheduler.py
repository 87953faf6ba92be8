"""Periodic actors fired by the single periodiq `scheduler` process (minute granularity, DESIGN §9)."""

from __future__ import annotations

import dramatiq
from periodiq import cron

from widip.deps import deps
from widip.functions import heartbeat


@dramatiq.actor(queue_name="ticks", periodic=cron("* * * * *"), max_retries=0, time_limit=10_000)
def scheduler_heartbeat() -> None:
    """Proves once a minute that the scheduler fires and a worker consumes (read by /ready)."""
    heartbeat.record_tick(deps().redis)
