"""Process-wide dependencies for actors: settings, the database pool, Redis — built once, lazily.

Actors are thin: they fetch `deps()` and call plain functions with what they need. Tests call
`configure(settings)` to point this process at their own database and Redis.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import redis
from psycopg_pool import ConnectionPool

from widip.config import Settings
from widip.functions import db


@dataclass
class Deps:
    settings: Settings
    pool: ConnectionPool
    redis: redis.Redis
    _clients: object = None

    @property
    def clients(self):
        """The integration clients (GLPI, AD, …), built on first use."""
        if self._clients is None:
            from widip.functions.integrations.clients import Clients

            self._clients = Clients(self.settings, self.redis)
        return self._clients

    def close(self) -> None:
        if self._clients is not None:
            self._clients.close()
        self.pool.close()
        self.redis.close()


_lock = threading.Lock()
_deps: Deps | None = None


def build(settings: Settings) -> Deps:
    return Deps(settings=settings, pool=db.make_pool(settings.database_url),
                redis=redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2))


def configure(settings: Settings) -> Deps:
    """Replace this process's dependencies (closing the old ones)."""
    global _deps
    with _lock:
        if _deps is not None:
            _deps.close()
        _deps = build(settings)
        return _deps


def deps() -> Deps:
    """This process's dependencies, built from the environment on first use."""
    global _deps
    if _deps is None:
        with _lock:
            if _deps is None:
                _deps = build(Settings.from_env())
    return _deps
