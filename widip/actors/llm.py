"""LLM actors: one per priority class, each on its own queue, plus `llm_remote` for remote providers.

`llm_p0`…`llm_p3` consume `llm.p0`…`llm.p3` (Dramatiq priorities from policy/priorities.toml) in
the single `llm` process (`--processes 1 --threads 1`, `dramatiq_worker_timeout=100`): separate
queues are what make the priority hold on Redis, and the 1 × 1 process is the GPU mutex
(docs/architecture.md). `llm_remote` runs on `llm-remote` in the ordinary worker fleet with its
own concurrency, never blocking the GPU queues.

Every actor takes `(kind, job_id)` only — prompts and transcripts stay in Redis or PostgreSQL —
runs the handler registered for `kind`, relays what it queued in the outbox, then sends the steps
it returns through the one door. Senders use `door.send_llm`, which picks the queue.
"""

from __future__ import annotations

import dramatiq

from widip.actors import actor
from widip.deps import deps
from widip.errors import ConfigError, Rejected
from widip.functions import job_table
from widip.functions.llm import queue as llm_queue
from widip.messaging import door
from widip.messaging.broker import DEFAULT_TIME_LIMIT_MS
from widip.messaging.relay import flush_outbox

#: An LLM call may wait for the GPU lock (2 × 120 s at worst when scaled) and run 120 s.
LLM_MAX_RETRIES = 2
#: Unknown kind (LookupError) and refused requests (Rejected) will not get better with a retry.
PERMANENT_ERRORS = (Rejected, LookupError)
#: The GPU queues this module declares; policy/priorities.toml must use exactly these.
GPU_QUEUES = ("llm.p0", "llm.p1", "llm.p2", "llm.p3")


def run_job(kind: str, job_id: str) -> None:
    """Run one LLM job, relay what it queued, and send what it asks for next."""
    steps = llm_queue.run_llm_job(kind, job_id, deps())
    if llm_queue.writes_outbox(kind):
        flush_outbox()
    for step in steps:
        door.send(step.job, *step.args, delay_ms=step.delay_ms)


def _declare(job: job_table.Job, priority: int) -> dramatiq.Actor:
    def run(kind: str, job_id: str) -> None:
        run_job(kind, job_id)

    run.__name__ = run.__qualname__ = job.name
    # store_results off: the outcome is in Redis or PostgreSQL already, and the write would sit between
    # two GPU calls.
    return actor(job, priority=priority, max_retries=LLM_MAX_RETRIES, time_limit=DEFAULT_TIME_LIMIT_MS,
                 throws=PERMANENT_ERRORS, store_results=False)(run)


def _gpu_actor(queue: str) -> dramatiq.Actor:
    priorities = llm_queue.queue_priorities()
    if tuple(priorities) != GPU_QUEUES:
        raise ConfigError([f"policy/priorities.toml must define the queues {', '.join(GPU_QUEUES)}, "
                           f"got {', '.join(priorities)}"])
    return _declare(job_table.llm_job(queue), priorities[queue])


llm_p0 = _gpu_actor("llm.p0")
llm_p1 = _gpu_actor("llm.p1")
llm_p2 = _gpu_actor("llm.p2")
llm_p3 = _gpu_actor("llm.p3")
llm_remote = _declare(job_table.LLM_REMOTE, 0)
