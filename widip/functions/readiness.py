"""Readiness of the pieces a request depends on: PostgreSQL, Redis, the broker, the scheduler.

Every probe has a small budget: a frozen Redis (SIGSTOP) or a PostgreSQL that stopped answering must
make `/ready` say so within 2 s, naming the slow component, and must never stall the webhook. The
probes use their own short-timeout connections (never the process's long-timeout ones) and run in
parallel under one deadline.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from psycopg_pool import ConnectionPool

from widip.functions import heartbeat

logger = logging.getLogger(__name__)

#: The whole readiness answer is given within this many seconds.
READY_BUDGET_SECONDS = 1.0
_probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readiness")
_fast_clients: dict[tuple[int, float], redis.Redis] = {}


def fast_client(client: redis.Redis, timeout: float) -> redis.Redis:
    """A client on the same server as `client` whose every socket operation gives up after `timeout`."""
    key = (id(client.connection_pool), timeout)
    if key not in _fast_clients:
        source = client.connection_pool
        kwargs = {**source.connection_kwargs, "socket_timeout": timeout, "socket_connect_timeout": timeout,
                  "retry": Retry(NoBackoff(), 0)}  # one try: a probe that retries blows its budget
        _fast_clients[key] = redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=source.connection_class, max_connections=4, **kwargs))
    return _fast_clients[key]


def check_postgres(pool: ConnectionPool, budget: float = READY_BUDGET_SECONDS) -> dict:
    """A fresh connection (the pool's may be stale or hung) with a connect and statement timeout."""
    try:
        with psycopg.connect(pool.conninfo, connect_timeout=max(1, int(budget)),
                             options=f"-c statement_timeout={int(budget * 1000)}") as conn:
            conn.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        logger.warning("postgres not ready: %s", type(exc).__name__)
        return {"ok": False, "detail": f"unreachable ({type(exc).__name__})"}


def check_redis(client: redis.Redis, budget: float = READY_BUDGET_SECONDS) -> dict:
    try:
        fast_client(client, budget).ping()
        return {"ok": True}
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "detail": f"unreachable ({type(exc).__name__})"}


def check_broker(broker, budget: float = READY_BUDGET_SECONDS) -> dict:
    client = getattr(broker, "client", None)
    if client is None:  # StubBroker: in-process, always there
        return {"ok": True, "detail": type(broker).__name__}
    return check_redis(client, budget)


def check_scheduler(client: redis.Redis, budget: float = READY_BUDGET_SECONDS) -> dict:
    try:
        return heartbeat.scheduler_status(fast_client(client, budget))
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "detail": f"heartbeat unreadable ({type(exc).__name__})"}


def readiness(pool: ConnectionPool, client: redis.Redis, broker, *, budget: float = READY_BUDGET_SECONDS) -> dict:
    """{"ready": bool, "components": {name: {"ok": …, …}}, "down": [names]}, within `budget` seconds:
    a probe still waiting at the deadline is reported as slow."""
    probes = {"postgres": lambda: check_postgres(pool, budget), "redis": lambda: check_redis(client, budget),
              "broker": lambda: check_broker(broker, budget), "scheduler": lambda: check_scheduler(client, budget)}
    futures = {name: _probes.submit(probe) for name, probe in probes.items()}
    deadline = time.monotonic() + budget
    components = {}
    for name, future in futures.items():
        try:
            components[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            components[name] = {"ok": False, "detail": f"slow: no answer within {budget:g} s"}
    down = [name for name, status in components.items() if not status["ok"]]
    return {"ready": not down, "components": components, "down": down}
