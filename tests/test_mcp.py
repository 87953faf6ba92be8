"""The MCP server in process: the SDK's client over Streamable HTTP on an ASGI transport to our app (no
socket), with a real database, real run_tool on the stub broker's worker, the Password Pusher and GLPI
simulators. (tests/test_mcp_e2e.py covers real processes.)
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from widip.functions import identity

TICKET = {"title": "Imprimante en panne", "content": "L'imprimante du 2e étage ne répond plus."}


@pytest.fixture
def mcp_app(directory_settings, stub_worker):
    from widip.mcp.asgi import create_app

    return create_app(directory_settings)


@pytest.fixture
def mcp_as(mcp_app):
    """`mcp_as(user, work)`: run `await work(client)` with an SDK client holding `user`'s token."""

    def run(user, work):
        async def main():
            headers = {"Authorization": f"Bearer {user.token}"}
            async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=mcp_app), headers=headers) as http:
                async with Client(streamable_http_client("http://127.0.0.1/mcp", http_client=http)) as client:
                    return await work(client)

        return anyio.run(main)

    return run


def human(conn, name: str, level: int):
    """A user with a live session token."""
    user = identity.find_user(conn, name) or identity.create_user(
        conn, username=name, password="correct-horse-battery-staple", accreditation_level=level)
    return SimpleNamespace(user_id=user.id, token=identity.issue_session(conn, user.id, ttl_hours=1).token)


def texts(result) -> str:
    return "\n".join(block.text for block in result.content)


def test_a_read_only_user_is_offered_no_tool_and_a_call_by_name_is_refused_and_audited(mcp_as, conn):
    reader = human(conn, "lecteur", 0)
    offered = mcp_as(reader, lambda c: c.list_tools())
    assert [t.name for t in offered.tools] == ["widip_call_status"]
    refused = mcp_as(reader, lambda c: c.call_tool("glpi_get_ticket_details", {"ticket_id": 1}))
    assert refused.is_error and "not available" in texts(refused)
    audit = conn.execute("SELECT actor, action FROM safeguard_audit WHERE tool_name = 'glpi_get_ticket_details'"
                         ).fetchall()
    assert audit == [{"actor": "human:lecteur", "action": "refused"}]


def test_invalid_arguments_are_a_tool_error_naming_the_problem(mcp_as, conn, people):
    tech = human(conn, "tech", 1)
    bad = mcp_as(tech, lambda c: c.call_tool("glpi_get_ticket_details", {"ticket_id": "un"}))
    assert bad.is_error and "ticket_id" in texts(bad)
    no_id = mcp_as(tech, lambda c: c.call_tool("widip_call_status", {"wait_seconds": 5}))
    assert no_id.is_error and "call_id" in texts(no_id)


def test_a_secret_link_never_reaches_the_mcp_client(mcp_as, conn, people, pwpush):
    tech = human(conn, "tech", 1)
    result = mcp_as(tech, lambda c: c.call_tool("mysecret_create_secret", {"payload": "Printemps-2026!"}))
    assert result.is_error is False, texts(result)
    assert result.structured_content["status"] == "done"
    (push_token,) = list(pwpush.state.pushes)  # the link exists, in Password Pusher only
    shown = texts(result) + json.dumps(result.structured_content)
    assert push_token not in shown and "/p/" not in shown.replace("[lien secret masqué]", "")
    assert "Printemps-2026!" not in shown


def test_the_status_of_someone_elses_call_is_not_found(mcp_as, conn, people):
    tech, other = human(conn, "tech", 1), human(conn, "approver2", 3)
    asked = mcp_as(tech, lambda c: c.call_tool("glpi_create_ticket", TICKET))
    assert asked.structured_content["status"] == "waiting_approval"
    call_id = asked.structured_content["call_id"]
    theirs = mcp_as(other, lambda c: c.call_tool("widip_call_status", {"call_id": call_id}))
    assert theirs.is_error and "no tool call" in texts(theirs)
    mine = mcp_as(tech, lambda c: c.call_tool("widip_call_status", {"call_id": call_id}))
    assert mine.is_error is False and mine.structured_content["status"] == "waiting_approval"
    # the approver named is never the requester, and only N3+ are named
    assert "tech" not in mine.structured_content["approvers"] and "approver" in mine.structured_content["approvers"]


def test_a_user_without_glpi_rights_is_offered_no_glpi_tool_and_cannot_call_one(mcp_as, conn, people):
    from widip.functions.access_matrix import AccessRights, set_access

    tech = human(conn, "tech", 1)
    set_access(conn, tech.user_id, AccessRights(acces_glpi=False), actor="test")
    offered = {t.name for t in mcp_as(tech, lambda c: c.list_tools()).tools}
    assert not any(name.startswith("glpi_") for name in offered) and "observium_list_devices" in offered
    refused = mcp_as(tech, lambda c: c.call_tool("glpi_get_ticket_details", {"ticket_id": 1}))
    assert refused.is_error and conn.execute(
        "SELECT count(*) AS n FROM tool_calls WHERE tool_name = 'glpi_get_ticket_details'").fetchone()["n"] == 0


