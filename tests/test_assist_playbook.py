"""The Assist rules playbook end to end on the simulators: a forgotten password and a locked account are
handled for the GLPI requester (found in AD by e-mail, never by a name in the text), other tickets are
escalated with a private follow-up. No LLM: this is the degraded mode doing real work."""

import pytest
from falcon.testing import TestClient

from tests.conftest import drain
from widip import deps as actor_deps
from widip.messaging.relay import flush_outbox
from widip.functions import db, job_table, outbox
from widip.functions.agent.sessions import create_session
from widip.functions.callers import system_persona
from widip.functions.assist.playbook import classify
from widip.http.app import build_context, create_app


@pytest.mark.parametrize("text, category", [
    ("Mot de passe oublié", "RESET_MDP"), ("J'ai oublié mon mdp", "RESET_MDP"),
    ("Compte bloqué depuis ce matin", "DEBLOCAGE_COMPTE"), ("Session verrouillée", "DEBLOCAGE_COMPTE"),
    ("Création de compte pour une nouvelle aide-soignante", "CREATION_COMPTE"),
    ("Imprimante en panne", "AUTRE"), ("", "AUTRE"),
])
def test_tickets_are_classified_by_french_keywords(text, category):
    assert classify(text) == category


@pytest.fixture
def assist(directory_settings, stub_broker, people):
    settings = directory_settings.with_overrides(llm_provider="rules")
    TestClient(create_app(build_context(settings)))
    actor_deps.configure(settings)
    return settings


def handle(settings, ticket_id, requester):
    with db.connect(settings.database_url) as conn:
        session = create_session(conn, "assist", system_persona("assist"), f"Ticket GLPI {ticket_id} à traiter",
                                 context={"verified_requester": requester})
        outbox.add(conn, job_table.CONTINUE_SESSION, {"session_id": str(session["id"])})
    flush_outbox()
    return str(session["id"])


def session_status(settings, sid):
    with db.connect(settings.database_url) as conn:
        return conn.execute("SELECT status, result FROM agent_sessions WHERE id = %s", (sid,)).fetchone()


def test_a_forgotten_password_is_reset_linked_mailed_and_the_ticket_closed(assist, stub_broker, stub_worker, glpi,
                                                                        active_directory, pwpush, mail_sink):
    sid = handle(assist, 1, "jdupont@ehpad-tilleuls.fr")
    drain(stub_broker, stub_worker)
    assert session_status(assist, sid)["status"] == "completed"
    assert glpi.state.items["Ticket"][1]["status"] in (5, 6)
    to_requester = [m for m in mail_sink.messages() if "jdupont@ehpad-tilleuls.fr" in m["To"]]
    assert len(to_requester) == 1 and "/p/" in to_requester[0].get_content()
    assert len(pwpush.state.pushes) == 1
    assert actor_deps.deps().clients.active_directory.check_user("jdupont").must_change_password is True


def test_a_locked_account_is_unlocked_and_the_requester_told(assist, stub_broker, stub_worker, glpi,
                                                            active_directory, pwpush, mail_sink):
    sid = handle(assist, 2, "mmartin@clinique-parc.fr")
    drain(stub_broker, stub_worker)
    assert session_status(assist, sid)["status"] == "completed"
    assert glpi.state.items["Ticket"][2]["status"] in (5, 6), session_status(assist, sid)["result"]
    told = [m for m in mail_sink.messages() if "mmartin@clinique-parc.fr" in m["To"]]
    assert len(told) == 1 and "déverrouillé" in told[0]["Subject"]
    assert len(pwpush.state.pushes) == 0


def test_an_account_creation_is_escalated_with_a_private_follow_up(assist, stub_broker, stub_worker, glpi,
                                                                  active_directory, mail_sink):
    sid = handle(assist, 3, "requester@ehpad-tilleuls.fr")
    drain(stub_broker, stub_worker)
    assert session_status(assist, sid)["status"] == "completed"
    followups = [f for f in glpi.state.items["ITILFollowup"].values() if f["items_id"] == 3]
    assert len(followups) == 1 and followups[0]["is_private"] in (1, True)
    assert "technicien" in followups[0]["content"]
    assert glpi.state.items["Ticket"][3]["status"] == 1
    assert not [m for m in mail_sink.messages() if "requester@" in m["To"]]
