"""The Falcon WSGI app factory: `gunicorn 'widip.http.app:create_app()'`.

Resource modules in this package register themselves (`register(app, ctx)`) and describe their
paths (`OPENAPI_PATHS`), so adding an endpoint never means editing a central list.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass

import falcon

import widip.http
from widip import deps as actor_deps
from widip.config import Settings
from widip.http.auth import Authenticate
from widip.http.errors import register_error_handlers
from widip.http.middleware import RequestId
from widip.logs import configure_logging

logger = logging.getLogger(__name__)

_INFRA_MODULES = {"app", "auth", "errors", "middleware", "validation", "openapi_doc"}


@dataclass
class AppContext:
    """What resources need: settings and the process's database pool and Redis client."""

    settings: Settings
    deps: actor_deps.Deps

    @property
    def pool(self):
        return self.deps.pool

    @property
    def redis(self):
        return self.deps.redis


def resource_modules():
    for info in sorted(pkgutil.iter_modules(widip.http.__path__), key=lambda m: m.name):
        if info.name not in _INFRA_MODULES:
            module = importlib.import_module(f"widip.http.{info.name}")
            if hasattr(module, "register"):
                yield module


def create_app(settings: Settings | None = None) -> falcon.App:
    settings = settings or Settings.from_env()
    if settings.env != "test":  # pytest owns logging in tests
        configure_logging(settings.log_level)
    ctx = AppContext(settings=settings, deps=actor_deps.configure(settings))
    app = falcon.App(middleware=[RequestId(), Authenticate(ctx)])
    app.req_options.strip_url_path_trailing_slash = True
    register_error_handlers(app)
    for module in resource_modules():
        module.register(app, ctx)
    logger.info("web app ready (env=%s)", settings.env)
    return app
