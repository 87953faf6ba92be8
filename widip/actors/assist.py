"""The Assist cycle, every 3 minutes (seed: Assist Ticket v3 polling), and its hand-overs."""

from __future__ import annotations

from widip.actors import actor
from widip.deps import deps
from widip.functions import job_table
from widip.messaging.relay import flush_outbox
from widip.functions.assist import cycle as assist
from widip.functions.assist import handover
from widip.functions.safeguard.policy import policy_for


@actor(job_table.RUN_ASSIST_CYCLE, max_retries=0, time_limit=120_000)
def run_assist_cycle() -> dict:
    d = deps()
    if not d.settings.glpi_url:
        return {"status": "skipped", "reason": "GLPI not configured"}
    if not d.settings.assist_enabled:
        return {"status": "skipped", "reason": "ASSIST_ENABLED is off"}
    outcome = assist.run_cycle(d.pool, d.redis, d.clients, assist.options_for(d.settings))
    flush_outbox()  # start the sessions and hand-overs it queued
    return outcome


@actor(job_table.ASSIST_HAND_OVER, max_retries=5, min_backoff=2_000, time_limit=60_000)
def assist_hand_over(session_id: str, reason: str) -> dict:
    """Post the private hand-over follow-up (and the accounts-group assignment) through the gate."""
    d = deps()
    rows = handover.post(d.pool, session_id, reason, policy=policy_for(d.settings),
                         accounts_group_id=d.settings.assist_accounts_group_id)
    flush_outbox()
    return {"session_id": session_id, "calls": [r["status"] for r in rows]}
