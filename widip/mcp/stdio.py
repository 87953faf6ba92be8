"""`widip mcp --stdio`: the same MCP server for a local client that launches it (Claude Desktop, an IDE).

Messages are JSON lines on stdin and stdout (MCP stdio transport); requests are answered concurrently, so a
call waiting for an approver does not hold up the others. The client passes a widip bearer token in
WIDIP_TOKEN; it is checked again on every request, so a revoked token or a disabled user stops working
without restarting the client. Logs go to stderr: stdout carries only MCP messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from widip import deps as process_deps
from widip import wiring
from widip.errors import ConfigError
from widip.mcp import catalog, server as rpc
from widip.messaging.relay import flush_outbox

logger = logging.getLogger(__name__)


def run(settings, token: str) -> int:
    d = process_deps.configure(settings)
    wiring.register_handlers()

    def who():
        return catalog.caller_for_token(d.pool, token)

    if who() is None:
        raise ConfigError(["WIDIP_TOKEN is not a live widip session or service token"])
    asyncio.run(serve(rpc.Server(d.pool, settings, relay=flush_outbox), who, sys.stdin.buffer, sys.stdout.buffer))
    return 0


async def serve(server: rpc.Server, who, reader, writer) -> None:
    """Answer each line read from `reader` on `writer` until end of input, then finish what is running."""
    running: set[asyncio.Task] = set()

    async def send(message: dict) -> None:
        writer.write(rpc.encode(message).encode() + b"\n")
        writer.flush()

    async def one(line: bytes) -> None:
        try:
            message = rpc.parse(json.loads(line))
        except (ValueError, RecursionError):
            return await send(rpc.error(None, rpc.PARSE_ERROR, "Parse error: the line is not JSON"))
        except rpc.RpcError as exc:
            return await send(rpc.error(exc.request_id, exc.code, exc.message))
        if message is None or not message.is_request:
            return
        try:
            reply = await server.handle(message, await server.run(who), send)
        except Exception:  # e.g. the database is unreachable while checking the token: still answer
            logger.exception("MCP %s failed", message.method)
            reply = rpc.error(message.id, rpc.INTERNAL_ERROR, "internal error (logged on the server)")
        await send(reply)

    while line := await asyncio.to_thread(reader.readline):
        if line.strip():
            task = asyncio.create_task(one(line))
            running.add(task)
            task.add_done_callback(running.discard)
    await asyncio.gather(*running, return_exceptions=True)
