"""The Falcon WSGI app: `gunicorn 'widip.http.app:create_app_from_env()'`.

`create_app(ctx)` only builds routes around the dependencies it is given (as Falcon's `look`
tutorial app does); `create_app_from_env()` reads the environment, builds them and wires the
process (widip/wiring.py). The resource modules are listed once, in RESOURCE_MODULES: each adds
its routes with `register(app, ctx)` and describes them in `OPENAPI_PATHS`. The web process
imports no actor module: it enqueues through the one door (widip/messaging/door.py).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field

import dramatiq
import falcon
import falcon.media

from widip import deps as process_deps
from widip import wiring
from widip.config import Settings
from widip.functions.jsonable import json_default
from widip.http import (agent, assist, console, conversations, documents, health, inventory, jobs, llm, metrics,
                        monitoring, openapi, safeguard, sentinel, tools, users)
from widip.http.auth import Authenticate
from widip.http.errors import register_error_handlers
from widip.http.middleware import RequestId
from widip.logs import configure_logging
from widip.messaging.broker import WEB_REDIS_TIMEOUT_S, current, setup_broker_from_env

logger = logging.getLogger(__name__)

#: Every resource module, in the order their routes are added.
RESOURCE_MODULES = (health, metrics, jobs, users, agent, tools, safeguard, monitoring, sentinel, llm, assist,
                    inventory, conversations, documents, console)


@dataclass
class AppContext:
    """What resources need: settings, the process's dependencies (database pool, Redis) and the broker."""

    settings: Settings
    deps: process_deps.Deps
    broker: dramatiq.Broker = field(default_factory=current)

    @property
    def pool(self):
        return self.deps.pool

    @property
    def redis(self):
        return self.deps.redis


def build_context(settings: Settings) -> AppContext:
    """This process's dependencies for `settings`, with its handlers registered."""
    context = AppContext(settings=settings, deps=process_deps.configure(settings))
    wiring.register_handlers()
    return context


#: Responses (and error bodies) in JSON: database rows go out as they are, datetimes, UUIDs and
#: decimals written by the one converter (widip/functions/jsonable.py).
JSON_HANDLER = falcon.media.JSONHandler(dumps=functools.partial(json.dumps, ensure_ascii=False, default=json_default))


def create_app(ctx: AppContext) -> falcon.App:
    app = falcon.App(middleware=[RequestId(), Authenticate(ctx)])
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = JSON_HANDLER
    register_error_handlers(app)
    for module in RESOURCE_MODULES:
        module.register(app, ctx)
    openapi.serve(app, RESOURCE_MODULES)
    return app


def create_app_from_env() -> falcon.App:
    """The app gunicorn serves: settings from the environment, logging, dependencies, routes."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    setup_broker_from_env(timeout=WEB_REDIS_TIMEOUT_S)  # a request never waits long on Redis
    app = create_app(build_context(settings))
    logger.debug("web app loaded (env=%s)", settings.env)  # the master announces "web ready" once
    return app
