"""GlpiClient against the GLPI simulator over a real socket: every operation, sessions, errors, paging."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from simulators.base import serve
from simulators.glpi import make_app
from simulators.glpi_state import State
from widip.config import Settings
from widip.errors import Invalid, Rejected, Unavailable
from widip.functions.integrations.glpi import GlpiClient
from widip.functions.integrations.glpi import api_url as api_url_of
from widip.functions.integrations.glpi_types import as_html, plain_text

APP, TOKEN, READONLY = "sim-app-token", "sim-user-token", "sim-readonly-token"


@pytest.fixture(scope="module")
def shared_sim():
    """One simulator for the module (stopping a server costs 0.5 s); its state is reset per test."""
    state = State()
    server = serve(make_app(state))
    yield state, server
    server.stop()


@pytest.fixture
def state(shared_sim):
    state = shared_sim[0]
    state.reset()
    state.seed_demo()
    return state


@pytest.fixture
def sim(shared_sim, state):
    return shared_sim[1]


def own_sim(**options):
    """A separate simulator, for tests that change its configuration or stop it."""
    state = State(**options)
    state.seed_demo()
    return state, serve(make_app(state))


@pytest.fixture
def api_url(sim):
    return sim.url + "/apirest.php"


@pytest.fixture
def client(api_url):
    client = GlpiClient(api_url, APP, TOKEN, timeout=5.0)
    yield client
    client.close()


def sim_post(sim, action, body=None):
    return httpx.post(f"{sim.url}/_sim/{action}", json=body or {}).json()


def calls(sim):
    return httpx.get(f"{sim.url}/_sim/calls").json()


def ticket_id(state, title):
    return next(t["id"] for t in state.items["Ticket"].values() if t["name"] == title)


# --- reading tickets ------------------------------------------------------------------------------

def test_search_new_tickets_lists_recent_new_tickets_oldest_first(client):
    tickets = client.search_new_tickets(minutes_since=60)
    assert [t.title for t in tickets] == [
        "Imprimante en panne", "Création de compte pour une nouvelle aide-soignante",
        "Mot de passe oublié", "Compte bloqué"]
    assert {t.status_label for t in tickets} == {"Nouveau"}
    assert [t.title for t in client.search_new_tickets(minutes_since=10)] == ["Compte bloqué"]


def test_recent_works_of_an_entity_are_its_open_tickets_and_its_live_changes(client, state):
    # Given, in entity 1, a processing ticket, a solved one, a change applied this morning and a cancelled one
    state.seed({"tickets": [{"entities_id": 1, "name": "Travaux électriques", "content": "Coupure prévue",
                             "status": 4, "minutes_ago": 600, "requester": "widip-api"},
                            {"entities_id": 1, "name": "Vieux ticket", "content": "Réglé", "status": 5,
                             "requester": "widip-api"}],
                "changes": [{"entities_id": 1, "name": "Firmware FortiGate", "content": "<p>Push 7.4</p>", "status": 5,
                             "minutes_ago": 120},
                            {"entities_id": 1, "name": "Migration annulée", "content": "x", "status": 13},
                            {"entities_id": 2, "name": "Autre entité", "content": "x", "status": 1}]})
    # When the client asks for the entity's recent works
    works = client.search_recent_works(1, days=3)
    # Then only what is still open (tickets) or not abandoned (changes) in that entity comes back, as plain text
    assert "Travaux électriques" in [t.title for t in works["tickets"]]
    assert "Vieux ticket" not in [t.title for t in works["tickets"]]
    assert [(c.itemtype, c.title, c.content, c.status, c.entity_id) for c in works["changes"]] == [
        ("Change", "Firmware FortiGate", "Push 7.4", 5, 1)]


def test_ticket_text_encoded_by_glpi_10_comes_back_as_plain_text(client, api_url, state):
    tid = ticket_id(state, "Mot de passe oublié")
    raw = httpx.get(f"{api_url}/Ticket/{tid}", headers={"App-Token": APP, "Session-Token": _session(api_url)})
    assert "&#60;p&#62;" in raw.json()["content"]  # the simulator really encodes, like GLPI 10
    unsanitized = httpx.get(f"{api_url}/Ticket/{tid}", headers={
        "App-Token": APP, "Session-Token": _session(api_url), "X-GLPI-Sanitized-Content": "false"})
    assert unsanitized.json()["content"].startswith("<p>Bonjour,</p>")

    ticket = client.get_ticket(tid)
    assert ticket.title == "Mot de passe oublié"
    assert ticket.content.startswith("Bonjour,\nJ'ai oublié mon mot de passe Windows")
    assert ticket.content.endswith("Merci, Jeanne Dupont & l'équipe de nuit")
    assert "<" not in ticket.content and "&#" not in ticket.content


def test_raw_html_from_glpi_11_is_also_made_plain():
    assert plain_text("<p>a &lt; b &amp; c</p><p>ligne<br>suivante</p>") == "a < b & c\nligne\nsuivante"
    assert plain_text("&#60;p&#62;a &#38;lt; b&#60;/p&#62;") == "a < b"
    assert as_html("Bonjour <Jeanne>,\n\nvoici & voilà") == "<p>Bonjour &lt;Jeanne&gt;,</p><p>voici &amp; voilà</p>"


def test_ticket_details_include_requester_with_email_entity_and_followups(client, state):
    tid = ticket_id(state, "Mot de passe oublié")
    client.add_ticket_followup(tid, "Nous avons bien reçu votre demande.\nUn technicien revient vers vous.")
    client.add_ticket_followup(tid, "Vérification AD en cours <script>", is_private=True)

    ticket = client.get_ticket_details(tid)
    (requester,) = ticket.requesters
    assert (requester.login, requester.email, requester.full_name) == (
        "jdupont", "jdupont@ehpad-tilleuls.fr", "Jeanne Dupont")
    assert requester.entity_name == "Entité racine > EHPAD Les Tilleuls"
    assert [(f.content, f.is_private) for f in ticket.followups] == [
        ("Nous avons bien reçu votre demande.\nUn technicien revient vers vous.", False),
        ("Vérification AD en cours <script>", True)]
    assert ticket.to_dict()["requesters"][0]["email"] == "jdupont@ehpad-tilleuls.fr"


def test_followup_without_text_is_refused_before_and_by_glpi(client, api_url, state):
    with pytest.raises(Invalid):
        client.add_ticket_followup(1, "   ")
    body = {"input": {"itemtype": "Ticket", "items_id": 1, "content": ""}}
    headers = {"App-Token": APP, "Session-Token": _session(api_url)}
    raw = httpx.post(f"{api_url}/ITILFollowup/", json=body, headers=headers)
    assert raw.status_code == 400
    assert raw.json() == ["ERROR_GLPI_ADD", "You can't add a followup without description"]
    with pytest.raises(Rejected) as err:
        client.add_ticket_followup(999, "Bonjour")
    assert err.value.code == "ERROR_GLPI_ADD"


# --- changing tickets -----------------------------------------------------------------------------

def test_close_ticket_closes_immediately_and_a_second_call_adds_nothing(client, sim, state):
    tid = ticket_id(state, "Compte bloqué")
    closed = client.close_ticket(tid, "Compte débloqué dans l'AD.")
    assert (closed.status, closed.status_label) == (6, "Clos")
    assert client.close_ticket(tid, "Compte débloqué dans l'AD.").status == 6
    assert calls(sim)["POST ITILSolution"] == 1


def test_close_ticket_without_immediate_autoclose_leaves_it_solved():
    state, server = own_sim(autoclose_immediately=False)
    try:
        with GlpiClient(server.url + "/apirest.php", APP, TOKEN, timeout=5) as client:
            solved = client.close_ticket(ticket_id(state, "Compte bloqué"), "Débloqué")
        assert (solved.status, solved.status_label) == (5, "Résolu")
    finally:
        server.stop()


def test_assign_ticket_moves_a_new_ticket_to_processing_once(client, sim, state):
    tid = ticket_id(state, "Imprimante en panne")
    first = client.assign_ticket(tid, 3)
    assert client.assign_ticket(tid, 3) == first
    ticket = client.get_ticket_details(tid)
    assert (ticket.status_label, ticket.assigned_user_ids) == ("En cours (attribué)", (3,))
    assert calls(sim)["POST Ticket_User"] == 1


def test_update_ticket_changes_safe_fields_and_refuses_others(client, sim, state):
    tid = ticket_id(state, "Imprimante en panne")
    updated = client.update_ticket(tid, {"urgency": 5, "impact": 5, "name": "Imprimante 2e étage en panne"})
    assert (updated.urgency, updated.priority, updated.title) == (5, 5, "Imprimante 2e étage en panne")
    with pytest.raises(Invalid):
        client.update_ticket(tid, {"entities_id": 2})
    with pytest.raises(Invalid):
        client.update_ticket(tid, {"status": 9})
    assert calls(sim)["PUT Ticket/{id}"] == 1


def test_created_ticket_is_found_again_by_its_marker(client, state):
    marker = "[widip:call_42]"
    assert client.find_tickets_by_marker(marker) == []
    tid = client.create_ticket("Routeur injoignable", f"Le routeur ne répond plus.\n\n{marker}", 4,
                               category=4, entity=3, requester=8)
    client.create_ticket("Autre", "Rien à voir [widip:callX42]", 2)  # LIKE's _ wildcard must not match

    assert client.find_tickets_by_marker(marker) == [tid]
    details = client.get_ticket_details(tid)
    assert (details.title, details.urgency, details.entity_id, details.category_id) == ("Routeur injoignable", 4, 3, 4)
    assert details.content == f"Le routeur ne répond plus.\n{marker}"
    assert [u.login for u in details.requesters] == ["pbernard"]


def test_deleted_ticket_goes_to_the_trash(client, state):
    marker = "[widip:call-del-1]"
    tid = client.create_ticket("Doublon", f"À supprimer {marker}", 3)
    assert client.delete_ticket(tid) is True
    assert client.get_ticket(tid).is_deleted
    assert client.find_tickets_by_marker(marker) == []
    assert tid not in [t.id for t in client.search_new_tickets(60)]


# --- users ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, logins", [
    ("Jeanne Dupont", ["jdupont"]),
    ("dupont", ["jdupont"]),
    ("MMARTIN@clinique-parc.fr", ["mmartin"]),
    ("03 87 55 60", ["lpetit", "pbernard"]),
    ("tilleuls", ["jdupont", "slefebvre"]),
    ("personne inconnue", []),
])
def test_search_client_matches_name_email_or_phone(client, query, logins):
    users = client.search_client(query)
    assert [u.login for u in users] == logins
    if users:
        assert users[0].entity_name.startswith("Entité racine > ")


def test_get_user_lists_every_email_default_first(client):
    user = client.get_user(5)
    assert (user.email, user.emails) == ("direction@ehpad-tilleuls.fr",
                                         ("direction@ehpad-tilleuls.fr", "s.lefebvre@ehpad-tilleuls.fr"))
    assert user.to_dict()["emails"] == ["direction@ehpad-tilleuls.fr", "s.lefebvre@ehpad-tilleuls.fr"]
    assert user.entity_id == 1


# --- sessions -------------------------------------------------------------------------------------

def test_ping_reports_latency_and_profile(client):
    ping = client.ping()
    assert ping.profiles == ("Super-Admin",)
    assert 0 < ping.latency_ms < 2000


def test_expired_session_is_renewed_transparently(client, sim):
    client.ping()
    assert sim_post(sim, "expire_sessions")["expired"] == 1
    assert client.get_ticket(1).id == 1
    assert calls(sim)["GET initSession"] == 2


def test_threads_share_one_session(api_url, sim):
    client = GlpiClient(api_url, APP, TOKEN, timeout=5)
    errors = []
    threads = [threading.Thread(target=lambda: _safe(client.ping, errors)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and calls(sim)["GET initSession"] == 1
    client.close()


def test_close_kills_the_session(api_url, state):
    client = GlpiClient(api_url, APP, TOKEN, timeout=5)
    client.ping()
    assert len(state.sessions) == 1
    client.close()
    assert state.sessions == {}


def test_from_settings_uses_glpi_settings(sim):
    assert api_url_of("https://glpi.example/glpi/") == "https://glpi.example/glpi/apirest.php"
    assert api_url_of("https://glpi.example/api") == "https://glpi.example/api"
    settings = Settings(database_url="postgresql:///x", redis_url="redis://localhost", glpi_url=sim.url,
                        glpi_app_token=APP, glpi_user_token=TOKEN, integration_timeout_seconds=3)
    with GlpiClient.from_settings(settings) as client:
        assert client.get_ticket(1).title == "Mot de passe oublié"


# --- errors ---------------------------------------------------------------------------------------

def test_bad_user_token_is_rejected_without_leaking_it(api_url):
    with GlpiClient(api_url, APP, "wrong-secret-token", timeout=5) as client:
        with pytest.raises(Rejected) as err:
            client.ping()
    assert (err.value.status_code, err.value.code) == (401, "ERROR_GLPI_LOGIN_USER_TOKEN")
    assert "wrong-secret-token" not in str(err.value)


def test_wrong_app_token_is_rejected(api_url):
    with GlpiClient(api_url, "not-the-app-token", TOKEN, timeout=5) as client:
        with pytest.raises(Rejected) as err:
            client.ping()
    assert (err.value.status_code, err.value.code) == (400, "ERROR_WRONG_APP_TOKEN_PARAMETER")


def test_missing_rights_are_rejected_with_glpi_codes(api_url):
    with GlpiClient(api_url, APP, READONLY, timeout=5) as client:
        assert client.get_ticket(1).id == 1
        with pytest.raises(Rejected) as err:
            client.get_user(4)
        assert (err.value.status_code, err.value.code) == (403, "ERROR_RIGHT_MISSING")
        with pytest.raises(Rejected) as err:
            client.create_ticket("Test", "Lecture seule", 3)
        assert (err.value.status_code, err.value.code) == (400, "ERROR_GLPI_ADD")
        assert "permission" in err.value.message


def test_unknown_items_are_rejected_with_glpi_codes(client):
    with pytest.raises(Rejected) as err:
        client.get_ticket(999)
    assert (err.value.status_code, err.value.code) == (404, "ERROR_ITEM_NOT_FOUND")
    with pytest.raises(Rejected) as err:
        client.update_ticket(999, {"urgency": 2})
    assert (err.value.status_code, err.value.code) == (400, "ERROR_GLPI_UPDATE")


def test_an_already_solved_ticket_cannot_take_a_second_solution(api_url, state):
    tid = ticket_id(state, "Compte bloqué")
    headers = {"App-Token": APP, "Session-Token": _session(api_url)}
    body = {"input": {"itemtype": "Ticket", "items_id": tid, "content": "ok"}}
    assert httpx.post(f"{api_url}/ITILSolution/", json=body, headers=headers).status_code == 201
    again = httpx.post(f"{api_url}/ITILSolution/", json=body, headers=headers)
    assert again.status_code == 400 and again.json()[0] == "ERROR_GLPI_ADD"
    assert "already solved" in again.json()[1]


# --- paging ---------------------------------------------------------------------------------------

def test_search_and_sub_items_follow_206_pages_up_to_the_limit(api_url, sim, state):
    state.seed({"tickets": [{"name": f"Demande {i}", "requester": "cmoreau", "minutes_ago": 30 - i,
                             "content": "<p>Écran noir</p>"} for i in range(12)]})
    tid = ticket_id(state, "Mot de passe oublié")
    with GlpiClient(api_url, APP, TOKEN, timeout=5, page_size=5) as client:
        for i in range(7):
            client.add_ticket_followup(tid, f"Suivi {i}")
        tickets = client.search_new_tickets(60, limit=14)
        assert len(tickets) == 14 and len({t.id for t in tickets}) == 14
        assert calls(sim)["GET search/Ticket"] == 3  # 5 + 5 + 4
        assert len(client.search_new_tickets(60, limit=50)) == 16
        assert [f.content for f in client.get_ticket_details(tid).followups] == [f"Suivi {i}" for i in range(7)]


def test_empty_search_has_no_data_and_partial_page_is_206(api_url):
    headers = {"App-Token": APP, "Session-Token": _session(api_url)}
    empty = httpx.get(f"{api_url}/search/Ticket", headers=headers, params={
        "criteria[0][field]": 1, "criteria[0][searchtype]": "contains", "criteria[0][value]": "introuvable"})
    assert empty.status_code == 200 and "data" not in empty.json() and "Content-Range" not in empty.headers
    page = httpx.get(f"{api_url}/Ticket/", headers=headers, params={"range": "0-1"})
    assert (page.status_code, page.headers["Content-Range"], len(page.json())) == (206, "0-1/5", 2)


# --- outages --------------------------------------------------------------------------------------

def test_slow_glpi_becomes_unavailable_within_the_timeout(api_url, sim):
    sim_post(sim, "fault", {"delay_seconds": 3})
    client = GlpiClient(api_url, APP, TOKEN, timeout=1.0)
    started = time.perf_counter()
    with pytest.raises(Unavailable):
        client.get_ticket(1)
    assert time.perf_counter() - started < 2.0
    sim_post(sim, "fault", {"clear": True})
    assert client.get_ticket(1).id == 1
    client.close()


def test_server_errors_are_unavailable(client, sim):
    sim_post(sim, "fault", {"status": 503, "times": 1})
    with pytest.raises(Unavailable) as err:
        client.ping()
    assert err.value.status_code == 503
    assert client.ping().profiles == ("Super-Admin",)


def test_stopped_glpi_is_unavailable():
    _, server = own_sim()
    client = GlpiClient(server.url + "/apirest.php", APP, TOKEN, timeout=2.0)
    assert client.ping().profiles == ("Super-Admin",)
    server.stop()
    started = time.perf_counter()
    with pytest.raises(Unavailable):
        client.get_ticket(1)
    assert time.perf_counter() - started < 3.0
    client.close()


def _session(api_url):
    response = httpx.get(f"{api_url}/initSession", headers={"App-Token": APP, "Authorization": f"user_token {TOKEN}"})
    return response.json()["session_token"]


def _safe(fn, errors):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)
