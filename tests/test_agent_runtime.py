"""Agent sessions end to end on the StubBroker: events in order, tool calls through the gate, L3 pause and
resume, against the rules provider and the Ollama and Anthropic simulators (real client libraries)."""

import httpx
import pytest
from falcon.testing import TestClient

from simulators import anthropic as anthropic_sim
from simulators import ollama as ollama_sim
from simulators.base import serve
from tests.conftest import drain
from widip import deps as actor_deps
from widip.http.app import build_context, create_app


@pytest.fixture(scope="module")
def llm_sims():
    ollama_state, anthropic_state = ollama_sim.State().seed_demo(), anthropic_sim.State("sk-ant-test")
    servers = serve(ollama_sim.make_app(ollama_state)), serve(anthropic_sim.make_app(anthropic_state))
    yield {"ollama": (servers[0].url, ollama_state), "anthropic": (servers[1].url, anthropic_state)}
    for server in servers:
        server.stop()


def provider_settings(kind, llm_sims):
    if kind == "rules":
        return {"llm_provider": "rules"}
    if kind == "ollama":
        return {"llm_provider": "ollama", "ollama_host": llm_sims["ollama"][0], "llm_timeout_seconds": 5.0}
    return {"llm_provider": "anthropic", "anthropic_api_key": "sk-ant-test",
            "anthropic_base_url": llm_sims["anthropic"][0], "llm_timeout_seconds": 5.0}


def script(kind, llm_sims, replies):
    if kind != "rules":
        state = llm_sims[kind][1]
        state.reset()
        state.push(replies)


@pytest.fixture
def make_api(integrated_settings, stub_broker, llm_sims):
    def build(kind):
        settings = integrated_settings.with_overrides(**provider_settings(kind, llm_sims))
        client = TestClient(create_app(build_context(settings)))
        actor_deps.configure(settings)
        return client
    return build


def start(api, who, message):
    started = api.simulate_post("/agent/sessions", json={"message": message}, headers=who.headers)
    assert started.status_code == 202, started.text
    return started.json["session_id"]


def events(api, who, session_id, after=0):
    return api.simulate_get(f"/agent/sessions/{session_id}/events?after={after}", headers=who.headers).json


@pytest.mark.parametrize("kind", ["rules", "ollama", "anthropic"])
def test_a_read_only_tool_call_runs_and_the_answer_follows(kind, make_api, people, stub_broker, stub_worker,
                                                           llm_sims, glpi):
    api = make_api(kind)
    script(kind, llm_sims, [{"tool_calls": [{"name": "glpi_get_ticket_details", "arguments": {"ticket_id": 1}}]},
                            {"text": "Le ticket 1 « Mot de passe oublié » est nouveau."}])
    sid = start(api, people.tech, "Quel est le statut du ticket 1 ?")
    drain(stub_broker, stub_worker)
    polled = events(api, people.tech, sid)
    types = [e["type"] for e in polled["events"]]
    assert types == ["start", "thinking", "tool_call", "tool_result", "thinking", "response", "done"], types
    assert [e["seq"] for e in polled["events"]] == list(range(1, 8))
    tool_result = polled["events"][3]
    assert tool_result["tool"] == "glpi_get_ticket_details" and tool_result["success"] is True
    assert "Mot de passe oublié" in polled["events"][5]["message"] or "ticket 1" in polled["events"][5]["message"].lower()
    assert polled["status"] == "completed"
    later = events(api, people.tech, sid, after=5)
    assert [e["type"] for e in later["events"]] == ["response", "done"]


@pytest.mark.parametrize("kind", ["rules", "ollama", "anthropic"])
def test_an_l3_call_pauses_the_session_until_an_approver_approves(kind, make_api, people, stub_broker, stub_worker,
                                                                  llm_sims, glpi):
    api = make_api(kind)
    script(kind, llm_sims, [{"tool_calls": [{"name": "glpi_create_ticket", "arguments": {
        "title": "Imprimante en panne", "content": "L'imprimante du 2e étage ne répond plus."}}]},
        {"text": "Le ticket a été créé."}])
    sid = start(api, people.tech, "Crée un ticket pour l'imprimante en panne au 2e étage")
    drain(stub_broker, stub_worker)
    first = events(api, people.tech, sid)
    assert first["status"] == "waiting_approval"
    waiting = first["events"][-1]
    assert waiting["type"] == "waiting_approval" and waiting["security_level"] == "L3"
    session = api.simulate_get(f"/agent/sessions/{sid}", headers=people.tech.headers).json
    assert session["pending_request_id"] == waiting["request_id"]
    before = glpi.state.calls.get("POST Ticket", 0)
    assert api.simulate_post(f"/safeguard/requests/{waiting['request_id']}/approve", json={},
                             headers=people.tech.headers).status_code == 403
    assert api.simulate_post(f"/safeguard/requests/{waiting['request_id']}/approve", json={},
                             headers=people.approver.headers).status_code == 200
    drain(stub_broker, stub_worker)
    rest = events(api, people.tech, sid, after=first["next_after"])
    assert [e["type"] for e in rest["events"]] == ["resumed", "tool_result", "thinking", "response", "done"]
    assert glpi.state.calls.get("POST Ticket", 0) == before + 1
    assert rest["status"] == "completed"


