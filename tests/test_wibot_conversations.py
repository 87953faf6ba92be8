"""WIBOT conversations over HTTP (StubBroker, real database): ownership, memory, rights, retention."""

from __future__ import annotations

import pytest

from widip.functions.llm.base import Message
from widip.functions.wibot import memory, playbook


def test_recent_turns_are_kept_verbatim_within_the_budget_and_older_ones_summarized():
    turns = []
    for i in range(30):
        turns += [{"role": "user", "content": f"question {i} " + "x" * 300},
                  {"role": "assistant", "content": f"réponse {i} " + "y" * 300}]
    older, recent = memory.window(turns, memory.HISTORY_TOKENS["ollama"])
    assert older and recent and recent[0]["role"] == "user" and recent[-1] == turns[-1]
    assert sum(len(m["content"]) for m in recent) <= memory.HISTORY_TOKENS["ollama"] * memory.CHARS_PER_TOKEN
    summary = memory.summarize(older, memory.HISTORY_TOKENS["ollama"])
    assert summary.splitlines()[-1].startswith(f"- Question : question {len(older) // 2 - 1}")
    assert len(summary) <= memory.HISTORY_TOKENS["ollama"] * memory.SUMMARY_SHARE * memory.CHARS_PER_TOKEN
    # a bigger provider budget keeps more verbatim
    assert len(memory.window(turns, memory.HISTORY_TOKENS["anthropic"])[1]) > len(recent)


def test_the_rules_resolve_celui_la_to_the_last_entity_of_the_conversation():
    entities = memory.merge_entities({}, memory.extract_entities("état de rtr-lyon-01 ?"))
    entities = memory.merge_entities(entities, memory.extract_entities("", [("glpi_get_ticket_details",
                                                                              {"ticket_id": 42})]))
    note = memory.memory_message("", entities)
    messages = [Message("system", "Persona : wibot"), Message("system", note),
                Message("user", "et celui-là, il en est où ?")]
    assert "ticket 42" in playbook.resolve_reference(messages)
    device_first = memory.merge_entities(entities, memory.extract_entities("et l'équipement sw-paris-02 ?"))
    messages[1] = Message("system", memory.memory_message("", device_first))
    assert playbook.resolve_reference(messages).endswith("état de sw-paris-02")


def test_a_follow_up_question_is_read_against_the_previous_one():
    messages = [Message("user", "Comment configurer le VPN pour un nouvel EHPAD ?"), Message("assistant", "…"),
                Message("user", "et pour la clinique ?")]
    assert playbook.docs_query(messages) == "Comment configurer le VPN pour la clinique"
    assert playbook.docs_query(messages[:1]) == "Comment configurer le VPN pour un nouvel EHPAD ?"


@pytest.fixture
def api(app_client, stub_broker, people):
    return app_client


def post(api, who, path, body=None):
    return api.simulate_post(path, json=body, headers=who.headers)


def first_turn(api, who, content: str, broker, worker) -> tuple[str, dict]:
    """A new conversation whose first message ran until it rests; (conversation id, its events page)."""
    from tests.conftest import drain

    cid = post(api, who, "/conversations").json["id"]
    turn = post(api, who, f"/conversations/{cid}/messages", {"content": content}).json
    drain(broker, worker)
    return cid, api.simulate_get(turn["events_url"], headers=who.headers).json


def test_conversations_are_private_titled_by_their_first_message_and_listed_newest_first(api, people):
    first = post(api, people.tech, "/conversations").json["id"]
    second = post(api, people.tech, "/conversations", {"title": "Sauvegardes"}).json["id"]
    turn = post(api, people.tech, f"/conversations/{first}/messages", {"content": "Quels équipements sont en panne ?"})
    assert turn.status_code == 202 and set(turn.json) == {"session_id", "events_url"}
    listed = api.simulate_get("/conversations", headers=people.tech.headers).json["conversations"]
    assert [c["id"] for c in listed] == [first, second]
    assert listed[0]["title"] == "Quels équipements sont en panne ?" and listed[1]["title"] == "Sauvegardes"
    for path in (f"/conversations/{first}/messages", "/conversations/not-a-uuid/messages"):
        assert api.simulate_get(path, headers=people.approver.headers).status_code == 404
    # a second message while the first turn still runs is a clear 409
    again = post(api, people.tech, f"/conversations/{first}/messages", {"content": "et maintenant ?"})
    assert again.status_code == 409 and "still running" in again.json["description"]
    assert post(api, people.tech, f"/conversations/{first}/messages", {"content": ""}).status_code == 400


