"""The MCP server's handlers with the SDK's in-process client: real database, real run_tool on the stub
broker's worker, the Password Pusher and GLPI simulators. (tests/test_mcp_e2e.py covers real processes.)
"""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client

from widip.functions import identity
from widip.functions.callers import Caller
from widip.mcp.server import build_server

TICKET = {"title": "Imprimante en panne", "content": "L'imprimante du 2e étage ne répond plus."}


@pytest.fixture
def mcp_as(directory_settings, stub_worker):
    """`mcp_as(caller, work)`: run `await work(client)` against an MCP server that sees `caller`."""
    from widip import deps as process_deps
    from widip.messaging.relay import flush_outbox

    d = process_deps.configure(directory_settings)

    def run(caller: Caller, work):
        server = build_server(d.pool, directory_settings, lambda ctx: caller, relay=flush_outbox)

        async def main():
            async with Client(server) as client:
                return await work(client)

        return anyio.run(main)

    return run


def human(conn, name: str, level: int) -> Caller:
    user = identity.find_user(conn, name) or identity.create_user(
        conn, username=name, password="correct-horse-battery-staple", accreditation_level=level)
    return Caller(kind="human", username=user.username, accreditation=user.accreditation_level, user_id=user.id)


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