def test_a_rejection_is_fed_back_to_the_model(make_api, people, stub_broker, stub_worker, llm_sims, glpi):
    api = make_api("ollama")
    script("ollama", llm_sims, [{"tool_calls": [{"name": "glpi_create_ticket", "arguments": {
        "title": "Test", "content": "x"}}]}, {"text": "Entendu, je ne crée pas le ticket."}])
    sid = start(api, people.tech, "Crée un ticket de test")
    drain(stub_broker, stub_worker)
    request_id = events(api, people.tech, sid)["events"][-1]["request_id"]
    api.simulate_post(f"/safeguard/requests/{request_id}/reject", json={"reason": "ticket inutile"},
                      headers=people.approver.headers)
    drain(stub_broker, stub_worker)
    types = [e["type"] for e in events(api, people.tech, sid)["events"]]
    assert types[-4:] == ["rejected", "thinking", "response", "done"]
    seen = llm_sims["ollama"][1].requests[-1]["body"]["messages"]
    assert any("rejected by approver: ticket inutile" in m.get("content", "") for m in seen if m["role"] == "tool")


def test_the_provider_down_completes_on_rules_and_says_so(make_api, people, stub_broker, stub_worker, glpi,
                                                          integrated_settings):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings = integrated_settings.with_overrides(llm_provider="ollama", ollama_host=f"http://127.0.0.1:{dead}",
                                                  llm_timeout_seconds=2.0)
    api = TestClient(create_app(build_context(settings)))
    actor_deps.configure(settings)
    sid = start(api, people.tech, "statut du ticket 1")
    drain(stub_broker, stub_worker)
    polled = events(api, people.tech, sid)
    fallbacks = [e for e in polled["events"] if e.get("fallback")]
    assert fallbacks and "mode dégradé" in fallbacks[0]["message"]
    assert polled["status"] == "completed"
    assert "Ticket 1" in polled["events"][-2]["message"]


def test_an_l4_tool_is_blocked_and_never_offered(make_api, people, stub_broker, stub_worker, llm_sims, glpi):
    api = make_api("ollama")
    script("ollama", llm_sims, [{"tool_calls": [{"name": "glpi_delete_ticket", "arguments": {"ticket_id": 1}}]},
                                {"text": "Je ne peux pas supprimer ce ticket moi-même."}])
    sid = start(api, people.tech, "Supprime le ticket 1")
    drain(stub_broker, stub_worker)
    polled = events(api, people.tech, sid)
    blocked = [e for e in polled["events"] if e["type"] == "tool_blocked"]
    assert blocked and blocked[0]["tool"] == "glpi_delete_ticket"
    offered = {t["function"]["name"] for t in llm_sims["ollama"][1].requests[0]["body"].get("tools", [])}
    assert "glpi_delete_ticket" not in offered and "ad_disable_account" not in offered
    assert "glpi_get_ticket_details" in offered
    assert glpi.state.items["Ticket"][1]["is_deleted"] in (0, False)
    assert polled["status"] == "completed"


def test_only_the_owner_or_an_approver_reads_a_session(make_api, people, stub_broker):
    api = make_api("rules")
    sid = start(api, people.tech, "bonjour")
    assert api.simulate_get(f"/agent/sessions/{sid}", headers=people.approver.headers).status_code == 200
    assert api.simulate_get(f"/agent/sessions/{sid}").status_code == 401
    assert api.simulate_get("/agent/sessions/not-a-uuid", headers=people.tech.headers).status_code == 404
    assert api.simulate_get(f"/agent/sessions/{sid}/events?after=-1", headers=people.tech.headers).status_code == 400


def test_a_password_reset_asked_in_chat_waits_for_approval_and_ends_with_a_one_time_link(
        directory_settings, stub_broker, stub_worker, people, active_directory, pwpush, caplog):
    # Given the rules provider (no LLM) and the LDAPS directory where jdupont forgot her password
    api = TestClient(create_app(build_context(directory_settings.with_overrides(llm_provider="rules"))))
    actor_deps.configure(directory_settings.with_overrides(llm_provider="rules"))
    sid = start(api, people.tech, "Peux-tu réinitialiser le mot de passe de jdupont ?")
    drain(stub_broker, stub_worker)
    waiting = events(api, people.tech, sid)["events"][-1]
    assert waiting["type"] == "waiting_approval" and waiting["tool"] == "ad_reset_password"
    assert active_directory.state.writes == [] or len(active_directory.state.writes) == 0
    # When an approver approves
    api.simulate_post(f"/safeguard/requests/{waiting['request_id']}/approve", json={}, headers=people.approver.headers)
    drain(stub_broker, stub_worker)
    # Then the reset ran, the link was created (L1 at the rules' confidence) and the answer carries it
    polled = events(api, people.tech, sid)
    answer = polled["events"][-2]["message"]
    assert polled["status"] == "completed" and "/p/" in answer
    token = answer.rsplit("/p/", 1)[1].split()[0].rstrip(".")
    password = httpx.get(f"{pwpush.url}/_sim/pushes/{token}").json()["payload"]
    assert len(password) >= 16
    # And the password is nowhere but in the push: not in events, transcript, tool results or logs
    import psycopg
    with psycopg.connect(directory_settings.database_url) as conn:
        dump = " ".join(str(r) for table in ("agent_events", "agent_sessions", "tool_calls", "safeguard_audit", "jobs")
                        for r in conn.execute(f"SELECT * FROM {table}").fetchall())
    assert password not in dump
    assert password not in caplog.text


