"""Tool execution and the SAFEGUARD sweeps: thin actors over widip.functions."""

from __future__ import annotations

import logging
from datetime import timedelta

from widip.actors import actor
from widip.deps import deps
from widip.errors import Unavailable
from widip.functions import db, job_table
from widip.functions.agent import sessions
from widip.functions.safeguard import calls, deferred, runs as tool_runs
from widip.messaging.relay import flush_outbox

logger = logging.getLogger(__name__)

#: A call still ready/running after this long lost its message (killed worker, Redis restart):
#: longer than run_tool's time limit plus its retries' back-off, so a live attempt is not doubled.
STUCK_AFTER = timedelta(minutes=10)


@actor(job_table.RUN_TOOL, max_retries=5, min_backoff=5_000, max_backoff=120_000, time_limit=180_000,
       throws=(LookupError,))
def run_tool(call_id: str) -> dict:
    """Execute one gated call (idempotent), then wake what waits on it."""
    d = deps()

    def requester(call) -> str | None:
        with db.transaction(d.pool) as conn:
            return sessions.verified_requester(conn, call["session_id"])

    result = tool_runs.run_call(d.pool, call_id, d.clients, verified_requester=requester)
    flush_outbox()  # what the finished call queued: the session's next step, the L2 notice
    return {"call_id": call_id, "status": result.call["status"]}


@actor(job_table.SWEEP_SAFEGUARD, max_retries=0, time_limit=60_000)
def sweep_safeguard() -> dict:
    """Each minute: expire approvals past their deadline, start due deferred actions, resend lost calls,
    relay the outbox."""
    d = deps()
    with db.transaction(d.pool) as conn:
        expired = calls.expire_pending(conn)
        due = deferred.start_due(conn)
        resent = calls.resend_stuck(conn, STUCK_AFTER)
    return {"expired": len(expired), "deferred_started": len(due), "resent": len(resent), "relayed": flush_outbox()}


@actor(job_table.NOTIFY_APPROVERS, max_retries=3, time_limit=60_000)
def notify_approvers(call_id: str) -> None:
    """L2: the action ran; tell the approvers (event + mail to N3+ users with an address)."""
    from widip.functions.safeguard import notifications

    d = deps()
    try:
        notifications.notify_executed(d.pool, d.clients, call_id)
    except Unavailable:
        logger.warning("approvers not mailed for call %s: mail unavailable", call_id)
        raise
