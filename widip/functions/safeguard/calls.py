"""Tool calls through SAFEGUARD: propose (the gate decides), approve, reject, expire.

Every function takes an open connection and does all its writes in the caller's transaction —
the call row, the request or deferred row, the audit rows and the outbox row that will enqueue
the next step — so a decision and its consequences commit together or not at all.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import Connection

from widip.errors import Conflict, Forbidden, Invalid, NotFound
from widip.functions import job_table, metrics, outbox
from widip.functions.callers import Caller
from widip.functions.db import Jsonb
from widip.functions.safeguard import audit, gate, subject
from widip.functions.safeguard.notifications import APPROVER_LEVEL
from widip.functions.safeguard.policy import Policy, level_for, over_rate_limit
from widip.functions.tools import scope
from widip.functions.tools.registry import get_tool, validate_arguments

logger = logging.getLogger(__name__)

#: The agent runtime's continuation actor: resumes a session after a decision on one of its calls.

_STATUS_FOR = {gate.RUN: "ready", gate.NOTIFY: "ready", gate.APPROVAL: "waiting_approval",
               gate.DEFERRED: "deferred", gate.REFUSED: "refused"}


def run_key(call_id) -> str:
    """The dedup key of a call's `run_tool` outbox row (one row per call, whoever queues it)."""
    return f"run:{call_id}"


def claim_run(conn: Connection, call_id) -> bool:
    """Take a call's `run_tool` outbox row because the caller executes it inline now."""
    return outbox.claim(conn, run_key(call_id))


def requester_of(caller: Caller) -> int | None:
    """The human who caused a call: themselves, or the user an AI acts for; None for system work."""
    return caller.user_id if caller.is_human else caller.on_behalf_of


@dataclass(frozen=True)
class Proposal:
    """One tool call asked of the gate: what, by whom, and what the decision needs to know.

    `call_id` makes a redelivered proposal idempotent; `offered` is the tool set an agent was shown
    (None: not an agent, no restriction); `dependency` names the integration the run waits for.
    """
    tool_name: str
    arguments: Any
    caller: Caller
    confidence: float | None = None
    session_id: str | None = None
    call_id: str | None = None
    reason: str = ""
    dependency: str | None = None
    offered: set[str] | frozenset[str] | None = None


def propose(conn: Connection, proposal: Proposal, policy: Policy) -> dict:
    """Record a tool call and apply the gate; return the call row (with `decision` and `status`).

    An unknown tool or invalid arguments is refused before anything else (and audited): never an
    execution. So is, for an agent, a tool it was not offered (`offered`): what a persona may use is
    enforced here, not only by what the model was shown. Proposing the same call id twice returns the
    first call unchanged.
    """
    caller, arguments = proposal.caller, proposal.arguments
    call_id = proposal.call_id or str(uuid.uuid4())
    existing = conn.execute("SELECT * FROM tool_calls WHERE id = %s", (call_id,)).fetchone()
    if existing:
        return existing
    try:
        tool = get_tool(proposal.tool_name)
        if proposal.offered is not None and tool.name not in proposal.offered:
            raise NotFound(f"tool {tool.name!r} is not available to this agent")
        arguments = validate_arguments(tool, arguments)
    except (NotFound, Invalid) as exc:
        audit.record(conn, actor=caller.label, actor_user_id=caller.user_id, action="refused",
                     tool_name=str(proposal.tool_name)[:100], call_id=call_id,
                     arguments=arguments if isinstance(arguments, dict) else None,
                     outcome="invalid", reason=exc.message)
        raise
    level = level_for(conn, tool.name, caller.persona)
    capped = subject.check(conn, caller, tool.name, arguments, proposal.session_id, level) or \
        over_rate_limit(conn, policy, tool.name, arguments) or \
        scope.refusal(tool.name, tool.system, scope.rights_for(conn, requester_of(caller)))
    decision = gate.Decision(gate.REFUSED, level, capped) if capped else \
        gate.decide(level, caller, policy, confidence=proposal.confidence)
    status = _STATUS_FOR[decision.outcome]
    row = conn.execute(
        "INSERT INTO tool_calls (id, session_id, tool_name, arguments, args_hash, caller, requester_user_id, "
        "level, decision, confidence, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        (call_id, proposal.session_id, tool.name, Jsonb(arguments), audit.args_hash(arguments),
         Jsonb(caller.to_dict()), requester_of(caller), level, decision.outcome, proposal.confidence,
         status)).fetchone()
    audit.record(conn, actor=caller.label, actor_user_id=caller.user_id, action="proposed", tool_name=tool.name,
                 call_id=call_id, level=level, arguments=arguments, outcome=decision.outcome, reason=decision.reason)
    if decision.runs_now:
        outbox.add(conn, job_table.RUN_TOOL, {"call_id": call_id}, dependency=proposal.dependency,
                   dedup_key=run_key(call_id), description=f"{tool.name} ({decision.reason})")
    elif decision.outcome == gate.APPROVAL:
        row = _open_request(conn, row, caller, policy.approval_ttl, proposal.reason or decision.reason)
    elif decision.outcome == gate.DEFERRED:
        conn.execute(
            "INSERT INTO safeguard_deferred_actions (call_id, tool_name, args_redacted, requested_by, requester_user_id) "
            "VALUES (%s, %s, %s, %s, %s)",
            (call_id, tool.name, Jsonb(audit.redact(arguments)), caller.label, requester_of(caller)))
    metrics.record_safeguard(level, decision.outcome)
    logger.info("tool call %s %s: %s (%s)", call_id, tool.name, decision.outcome, decision.reason)
    return {**row, "decision_reason": decision.reason}


