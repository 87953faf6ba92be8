"""The scheduler process (`widip scheduler`): fires the periodic ticks and imports nothing else.

periodiq sends a message for each actor whose schedule matches the current minute. The actors'
code lives in the workers; this process only needs their names, queue and schedules — the job table
(widip/functions/job_table.py) — so it declares them here as bodiless actors on a broker without
middleware: it loads dramatiq, redis and periodiq (~35 MB) instead of the whole actor stack (~70 MB).
"""

from __future__ import annotations

import logging
import os
import time

from widip.functions import job_table

logger = logging.getLogger(__name__)

#: Every periodic actor runs on this queue, so a backlog of real work never makes periodiq skip a tick.
QUEUE = job_table.TICKS
#: How long to wait before starting again when Redis does not answer.
REDIS_RETRY_S = 5


def schedule(env=os.environ) -> dict[str, str]:
    """Actor name → cron spec of every periodic tick, from the job table (minute granularity)."""
    specs = {job.name: job.cron for job in job_table.periodic_jobs()}
    specs[job_table.TICK_SENTINEL.name] = job_table.tick_cron(env.get("WORKFLOW_INTERVAL_SECONDS", "300"))
    return specs


def declare(broker, specs: dict[str, str]) -> list:
    """Bodiless actors carrying only what periodiq sends: name, queue and schedule."""
    import dramatiq
    from periodiq import cron

    def runs_in_the_worker(*args, **kwargs):  # pragma: no cover - never called in this process
        raise RuntimeError("periodic actors run in the worker, not the scheduler")

    return [dramatiq.Actor(runs_in_the_worker, broker=broker, actor_name=name, queue_name=QUEUE, priority=0,
                           options={"periodic": cron(spec)}) for name, spec in specs.items()]


def run(env=os.environ) -> int:
    """Record the start (for /ready), then fire ticks until stopped; survive Redis outages."""
    import pendulum
    import redis
    from dramatiq.brokers.redis import RedisBroker
    from periodiq import Scheduler

    from widip.functions import heartbeat
    from widip.logs import announce_ready

    url = env.get("REDIS_URL")
    if not url:
        from widip.errors import ConfigError

        raise ConfigError(["REDIS_URL is required but not set"])
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=3)
    actors = declare(RedisBroker(client=client, middleware=[]), schedule(env))
    announced = False
    while True:
        try:
            heartbeat.record_start(client)
            if not announced:
                announce_ready("scheduler", f"{len(actors)} periodic ticks on queue {QUEUE!r}")
                announced = True
            scheduler = Scheduler(actors=actors)
            if pendulum.now().second > 55:  # as periodiq does: start on the next minute
                time.sleep(60 - pendulum.now().second)
            scheduler.schedule()
            scheduler.loop()
            return 0
        except redis.RedisError as exc:  # a Redis outage must not take the whole deployment down
            logger.warning("scheduler: Redis unavailable (%s); retrying in %d s", type(exc).__name__, REDIS_RETRY_S)
            time.sleep(REDIS_RETRY_S)
