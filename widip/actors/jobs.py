"""The echo job that proves the HTTP → broker → worker → DB wiring (enqueued by `door.send_tracked`)."""

from __future__ import annotations

from dramatiq.middleware import CurrentMessage

from widip.actors import actor
from widip.deps import deps
from widip.functions import db, echo, job_table


@actor(job_table.ECHO_MESSAGE, max_retries=3, time_limit=30_000)
def echo_message(message: str) -> dict:
    with db.transaction(deps().pool) as conn:
        return echo.record_echo(conn, CurrentMessage.get_current_message().message_id, message)
