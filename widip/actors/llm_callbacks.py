"""Delivery of LLM gateway results to the caller's callback URL, with bounded retries.

Runs on `default` (a callback is a small HTTP POST, not GPU work). Retries: 5 at most, backing off
from 1 s to 30 s (about half a minute in all, well within the result's 5 min life); a 4xx, a
redirect or a URL no longer allowlisted is permanent (Rejected) and not retried.
"""

from __future__ import annotations

from widip.actors import actor
from widip.deps import deps
from widip.errors import Rejected
from widip.functions import job_table
from widip.functions.llm import gateway as llm_gateway


@actor(job_table.DELIVER_LLM_CALLBACK, max_retries=5, min_backoff=1_000, max_backoff=30_000,
                time_limit=30_000, throws=(Rejected,))
def deliver_llm_callback(request_id: str) -> None:
    current = deps()
    llm_gateway.deliver_callback(current.redis, current.settings, request_id)
