"""The MCP server on real processes: the SDK's own client over Streamable HTTP against the Procfile's `mcp`
process, with gunicorn web and a dramatiq worker on the Redis broker and the GLPI simulator.
"""

from __future__ import annotations

from types import SimpleNamespace

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.stack import free_port, poll
from tests.test_metrics import integration_env

pytestmark = pytest.mark.e2e
TICKET = {"title": "Imprimante en panne", "content": "L'imprimante du 2e étage ne répond plus."}


@pytest.fixture
def mcp_stack(stack, glpi, mail_sink):
    """web + worker + the Procfile's mcp process; `.url` is the MCP endpoint, `.web` the API."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    stack.env.update(integration_env(glpi, mail_sink), WIDIP_MCP_PORT=str(port))
    stack.start("web", "worker", "mcp")
    poll(lambda: _answers(url), bool, timeout=30, interval=0.2)
    return SimpleNamespace(url=url, web=stack.url)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code > 0
    except httpx.TransportError:
        return False


def service_token(conn, name: str, scopes: list[str]) -> str:
    from widip.functions import identity

    return identity.create_service_token(conn, name=name, scopes=scopes, actor="test").token


def with_client(url: str, token: str, work):
    """Run `await work(client)` with an SDK client holding this bearer token; return its value."""

    async def main():
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                return await work(client)

    return anyio.run(main)


async def tool_names(client) -> dict:
    return {t.name: t for t in (await client.list_tools()).tools}


def test_tools_offered_to_a_technician_and_to_a_service_token_differ(mcp_stack, people, conn):
    as_tech = with_client(mcp_stack.url, people.tech.token, tool_names)
    as_service = with_client(mcp_stack.url, service_token(conn, "ide-agent", ["mcp:tools"]), tool_names)
    for offered in (as_tech, as_service):
        assert "glpi_get_ticket_details" in offered and "widip_call_status" in offered
        assert "glpi_delete_ticket" not in offered and "ad_disable_account" not in offered  # L4: never offered
    # A person may ask for a password reset (it waits for an N3); an outside automation is not offered one.
    assert "ad_reset_password" in as_tech and "ad_reset_password" not in as_service
    assert "mysecret_create_secret" in as_tech and "mysecret_create_secret" not in as_service
    # The same L2 tool runs for a person (N1 asks approval) but waits for approval as the mcp persona.
    assert "SAFEGUARD L2" in as_tech["glpi_close_ticket"].description
    assert "SAFEGUARD L3" in as_service["glpi_close_ticket"].description
    assert "runs immediately" in as_tech["glpi_get_ticket_details"].description
    read = as_tech["glpi_get_ticket_details"]
    assert read.annotations.read_only_hint is True and read.annotations.idempotent_hint is True
    assert read.input_schema["properties"]["ticket_id"]
    create = as_service["glpi_create_ticket"]
    assert create.annotations.read_only_hint is False and create.annotations.destructive_hint is True


def test_an_l0_call_returns_the_result_marked_as_data(mcp_stack, people, conn):
    result = with_client(mcp_stack.url, people.tech.token,
                         lambda c: c.call_tool("glpi_get_ticket_details", {"ticket_id": 1}))
    assert result.is_error is False, result.content
    assert result.structured_content["status"] == "done"
    assert result.structured_content["result"]["id"] == 1
    text = "\n".join(block.text for block in result.content)
    assert '<tool_result name="glpi_get_ticket_details">' in text and "DONNÉES" in text
    audit = [r["action"] for r in conn.execute(
        "SELECT action FROM safeguard_audit WHERE call_id = %s ORDER BY id",
        (result.structured_content["call_id"],))]
    assert audit == ["proposed", "executed"]


def test_an_l3_call_waits_for_an_approver_then_the_status_tool_returns_the_ticket(mcp_stack, people, conn, glpi):
    token = service_token(conn, "ci-bot", ["mcp:tools"])
    asked = with_client(mcp_stack.url, token, lambda c: c.call_tool("glpi_create_ticket", TICKET))
    assert asked.is_error is False
    french, english = (block.text for block in asked.content)
    request_id = asked.structured_content["request_id"]
    assert "En attente d'approbation" in french and "Awaiting approval" in english
    assert f"n° {request_id}" in french and "approver" in french  # who can approve, by name
    assert glpi.state.calls.get("POST Ticket", 0) == 0
    progress: list[float] = []

    async def wait_for_it(client, seconds):
        async def on_progress(value, total, message):
            progress.append(value)

        return await client.call_tool("widip_call_status",
                                      {"call_id": asked.structured_content["call_id"], "wait_seconds": seconds},
                                      progress_callback=on_progress)

    pending = with_client(mcp_stack.url, token, lambda c: wait_for_it(c, 2))
    assert pending.structured_content["status"] == "waiting_approval" and progress  # progress while it waits

    approved = httpx.post(f"{mcp_stack.web}/safeguard/requests/{request_id}/approve",
                          json={"comment": "ok"}, headers=people.approver.headers, timeout=10)
    assert approved.status_code == 200, approved.text
    done = with_client(mcp_stack.url, token, lambda c: wait_for_it(c, 60))
    assert done.is_error is False, done.content
    assert done.structured_content["status"] == "done" and done.structured_content["result"]["created"] is True
    assert glpi.state.calls.get("POST Ticket", 0) == 1
    actor = conn.execute("SELECT actor FROM safeguard_audit WHERE call_id = %s AND action = 'proposed'",
                         (asked.structured_content["call_id"],)).fetchone()["actor"]
    assert actor == "ai:mcp:ci-bot"


def test_a_rejection_comes_back_as_a_tool_error_with_the_comment(mcp_stack, people, conn):
    asked = with_client(mcp_stack.url, people.tech.token, lambda c: c.call_tool("glpi_create_ticket", TICKET))
    rejected = httpx.post(f"{mcp_stack.web}/safeguard/requests/{asked.structured_content['request_id']}"
                          "/reject", json={"reason": "doublon du ticket 12"}, headers=people.approver.headers,
                          timeout=10)
    assert rejected.status_code == 200, rejected.text
    status = with_client(mcp_stack.url, people.tech.token, lambda c: c.call_tool(
        "widip_call_status", {"call_id": asked.structured_content["call_id"]}))
    assert status.is_error is True
    assert "doublon du ticket 12" in status.content[0].text and "approver" in status.content[0].text


def test_a_crafted_call_to_an_l4_tool_is_refused_and_audited(mcp_stack, people, conn, glpi):
    token = service_token(conn, "crafty", ["mcp:tools"])
    refused = with_client(mcp_stack.url, token, lambda c: c.call_tool("glpi_delete_ticket", {"ticket_id": 1}))
    assert refused.is_error is True and "Refused" in refused.content[1].text
    row = conn.execute("SELECT actor, outcome FROM safeguard_audit WHERE tool_name = 'glpi_delete_ticket'"
                       " AND action = 'refused'").fetchone()
    assert row == {"actor": "ai:mcp:crafty", "outcome": "invalid"}
    assert conn.execute("SELECT count(*) AS n FROM tool_calls").fetchone()["n"] == 0
    assert glpi.state.calls.get("DELETE Ticket", 0) == 0


def test_no_token_is_401_with_a_challenge_and_a_foreign_origin_is_refused(mcp_stack, people, conn):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    anonymous = httpx.post(mcp_stack.url, json=body, headers=headers, timeout=5)
    assert anonymous.status_code == 401
    challenge = anonymous.headers["WWW-Authenticate"]
    port = mcp_stack.url.split(":")[2].split("/")[0]
    assert challenge.startswith("Bearer ") and f":{port}/.well-known/oauth-protected-resource/mcp" in challenge
    wrong_scope = service_token(conn, "webhook", ["webhook:observium"])
    assert httpx.post(mcp_stack.url, json=body, headers={**headers, "Authorization": f"Bearer {wrong_scope}"},
                      timeout=5).status_code == 403
    rebinding = httpx.post(mcp_stack.url, json=body, timeout=5, headers={
        **headers, "Authorization": f"Bearer {people.tech.token}", "Origin": "http://evil.example"})
    assert rebinding.status_code == 403
    rebound_host = httpx.post(mcp_stack.url, json=body, timeout=5, headers={
        **headers, "Authorization": f"Bearer {people.tech.token}", "Host": "evil.example"})
    assert rebound_host.status_code == 421
    fine = httpx.post(mcp_stack.url, json=body, timeout=5, headers={
        **headers, "Authorization": f"Bearer {people.tech.token}", "Origin": "http://localhost:3000"})
    assert fine.status_code < 400  # the check refuses foreign origins, not local ones



def test_widip_mcp_stdio_serves_the_gated_tools_to_a_local_client(stack, people, glpi, mail_sink):
    from mcp.client.stdio import StdioServerParameters

    from tests.stack import BIN
    from widip.config import PROJECT_ROOT

    stack.env.update(integration_env(glpi, mail_sink))
    stack.start("worker")
    local = StdioServerParameters(command=str(BIN / "widip"), args=["mcp", "--stdio"], cwd=str(PROJECT_ROOT),
                                  env={**stack.env, "WIDIP_TOKEN": people.tech.token})

    async def main():
        async with Client(local) as client:
            offered = {t.name for t in (await client.list_tools()).tools}
            return offered, await client.call_tool("glpi_get_ticket_details", {"ticket_id": 1})

    offered, result = anyio.run(main)
    assert "glpi_get_ticket_details" in offered and "glpi_delete_ticket" not in offered
    assert result.is_error is False and result.structured_content["result"]["id"] == 1
