"""Agent actors: a session step runs on its persona's LLM queue; continuations are re-enqueued actors."""

from __future__ import annotations

from widip.actors import actor
from widip.deps import deps
from widip.functions import db, job_table
from widip.functions.agent import runtime, step_job
from widip.functions.agent.sessions import get_session
from widip.functions.llm.factory import provider_for, settings_for_persona
from widip.messaging import door
from widip.messaging.relay import flush_outbox


@actor(job_table.CONTINUE_SESSION, max_retries=5, min_backoff=1_000, max_backoff=30_000, time_limit=30_000)
def continue_session(session_id: str) -> None:
    """Wake a session (after a tool result, an approval or a rejection): queue its next step by priority."""
    d = deps()
    with db.transaction(d.pool) as conn:
        session = get_session(conn, session_id)
    if session["status"] in runtime.SESSION_FINAL:
        return
    provider = provider_for(settings_for_persona(d.settings, session["persona"]))
    door.send_llm(step_job.KIND, session_id, session["persona"], remote=not provider.local)


@actor(job_table.SWEEP_SESSIONS, max_retries=0, time_limit=30_000)
def sweep_sessions() -> dict:
    """Each minute: end sessions past their budget with an error event (none hangs silently) and wake
    quiet ones whose continuation may have been lost."""
    with db.transaction(deps().pool) as conn:
        outcome = {"failed": runtime.fail_overdue(conn), "nudged": runtime.nudge_quiet(conn)}
    flush_outbox()
    return outcome
