"""Executing one gated tool call, exactly once per call id, even when messages are redelivered.

The call is claimed (`ready` → `running`, committed) before the external call and finished after
it. A redelivered message finds `done` and returns the stored result without touching the external
system. A message redelivered after a crash finds `running`: the outcome is unknown, so the tool's
declared strategy applies — retry (read-only), reconcile (the handler looks for its own marker
first, e.g. GLPI ticket creation), or stop and ask a human (password reset, mail).
Before running an approved call, the approval is re-checked: still approved, unexpired, and for
these exact arguments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from psycopg import Connection
from psycopg_pool import ConnectionPool

from widip.errors import IntegrationError, PolicyDenied, ServiceError, Unavailable
from widip.functions import job_table, outbox
from widip.functions.callers import Caller
from widip.functions.db import Jsonb, ensure_open, transaction
from widip.functions.safeguard import audit
from widip.functions.tools import ToolContext, execute, get_tool, scope

logger = logging.getLogger(__name__)

FINAL = ("done", "failed", "rejected", "expired", "refused", "cancelled", "unknown_outcome")


@dataclass(frozen=True)
class RunOutcome:
    call: dict
    executed: bool  # True when this invocation touched the external system


def _approval_problem(conn: Connection, call: dict) -> str | None:
    """Why an approved call must not run any more, or None when its approval still holds."""
    if call["decision"] == "deferred":
        action = conn.execute("SELECT status FROM safeguard_deferred_actions WHERE call_id = %s",
                              (call["id"],)).fetchone()
        return None if action and action["status"] == "running" else "the deferred action was not scheduled"
    if call["decision"] != "approval":
        return None
    request = conn.execute("SELECT * FROM safeguard_requests WHERE id = %s", (call["request_id"],)).fetchone()
    if request is None or request["status"] != "approved":
        return "no approval on record"
    if request["args_hash"] != audit.args_hash(call["arguments"]) or call["args_hash"] != request["args_hash"]:
        return "arguments differ from what was approved"
    # An approval is valid as long after the decision as the request could wait for one (default 24 h),
    # so a call approved just before its deadline still runs if it waits for a system to come back.
    expired = conn.execute("SELECT %s + (%s - %s) <= now() AS expired",
                           (request["decided_at"], request["expires_at"], request["created_at"])).fetchone()["expired"]
    if expired:
        return "the approval has expired"
    return None


def _claim(conn: Connection, call_id: str) -> tuple[str, dict]:
    """('run' | 'final' | 'wait' | 'unknown', call) — under a row lock, committed by the caller."""
    call = conn.execute("SELECT * FROM tool_calls WHERE id = %s FOR UPDATE", (call_id,)).fetchone()
    if call is None:
        raise LookupError(f"no tool call {call_id}")
    if call["status"] in FINAL:
        return "final", call
    if call["status"] in ("waiting_approval", "deferred"):
        return "wait", call
    if call["status"] == "running" and get_tool(call["tool_name"]).on_unknown_outcome == "ask_human":
        call = conn.execute(
            "UPDATE tool_calls SET status = 'unknown_outcome', finished_at = now(), "
            "error = 'interrupted while running; not repeated automatically — check the target system' "
            "WHERE id = %s RETURNING *", (call_id,)).fetchone()
        audit.record(conn, actor="system:worker", action="unknown_outcome", tool_name=call["tool_name"],
                     call_id=call_id, level=call["level"], outcome="unknown_outcome",
                     reason="worker interrupted during the external call; a human must check")
        _queue_followers(conn, call, notify=False)
        return "unknown", call
    problem = _approval_problem(conn, call)
    if problem:
        call = conn.execute("UPDATE tool_calls SET status = 'refused', error = %s, finished_at = now() "
                            "WHERE id = %s RETURNING *", (problem, call_id)).fetchone()
        audit.record(conn, actor="system:worker", action="refused", tool_name=call["tool_name"], call_id=call_id,
                     request_id=call["request_id"], level=call["level"], outcome="refused", reason=problem)
        _queue_followers(conn, call, notify=False)
        return "final", call
    call = conn.execute("UPDATE tool_calls SET status = 'running', attempts = attempts + 1, started_at = now() "
                        "WHERE id = %s RETURNING *", (call_id,)).fetchone()
    return "run", call


#: Advisory-lock class for "a worker is executing this call" (the key is a hash of the call id).
EXECUTION_LOCK_CLASS = 0x7463  # "tc"


def run_call(pool: ConnectionPool, call_id: str, clients, *,
             verified_requester: Callable[[dict], str | None] = lambda call: None) -> RunOutcome:
    """Run the call if it is due; return the call row as it ends up. Idempotent.

    A PostgreSQL session advisory lock is held while a worker executes the call: a second delivery
    of the same message finds it taken and leaves the call to the live worker, while a lock that
    vanished with a killed worker lets the redelivery treat `running` as a crash. Raises Unavailable
    (after putting the call back to `ready`) when the external system is down and nothing was sent,
    so the actor's retries try again later.
    """
    with ensure_open(pool).connection() as lock_conn:
        lock_conn.autocommit = True
        taken = lock_conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS got",
                                  (EXECUTION_LOCK_CLASS, str(call_id))).fetchone()["got"]
        if not taken:
            with transaction(pool) as conn:
                busy = conn.execute("SELECT * FROM tool_calls WHERE id = %s", (call_id,)).fetchone()
            logger.info("tool call %s is being executed by another worker", call_id)
            return RunOutcome(busy, executed=False)
        try:
            return _run_locked(pool, call_id, clients, verified_requester)
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (EXECUTION_LOCK_CLASS, str(call_id)))
            lock_conn.autocommit = False


def _run_locked(pool: ConnectionPool, call_id: str, clients, verified_requester) -> RunOutcome:
    with transaction(pool) as conn:
        verdict, call = _claim(conn, call_id)
        rights = scope.rights_for(conn, call["requester_user_id"]) if verdict == "run" else None
    if verdict != "run":
        return RunOutcome(call, executed=False)
    caller = Caller.from_dict(call["caller"])
    context = ToolContext(call_id=str(call["id"]), caller_label=caller.label,
                          verified_requester=verified_requester(call), rights=rights,
                          principal_user_id=caller.on_behalf_of or (caller.user_id if caller.is_human else None))
    try:
        result = execute(call["tool_name"], call["arguments"], clients, context)
    except Unavailable as exc:
        if exc.maybe_applied and get_tool(call["tool_name"]).on_unknown_outcome == "ask_human":
            return RunOutcome(_unknown_outcome(pool, call, exc), executed=True)
        with transaction(pool) as conn:
            conn.execute("UPDATE tool_calls SET status = 'ready', error = %s WHERE id = %s", (exc.message, call_id))
        raise
    except ServiceError as exc:
        return RunOutcome(_finish(pool, call, error=exc), executed=True)
    return RunOutcome(_finish(pool, call, result=result), executed=True)


def _queue_followers(conn, call: dict, *, notify: bool) -> None:
    """What waits on a finished call, queued in the same transaction that finishes it: the agent
    session's next step, and for L2 the notice to approvers."""
    if call["session_id"]:
        outbox.add(conn, job_table.CONTINUE_SESSION, {"session_id": str(call["session_id"])},
                   dedup_key=f"resume:{call['id']}:{call['status']}")
    if notify:
        outbox.add(conn, job_table.NOTIFY_APPROVERS, {"call_id": str(call["id"])}, dedup_key=f"notify:{call['id']}")


