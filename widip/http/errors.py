"""The one place where errors become HTTP answers: {"title", "description"}, never a traceback."""

from __future__ import annotations

import logging

import falcon
import psycopg
import psycopg_pool
import redis

from widip.errors import ServiceError

logger = logging.getLogger(__name__)


def handle_service_error(req, resp, error: ServiceError, params):
    resp.status = falcon.code_to_http_status(error.status)
    resp.media = {"title": error.title, "description": error.message}
    if error.status == 503:
        resp.set_header("Retry-After", "30")


def handle_unexpected(req, resp, error: Exception, params):
    if isinstance(error, falcon.HTTPError):
        raise error
    logger.exception("unhandled error on %s %s", req.method, req.path)
    rid = getattr(req.context, "request_id", "-")
    resp.status = falcon.HTTP_500
    resp.media = {"title": "Erreur interne",
                  "description": f"An internal error occurred; quote request id {rid} to the operators."}


def handle_dependency_down(req, resp, error: Exception, params):
    """PostgreSQL or Redis unreachable: a 503 the client may retry, not a 500."""
    logger.warning("dependency unavailable on %s %s: %s", req.method, req.path, type(error).__name__)
    resp.status = falcon.HTTP_503
    resp.set_header("Retry-After", "30")
    resp.media = {"title": "Service indisponible",
                  "description": "a backing service (database or queue) is unavailable; retry shortly"}


def register_error_handlers(app: falcon.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    for kind in (psycopg.OperationalError, psycopg_pool.PoolTimeout, redis.ConnectionError, redis.TimeoutError):
        app.add_error_handler(kind, handle_dependency_down)
    app.add_error_handler(ServiceError, handle_service_error)