def test_the_system_prompt_states_the_users_rights_in_french(api, people, conn):
    cid = post(api, people.tech, "/conversations").json["id"]
    sid = post(api, people.tech, f"/conversations/{cid}/messages", {"content": "bonjour"}).json["session_id"]
    system = conn.execute("SELECT transcript->0->>'content' AS s FROM agent_sessions WHERE id = %s",
                          (sid,)).fetchone()["s"]
    assert "Utilisateur : Tech (identifiant tech), accréditation N1 (technicien)" in system
    assert "Droits : GLPI oui ; documentation publique ; clients autorisés : tous" in system
    assert "docs_search" in system and "Persona : wibot" in system


def test_conversations_idle_past_the_retention_are_deleted_with_their_session_text(api, people, conn):
    from widip.functions.wibot import conversations

    old = post(api, people.tech, "/conversations").json["id"]
    sid = post(api, people.tech, f"/conversations/{old}/messages", {"content": "ticket 42"}).json["session_id"]
    kept = post(api, people.tech, "/conversations").json["id"]
    conn.execute("UPDATE conversations SET last_activity_at = now() - interval '91 days' WHERE id = %s", (old,))
    assert conversations.purge_expired(conn, 90) == 1
    assert [r["id"] for r in conn.execute("SELECT id::text FROM conversations")] == [kept]
    session = conn.execute("SELECT transcript FROM agent_sessions WHERE id = %s", (sid,)).fetchone()
    assert session["transcript"] == []


def test_an_l3_pause_and_approval_resume_the_same_turn_and_the_next_one_refers_to_its_ticket(
        integrated_settings, stub_broker, stub_worker, people, glpi):
    from falcon.testing import TestClient

    from tests.conftest import drain
    from widip import deps as actor_deps
    from widip.http.app import build_context, create_app

    settings = integrated_settings.with_overrides(llm_provider="rules")
    api = TestClient(create_app(build_context(settings)))
    actor_deps.configure(settings)
    cid, events = first_turn(api, people.tech, "Crée un ticket pour l'imprimante en panne au 2e étage",
                             stub_broker, stub_worker)
    assert events["status"] == "waiting_approval"
    listing = api.simulate_get(f"/conversations/{cid}/messages", headers=people.tech.headers).json["messages"]
    assert [(m["role"], m["turn_status"]) for m in listing] == [("user", "waiting_approval")]
    request_id = events["events"][-1]["request_id"]
    assert api.simulate_post(f"/safeguard/requests/{request_id}/approve", json={},
                             headers=people.approver.headers).status_code == 200
    drain(stub_broker, stub_worker)
    listing = api.simulate_get(f"/conversations/{cid}/messages", headers=people.tech.headers).json["messages"]
    answer = listing[-1]
    assert answer["role"] == "assistant" and answer["session_id"] == events["session_id"]
    ticket_id = int(answer["content"].split("Ticket GLPI ")[1].split()[0])
    # "et celui-là ?" now means the ticket just created
    post(api, people.tech, f"/conversations/{cid}/messages", {"content": "et celui-là, il en est où ?"})
    drain(stub_broker, stub_worker)
    last = api.simulate_get(f"/conversations/{cid}/messages", headers=people.tech.headers).json["messages"][-1]
    assert last["content"].startswith(f"Ticket {ticket_id} ")


def test_a_documentation_answer_event_carries_the_citations_of_the_passages_it_quotes(
        api, people, conn, stub_broker, stub_worker):
    from widip.functions.docs import ingest
    from widip.functions.docs.citations import CITATION
    from widip.functions.docs.embedding import _spacy

    runbook = ("# VPN des sites\n\n## Nouvel EHPAD\n\nLe tunnel VPN d'un nouvel EHPAD se configure sur le "
               "concentrateur vpn-01 avec le profil site-medico.\n\n## Clinique\n\nUne clinique reçoit deux "
               "tunnels VPN redondants.\n")
    document = ingest.ingest_bytes(conn, source="runbooks/vpn-test.md", raw=runbook.encode(), fmt="markdown",
                                   embedder=_spacy(), actor="test")["document"]
    cid, events = first_turn(api, people.tech, "Comment configurer le VPN pour un nouvel EHPAD ?",
                             stub_broker, stub_worker)
    assert events["status"] == "completed"
    returned = next(e for e in events["events"] if e["type"] == "tool_result" and e["tool"] == "docs_search")
    answer = next(e for e in events["events"] if e["type"] == "response")
    quoted = list(dict.fromkeys(CITATION.findall(answer["message"])))
    assert quoted and [c["citation"] for c in answer["citations"]] == quoted
    assert {p["citation"] for p in returned["result"]["passages"]} >= set(quoted)
    ehpad = answer["citations"][0]
    assert ehpad == {"citation": ehpad["citation"], "document_id": document["id"], "title": "VPN des sites",
                     "heading": "VPN des sites > Nouvel EHPAD", "source": "runbooks/vpn-test.md"}
    # the conversation's assistant message links the same sources
    message = api.simulate_get(f"/conversations/{cid}/messages", headers=people.tech.headers).json["messages"][-1]
    assert message["role"] == "assistant" and message["citations"] == answer["citations"]
