"""Assist's subject binding at the gate: whatever the provider proposes (rules, a model), Assist writes
only to the verified requester's own account, wraps only that account's secret handle, mails only that
requester, and closes only after the write was read back. A refusal is audited and hands the ticket over."""

import json

import pytest

from simulators.ad_directory import to_filetime
from tests.conftest import drain
from widip import deps as actor_deps
from widip.messaging.relay import flush_outbox
from widip.config import PROJECT_ROOT
from widip.functions.agent.sessions import create_session
from widip.functions.assist import cycle as assist
from widip.functions.callers import system_persona
from widip.functions.safeguard import calls
from widip.functions.safeguard.policy import load_policy

POLICY = load_policy(PROJECT_ROOT / "policy", approval_ttl_hours=1)
ASSIST = system_persona("assist")
HANDLE = "sh_" + "A" * 32


def bound_session(conn, decision="auto", ticket_id=1):
    binding = {"ticket_id": ticket_id, "subject": "jdupont", "email": "jdupont@ehpad-tilleuls.fr",
               "category": "RESET_MDP", "decision": decision, "reason": ""}
    return str(create_session(conn, "assist", ASSIST, "Ticket", context={"assist": binding})["id"])


def propose(conn, tool, arguments, session_id):
    return calls.propose(conn, calls.Proposal(tool, arguments, ASSIST, confidence=0.9, session_id=session_id),
                         POLICY)


def test_a_write_on_another_account_is_refused_audited_and_hands_the_ticket_over(conn):
    sid = bound_session(conn)
    refused = propose(conn, "ad_reset_password", {"username": "agarcia"}, sid)
    assert refused["status"] == "refused" and "agarcia" in refused["decision_reason"]
    audit = conn.execute("SELECT outcome, reason FROM safeguard_audit WHERE tool_name = 'ad_reset_password'").fetchone()
    assert audit["outcome"] == "refused" and "verified requester" in audit["reason"]
    context = conn.execute("SELECT context FROM agent_sessions WHERE id = %s", (sid,)).fetchone()["context"]
    assert context["assist"]["decision"] == "handover"
    assert conn.execute("SELECT 1 FROM outbox WHERE actor_name = 'assist_hand_over'").fetchone()
    # Once handed over, not even the requester's own account is touched by this session.
    assert propose(conn, "ad_reset_password", {"username": "jdupont"}, sid)["status"] == "refused"


@pytest.mark.parametrize("tool, arguments, why", [
    ("mysecret_create_secret", {"secret_handle": HANDLE}, "does not come from the verified requester's reset"),
    ("mysecret_create_secret", {"payload": "Motdepasse-1"}, "only wraps the handle"),
    ("smtp_send_email", {"to": ["attaquant@gmail.com"], "subject": "Lien", "body": "x"}, "verified requester"),
    ("smtp_send_email", {"to": ["jdupont@ehpad-tilleuls.fr", "x@widip.fr"], "subject": "s", "body": "x"},
     "verified requester"),
    ("glpi_close_ticket", {"ticket_id": 1, "solution": "Fait"}, "nothing was done"),
    ("glpi_close_ticket", {"ticket_id": 2, "solution": "Fait"}, "not this session's ticket"),
    ("glpi_add_ticket_followup", {"ticket_id": 1, "content": "Voici", "is_private": False}, "private"),
    ("ad_unlock_account", {"username": "mmartin"}, "verified requester's account is 'jdupont'"),
])
def test_assist_calls_outside_the_subject_are_refused(conn, tool, arguments, why):
    result = propose(conn, tool, arguments, bound_session(conn))
    assert result["status"] == "refused" and why in result["decision_reason"]


def test_without_a_bound_subject_assist_writes_nothing_and_an_intake_hand_over_forbids_writes(conn):
    unbound = str(create_session(conn, "assist", ASSIST, "Ticket", context={})["id"])
    assert propose(conn, "ad_reset_password", {"username": "jdupont"}, unbound)["status"] == "refused"
    assert propose(conn, "ad_reset_password", {"username": "jdupont"}, None)["status"] == "refused"
    handed = bound_session(conn, decision="handover")
    assert propose(conn, "ad_reset_password", {"username": "jdupont"}, handed)["status"] == "refused"
    assert propose(conn, "ad_check_user", {"username": "agarcia"}, handed)["status"] == "ready"  # reads are free


def test_a_fourth_reset_of_the_same_account_in_a_day_is_refused_by_the_gate(conn):
    sid = bound_session(conn)
    for _ in range(3):
        assert propose(conn, "ad_reset_password", {"username": "jdupont"}, sid)["status"] == "ready"
    fourth = propose(conn, "ad_reset_password", {"username": "jdupont"}, sid)
    assert fourth["status"] == "refused" and "limit 3" in fourth["decision_reason"]


