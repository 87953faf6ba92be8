"""`widip mcp --stdio`: the same MCP server for a local client that launches it (Claude Desktop, an IDE).

The client passes a widip bearer token in WIDIP_TOKEN; it is checked again on every request, so a
revoked token or a disabled user stops working without restarting the client.
"""

from __future__ import annotations

import anyio

from widip import deps as process_deps
from widip import wiring
from widip.errors import ConfigError
from widip.functions import db, identity
from widip.mcp import catalog
from widip.messaging.relay import flush_outbox
from widip.mcp.server import build_server


def run(settings, token: str) -> int:
    d = process_deps.configure(settings)
    wiring.register_handlers()

    def who(_ctx):
        with db.transaction(d.pool) as conn:
            found = identity.authenticate_token(conn, token)
        return catalog.mcp_caller(found) if found is not None else None

    if who(None) is None:
        raise ConfigError(["WIDIP_TOKEN is not a live widip session or service token"])
    server = build_server(d.pool, settings, who, relay=flush_outbox)

    async def serve():
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(serve)
    return 0
