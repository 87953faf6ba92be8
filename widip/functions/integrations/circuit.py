"""Circuit breaker reads: is an integration available for work that depends on it?

GLPI's status is the health probe's `glpi_health_status` key (seed WIDIP_Health_Check_GLPI, TTL
60 s); every other system's is `widip:integration:{system}:status`, computed from its recent call
outcomes (widip/functions/integration_status.py). A missing (stale) status reads "unknown", which
pipelines treat as degraded: usable, but never reported as ok. Redis being unreachable also reads
"unknown", so a Redis hiccup never stops work on its own. Reads only; nothing here writes.
"""

from __future__ import annotations

import redis

GLPI_STATUS_KEY = "glpi_health_status"
STATUS_KEY = "widip:integration:{system}:status"
STATUSES = ("ok", "degraded", "down", "unknown")


def status_key(system: str) -> str:
    return GLPI_STATUS_KEY if system == "glpi" else STATUS_KEY.format(system=system)


def status_of(client: redis.Redis, system: str) -> str:
    """ok | degraded | down | unknown."""
    try:
        value = client.get(status_key(system))
    except redis.RedisError:
        return "unknown"
    return value.decode() if value else "unknown"


def effective_status(client: redis.Redis, system: str) -> str:
    """ok | degraded | down: what a pipeline should act on ("unknown" counts as degraded)."""
    status = status_of(client, system)
    return "degraded" if status == "unknown" else status


def statuses(client: redis.Redis, systems) -> dict[str, str]:
    """Several statuses in one round trip (monitoring, /metrics)."""
    systems = list(systems)
    try:
        values = client.mget([status_key(s) for s in systems])
    except redis.RedisError:
        return {s: "unknown" for s in systems}
    return {s: (v.decode() if v else "unknown") for s, v in zip(systems, values)}


def is_available(client: redis.Redis, system: str) -> bool:
    """Only a system known to be down is unavailable; unknown and degraded still get work."""
    return status_of(client, system) != "down"


def is_healthy(client: redis.Redis, system: str) -> bool:
    """True only on a fresh "ok": for work that should wait out a degraded system (bulk jobs)."""
    return status_of(client, system) == "ok"


def glpi_available(client: redis.Redis) -> bool:
    return is_available(client, "glpi")