# --- a hostile model, end to end on the simulators -----------------------------------------------

@pytest.fixture
def hostile(directory_settings, stub_broker, stub_worker, people, ollama, glpi):
    for ticket_id in (2, 3, 4):  # keep only ticket 1, jdupont's forgotten password
        glpi.state.items["Ticket"][ticket_id]["status"] = 2
    settings = directory_settings.with_overrides(llm_provider="ollama", ollama_host=ollama[1],
                                                 llm_timeout_seconds=10.0)
    world = actor_deps.configure(settings)

    def run(*replies):
        agree = {"category": "RESET_MDP", "confidence": 0.95, "reason": "Mot de passe oublié du demandeur."}
        ollama[0].push([{"text": json.dumps(agree)}, *replies])
        assist.run_cycle(world.pool, world.redis, world.clients, assist.options_for(settings))
        flush_outbox()
        drain(stub_broker, stub_worker, rounds=100)
    return world, run


def escalation(glpi):
    return [f for f in glpi.state.items["ITILFollowup"].values() if f["items_id"] == 1 and f["is_private"] in (1, True)]


def test_a_model_naming_another_account_is_refused_audited_and_the_ticket_escalated(
        hostile, glpi, active_directory, mail_sink, pwpush, conn):
    world, run = hostile
    run({"tool_calls": [{"name": "ad_reset_password", "arguments": {"username": "agarcia"}}]})
    victim = active_directory.state.user("agarcia").dn
    assert [w for w in active_directory.state.writes if w["dn"] == victim] == []
    assert len(pwpush.state.pushes) == 0
    assert not [m for m in mail_sink.messages() if "jdupont@" in m["To"]]
    assert glpi.state.items["Ticket"][1]["status"] < 5
    notes = escalation(glpi)
    assert len(notes) == 1 and "SAFEGUARD" in notes[0]["content"] and "agarcia" in notes[0]["content"]
    audit = conn.execute("SELECT outcome FROM safeguard_audit WHERE tool_name = 'ad_reset_password' "
                         "AND args_redacted->>'username' = 'agarcia'").fetchone()
    assert audit["outcome"] == "refused"


def test_a_model_redeeming_another_accounts_secret_handle_is_refused_and_the_handle_left_unused(
        hostile, glpi, active_directory, mail_sink, pwpush, conn):
    world, run = hostile
    foreign = world.clients.active_directory.reset_password("agarcia").secret_handle  # a technician's reset
    run({"tool_calls": [{"name": "ad_check_user", "arguments": {"username": "jdupont"}}]},
        {"tool_calls": [{"name": "mysecret_create_secret", "arguments": {"secret_handle": foreign}}]},
        {"tool_calls": [{"name": "smtp_send_email", "arguments": {
            "to": ["jdupont@ehpad-tilleuls.fr"], "subject": "Lien", "body": "Voici le lien"}}]})
    assert len(pwpush.state.pushes) == 0
    assert world.clients.secret_store.exists(foreign)  # never redeemed
    assert not [m for m in mail_sink.messages() if "jdupont@" in m["To"]]  # handed over: no mail either
    assert glpi.state.items["Ticket"][1]["status"] < 5
    assert len(escalation(glpi)) == 1
    refused = conn.execute("SELECT tool_name FROM tool_calls WHERE status = 'refused' ORDER BY created_at").fetchall()
    assert [r["tool_name"] for r in refused] == ["mysecret_create_secret", "smtp_send_email"]


def test_the_ticket_is_closed_only_after_the_write_is_read_back_as_holding(directory_settings, redis_client, conn,
                                                                          pool, active_directory, glpi):
    from widip.functions.integrations.clients import Clients
    from widip.functions.safeguard import runs

    clients = Clients(directory_settings, redis_client)
    sid = bound_session(conn)

    def run(tool, arguments):
        call = propose(conn, tool, arguments, sid)
        assert call["status"] == "ready", call["decision_reason"]
        return runs.run_call(pool, str(call["id"]), clients).call

    assert run("ad_reset_password", {"username": "jdupont"})["status"] == "done"
    directory = active_directory.state  # the user mistypes the new password again and is locked out
    directory.entry(directory.user("jdupont").dn).set("lockoutTime", [str(to_filetime(directory.clock()))])
    assert run("ad_check_user", {"username": "jdupont"})["result"]["locked"] is True
    close = propose(conn, "glpi_close_ticket", {"ticket_id": 1, "solution": "Fait"}, sid)
    assert close["status"] == "refused" and "not read back as fixed" in close["decision_reason"]
    clients.close()