def _unknown_outcome(pool: ConnectionPool, call: dict, error: Unavailable) -> dict:
    """The system failed after our request may have reached it: repeating could act twice (a second
    mail, a second reset), so the call stops here and a human checks the target system."""
    with transaction(pool) as conn:
        row = conn.execute("UPDATE tool_calls SET status = 'unknown_outcome', error = %s, finished_at = now() "
                           "WHERE id = %s RETURNING *",
                           (f"outcome unknown ({error.message}); not repeated automatically — check the target "
                            "system", call["id"])).fetchone()
        audit.record(conn, actor="system:worker", action="unknown_outcome", tool_name=call["tool_name"],
                     call_id=str(call["id"]), request_id=call["request_id"], level=call["level"],
                     outcome="unknown_outcome", reason=error.message)
        _queue_followers(conn, row, notify=False)
    logger.warning("tool call %s %s: outcome unknown after %s", call["id"], call["tool_name"], error.message)
    return row


def _finish(pool: ConnectionPool, call: dict, *, result=None, error: ServiceError | None = None) -> dict:
    status = "failed" if error else "done"
    kind = "refused by the target system" if isinstance(error, (PolicyDenied, IntegrationError)) else "failed"
    with transaction(pool) as conn:
        row = conn.execute(
            "UPDATE tool_calls SET status = %s, result = %s, error = %s, finished_at = now() WHERE id = %s RETURNING *",
            (status, Jsonb(result) if result is not None else None, error.message if error else None,
             call["id"])).fetchone()
        conn.execute("UPDATE safeguard_deferred_actions SET status = %s WHERE call_id = %s AND status = 'running'",
                     ("failed" if error else "executed", call["id"]))
        _queue_followers(conn, row, notify=error is None and call["decision"] == "notify")
        audit.record(conn, actor=Caller.from_dict(call["caller"]).label, action="executed" if not error else "failed",
                     tool_name=call["tool_name"], call_id=str(call["id"]), request_id=call["request_id"],
                     level=call["level"], arguments=call["arguments"], outcome=status,
                     reason=(f"{kind}: {error.message}" if error else "ok"))
    logger.info("tool call %s %s: %s", call["id"], call["tool_name"], status)
    return row
