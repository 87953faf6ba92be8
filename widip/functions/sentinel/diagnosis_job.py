"""The LLM job that diagnoses one incident (kind "sentinel_diagnosis", on the Sentinel priority class)."""

from __future__ import annotations

import logging

from widip.functions import job_table
from widip.functions.llm.factory import provider_for
from widip.functions.safeguard.policy import policy_for
from widip.functions.sentinel import diagnosis, notifier

logger = logging.getLogger(__name__)

KIND = "sentinel_diagnosis"


def run(job_id: str, deps) -> list[job_table.NextStep]:
    """Diagnose (≤ 20 s), then hand over to the Notificateur."""
    settings = deps.settings
    try:
        outcome = diagnosis.diagnose(deps.pool, deps.redis, deps.clients, provider_for(settings), int(job_id),
                                     policy=policy_for(settings),
                                     llm_timeout=settings.llm_timeout_seconds)
    except Exception:
        notifier.count_error()
        raise
    logger.info("incident %s diagnosed (%s) in %.2f s", job_id, outcome.source, outcome.seconds)
    return [job_table.NextStep(job_table.NOTIFY_INCIDENT, (int(job_id),))]