def test_a_ticket_view_is_read_through_the_gate_as_data(mcp_as, conn, people, glpi):
    tech = human(conn, "tech", 1)

    async def read(client):
        templates = await client.list_resource_templates()
        return templates, await client.read_resource("widip://glpi/tickets/1")

    templates, view = mcp_as(tech, read)
    assert {t.uri_template for t in templates.resource_templates} >= {"widip://glpi/tickets/{ticket_id}"}
    text = view.contents[0].text
    assert '<tool_result name="glpi_get_ticket_details">' in text and '"id": 1' in text
    assert [r["action"] for r in conn.execute("SELECT action FROM safeguard_audit WHERE tool_name = "
                                              "'glpi_get_ticket_details' ORDER BY id")] == ["proposed", "executed"]


def test_the_transport_answers_malformed_requests_with_a_clear_status(mcp_app, conn, people):
    """What a hand-written client meets: every refusal says what is wrong; nothing needs the SDK."""
    tech = human(conn, "tech", 1)

    async def main():
        headers = {"Authorization": f"Bearer {tech.token}", "Accept": "application/json, text/event-stream"}
        transport = httpx2.ASGITransport(app=mcp_app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as http:
            def post(body, **extra):
                return http.post("/mcp", content=body if isinstance(body, bytes) else json.dumps(body), **{
                    "headers": {"Content-Type": "application/json"}, **extra})

            return {
                "ping": await post({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
                "unknown": await post({"jsonrpc": "2.0", "id": "a", "method": "prompts/list"}),
                "notification": await post({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                "not json": await post(b"{nope"),
                "batch": await post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
                "no name": await post({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {}}),
                "form": await post(b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}),
                "version": await post({"jsonrpc": "2.0", "id": 3, "method": "ping"},
                                      headers={"Content-Type": "application/json", "MCP-Protocol-Version": "1999"}),
                "null id": await post({"jsonrpc": "2.0", "id": None, "method": "tools/call",
                                       "params": {"name": "glpi_get_ticket_details"}}),
                "nested": await post(b"[" * 100_000),
                "old client": await post({"jsonrpc": "2.0", "id": 4, "method": "initialize",
                                          "params": {"protocolVersion": "2024-11-05"}}),
                "upper host": await post({"jsonrpc": "2.0", "id": 5, "method": "ping"},
                                         headers={"Content-Type": "application/json", "Host": "LOCALHOST:8001"}),
                "get": await http.get("/mcp"),
                "metadata": await http.get("/.well-known/oauth-protected-resource/mcp"),
            }

    got = anyio.run(main)
    assert got["ping"].status_code == 200 and got["ping"].json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert got["unknown"].json()["error"]["code"] == -32601 and got["unknown"].json()["id"] == "a"
    assert got["notification"].status_code == 202 and got["notification"].content == b""
    assert got["not json"].status_code == 400 and got["not json"].json()["error"]["code"] == -32700
    assert got["batch"].status_code == 400 and "batches" in got["batch"].json()["error"]["message"]
    assert got["no name"].json()["error"] == {"code": -32602, "message": "tools/call needs params.name, a string"}
    assert got["form"].status_code == 415
    assert got["version"].status_code == 400 and "2025-11-25" in got["version"].json()["error"]["message"]
    assert got["null id"].status_code == 400 and "id must be" in got["null id"].json()["error"]["message"]
    assert got["nested"].status_code == 400 and got["nested"].json()["error"]["code"] == -32700
    assert got["old client"].json()["result"]["protocolVersion"] == "2024-11-05"
    assert got["upper host"].status_code == 200
    assert got["get"].status_code == 405
    assert got["metadata"].json()["resource"].endswith("/mcp")
    assert got["metadata"].json()["scopes_supported"] == ["mcp:tools"]


def test_progress_notifications_precede_the_answer_on_an_event_stream(mcp_app, conn, people):
    tech = human(conn, "tech", 1)

    async def main():
        headers = {"Authorization": f"Bearer {tech.token}", "Accept": "application/json, text/event-stream",
                   "Content-Type": "application/json"}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=mcp_app), base_url="http://127.0.0.1",
                                      headers=headers) as http:
            asked = await http.post("/mcp", content=json.dumps({
                "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "glpi_create_ticket", "arguments": TICKET}}))
            call_id = asked.json()["result"]["structuredContent"]["call_id"]
            return await http.post("/mcp", content=json.dumps({
                "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "widip_call_status", "arguments": {"call_id": call_id, "wait_seconds": 1},
                           "_meta": {"progressToken": "p1"}}}))

    streamed = anyio.run(main)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[len("data: "):]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[0]["method"] == "notifications/progress" and events[0]["params"]["progressToken"] == "p1"
    assert events[-1]["id"] == 2 and events[-1]["result"]["structuredContent"]["status"] == "waiting_approval"


def test_stdio_answers_every_request_even_when_the_token_check_fails(directory_settings, stub_worker):
    """A local client must never wait forever: bad lines and failures inside get an answer with their id."""
    import io

    from widip import deps as process_deps
    from widip.mcp import server as rpc
    from widip.mcp.stdio import serve

    server = rpc.Server(process_deps.configure(directory_settings).pool, directory_settings)

    def who():
        raise RuntimeError("database unreachable")

    lines = [b"{nope\n", json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).encode() + b"\n",
             json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode() + b"\n",
             json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/list", "params": []}).encode() + b"\n"]
    out = io.BytesIO()
    anyio.run(serve, server, who, io.BytesIO(b"".join(lines)), out)
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    by_id = {r["id"]: r["error"] for r in replies}
    assert by_id[None]["code"] == -32700 and by_id[8]["code"] == -32600  # bad params: answered with its id
    assert by_id[7]["code"] == -32603 and "database" not in by_id[7]["message"]
