"""WIBOT end to end on real processes (gunicorn web, dramatiq worker and llm on the Redis broker):
conversations with memory, documentation answers with citations from the rules provider and from
the Anthropic and Ollama simulators scripted to call docs_search, rights filtered in SQL."""

from __future__ import annotations

import httpx
import pytest

from simulators import anthropic as anthropic_sim
from simulators import ollama as ollama_sim
from simulators.base import serve
from tests.stack import poll
from widip.config import PROJECT_ROOT
from widip.functions.docs import ingest
from widip.functions.docs.embedding import OllamaEmbedder, _spacy
from widip.functions.wibot.prompt import REFUSAL

pytestmark = pytest.mark.e2e
RUNBOOKS = PROJECT_ROOT / "docs" / "runbooks"
SECRET = "# Coffre VPN\n\n## EHPAD\n\nLe code d'urgence du VPN des EHPAD est 4242-ALPHA, à ne jamais communiquer.\n"
EMBED_MODEL = "nomic-embed-text"


@pytest.fixture(scope="module")
def llm_sims():
    states = {"ollama": ollama_sim.State().seed_demo(), "anthropic": anthropic_sim.State().seed_demo()}
    servers = {name: serve((ollama_sim if name == "ollama" else anthropic_sim).make_app(state))
               for name, state in states.items()}
    yield {name: (servers[name].url, states[name]) for name in states}
    for server in servers.values():
        server.stop()


def provider_env(kind: str, llm_sims) -> dict:
    if kind == "ollama":  # the embeddings come from Ollama's /api/embed too
        return {"LLM_PROVIDER": "ollama", "OLLAMA_HOST": llm_sims["ollama"][0], "OLLAMA_EMBED_MODEL": EMBED_MODEL,
                "LLM_TIMEOUT_SECONDS": "20"}
    return {"LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": anthropic_sim.DEFAULT_API_KEY,
            "ANTHROPIC_BASE_URL": llm_sims["anthropic"][0], "LLM_TIMEOUT_SECONDS": "20"}


def start(stack, *names: str, **env: str) -> None:
    """Start the processes, web last; on a loaded machine give web's first boot up to 2 minutes."""
    others = [n for n in names if n != "web"]
    if others:
        stack.start(*others, **env)
    try:
        stack.start("web", **env)
    except TimeoutError:
        stack.wait_http("/health", timeout=120)


def chat(stack, who, content: str, conversation_id: str | None = None) -> tuple[str, dict]:
    """Send one message (opening a conversation if needed); wait for its answer; return (id, answer)."""
    if conversation_id is None:
        created = httpx.post(stack.url + "/conversations", headers=who.headers, timeout=10)
        assert created.status_code == 201, created.text
        conversation_id = created.json()["id"]
    sent = httpx.post(f"{stack.url}/conversations/{conversation_id}/messages", json={"content": content},
                      headers=who.headers, timeout=10)
    assert sent.status_code == 202, sent.text
    turn = sent.json()
    assert set(turn) == {"session_id", "events_url"}
    assert turn["events_url"] == f"/agent/sessions/{turn['session_id']}/events"
    listing = poll(lambda: httpx.get(f"{stack.url}/conversations/{conversation_id}/messages", headers=who.headers,
                                     timeout=10).json(),
                   lambda body: any(m["role"] == "assistant" and m["session_id"] == turn["session_id"]
                                    for m in body["messages"]), timeout=60, interval=0.3)
    answer = next(m for m in listing["messages"] if m["role"] == "assistant" and m["session_id"] == turn["session_id"])
    return conversation_id, {**answer, "events_url": turn["events_url"]}


def chat_bodies(requests: list[dict]) -> str:
    """What the model was sent (the Ollama simulator also logs the embedding requests of ingestion)."""
    return " ".join(str(r["body"]) for r in requests if r["path"] in ("/api/chat", "/v1/messages"))


def headings(answer: dict) -> list[str]:
    return [c["heading"] for c in answer["citations"]]


