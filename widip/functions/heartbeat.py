"""Scheduler liveness: the last periodic tick and the scheduler's start, kept in Redis.

periodiq fires at minute boundaries, so a freshly started scheduler has no tick for up to a minute;
its start time covers that window instead of reporting a healthy deployment as dead.
"""

from __future__ import annotations

import time

import redis

LAST_TICK_KEY = "widip:scheduler:last_tick"
STARTED_KEY = "widip:scheduler:started"
#: A tick is expected every 60 s; two missed ticks and a margin mean the scheduler is dead.
STALE_AFTER_SECONDS = 150


def record_tick(client: redis.Redis, now: float | None = None) -> None:
    client.set(LAST_TICK_KEY, repr(now or time.time()), ex=24 * 3600)


def record_start(client: redis.Redis, now: float | None = None) -> None:
    client.set(STARTED_KEY, repr(now or time.time()), ex=24 * 3600)


def scheduler_status(client: redis.Redis, now: float | None = None) -> dict:
    """{"ok": bool, "last_tick_age_s": float|None, "detail": str}."""
    now = now or time.time()
    tick, started = client.mget(LAST_TICK_KEY, STARTED_KEY)
    if tick is not None:
        age = now - float(tick)
        if age <= STALE_AFTER_SECONDS:
            return {"ok": True, "last_tick_age_s": round(age, 1), "detail": "ticking"}
        return {"ok": False, "last_tick_age_s": round(age, 1), "detail": f"no tick for {age:.0f} s"}
    if started is not None and now - float(started) <= STALE_AFTER_SECONDS:
        return {"ok": True, "last_tick_age_s": None, "detail": "started, first tick pending"}
    return {"ok": False, "last_tick_age_s": None, "detail": "no scheduler tick recorded"}
