"""Readiness of the pieces a request depends on: PostgreSQL, Redis, the broker, the scheduler."""

from __future__ import annotations

import logging

import redis
from psycopg_pool import ConnectionPool

from widip.functions import heartbeat

logger = logging.getLogger(__name__)


def check_postgres(pool: ConnectionPool) -> dict:
    try:
        if pool.closed:
            pool.open(wait=False)
        with pool.connection(timeout=3) as conn:
            conn.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        logger.warning("postgres not ready: %s", type(exc).__name__)
        return {"ok": False, "detail": f"unreachable ({type(exc).__name__})"}


def check_redis(client: redis.Redis) -> dict:
    try:
        client.ping()
        return {"ok": True}
    except redis.RedisError as exc:
        return {"ok": False, "detail": f"unreachable ({type(exc).__name__})"}


def check_broker(broker) -> dict:
    client = getattr(broker, "client", None)
    if client is None:  # StubBroker: in-process, always there
        return {"ok": True, "detail": type(broker).__name__}
    return check_redis(client)


def check_scheduler(client: redis.Redis) -> dict:
    try:
        return heartbeat.scheduler_status(client)
    except redis.RedisError as exc:
        return {"ok": False, "detail": f"heartbeat unreadable ({type(exc).__name__})"}


def readiness(pool: ConnectionPool, client: redis.Redis, broker) -> dict:
    """{"ready": bool, "components": {name: {"ok": …, …}}, "down": [names]}."""
    components = {
        "postgres": check_postgres(pool),
        "redis": check_redis(client),
        "broker": check_broker(broker),
        "scheduler": check_scheduler(client),
    }
    down = [name for name, status in components.items() if not status["ok"]]
    return {"ready": not down, "components": components, "down": down}
