"""Circuit breaker reads: is an integration available for work that depends on it?

GLPI's status is the health probe's `glpi_health_status` key (seed WIDIP_Health_Check_GLPI);
a missing (stale) status counts as degraded — usable, but never reported as ok.
"""

from __future__ import annotations

import redis

GLPI_STATUS_KEY = "glpi_health_status"
STATUS_KEY = "widip:integration:{system}:status"


def status_of(client: redis.Redis, system: str) -> str:
    """ok | degraded | down | unknown."""
    key = GLPI_STATUS_KEY if system == "glpi" else STATUS_KEY.format(system=system)
    try:
        value = client.get(key)
    except redis.RedisError:
        return "unknown"
    return value.decode() if value else "unknown"


def is_available(client: redis.Redis, system: str) -> bool:
    """Only a system known to be down is unavailable; unknown and degraded still get work."""
    return status_of(client, system) != "down"


def glpi_available(client: redis.Redis) -> bool:
    return is_available(client, "glpi")
