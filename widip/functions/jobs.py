"""Job status rows: what the API hands out as "poll this" for every piece of accepted work.

A job's id is the id of the Dramatiq message that does the work, so the row is written before the
message is enqueued and the worker finds it by message id. Statuses: queued → running → done | failed
(with `retrying` between attempts).
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import Connection

from widip.errors import NotFound
from widip.functions.db import Jsonb

STATUSES = ("queued", "running", "retrying", "done", "failed")


def create_job(conn: Connection, job_id: str, kind: str, args: dict[str, Any]) -> dict:
    return conn.execute(
        "INSERT INTO jobs (id, kind, args) VALUES (%s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind RETURNING *",
        (job_id, kind, Jsonb(args)),
    ).fetchone()


def get_job(conn: Connection, job_id: str) -> dict:
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"no job {job_id!r}: job ids are UUIDs") from None
    row = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return row


def mark_running(conn: Connection, job_id: str) -> None:
    conn.execute(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, now()) "
        "WHERE id = %s AND status IN ('queued', 'retrying', 'running')",
        (job_id,),
    )


def mark_done(conn: Connection, job_id: str, result: Any) -> None:
    conn.execute(
        "UPDATE jobs SET status = 'done', result = %s, error = NULL, finished_at = now() WHERE id = %s",
        (Jsonb(result), job_id),
    )


def mark_error(conn: Connection, job_id: str, error: str, *, final: bool) -> None:
    conn.execute(
        "UPDATE jobs SET status = %s, error = %s, finished_at = CASE WHEN %s THEN now() END WHERE id = %s",
        ("failed" if final else "retrying", error, final, job_id),
    )


def public_view(job: dict) -> dict:
    """The JSON the API returns for a job."""
    return {
        "id": str(job["id"]), "kind": job["kind"], "status": job["status"],
        "result": job["result"], "error": job["error"], "attempts": job["attempts"],
        "created_at": _iso(job["created_at"]), "started_at": _iso(job["started_at"]),
        "finished_at": _iso(job["finished_at"]),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
