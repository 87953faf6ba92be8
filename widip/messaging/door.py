"""The one door to the broker: every message widip sends is built and enqueued here.

Messages are built from the job table (widip/functions/job_table.py), so a sender never imports
the actor's module: the web process enqueues without declaring a single actor. Work decided inside
a database transaction does not come here directly: it is an outbox row (widip/functions/outbox.py)
that `relay.flush_outbox` hands to `send_named` after commit.
"""

from __future__ import annotations

import logging

import dramatiq
import redis

from widip.errors import ConfigError, Unavailable
from widip.functions import db, job_table, jobs
from widip.functions.job_table import Job
from widip.functions.llm import queue as llm_queue
from widip.messaging.broker import current
from widip.messaging.tracking import JOB_OPTION

logger = logging.getLogger(__name__)


def send(job: Job, *args, delay_ms: int | None = None, **kwargs) -> dramatiq.Message:
    """Enqueue `job(*args, **kwargs)`, after `delay_ms` if given."""
    return _enqueue(_message(job, args, kwargs), delay_ms)


def send_named(name: str, kwargs: dict) -> dramatiq.Message:
    """Enqueue a job named by an outbox row; LookupError for a name the table does not know."""
    return send(job_table.by_name(name), **kwargs)


def send_tracked(pool, job: Job, kind: str, record: dict, **kwargs) -> dict:
    """Write a `queued` jobs row, then enqueue the message whose id is the job id (GET /jobs/{id}).

    The row is committed before the message exists, so a worker can never run ahead of it. If Redis
    cannot be reached the row is marked failed and Unavailable says to send again; if it does not answer,
    the message may be there, so Unavailable names the job to poll instead.
    """
    message = _message(job, (), kwargs, {JOB_OPTION: True})
    with db.transaction(pool) as conn:
        row = jobs.create_job(conn, message.message_id, kind, record)
    try:
        _enqueue(message, None)
    except redis.RedisError as exc:
        if never_sent(exc):  # nothing reached Redis: say so on the job, and let the client send it again
            with db.transaction(pool) as conn:
                jobs.mark_error(conn, row["id"], "not queued: the job queue was unreachable", final=True)
            raise Unavailable("broker", f"the job queue is unreachable: the {kind} job {row['id']} was not "
                                        "queued; send it again later") from exc
        # A timeout may come after Redis took the message: a resend could run the job twice.
        raise Unavailable("broker", f"the job queue did not answer: the {kind} job {row['id']} is recorded as "
                                    f"queued and may still run; poll /jobs/{row['id']} instead of sending it "
                                    "again") from exc
    return row


def never_sent(exc: Exception) -> bool:
    """Whether a Redis error happened while connecting, so no command left this process (redis-py says
    "Error 111 connecting to …" or "Timeout connecting to server"; an error reading a reply does not)."""
    return "connecting" in str(exc).lower()


def send_llm(kind: str, job_id: str, persona_or_source: str, *, remote: bool) -> dramatiq.Message:
    """Send an LLM job to its priority class's GPU queue, or to `llm-remote` for a remote provider."""
    queue = llm_queue.queue_for(persona_or_source, remote=remote)
    message = send(job_table.llm_job(queue), kind, job_id)
    logger.debug("LLM job %s %s sent to %s", kind, job_id, queue)
    return message


def send_llm_entry(kind: str, job_id: str, persona_or_source: str, *, remote: bool) -> str | None:
    """`send_llm`, returning the message's entry id in the Redis queue (None on other brokers)."""
    return send_llm(kind, job_id, persona_or_source, remote=remote).options.get("redis_message_id")


def check_actors(broker: dramatiq.Broker) -> None:
    """Fail loudly when the actors this process declared and the job table disagree."""
    declared = {name: broker.get_actor(name).queue_name for name in broker.get_declared_actors()}
    problems = job_table.check(declared)
    if problems:
        raise ConfigError(problems)


def _message(job: Job, args: tuple, kwargs: dict, options: dict | None = None) -> dramatiq.Message:
    return dramatiq.Message(queue_name=job.queue, actor_name=job.name, args=tuple(args), kwargs=dict(kwargs),
                            options=dict(options or {}))


def _enqueue(message: dramatiq.Message, delay_ms: int | None) -> dramatiq.Message:
    return current().enqueue(message, delay=delay_ms)
