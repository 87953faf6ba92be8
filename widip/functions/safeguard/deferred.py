"""L4 actions: never run on behalf of an AI; a human schedules them 24–48 h ahead, may cancel them
until they run, or refuses them.

Due actions are started by the minute sweep from PostgreSQL rather than by a Dramatiq delayed
message held in Redis for a day or two: delayed messages survive neither a Redis loss nor
reliably a restart (Dramatiq #527, #431), and the database is the record anyway.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from psycopg import Connection

from widip.errors import Conflict, Forbidden, Invalid, NotFound
from widip.functions import job_table, outbox
from widip.functions.callers import Caller
from widip.functions.safeguard import audit, calls
from widip.functions.safeguard.policy import Policy


STATUSES = ("pending", "scheduled", "running", "executed", "failed", "cancelled", "refused")


def list_deferred(conn: Connection, status: str | None = None, limit: int = 100) -> list[dict]:
    if status:
        return conn.execute("SELECT * FROM safeguard_deferred_actions WHERE status = %s ORDER BY id DESC LIMIT %s",
                            (status, limit)).fetchall()
    return conn.execute("SELECT * FROM safeguard_deferred_actions ORDER BY id DESC LIMIT %s", (limit,)).fetchall()


def get_deferred(conn: Connection, deferred_id: int) -> dict:
    row = conn.execute("SELECT * FROM safeguard_deferred_actions WHERE id = %s", (deferred_id,)).fetchone()
    if row is None:
        raise NotFound(f"no deferred action {deferred_id}")
    return row


def _check_human(action: dict, human: Caller, policy: Policy) -> None:
    if not human.is_human:
        raise Forbidden("only a human can decide a deferred action")
    needed = policy.run_without_approval["L4"]
    if human.accreditation < needed:
        raise Forbidden(f"deciding an L4 action requires accreditation N{needed}")
    if action["requester_user_id"] is not None and action["requester_user_id"] == human.user_id:
        raise Forbidden("nobody schedules an action they requested: another N4 must")


def schedule(conn: Connection, deferred_id: int, human: Caller, policy: Policy, run_at: datetime,
             now: datetime | None = None) -> dict:
    action = get_deferred(conn, deferred_id)
    _check_human(action, human, policy)
    now = now or datetime.now(timezone.utc)
    if run_at.tzinfo is None:
        raise Invalid("run_at needs a timezone (e.g. 2026-11-23T09:00:00+01:00)")
    low, high = now + timedelta(hours=policy.deferred_min_hours), now + timedelta(hours=policy.deferred_max_hours)
    if not low <= run_at <= high:
        raise Invalid(f"run_at must be between {policy.deferred_min_hours} h and {policy.deferred_max_hours} h "
                      f"from now ({low.isoformat(timespec='minutes')} – {high.isoformat(timespec='minutes')})")
    row = conn.execute(
        "UPDATE safeguard_deferred_actions SET status = 'scheduled', run_at = %s, scheduled_by = %s, "
        "scheduled_by_user_id = %s, decided_at = now() WHERE id = %s AND status = 'pending' RETURNING *",
        (run_at, human.username, human.user_id, deferred_id)).fetchone()
    if row is None:
        raise Conflict(f"deferred action {deferred_id} is already {action['status']}")
    audit.record(conn, actor=f"human:{human.username}", actor_user_id=human.user_id, action="scheduled",
                 tool_name=row["tool_name"], call_id=str(row["call_id"]), level="L4", outcome="scheduled",
                 reason=f"scheduled for {run_at.isoformat()}")
    return row


def cancel(conn: Connection, deferred_id: int, human: Caller, policy: Policy, reason: str = "") -> dict:
    """Stop an action before it runs: any N4, or whoever asked for it (withdrawing needs no second pair
    of eyes)."""
    return _close(conn, deferred_id, human, policy, "cancelled", ("pending", "scheduled"), reason or "cancelled",
                  requester_may=True)


def refuse(conn: Connection, deferred_id: int, human: Caller, policy: Policy, reason: str) -> dict:
    if not reason or not reason.strip():
        raise Invalid("a reason is required to refuse an action")
    return _close(conn, deferred_id, human, policy, "refused", ("pending",), reason.strip())


def _close(conn, deferred_id, human, policy, status, from_statuses, reason, *, requester_may=False) -> dict:
    action = get_deferred(conn, deferred_id)
    is_requester = human.is_human and action["requester_user_id"] is not None and \
        action["requester_user_id"] == human.user_id
    if not (requester_may and is_requester):
        _check_human(action, human, policy)
    row = conn.execute(
        "UPDATE safeguard_deferred_actions SET status = %s, decided_at = now() "
        "WHERE id = %s AND status = ANY(%s) RETURNING *", (status, deferred_id, list(from_statuses))).fetchone()
    if row is None:
        raise Conflict(f"deferred action {deferred_id} is already {action['status']}")
    conn.execute("UPDATE tool_calls SET status = 'cancelled', error = %s, finished_at = now() WHERE id = %s",
                 (f"{status} by {human.username}: {reason}", row["call_id"]))
    audit.record(conn, actor=f"human:{human.username}", actor_user_id=human.user_id, action=status,
                 tool_name=row["tool_name"], call_id=str(row["call_id"]), level="L4", outcome=status, reason=reason)
    return row


#: A scheduled action not started within this long after its time (the workers were down) is not run:
#: the situation it was decided for may have changed.
MISSED_AFTER = timedelta(hours=12)


def start_due(conn: Connection) -> list[dict]:
    """Scheduled actions whose time has come: mark them running and hand their call to run_tool."""
    missed = conn.execute(
        "UPDATE safeguard_deferred_actions SET status = 'failed', decided_at = now() WHERE status = 'scheduled' "
        "AND run_at < now() - %s RETURNING *", (MISSED_AFTER,)).fetchall()
    for action in missed:
        conn.execute("UPDATE tool_calls SET status = 'failed', error = 'missed its scheduled window', "
                     "finished_at = now() WHERE id = %s", (action["call_id"],))
        audit.record(conn, actor="system:sweeper", action="deferred_missed", tool_name=action["tool_name"],
                     call_id=str(action["call_id"]), level="L4", outcome="failed",
                     reason=f"not started within {MISSED_AFTER} of {action['run_at'].isoformat()}; reschedule it")
    due = conn.execute(
        "UPDATE safeguard_deferred_actions SET status = 'running' WHERE status = 'scheduled' AND run_at <= now() "
        "RETURNING *").fetchall()
    for action in due:
        conn.execute("UPDATE tool_calls SET status = 'ready' WHERE id = %s AND status = 'deferred'", (action["call_id"],))
        audit.record(conn, actor="system:sweeper", action="deferred_started", tool_name=action["tool_name"],
                     call_id=str(action["call_id"]), level="L4", outcome="started",
                     reason=f"scheduled by {action['scheduled_by']} for {action['run_at'].isoformat()}")
        outbox.add(conn, job_table.RUN_TOOL, {"call_id": str(action["call_id"])}, dedup_key=calls.run_key(action['call_id']))
    return due
