"""The MCP process: `uvicorn --factory widip.mcp.asgi:create_app` (Procfile `mcp`), Streamable HTTP at /mcp.

Stateless Streamable HTTP: each POST carries one JSON-RPC message and gets its answer as JSON, or as an
SSE stream when the request asks for progress (`_meta.progressToken`) so notifications can precede the
answer. GET and DELETE /mcp are 405 (no server-initiated stream, no session to end).

Every request carries a widip bearer token, checked on each request (a revoked token stops working at
once); none or an unknown one gets 401 with a `WWW-Authenticate` challenge naming the protected-resource
metadata (MCP authorization spec), a service token without scope `mcp:tools` 403 insufficient_scope.
Host and Origin headers are checked against DNS rebinding (421 and 403).
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import falcon
import falcon.asgi

from widip import deps as process_deps
from widip import wiring
from widip.config import Settings
from widip.functions.callers import Caller
from widip.logs import announce_ready, configure_logging
from widip.mcp import catalog, server as rpc
from widip.messaging.relay import flush_outbox

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024
_DONE = object()


def pattern_allows(value: str, patterns) -> bool:
    """`value` is one of `patterns`, where a pattern ending in `:*` stands for that host on any port.
    Host names compare without case; nothing but ASCII digits counts as a port."""
    value = value.lower()
    for pattern in (p.lower() for p in patterns):
        if value == pattern:
            return True
        if pattern.endswith(":*"):
            base = pattern[:-2]
            rest = value[len(base):]
            port = rest[1:]
            if value.startswith(base) and (rest == "" or (rest[:1] == ":" and port.isascii() and port.isdigit())):
                return True
    return False


def metadata_url(settings: Settings) -> str:
    """RFC 9728 protected-resource metadata for the MCP URL: /.well-known/oauth-protected-resource/mcp."""
    parts = urlsplit(settings.mcp_url)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"


def refuse(resp, status: str, message: str, code: int = rpc.INVALID_REQUEST, request_id=None) -> None:
    """A transport-level refusal with a JSON-RPC error body (its id when the message had a usable one)."""
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = rpc.encode(rpc.error(request_id, code, message))


class Mcp:
    """POST /mcp: one JSON-RPC message per request."""

    def __init__(self, server: rpc.Server, pool, settings: Settings):
        self.server, self.pool, self.settings = server, pool, settings
        self.challenge = f'Bearer resource_metadata="{metadata_url(settings)}"'

    async def on_post(self, req, resp):
        if not pattern_allows(req.get_header("Host") or "", self.settings.mcp_allowed_hosts):
            return refuse(resp, "421 Misdirected Request", "Invalid Host header")
        origin = req.get_header("Origin")
        if origin is not None and not pattern_allows(origin, self.settings.mcp_allowed_origins):
            return refuse(resp, falcon.HTTP_403, "Invalid Origin header")
        caller = await self._authenticate(req, resp)
        if caller is None:
            return
        version = req.get_header("MCP-Protocol-Version")
        if version is not None and version not in rpc.PROTOCOL_VERSIONS:
            return refuse(resp, falcon.HTTP_400, f"Unsupported protocol version: {version[:40]} (served: "
                                                 f"{', '.join(rpc.PROTOCOL_VERSIONS)})")
        if (req.content_type or "").split(";")[0].strip().lower() != falcon.MEDIA_JSON:
            return refuse(resp, falcon.HTTP_415, "Content-Type must be application/json")
        too_big = f"a message is at most {MAX_BODY_BYTES} bytes"
        if (req.content_length or 0) > MAX_BODY_BYTES:
            return refuse(resp, falcon.HTTP_413, too_big)
        body = await req.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return refuse(resp, falcon.HTTP_413, too_big)
        try:
            message = rpc.parse(json.loads(body))
        except (ValueError, RecursionError):
            return refuse(resp, falcon.HTTP_400, "Parse error: the body is not JSON", rpc.PARSE_ERROR)
        except rpc.RpcError as exc:
            return refuse(resp, falcon.HTTP_400, exc.message, exc.code, exc.request_id)
        if message is None or not message.is_request:  # a notification or a response: nothing to answer
            resp.status = falcon.HTTP_202
            return
        accept = (req.get_header("Accept") or "").lower()
        streams = "text/event-stream" in accept and (message.progress_token is not None
                                                     or "application/json" not in accept)
        if streams:
            resp.set_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # no proxy buffering
            resp.sse = self._stream(message, caller)
        else:
            resp.content_type = falcon.MEDIA_JSON
            resp.text = rpc.encode(await self.server.handle(message, caller, _ignore))

    async def on_get(self, req, resp):
        resp.status, resp.allow = falcon.HTTP_405, ["POST"]

    on_delete = on_get

    async def _authenticate(self, req, resp) -> Caller | None:
        """The caller of a request; None once a 401 or 403 answer is set."""
        scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
        caller, token = None, token.strip()
        if scheme.lower() == "bearer" and token:
            caller = await self.server.run(catalog.caller_for_token, self.pool, token)
        if caller is None:
            resp.status = falcon.HTTP_401
            resp.set_header("WWW-Authenticate", f'{self.challenge}, scope="{catalog.SCOPE}"' if not token else
                            f'{self.challenge}, error="invalid_token", error_description="Authentication required"')
            resp.media = {"error": "invalid_token", "error_description": "Authentication required"}
            return None
        if not caller.is_human and catalog.SCOPE not in caller.scopes:
            resp.status = falcon.HTTP_403
            resp.set_header("WWW-Authenticate", f'{self.challenge}, error="insufficient_scope", '
                                                f'scope="{catalog.SCOPE}"')
            resp.media = {"error": "insufficient_scope", "error_description": f"Required scope: {catalog.SCOPE}"}
            return None
        return caller

    async def _stream(self, message: rpc.Message, caller: Caller):
        """The SSE answer: progress notifications as they come, then the answer, then the end."""
        queue: asyncio.Queue = asyncio.Queue()

        async def run():
            try:
                await queue.put(await self.server.handle(message, caller, queue.put))
            finally:
                await queue.put(_DONE)

        task = asyncio.ensure_future(run())
        try:
            while (item := await queue.get()) is not _DONE:
                yield falcon.asgi.SSEvent(event="message", text=rpc.encode(item))
        finally:
            task.cancel()  # the client went away: stop polling for it


class ResourceMetadata:
    """GET /.well-known/oauth-protected-resource/mcp (RFC 9728), named by the 401 challenge."""

    def __init__(self, settings: Settings):
        self.document = {"resource": settings.mcp_url, "authorization_servers": [settings.mcp_issuer_url],
                         "scopes_supported": [catalog.SCOPE], "bearer_methods_supported": ["header"],
                         "resource_name": "WIDIP"}

    async def on_get(self, req, resp):
        resp.media = self.document


async def _ignore(_notification: dict) -> None:
    """Progress has nowhere to go on a plain JSON answer."""


def build_app(server: rpc.Server, pool, settings: Settings) -> falcon.asgi.App:
    app = falcon.asgi.App()
    path = urlsplit(settings.mcp_url).path or "/mcp"
    app.add_route(path, Mcp(server, pool, settings))
    app.add_route(urlsplit(metadata_url(settings)).path, ResourceMetadata(settings))
    return app


def create_app(settings: Settings | None = None) -> falcon.asgi.App:
    settings = settings or Settings.from_env()
    if settings.env != "test":
        configure_logging(settings.log_level)
    d = process_deps.configure(settings)
    wiring.register_handlers()
    app = build_app(rpc.Server(d.pool, settings, relay=flush_outbox), d.pool, settings)
    announce_ready("mcp", f"{settings.mcp_url} (env={settings.env})")
    return app
