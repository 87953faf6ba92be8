"""Enqueueing pollable jobs, and the echo job that proves the HTTP → broker → worker → DB wiring."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from widip.deps import deps
from widip.actors.tracking import JOB_OPTION
from widip.functions import db, echo, jobs


def enqueue_job(actor: dramatiq.Actor, kind: str, args: dict, **message_args) -> dict:
    """Write a `queued` jobs row, then enqueue the message whose id is the job id.

    The row is committed before the message exists, so a worker can never run ahead of it; if the
    broker is down the row stays `queued` and the caller's 503 says so.
    """
    message = actor.message_with_options(kwargs=message_args, **{JOB_OPTION: True})
    with db.transaction(deps().pool) as conn:
        job = jobs.create_job(conn, message.message_id, kind, args)
    actor.broker.enqueue(message)
    return job


@dramatiq.actor(queue_name="default", max_retries=3, time_limit=30_000)
def echo_message(message: str) -> dict:
    with db.transaction(deps().pool) as conn:
        return echo.record_echo(conn, CurrentMessage.get_current_message().message_id, message)
