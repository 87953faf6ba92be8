"""Periodic actors fired by the single periodiq `scheduler` process (minute granularity, docs/architecture.md)."""

from __future__ import annotations

from widip.actors import actor
from widip.deps import deps
from widip.functions import heartbeat, job_table


@actor(job_table.SCHEDULER_HEARTBEAT, max_retries=0, time_limit=10_000)
def scheduler_heartbeat() -> None:
    """Proves once a minute that the scheduler fires and a worker consumes (read by /ready)."""
    heartbeat.record_tick(deps().redis)
