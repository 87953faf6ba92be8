"""The MCP process: `uvicorn --factory widip.mcp.asgi:create_app` (Procfile `mcp`), Streamable HTTP at /mcp.

Every request carries a widip bearer token, checked on each request (a revoked token stops working at
once); none or an unknown one gets 401 with a `WWW-Authenticate` challenge naming the protected-resource
metadata (MCP authorization spec). Host and Origin headers are checked against DNS rebinding.
"""

from __future__ import annotations

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from widip import deps as process_deps
from widip import wiring
from widip.config import Settings
from widip.functions import db, identity
from widip.functions.callers import Caller
from widip.logs import announce_ready, configure_logging
from widip.mcp import catalog
from widip.messaging.relay import flush_outbox
from widip.mcp.server import build_server

class TokenVerifier:
    """The SDK's token-verifier protocol over widip's own session and service tokens."""

    def __init__(self, pool):
        self._pool = pool

    def _verify(self, token: str) -> AccessToken | None:
        with db.transaction(self._pool) as conn:
            found = identity.authenticate_token(conn, token)
        if found is None:
            return None
        caller = catalog.mcp_caller(found)
        # A user acts as themselves; a service token must hold the scope (else 403 insufficient_scope).
        scopes = [catalog.SCOPE] if caller.is_human else list(caller.scopes)
        return AccessToken(token=found.kind, client_id=caller.username, scopes=scopes,
                           claims={"caller": caller.to_dict()})

    async def verify_token(self, token: str) -> AccessToken | None:
        return await anyio.to_thread.run_sync(self._verify, token)


def request_caller(ctx) -> Caller | None:
    """The caller the auth middleware found for this MCP request."""
    user = ctx.request.scope.get("user") if ctx.request is not None else None
    if not isinstance(user, AuthenticatedUser):
        return None
    return Caller.from_dict(user.access_token.claims["caller"])


def create_app(settings: Settings | None = None):
    settings = settings or Settings.from_env()
    if settings.env != "test":
        configure_logging(settings.log_level)
    d = process_deps.configure(settings)
    wiring.register_handlers()

    server = build_server(d.pool, settings, request_caller, relay=flush_outbox)
    app = server.streamable_http_app(
        stateless_http=True,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=list(settings.mcp_allowed_hosts),
            allowed_origins=list(settings.mcp_allowed_origins)),
        auth=AuthSettings(issuer_url=settings.mcp_issuer_url, resource_server_url=settings.mcp_url,
                          required_scopes=[catalog.SCOPE], validate_token_resource=False),
        token_verifier=TokenVerifier(d.pool))
    announce_ready("mcp", f"{settings.mcp_url} (env={settings.env})")
    return app