def test_a_two_turn_conversation_answers_from_the_runbooks_with_citations_and_stays_private(stack, people, conn):
    ingest.ingest_tree(conn, [RUNBOOKS], _spacy(), actor="test")
    start(stack, "web", "worker", "llm", LLM_PROVIDER="rules")
    # Given a technician asking a documentation question
    conversation_id, first = chat(stack, people.tech, "Comment configurer le VPN pour un nouvel EHPAD ?")
    # Then the rules quote the runbook and cite the passage
    assert first["content"].startswith("D'après la documentation")
    assert any(h.endswith("Spécificités EHPAD") for h in headings(first)), first
    assert all(f"[{c['citation']}]" in first["content"] for c in first["citations"])
    events = httpx.get(stack.url + first["events_url"], headers=people.tech.headers, timeout=10).json()["events"]
    results = [e for e in events if e["type"] == "tool_result" and e.get("tool") == "docs_search"]
    assert results and {p["citation"] for p in results[0]["result"]["passages"]} >= \
        {c["citation"] for c in first["citations"]}
    # When the follow-up only makes sense with the first question
    _, second = chat(stack, people.tech, "et pour la clinique ?", conversation_id)
    # Then it is answered about the clinic's VPN
    assert any(h.endswith("Spécificités clinique") for h in headings(second)), second
    assert "tunnels IPsec" in second["content"] or "deux concentrateurs" in second["content"]
    mine = httpx.get(stack.url + "/conversations", headers=people.tech.headers, timeout=10).json()["conversations"]
    assert [c["title"] for c in mine] == ["Comment configurer le VPN pour un nouvel EHPAD ?"]
    # Another user's view of it: 404 everywhere
    base = f"{stack.url}/conversations/{conversation_id}"
    assert httpx.get(base + "/messages", headers=people.approver.headers).status_code == 404
    assert httpx.post(base + "/messages", json={"content": "et moi ?"}, headers=people.approver.headers).status_code == 404
    assert httpx.delete(base, headers=people.approver.headers).status_code == 404
    assert httpx.get(stack.url + "/conversations", headers=people.approver.headers).json()["conversations"] == []
    # The owner deletes it: gone, with what its turns recorded
    assert httpx.delete(base, headers=people.tech.headers).status_code == 204
    assert httpx.get(base + "/messages", headers=people.tech.headers).status_code == 404
    assert conn.execute("SELECT count(*) AS n FROM agent_events WHERE session_id = %s",
                        (first["session_id"],)).fetchone()["n"] == 0


@pytest.mark.parametrize("kind", ["anthropic", "ollama"])
def test_a_model_calling_docs_search_gets_cited_passages_and_never_a_confidential_one(kind, stack, people, conn,
                                                                                       llm_sims):
    url, state = llm_sims[kind]
    state.reset()
    embedder = OllamaEmbedder(url, EMBED_MODEL) if kind == "ollama" else _spacy()
    ingest.ingest_tree(conn, [RUNBOOKS], embedder, actor="test")
    ingest.ingest_bytes(conn, source="coffre.md", raw=SECRET.encode(), fmt="markdown", embedder=embedder,
                        doc_class="confidential", actor="test")
    ehpad = conn.execute("SELECT citation FROM chunks WHERE heading LIKE '%%Spécificités EHPAD'").fetchone()["citation"]
    search = {"tool_calls": [{"name": "docs_search", "arguments": {"query": "code d'urgence du VPN des EHPAD"}}]}
    reply = {"text": f"Pour un EHPAD : VLAN 10 et 20, clé 4G de secours [{ehpad}]."}
    state.push([search, reply, search, reply])
    start(stack, "web", "worker", "llm", **provider_env(kind, llm_sims))
    # Given a technician without acces_confidential
    _, answer = chat(stack, people.tech, "Quel est le code d'urgence du VPN des EHPAD ?")
    assert [c["citation"] for c in answer["citations"]] == [ehpad] and ehpad in answer["content"]
    seen = chat_bodies(state.requests)
    # Then the model saw the rights-shaped prompt and the runbook passage, never the confidential one
    assert "accréditation N1" in seen and "Droits : GLPI oui" in seen
    assert ehpad in seen and "4242-ALPHA" not in seen
    # ...while an administrator with acces_confidential does get it (the filter is what made the difference)
    conn.execute("UPDATE access_matrix SET acces_confidential = true WHERE username = 'admin'")
    before = len(state.requests)
    chat(stack, people.admin, "Quel est le code d'urgence du VPN des EHPAD ?")
    assert "4242-ALPHA" in chat_bodies(state.requests[before:])


def test_a_user_whose_rights_grant_nothing_gets_the_refusal_without_any_model_call(stack, people, conn, llm_sims):
    url, state = llm_sims["anthropic"]
    state.reset()
    conn.execute("UPDATE access_matrix SET acces_glpi = false, acces_base_docs = false WHERE username = 'tech'")
    start(stack, "web", **provider_env("anthropic", llm_sims))
    _, answer = chat(stack, people.tech, "Comment configurer le VPN pour un nouvel EHPAD ?")
    assert answer["content"] == REFUSAL
    assert state.requests == []
