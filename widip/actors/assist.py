"""The Assist cycle, every 3 minutes (seed: Assist Ticket v3 polling)."""

from __future__ import annotations

import dramatiq
from periodiq import cron

from widip.deps import deps
from widip.actors.tools import flush_outbox
from widip.functions.assist import cycle as assist


@dramatiq.actor(queue_name="ticks", periodic=cron("*/3 * * * *"), max_retries=0, time_limit=120_000)
def run_assist_cycle() -> dict:
    d = deps()
    if not d.settings.glpi_url:
        return {"status": "skipped", "reason": "GLPI not configured"}
    outcome = assist.run_cycle(d.pool, d.redis, d.clients)
    flush_outbox()  # start the sessions it queued
    return outcome
