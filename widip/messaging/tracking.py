"""Dramatiq middleware keeping `jobs` rows in step with the messages that carry their id.

Only messages flagged with JOB_OPTION are tracked: their `jobs` row was written before they were
enqueued. A failure is final only when the message is nacked (retries exhausted or a permanent
error), so pollers see `retrying` in between, not a premature `failed`.
"""

from __future__ import annotations

import json
import logging

from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)

#: Message option marking a message that has a `jobs` row (set by `widip.messaging.door.send_tracked`).
JOB_OPTION = "widip_job"


class JobTracking(Middleware):
    def before_process_message(self, broker, message):
        self._update(message, "running")

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is None:
            self._update(message, "done", result=_json_safe(result))
        else:
            self._update(message, "error", error=_describe(exception), final=False)

    def after_skip_message(self, broker, message):
        self._update(message, "error", error="skipped (message too old or superseded)", final=True)

    def after_nack(self, broker, message):
        self._update(message, "error", error=message.options.get("widip_error") or "failed", final=True)

    def _update(self, message, what: str, **kwargs) -> None:
        if not message.options.get(JOB_OPTION):
            return
        from widip.deps import deps
        from widip.functions import db, jobs

        if what == "error":
            message.options["widip_error"] = kwargs.get("error")
        try:
            with db.transaction(deps().pool) as conn:
                if what == "running":
                    jobs.mark_running(conn, message.message_id)
                elif what == "done":
                    jobs.mark_done(conn, message.message_id, kwargs["result"])
                else:
                    jobs.mark_error(conn, message.message_id, kwargs["error"], final=kwargs["final"])
        except Exception:  # noqa: BLE001 - tracking must never break the work itself
            logger.exception("could not update job %s to %s", message.message_id, what)


def _describe(exception: BaseException) -> str:
    """A safe one-line error for pollers: our errors carry safe messages; others only their type."""
    from widip.errors import ServiceError

    if isinstance(exception, ServiceError):
        return exception.message
    return f"{type(exception).__name__}: internal error (see worker logs)"


def _json_safe(result):
    try:
        json.dumps(result)
        return result
    except (TypeError, ValueError):
        return repr(result)
