"""PostgreSQL access: connections, a process-wide pool, and the migration runner.

Rows come back as dicts. Functions elsewhere take an open connection (`conn`) so callers decide the
transaction: `with db.transaction(pool) as conn:` commits on success and rolls back on error.
"""

from __future__ import annotations

import hashlib
import logging
import re
import select
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)

#: Arbitrary constant key for the migration advisory lock ("widip" in ASCII).
MIGRATION_LOCK_KEY = 0x7769646970
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

__all__ = ["Jsonb", "connect", "make_pool", "transaction", "migrate", "MigrationError"]


class MigrationError(Exception):
    """Raised when an applied migration file was changed, or files are misnamed."""


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A new connection returning dict rows."""
    return psycopg.connect(url, row_factory=dict_row, autocommit=autocommit)


def make_pool(url: str, *, min_size: int = 1, max_size: int = 12) -> ConnectionPool:
    """A connection pool; opened lazily so building it never blocks a process start."""
    return ConnectionPool(
        url, min_size=min_size, max_size=max_size, open=False,
        # A request waits at most 2 s for a connection: with PostgreSQL down it answers 503 within that
        # budget instead of hanging (there are fewer threads per process than connections).
        kwargs={"row_factory": dict_row}, timeout=2, name="widip",
        # A connection broken by a database restart is replaced on checkout, not handed to a request.
        check=check_if_closed_by_server,
    )


def check_if_closed_by_server(conn: psycopg.Connection) -> None:
    """The pool's checkout check, without a round trip for a healthy connection.

    A server that restarts or kills a backend closes the socket (after a FATAL message), so an idle
    connection whose socket has something to read is suspect: only then is it proven with a query
    (which raises if it is dead). A round trip on every checkout cost a fifth of the webhook's time.
    """
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()  # not select.select: it refuses descriptors past 1023
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


def ensure_open(pool: ConnectionPool) -> ConnectionPool:
    """Pools are created closed (start-up never blocks on the database); open on first use."""
    if pool.closed:
        pool.open(wait=False)
    return pool


@contextmanager
def transaction(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """Borrow a connection and run one transaction on it (commit on success, rollback on error)."""
    with ensure_open(pool).connection() as conn:
        yield conn


def migration_files(sql_dir: Path) -> list[Path]:
    files = sorted(p for p in sql_dir.glob("*.sql"))
    for path in files:
        if not _MIGRATION_NAME.match(path.name):
            raise MigrationError(f"migration file {path.name} is not named NNN_lower_snake.sql")
    versions = [p.name[:3] for p in files]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a number: " + ", ".join(sorted(versions)))
    return files


def migrate(url: str, sql_dir: Path) -> list[str]:
    """Apply pending `sql/NNN_*.sql` files in order, each in its own transaction.

    Safe to run from several processes at once: a session advisory lock serialises runners, and
    each re-reads what is applied after taking it. A file changed after it was applied is refused
    (its checksum is recorded), because silently diverging schemas are worse than a failed deploy.
    Returns the names applied by this call.
    """
    applied_now: list[str] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"]: r["checksum"] for r in conn.execute("SELECT name, checksum FROM schema_migrations")}
            for path in migration_files(sql_dir):
                body = path.read_text(encoding="utf-8")
                checksum = hashlib.sha256(body.encode()).hexdigest()
                if path.name in done:
                    if done[path.name] != checksum:
                        raise MigrationError(f"{path.name} was changed after it was applied; add a new migration instead")
                    continue
                with conn.transaction():
                    conn.execute(body)
                    conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES (%s, %s)", (path.name, checksum))
                logger.info("applied migration %s", path.name)
                applied_now.append(path.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now
