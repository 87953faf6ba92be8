"""LLM actors: one per priority class, each on its own queue, plus `llm_remote` for remote providers.

`llm_p0`…`llm_p3` consume `llm.p0`…`llm.p3` (Dramatiq priorities 0/10/20/30, from
policy/priorities.toml) in the single `llm` process (`--processes 1 --threads 1`,
`dramatiq_worker_timeout=100`): separate queues are what make the priority hold on Redis, and the
1 × 1 process is the GPU mutex (DESIGN §3, §8). `llm_remote` runs on `llm-remote` in the ordinary
worker fleet with its own concurrency, never blocking the GPU queues.

Every actor takes `(kind, job_id)` only — prompts and transcripts stay in Redis or PostgreSQL —
and runs the handler registered for `kind` (widip/functions/llm_queue.py), then sends the steps
it returns.
"""

from __future__ import annotations

import logging

import dramatiq

from widip.actors.broker import DEFAULT_TIME_LIMIT_MS
from widip.deps import deps
from widip.errors import Rejected
from widip.functions.llm import gateway as llm_gateway, queue as llm_queue  # noqa: F401 - llm_gateway registers kind "gateway"

logger = logging.getLogger(__name__)

#: An LLM call may wait for the GPU lock (2 × 120 s at worst when scaled) and run 120 s.
LLM_MAX_RETRIES = 2
#: Unknown kind (LookupError) and refused requests (Rejected) will not get better with a retry.
PERMANENT_ERRORS = (Rejected, LookupError)


def run_job(kind: str, job_id: str) -> None:
    """Run one LLM job and send what it asks for next."""
    steps = llm_queue.run_llm_job(kind, job_id, deps())
    broker = dramatiq.get_broker()
    for step in steps:
        broker.get_actor(step.actor).send_with_options(args=step.args, delay=step.delay_ms)


def _declare(queue: str, priority: int) -> dramatiq.Actor:
    def run(kind: str, job_id: str) -> None:
        run_job(kind, job_id)

    name = llm_queue.actor_name(queue)
    run.__name__ = run.__qualname__ = name
    return dramatiq.actor(run, actor_name=name, queue_name=queue, priority=priority,
                          max_retries=LLM_MAX_RETRIES, time_limit=DEFAULT_TIME_LIMIT_MS,
                          throws=PERMANENT_ERRORS)


#: GPU queue → its actor, most urgent first; also bound below as module names llm_p0…llm_p3.
LLM_ACTORS: dict[str, dramatiq.Actor] = {
    queue: _declare(queue, priority) for queue, priority in llm_queue.queue_priorities().items()}
globals().update({actor.actor_name: actor for actor in LLM_ACTORS.values()})
llm_remote = _declare(llm_queue.REMOTE_QUEUE, 0)


def enqueue_llm(kind: str, job_id: str, persona_or_source: str, *, remote: bool) -> dramatiq.Message:
    """Send an LLM job to its class's GPU queue, or to `llm-remote` for a remote provider."""
    queue = llm_queue.queue_for(persona_or_source, remote=remote)
    actor = llm_remote if queue == llm_queue.REMOTE_QUEUE else LLM_ACTORS[queue]
    message = actor.send(kind, job_id)
    logger.debug("LLM job %s %s sent to %s", kind, job_id, queue)
    return message


def enqueue_llm_entry(kind: str, job_id: str, persona_or_source: str, *, remote: bool) -> str | None:
    """`enqueue_llm`, returning the message's entry id in the Redis queue (None on other brokers)."""
    return enqueue_llm(kind, job_id, persona_or_source, remote=remote).options.get("redis_message_id")
