"""The echo job: the smallest real work, used to prove the queue wiring end to end."""

from __future__ import annotations

from psycopg import Connection


def record_echo(conn: Connection, job_id: str, message: str) -> dict:
    """Store the message once per job (idempotent on redelivery) and return what was stored."""
    row = conn.execute(
        "INSERT INTO echo_messages (job_id, message) VALUES (%s, %s) "
        "ON CONFLICT (job_id) DO UPDATE SET message = echo_messages.message RETURNING id, message, created_at",
        (job_id, message),
    ).fetchone()
    return {"echo": row["message"], "row_id": row["id"], "stored_at": row["created_at"].isoformat()}