def _new_session(conn, message="statut du ticket 1"):
    from widip.functions.agent.sessions import create_session
    from widip.functions.callers import Caller

    caller = Caller(kind="ai", username="wibot", persona="wibot", on_behalf_of=None)
    return str(create_session(conn, "wibot", caller, message)["id"])


def _step(settings, sid, provider):
    from widip.functions import db
    from widip.functions.agent import runtime
    from widip.functions.safeguard.policy import load_policy

    pool = db.make_pool(settings.database_url)
    try:
        return runtime.step(pool, sid, provider, policy=load_policy(settings.policy_dir, approval_ttl_hours=1),
                            llm_timeout=5)
    finally:
        pool.close()


def test_a_redelivered_step_applies_nothing_twice(conn, settings):
    from widip.functions.llm.rules import RulesProvider

    sid = _new_session(conn)
    first = _step(settings, sid, RulesProvider())
    events_after_first = conn.execute("SELECT count(*) AS n FROM agent_events WHERE session_id = %s", (sid,)).fetchone()
    second = _step(settings, sid, RulesProvider())  # the same message delivered again before run_tool finished
    assert (first.status, second.status) == ("waiting_tools", "waiting_tools")
    assert conn.execute("SELECT count(*) AS n FROM agent_events WHERE session_id = %s",
                        (sid,)).fetchone() == events_after_first
    assert conn.execute("SELECT count(*) AS n FROM tool_calls WHERE session_id = %s", (sid,)).fetchone()["n"] == 1


def test_two_copies_of_a_step_running_at_once_record_one_answer(conn, settings, llm_sims):
    import threading

    from widip.functions.llm import OllamaProvider

    url, state = llm_sims["ollama"]
    state.reset()
    state.configure({"latency_ms": 300})
    sid = _new_session(conn, "Bonjour")
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(_step(settings, sid, OllamaProvider(url)).status))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    state.configure({"latency_ms": 0})
    assert sorted(outcomes) == ["completed", "stale"]
    responses = conn.execute("SELECT count(*) AS n FROM agent_events WHERE session_id = %s AND type = 'response'",
                             (sid,)).fetchone()
    assert responses["n"] == 1


def test_a_session_past_its_budget_ends_with_an_error_event(conn):
    from widip.functions.agent import runtime

    sid = _new_session(conn)
    conn.execute("UPDATE agent_sessions SET deadline = now() - interval '1 second' WHERE id = %s", (sid,))
    assert runtime.fail_overdue(conn) == [sid]
    types = [r["type"] for r in conn.execute("SELECT type FROM agent_events WHERE session_id = %s ORDER BY seq", (sid,))]
    assert types[-2:] == ["error", "done"]
    assert conn.execute("SELECT status FROM agent_sessions WHERE id = %s", (sid,)).fetchone()["status"] == "failed"


def test_a_quiet_session_is_nudged_so_a_lost_continuation_never_strands_it(conn):
    from widip.functions.agent import runtime

    sid = _new_session(conn)
    assert runtime.nudge_quiet(conn) == []
    conn.execute("UPDATE agent_sessions SET updated_at = now() - interval '10 minutes' WHERE id = %s", (sid,))
    assert runtime.nudge_quiet(conn) == [sid]
    runtime.nudge_quiet(conn)
    rows = conn.execute("SELECT count(*) AS n FROM outbox WHERE dedup_key LIKE %s", (f"nudge:{sid}:%",)).fetchone()
    assert rows["n"] == 1


@pytest.mark.parametrize("text, login", [
    ("Peux-tu réinitialiser le mot de passe de jdupont ?", "jdupont"),
    ("…de jdupont, il est bloqué depuis ce matin", "jdupont"),
    ("Marie Dupont (mdupont) svp", "mdupont"),
    ("le compte de jdupont est bloqué, peux-tu le débloquer", "jdupont"),
    ("réinitialise le mot de passe", None),
    ("compte jdupont et compte mmartin", None),
])
def test_the_rules_take_a_login_only_when_the_request_names_exactly_one(text, login):
    from widip.functions.llm.rules import _username

    assert _username(text) == login
