"""Dramatiq actors: thin wrappers that fetch dependencies and call plain functions.

Each actor is declared with `actor(job, …)`: its name and queue come from the job table
(widip/functions/job_table.py) and it is declared on this process's broker. Which actor modules a
worker loads is listed in widip/worker.py; importing this package imports none of them.
"""

from __future__ import annotations

import dramatiq
from periodiq import cron

from widip.functions.job_table import Job
from widip.messaging.broker import current


def actor(job: Job, **options):
    """Declare the decorated function as the actor of `job` (options as for `dramatiq.actor`); a tick
    gets its schedule from the job table."""
    if job.cron:
        options["periodic"] = cron(job.cron)
    return dramatiq.actor(actor_name=job.name, queue_name=job.queue, broker=current(), **options)
