"""The transactional outbox: work decided inside a transaction reaches the broker only after commit.

Rows are added in the same transaction as the state change that calls for them, so a rollback
leaves nothing to send and a crash after commit leaves the row for the relay. The relay sends rows
in id order, at least once (consumers are idempotent on their ids), and holds back rows whose
`dependency` (e.g. GLPI) is down, keeping their order for when it recovers.
"""

from __future__ import annotations

import logging
from typing import Callable

import redis
from psycopg import Connection
from psycopg_pool import ConnectionPool

from widip.functions.db import Jsonb, transaction
from widip.functions.job_table import Job

logger = logging.getLogger(__name__)

#: After this many failed sends a row is marked failed and surfaces in monitoring for a human.
MAX_SEND_ATTEMPTS = 20


def add(conn: Connection, job: Job, kwargs: dict, *, dependency: str | None = None,
        dedup_key: str | None = None, description: str = "") -> int | None:
    """Queue `job(**kwargs)` for after commit; a repeated dedup_key adds nothing."""
    row = conn.execute(
        "INSERT INTO outbox (actor_name, kwargs, dependency, dedup_key, description) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        (job.name, Jsonb(kwargs), dependency, dedup_key, description)).fetchone()
    return row["id"] if row else None


def claim(conn: Connection, dedup_key: str) -> bool:
    """Take a pending row out of the relay's hands because its work runs inline now; False if already gone."""
    return conn.execute("UPDATE outbox SET status = 'sent', sent_at = now() WHERE dedup_key = %s "
                        "AND status = 'pending' RETURNING id", (dedup_key,)).fetchone() is not None


def relay(pool: ConnectionPool, send: Callable[[str, dict], None],
          available: Callable[[str], bool] = lambda dependency: True, *, limit: int = 200) -> int:
    """Send pending rows (oldest first); return how many were sent.

    Rows are locked with SKIP LOCKED so several relays never send the same row concurrently.
    A send error stops the batch (the broker is probably down) and is counted on the row.
    """
    sent = 0
    with transaction(pool) as conn:
        # Rows waiting for a system that is down are left out of the batch, so they never hold back
        # the rows behind them (an approved reset must not wait for GLPI to come back).
        waiting = [r["dependency"] for r in conn.execute(
            "SELECT DISTINCT dependency FROM outbox WHERE status = 'pending' AND dependency IS NOT NULL")]
        down = [d for d in waiting if not available(d)]
        rows = conn.execute(
            "SELECT id, actor_name, kwargs, dependency, attempts FROM outbox WHERE status = 'pending' "
            "AND (dependency IS NULL OR NOT (dependency = ANY(%s))) "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (down, limit)).fetchall()
        for row in rows:
            try:
                send(row["actor_name"], row["kwargs"])
            except Exception as exc:  # noqa: BLE001 - recorded on the row, retried by the next relay
                # The broker being down is not the row's fault: only other errors count towards failing it.
                broker_down = isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError))
                status = "failed" if not broker_down and row["attempts"] + 1 >= MAX_SEND_ATTEMPTS else "pending"
                conn.execute("UPDATE outbox SET attempts = attempts + %s, last_error = %s, status = %s WHERE id = %s",
                             (0 if broker_down else 1, f"{type(exc).__name__}: {exc}"[:500], status, row["id"]))
                logger.warning("outbox row %s not sent: %s", row["id"], type(exc).__name__)
                break
            conn.execute("UPDATE outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1 WHERE id = %s",
                         (row["id"],))
            sent += 1
    return sent


def summary(conn: Connection) -> dict:
    """Pending and failed rows, and the oldest pending age, for monitoring."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, "
        "count(*) FILTER (WHERE status = 'failed') AS failed, "
        "extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending')) AS oldest_pending_s "
        "FROM outbox").fetchone()
    waiting = conn.execute(
        "SELECT dependency, count(*) AS n FROM outbox WHERE status = 'pending' AND dependency IS NOT NULL "
        "GROUP BY dependency").fetchall()
    return {"pending": row["pending"], "failed": row["failed"],
            "oldest_pending_seconds": float(row["oldest_pending_s"]) if row["oldest_pending_s"] else None,
            "waiting_for": {r["dependency"]: r["n"] for r in waiting}}
