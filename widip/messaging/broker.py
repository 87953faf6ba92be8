"""The Dramatiq broker and its middleware, chosen once per process from the settings.

Middleware is listed explicitly (Dramatiq 2.x enables less by default) with bounded defaults:
no actor inherits Dramatiq's 20 retries over ~30 days, and messages older than a day are dropped
rather than acted on long after the fact. The StubBroker is used when WIDIP_BROKER=stub (tests).
"""

from __future__ import annotations

import logging
import os

import dramatiq
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, CurrentMessage, Retries, ShutdownNotifications, TimeLimit
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend, StubBackend
from periodiq import PeriodiqMiddleware

from widip.messaging.tracking import JobTracking
from widip.errors import ConfigError
from widip.logs import quiet_startup

logger = logging.getLogger(__name__)

#: Default ceiling on retries for every actor; side-effecting actors set their own, lower.
DEFAULT_MAX_RETRIES = 3
#: First retry after 2 s, at most 5 min between retries.
DEFAULT_MIN_BACKOFF_MS = 2_000
DEFAULT_MAX_BACKOFF_MS = 300_000
#: A message older than a day is stale: the situation it described has changed.
DEFAULT_MAX_AGE_MS = 24 * 3600 * 1000
#: An actor running longer than 10 min is stuck; each actor sets a tighter limit.
DEFAULT_TIME_LIMIT_MS = 600_000
#: Redis socket timeouts for the broker and results backend (the consumers poll; nothing blocks longer).
REDIS_SOCKET_TIMEOUT_S = 10
REDIS_CONNECT_TIMEOUT_S = 3
#: The web process's budget for one Redis call, with no retry: a frozen Redis must not stall a request
#: (the webhook's alert is already in PostgreSQL; the sweeper enqueues it later).
WEB_REDIS_TIMEOUT_S = 0.5
#: How long an actor's return value stays retrievable from the results backend.
RESULT_TTL_MS = 600_000
#: Periodic ticks older than this when picked up are skipped: the next tick will come.
PERIODIQ_SKIP_DELAY_S = 120


def build_middleware(results_backend, *, exporter: bool = True) -> list:
    """The middleware; `exporter=False` leaves out Dramatiq's Prometheus exporter, which repoints
    PROMETHEUS_MULTIPROC_DIR at boot (the in-process StubBroker must not move the host's metrics)."""
    middleware = [
        AgeLimit(max_age=DEFAULT_MAX_AGE_MS),
        TimeLimit(time_limit=DEFAULT_TIME_LIMIT_MS),
        ShutdownNotifications(),
        CurrentMessage(),
        JobTracking(),
        Retries(max_retries=DEFAULT_MAX_RETRIES, min_backoff=DEFAULT_MIN_BACKOFF_MS,
                max_backoff=DEFAULT_MAX_BACKOFF_MS),
        # Every actor's return value is kept 10 min for retrieval; durable outcomes live in PostgreSQL.
        Results(backend=results_backend, store_results=True, result_ttl=RESULT_TTL_MS),
        PeriodiqMiddleware(skip_delay=PERIODIQ_SKIP_DELAY_S),
    ]
    if not exporter:
        return middleware
    from dramatiq.middleware.prometheus import Prometheus

    return middleware + [Prometheus()]


def build_broker(kind: str, redis_url: str | None, *, timeout: float = REDIS_SOCKET_TIMEOUT_S) -> dramatiq.Broker:
    """A Redis broker on `redis_url`, or a StubBroker (kind "stub") for unit tests.

    `timeout` bounds every Redis call; a short one (the web's) also turns redis-py's retries off,
    since retrying a frozen server only multiplies the wait.
    """
    if kind == "stub":
        broker = StubBroker(middleware=build_middleware(StubBackend(), exporter=False))
        broker.emit_after("process_boot")
        return broker
    if not redis_url:
        raise ConfigError(["REDIS_URL is required but not set"])
    # Explicit socket timeouts: a Redis that accepts connections but never answers must make an
    # enqueue fail fast (the webhook still answers, sweepers catch up) rather than hang a web worker.
    options = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, REDIS_CONNECT_TIMEOUT_S)}
    if timeout < REDIS_SOCKET_TIMEOUT_S:
        options["retry"] = Retry(NoBackoff(), 0)
    client = redis.Redis.from_url(redis_url, **options)
    backend = RedisBackend(client=redis.Redis.from_url(redis_url, **options))
    return RedisBroker(client=client, middleware=build_middleware(backend))


_broker: dramatiq.Broker | None = None


def setup_broker_from_env(env=os.environ, *, timeout: float = REDIS_SOCKET_TIMEOUT_S) -> dramatiq.Broker:
    """The broker needs only WIDIP_BROKER and REDIS_URL, so declaring actors never needs a database."""
    global _broker
    _broker = build_broker(env.get("WIDIP_BROKER", "redis"), env.get("REDIS_URL"), timeout=timeout)
    dramatiq.set_broker(_broker)
    quiet_startup(env.get("LOG_LEVEL"))  # dramatiq configured logging at INFO; periodiq narrates every tick
    logger.debug("broker ready: %s", type(_broker).__name__)
    return _broker


def current() -> dramatiq.Broker:
    """This process's broker, set up from the environment on first use (never Dramatiq's implicit default)."""
    return _broker if _broker is not None else setup_broker_from_env()
