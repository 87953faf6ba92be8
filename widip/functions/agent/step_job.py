"""The LLM job that runs one agent step (kind "agent_step", on its persona's priority queue)."""

from __future__ import annotations

from widip.functions import db
from widip.functions.agent import runtime
from widip.functions.agent.sessions import get_session
from widip.functions.llm.factory import provider_for, settings_for_persona
from widip.functions.safeguard.policy import policy_for

KIND = "agent_step"


def run(session_id: str, deps) -> list:
    """One step of the session; what it decided (tool calls, resumptions) is in the outbox."""
    settings = deps.settings
    with db.transaction(deps.pool) as conn:
        persona = get_session(conn, session_id)["persona"]
    runtime.step(deps.pool, session_id, provider_for(settings_for_persona(settings, persona)),
                 policy=policy_for(settings), llm_timeout=settings.llm_timeout_seconds)
    return []
