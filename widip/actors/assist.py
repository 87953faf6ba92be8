"""The Assist cycle, every 3 minutes (seed: Assist Ticket v3 polling)."""

from __future__ import annotations

from periodiq import cron

from widip.actors import actor
from widip.deps import deps
from widip.functions import job_table
from widip.messaging.relay import flush_outbox
from widip.functions.assist import cycle as assist


@actor(job_table.RUN_ASSIST_CYCLE, periodic=cron("*/3 * * * *"), max_retries=0, time_limit=120_000)
def run_assist_cycle() -> dict:
    d = deps()
    if not d.settings.glpi_url:
        return {"status": "skipped", "reason": "GLPI not configured"}
    outcome = assist.run_cycle(d.pool, d.redis, d.clients)
    flush_outbox()  # start the sessions it queued
    return outcome
