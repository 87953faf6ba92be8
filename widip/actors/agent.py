"""Agent actors: a session step runs on its persona's LLM queue; continuations are re-enqueued actors."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
from periodiq import cron

from widip.deps import deps
from widip.actors.llm import enqueue_llm
from widip.actors.tools import flush_outbox
from widip.functions import db
from widip.functions.llm import queue as llm_queue
from widip.functions.agent import runtime
from widip.functions.agent.sessions import get_session
from widip.functions.llm.factory import provider_for, settings_for_persona
from widip.functions.safeguard.policy import load_policy


def _policy(settings):
    return load_policy(settings.policy_dir)


def run_agent_step(session_id: str, d) -> list:
    """LLM job handler for kind "agent_step" (runs inside the llm process's priority actors)."""
    settings = d.settings
    with db.transaction(d.pool) as conn:
        persona = get_session(conn, session_id)["persona"]
    outcome = runtime.step(d.pool, session_id, provider_for(settings_for_persona(settings, persona)),
                           policy=_policy(settings),
                           approval_ttl=timedelta(hours=settings.approval_ttl_hours),
                           llm_timeout=settings.llm_timeout_seconds)
    flush_outbox()
    return []


llm_queue.register_llm_job("agent_step", run_agent_step)


@dramatiq.actor(queue_name="agent", max_retries=5, min_backoff=1_000, max_backoff=30_000, time_limit=30_000)
def continue_session(session_id: str) -> None:
    """Wake a session (after a tool result, an approval or a rejection): queue its next step by priority."""
    d = deps()
    with db.transaction(d.pool) as conn:
        session = get_session(conn, session_id)
    if session["status"] in runtime.SESSION_FINAL:
        return
    provider = provider_for(settings_for_persona(d.settings, session["persona"]))
    enqueue_llm("agent_step", session_id, session["persona"], remote=not getattr(provider, "local", False))


@dramatiq.actor(queue_name="ticks", periodic=cron("* * * * *"), max_retries=0,
                time_limit=30_000)
def sweep_sessions() -> dict:
    """Each minute: end sessions past their budget with an error event (none hangs silently) and wake
    quiet ones whose continuation may have been lost."""
    with db.transaction(deps().pool) as conn:
        outcome = {"failed": runtime.fail_overdue(conn), "nudged": runtime.nudge_quiet(conn)}
    flush_outbox()
    return outcome