def _open_request(conn: Connection, call: dict, caller: Caller, ttl: timedelta, reason: str) -> dict:
    request = conn.execute(
        "INSERT INTO safeguard_requests (call_id, session_id, tool_name, level, args_hash, args_redacted, "
        "requested_by, requester_user_id, reason, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now() + %s) "
        "RETURNING id",
        (call["id"], call["session_id"], call["tool_name"], call["level"], call["args_hash"],
         Jsonb(audit.redact(call["arguments"])), caller.label, requester_of(caller), reason, ttl)).fetchone()
    audit.record(conn, actor=caller.label, actor_user_id=caller.user_id, action="approval_requested",
                 tool_name=call["tool_name"], call_id=str(call["id"]), request_id=request["id"],
                 level=call["level"], arguments=call["arguments"], outcome="pending", reason=reason)
    return conn.execute("UPDATE tool_calls SET request_id = %s WHERE id = %s RETURNING *",
                        (request["id"], call["id"])).fetchone()


def get_request(conn: Connection, request_id: int) -> dict:
    row = conn.execute("SELECT * FROM safeguard_requests WHERE id = %s", (request_id,)).fetchone()
    if row is None:
        raise NotFound(f"no SAFEGUARD request {request_id}")
    return row


def list_requests(conn: Connection, status: str | None = None, limit: int = 100) -> list[dict]:
    if status:
        return conn.execute("SELECT * FROM safeguard_requests WHERE status = %s ORDER BY id DESC LIMIT %s",
                            (status, limit)).fetchall()
    return conn.execute("SELECT * FROM safeguard_requests ORDER BY id DESC LIMIT %s", (limit,)).fetchall()


def visible_to(request: dict, reader: Caller) -> bool:
    """Whether `reader` may see a request: approvers (N3+) see every one, others only those they caused
    (the API and the console both filter with it)."""
    return reader.accreditation >= APPROVER_LEVEL or request["requester_user_id"] == reader.user_id


def _check_decider(request: dict, decider: Caller, policy: Policy) -> None:
    if not decider.is_human:
        raise Forbidden("only a human can decide a SAFEGUARD request")
    if request["requester_user_id"] is not None and request["requester_user_id"] == decider.user_id:
        raise Forbidden("nobody approves or rejects a request they caused")
    allowed, why = gate.may_approve(request["level"], decider, policy)
    if not allowed:
        raise Forbidden(why)


def _decide(conn: Connection, request_id: int, decider: Caller, policy: Policy, new_status: str, comment: str) -> dict:
    """The atomic pending → approved|rejected transition: exactly one concurrent caller wins."""
    request = get_request(conn, request_id)
    _check_decider(request, decider, policy)
    won = conn.execute(
        "UPDATE safeguard_requests SET status = %s, decided_by_user_id = %s, decided_by = %s, "
        "decision_comment = %s, decided_at = now() WHERE id = %s AND status = 'pending' AND expires_at > now() "
        "RETURNING *", (new_status, decider.user_id, decider.username, comment, request_id)).fetchone()
    if won is None:
        current = get_request(conn, request_id)
        if current["status"] == "pending":  # past its deadline, not yet swept
            raise Conflict(f"request {request_id} has expired")
        raise Conflict(f"request {request_id} is already {current['status']}")
    metrics.record_safeguard(won["level"], new_status)
    return won


def approve(conn: Connection, request_id: int, approver: Caller, policy: Policy, comment: str = "") -> dict:
    """Approve, then hand the call to `run_tool` (through the outbox) — the continuation re-checks."""
    request = _decide(conn, request_id, approver, policy, "approved", comment)
    conn.execute("UPDATE tool_calls SET status = 'ready' WHERE id = %s AND status = 'waiting_approval'",
                 (request["call_id"],))
    audit.record(conn, actor=f"human:{approver.username}", actor_user_id=approver.user_id, action="approved",
                 tool_name=request["tool_name"], call_id=str(request["call_id"]), request_id=request_id,
                 level=request["level"], outcome="approved", reason=comment or "approved")
    outbox.add(conn, job_table.RUN_TOOL, {"call_id": str(request["call_id"])}, dedup_key=run_key(request['call_id']),
               description=f"{request['tool_name']} approved by {approver.username}")
    return request


