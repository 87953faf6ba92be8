"""The Assist cycle, every 3 minutes (seed: Assist Ticket v3 polling), and its hand-overs."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
from periodiq import cron

from widip.deps import deps
from widip.actors.tools import flush_outbox
from widip.functions.assist import cycle as assist
from widip.functions.assist import handover
from widip.functions.safeguard.policy import load_policy


def cycle_options(settings) -> assist.Options:
    """The cycle's options from the settings: a model classifies only when one is configured."""
    classifier = None
    if settings.llm_provider != "rules" and (settings.ollama_host or settings.anthropic_api_key):
        from widip.functions.llm.factory import provider_for

        classifier = provider_for(settings)
    return assist.Options(policy_dir=settings.policy_dir, l1_threshold=load_policy(settings.policy_dir).l1_threshold,
                          classifier=classifier, llm_timeout=settings.llm_timeout_seconds)


@dramatiq.actor(queue_name="ticks", periodic=cron("*/3 * * * *"), max_retries=0, time_limit=120_000)
def run_assist_cycle() -> dict:
    d = deps()
    if not d.settings.glpi_url:
        return {"status": "skipped", "reason": "GLPI not configured"}
    if not d.settings.assist_enabled:
        return {"status": "skipped", "reason": "ASSIST_ENABLED is off"}
    outcome = assist.run_cycle(d.pool, d.redis, d.clients, cycle_options(d.settings))
    flush_outbox()  # start the sessions and hand-overs it queued
    return outcome


@dramatiq.actor(queue_name="default", max_retries=5, min_backoff=2_000, time_limit=60_000)
def assist_hand_over(session_id: str, reason: str) -> dict:
    """Post the private hand-over follow-up (and the accounts-group assignment) through the gate."""
    d = deps()
    rows = handover.post(d.pool, session_id, reason, policy=load_policy(d.settings.policy_dir),
                         approval_ttl=timedelta(hours=d.settings.approval_ttl_hours),
                         accounts_group_id=d.settings.assist_accounts_group_id)
    flush_outbox()
    return {"session_id": session_id, "calls": [r["status"] for r in rows]}
