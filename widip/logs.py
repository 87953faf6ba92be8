"""Logging set-up for entry points only (web, workers, CLI): one line per record, with the request id."""

from __future__ import annotations

import contextvars
import logging

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s [rid=%(request_id)s] %(message)s"

#: The id of the HTTP request (or job) being served in this context; "-" outside one.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdLogFilter(logging.Filter):
    """Adds `request_id` to every record so the log format can show it."""

    def filter(self, record):
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_widip", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._widip = True
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdLogFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
