"""The access matrix holds at the tool layer, for every caller: a technician limited to two care homes
cannot read another clinic's ticket or AD card, directly over HTTP or through WIBOT, and lists come
back filtered to their clients and ticket categories (GLPI and AD simulators, real database)."""

import pytest

from widip.config import PROJECT_ROOT
from widip.functions import identity
from widip.functions.access_matrix import AccessRights, set_access
from widip.functions.callers import Caller
from widip.functions.integrations.clients import Clients
from widip.functions.safeguard import calls
from widip.functions.safeguard import runs as tool_runs
from widip.functions.safeguard.policy import load_policy

POLICY = load_policy(PROJECT_ROOT / "policy", approval_ttl_hours=1)
#: The seed's technician: two care homes, three ticket categories.
TECH_RIGHTS = AccessRights(acces_glpi=True, clients_autorises=("EHPAD Les Tilleuls", "EHPAD Saint-Joseph"),
                           categories_tickets=("Mot de passe", "Déblocage", "Imprimante"))
# Demo tickets: 1 Tilleuls/Mot de passe, 2 Clinique du Parc/Déblocage, 3 Tilleuls/Création, 4 Saint-Joseph/Imprimante.


@pytest.fixture
def tech(conn):
    user = identity.create_user(conn, username="tech", password="correct-horse-battery-staple", accreditation_level=1)
    set_access(conn, user.id, TECH_RIGHTS, actor="test")
    session = identity.issue_session(conn, user.id, ttl_hours=1)
    return Caller(kind="human", username="tech", accreditation=1, user_id=user.id), session.token


@pytest.fixture
def clients(directory_settings, redis_client):
    c = Clients(directory_settings, redis_client)
    yield c
    c.close()


def run(conn, pool, clients, tool, args, caller):
    call = calls.propose(conn, calls.Proposal(tool, args, caller), POLICY)
    if call["status"] != "ready":
        return call
    return tool_runs.run_call(pool, str(call["id"]), clients).call


def test_without_acces_glpi_a_glpi_tool_is_refused_over_http_and_audited(app_client, conn, tech, glpi):
    caller, token = tech
    set_access(conn, caller.user_id, AccessRights(acces_glpi=False, clients_autorises=("*",),
                                                  categories_tickets=("*",)), actor="test")
    answer = app_client.simulate_post("/tools/glpi_get_ticket_details", json={"ticket_id": 1},
                                      headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403 and "acces_glpi" in answer.json["description"]
    assert "requesters" not in answer.text and glpi.state.calls.get("GET Ticket/1", 0) == 0
    audited = conn.execute("SELECT outcome, reason FROM safeguard_audit WHERE tool_name = 'glpi_get_ticket_details'")
    assert [r["outcome"] for r in audited] == ["refused"]


@pytest.mark.parametrize("as_wibot", [False, True])
def test_another_clients_ticket_is_refused_and_nothing_of_it_is_stored(conn, pool, clients, tech, glpi, as_wibot):
    caller, _ = tech
    if as_wibot:
        caller = Caller(kind="ai", username="wibot", persona="wibot", on_behalf_of=caller.user_id, accreditation=1)
    mine = run(conn, pool, clients, "glpi_get_ticket_details", {"ticket_id": 1}, caller)
    assert mine["status"] == "done" and mine["result"]["title"] == "Mot de passe oublié"
    other = run(conn, pool, clients, "glpi_get_ticket_details", {"ticket_id": 2}, caller)
    assert other["status"] == "failed" and "périmètre" in other["error"] and other["result"] is None
    wrong_category = run(conn, pool, clients, "glpi_get_ticket_details", {"ticket_id": 3}, caller)
    assert wrong_category["status"] == "failed"
    follow = run(conn, pool, clients, "glpi_add_ticket_followup", {"ticket_id": 2, "content": "vu"}, caller)
    assert follow["status"] in ("failed", "waiting_approval")
    assert glpi.state.calls.get("POST Ticket/2/ITILFollowup", 0) == 0 and glpi.state.calls.get("POST ITILFollowup", 0) == 0


def test_lists_are_filtered_to_the_users_clients_and_categories(conn, pool, clients, tech, glpi):
    caller, _ = tech
    tickets = run(conn, pool, clients, "glpi_search_new_tickets", {"minutes_since": 10080}, caller)["result"]
    assert sorted(t["id"] for t in tickets) == [1, 4]
    people = run(conn, pool, clients, "glpi_search_client", {"query": "clinique"}, caller)["result"]
    assert all("Clinique" not in (p["entity_name"] or "") for p in people)


def test_another_clinics_ad_card_is_refused_but_one_of_mine_is_read(conn, pool, clients, tech, glpi):
    caller, _ = tech
    mine = run(conn, pool, clients, "ad_check_user", {"username": "jdupont"}, caller)
    assert mine["status"] == "done" and mine["result"]["exists"]
    other = run(conn, pool, clients, "ad_check_user", {"username": "mmartin"}, caller)
    assert other["status"] == "failed" and other["result"] is None and "périmètre" in other["error"]
    found = run(conn, pool, clients, "ad_find_user_by_mail", {"email": "mmartin@clinique-parc.fr"}, caller)
    assert found["status"] == "done" and found["result"] is None


def test_system_work_is_not_filtered(conn, pool, clients, glpi):
    from widip.functions.callers import system_persona

    sentinel = system_persona("sentinel")
    read = run(conn, pool, clients, "glpi_get_ticket_details", {"ticket_id": 2}, sentinel)
    assert read["status"] == "done" and read["result"]["id"] == 2