def reject(conn: Connection, request_id: int, approver: Caller, policy: Policy, reason: str) -> dict:
    """Reject: the call never runs; an agent session is resumed with the reason."""
    if not reason or not reason.strip():
        raise Invalid("a reason is required to reject a request")
    request = _decide(conn, request_id, approver, policy, "rejected", reason.strip())
    conn.execute("UPDATE tool_calls SET status = 'rejected', error = %s, finished_at = now() WHERE id = %s",
                 (f"rejected by {approver.username}: {reason.strip()}", request["call_id"]))
    audit.record(conn, actor=f"human:{approver.username}", actor_user_id=approver.user_id, action="rejected",
                 tool_name=request["tool_name"], call_id=str(request["call_id"]), request_id=request_id,
                 level=request["level"], outcome="rejected", reason=reason.strip())
    _resume_session(conn, request)
    return request


def expire_pending(conn: Connection) -> list[dict]:
    """Mark pending requests past their deadline as expired (their calls never run)."""
    expired = conn.execute(
        "UPDATE safeguard_requests SET status = 'expired', decided_at = now() "
        "WHERE status = 'pending' AND expires_at <= now() RETURNING *").fetchall()
    for request in expired:
        metrics.record_safeguard(request["level"], "expired")
        conn.execute("UPDATE tool_calls SET status = 'expired', error = 'approval request expired', "
                     "finished_at = now() WHERE id = %s AND status = 'waiting_approval'", (request["call_id"],))
        audit.record(conn, actor="system:sweeper", action="expired", tool_name=request["tool_name"],
                     call_id=str(request["call_id"]), request_id=request["id"], level=request["level"],
                     outcome="expired", reason="no decision before the deadline")
        _resume_session(conn, request)
    return expired


def withdraw_pending(conn: Connection, call_ids: list[str], reason: str) -> list[int]:
    """The system withdraws requests that no longer make sense (the device came back before anyone
    approved its alert mail): they close as expired, so a late approval cannot send a stale mail."""
    if not call_ids:
        return []
    withdrawn = conn.execute(
        "UPDATE safeguard_requests SET status = 'expired', decided_by = 'system', decision_comment = %s, "
        "decided_at = now() WHERE status = 'pending' AND call_id = ANY(%s::uuid[]) RETURNING *",
        (reason, [str(c) for c in call_ids])).fetchall()
    for request in withdrawn:
        conn.execute("UPDATE tool_calls SET status = 'expired', error = %s, finished_at = now() "
                     "WHERE id = %s AND status = 'waiting_approval'", (f"withdrawn: {reason}", request["call_id"]))
        audit.record(conn, actor="system:sentinel", action="withdrawn", tool_name=request["tool_name"],
                     call_id=str(request["call_id"]), request_id=request["id"], level=request["level"],
                     outcome="expired", reason=reason)
        metrics.record_safeguard(request["level"], "withdrawn")
    return [r["id"] for r in withdrawn]


def resend_stuck(conn: Connection, older_than: timedelta) -> list[str]:
    """Calls left `ready` or `running` longer than `older_than` (their message was lost with a killed
    worker or a Redis restart): queue them again. Safe because run_tool is idempotent per call id."""
    abandon_calls(conn)
    stuck = conn.execute(
        "SELECT c.id FROM tool_calls c WHERE c.status IN ('ready', 'running') "
        "AND coalesce(c.started_at, c.created_at) < now() - %s "
        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.status = 'pending' AND o.kwargs->>'call_id' = c.id::text)",
        (older_than,)).fetchall()
    for row in stuck:
        outbox.add(conn, job_table.RUN_TOOL, {"call_id": str(row["id"])}, description="resend after a lost message",
                   dedup_key=f"resend:{row['id']}:{outbox_epoch(conn)}")
    return [str(r["id"]) for r in stuck]


#: A call nobody could run for this long is given up: acting a day late is worse than not acting.
ABANDON_AFTER = timedelta(hours=24)


def abandon_calls(conn: Connection) -> list[str]:
    """Calls still not run after ABANDON_AFTER end as failed (never started) or unknown (interrupted)."""
    rows = conn.execute(
        "UPDATE tool_calls SET status = CASE WHEN status = 'running' THEN 'unknown_outcome' ELSE 'failed' END, "
        "error = 'abandoned: not run within 24 h', finished_at = now() "
        "WHERE status IN ('ready', 'running') AND created_at < now() - %s RETURNING *", (ABANDON_AFTER,)).fetchall()
    for call in rows:
        audit.record(conn, actor="system:sweeper", action="abandoned", tool_name=call["tool_name"],
                     call_id=str(call["id"]), level=call["level"], outcome=call["status"],
                     reason="not run within 24 h")
    return [str(c["id"]) for c in rows]


def outbox_epoch(conn: Connection) -> int:
    """A coarse clock (10-minute buckets) so a still-stuck call is resent again later, not every minute."""
    return int(conn.execute("SELECT extract(epoch FROM now())::bigint / 600 AS e").fetchone()["e"])


def _resume_session(conn: Connection, request: dict) -> None:
    if request["session_id"]:
        outbox.add(conn, job_table.CONTINUE_SESSION, {"session_id": str(request["session_id"])},
                   dedup_key=f"resume:{request['call_id']}:{request['status']}",
                   description=f"resume session after {request['status']} request {request['id']}")
