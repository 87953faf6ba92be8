"""The Sentinel diagnosis on real simulators: rules playbook through the gate, the 20-minute cache (no LLM call,
counted by the Ollama simulator), schema validation with one retry then the rules, and the agent session."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from simulators import ollama as ollama_sim
from simulators.base import serve
from tests.test_sentinel_pipeline import env, ingest  # noqa: F401 - fixture
from widip.functions import db
from widip.functions.agent.sessions import events_after
from widip.functions.llm.factory import provider_for
from widip.functions.llm.rules import RulesProvider
from widip.functions.sentinel import diagnosis

GOOD = {"responsibility": "OPERATEUR", "severity": "critique", "summary": "Coupure fibre Phibee à Vienne.",
        "evidence": ["Incident opérateur ouvert"], "recommended_actions": ["Suivre l'incident opérateur"]}


@pytest.fixture(scope="module")
def ollama():
    state = ollama_sim.State().seed_demo()
    server = serve(ollama_sim.make_app(state))
    yield state, server.url
    server.stop()


def opened(env, observium, device_id: int, now=None):
    now = now or datetime.now(timezone.utc)
    observium.state.set_down(device_id, since_seconds=600)
    return ingest(env, observium.state.webhook_body(device_id, now=now.timestamp()), now).incident_id


def run(env, provider, incident_id, now=None):
    return diagnosis.diagnose(env.pool, env.redis, env.clients, provider, incident_id, policy=env.policy,
                              llm_timeout=5.0, now=now)


def test_the_evidence_is_read_through_the_gate_with_its_sources_and_the_rules_blame_the_operator(env, observium,
                                                                                                phibee):
    incident_id = opened(env, observium, 301)
    outcome = run(env, RulesProvider(), incident_id)
    assert outcome.source == "rules" and not outcome.cache_used
    assert outcome.diagnosis["responsibility"] == "OPERATEUR" and outcome.diagnosis["severity"] == "critique"
    assert "Vienne" in outcome.diagnosis["summary"]
    with db.transaction(env.pool) as conn:
        calls = conn.execute("SELECT tool_name, level, status, caller FROM tool_calls ORDER BY created_at").fetchall()
        session = conn.execute("SELECT persona, status, context FROM agent_sessions").fetchone()
        events = [e["type"] for e in events_after(conn, outcome.session_id)]
        stored = conn.execute("SELECT diagnosis, diagnosis_source, evidence FROM incidents WHERE id = %s",
                              (incident_id,)).fetchone()
        pending_runs = conn.execute("SELECT count(*) AS n FROM outbox WHERE status = 'pending'").fetchone()["n"]
    # Unmapped device: the line is the one its description names; no GLPI entity is known (neither the
    # client's nor WIDIP's), so GLPI is not searched and the evidence says so.
    assert [c["tool_name"] for c in calls] == ["phibee_get_line_status", "phibee_list_site_incidents",
                                               "observium_get_device", "observium_list_devices"]
    assert all(c["level"] == "L0" and c["caller"]["persona"] == "sentinel" for c in calls)
    assert [c["status"] for c in calls][:4] == ["done"] * 4
    assert pending_runs == 0  # executed inline: no stray run_tool messages
    assert session["persona"] == "sentinel" and session["status"] == "completed"
    assert session["context"]["incident_id"] == incident_id
    assert events[0] == "start" and events[-2:] == ["response", "done"]
    assert stored["diagnosis"] == outcome.diagnosis and stored["diagnosis_source"] == "rules"
    assert outcome.diagnosis["rule"] == "operator_collective_incident"
    sources = {f["source"] for f in stored["evidence"]["facts"]}
    assert {"phibee", "observium", "alertes"} <= sources and stored["evidence"]["signals"]["operator_incident"]
    assert any(e.startswith("[phibee] incident collectif") for e in outcome.diagnosis["evidence"])
    assert any("inventaire" in m for m in stored["evidence"]["missing"])  # says what it could not know
    assert any("aucune entité GLPI" in m for m in stored["evidence"]["missing"])


def test_a_second_incident_on_the_device_within_20_minutes_makes_no_llm_call(env, observium, phibee, ollama):
    state, url = ollama
    state.reset()
    state.push([{"tool_calls": [{"name": "observium_get_device", "arguments": {"device": 301}}]},
                {"text": json.dumps(GOOD)}])
    provider = provider_for(env.settings.with_overrides(llm_provider="ollama", ollama_host=url))
    t0 = datetime.now(timezone.utc)
    first = run(env, provider, opened(env, observium, 301, t0), t0)
    assert first.source == "llm" and first.diagnosis == GOOD and len(state.requests) == 2
    assert json.loads(env.redis.get("phibee_diag_cpe-stjoseph-ftth.widip.net"))["diagnosis"] == GOOD
    with db.transaction(env.pool) as conn:  # the first incident ends; a new one opens 15 min later
        conn.execute("UPDATE incidents SET status = 'recovered', recovered_at = %s", (t0,))
        conn.execute("UPDATE incident_members SET recovered_at = %s", (t0 - timedelta(hours=1),))
    later = t0 + timedelta(minutes=15)
    observium.state.set_up(301)
    second_id = opened(env, observium, 301, later)
    assert second_id != first.incident_id
    second = run(env, provider, second_id, later)
    assert second.source == "cache" and second.cache_used and second.diagnosis == GOOD
    assert len(state.requests) == 2  # no LLM call on a cache hit
    stale = t0 + timedelta(minutes=21)
    assert diagnosis.cached(env.redis, "cpe-stjoseph-ftth.widip.net", stale) is None


def test_an_invalid_answer_gets_one_retry_then_the_rules_conclude(env, observium, phibee, ollama):
    state, url = ollama
    state.reset()
    state.push([{"text": "Je pense que c'est la fibre."}, {"text": json.dumps({**GOOD, "severity": "énorme"})}])
    provider = provider_for(env.settings.with_overrides(llm_provider="ollama", ollama_host=url))
    outcome = run(env, provider, opened(env, observium, 204))
    assert len(state.requests) == 2
    retry = state.requests[1]["body"]["messages"][-1]["content"]
    assert "pas un diagnostic valide" in retry
    assert outcome.source == "rules" and outcome.diagnosis["responsibility"] in diagnosis.RESPONSIBILITIES
    with db.transaction(env.pool) as conn:
        fallback = [e for e in events_after(conn, outcome.session_id) if e.get("fallback")]
    assert fallback and "règles" in fallback[-1]["message"]


def test_a_valid_answer_after_the_retry_is_kept(env, observium, ollama):
    state, url = ollama
    state.reset()
    state.push([{"text": "{\"responsibility\": \"WIDIP\"}"}, {"text": "```json\n" + json.dumps(GOOD) + "\n```"}])
    provider = provider_for(env.settings.with_overrides(llm_provider="ollama", ollama_host=url))
    outcome = run(env, provider, opened(env, observium, 204))
    assert outcome.source == "llm" and outcome.diagnosis == GOOD


def test_the_llm_down_falls_back_to_the_rules_and_the_diagnosis_is_made_once(env, observium, phibee):
    provider = provider_for(env.settings.with_overrides(llm_provider="ollama", ollama_host="http://127.0.0.1:9"))
    incident_id = opened(env, observium, 301)
    outcome = run(env, provider, incident_id)
    assert outcome.source == "rules" and outcome.diagnosis["responsibility"] == "OPERATEUR"
    assert run(env, provider, incident_id).source == "existing"


def test_the_schema_rejects_unknown_responsibilities_and_missing_fields():
    with pytest.raises(Exception):
        diagnosis.validate({**GOOD, "responsibility": "METEO"})
    with pytest.raises(Exception):
        diagnosis.validate({k: v for k, v in GOOD.items() if k != "summary"})
    assert diagnosis.validate({**GOOD, "confidence": 0.9}) == GOOD


def test_the_model_sees_the_same_evidence_and_the_rules_decide_when_it_is_unsure(env, observium, phibee, ollama):
    state, url = ollama
    state.reset()
    unsure = {**GOOD, "responsibility": "INCONNU", "summary": "Je ne sais pas."}
    state.push([{"text": json.dumps(unsure)}])
    provider = provider_for(env.settings.with_overrides(llm_provider="ollama", ollama_host=url))
    outcome = run(env, provider, opened(env, observium, 301))
    first = next(m["content"] for m in state.requests[0]["body"]["messages"] if m["role"] == "user")
    assert '"source": "phibee"' in first and "operator_incident" in first  # evidence handed to the model
    assert outcome.source == "rules" and outcome.diagnosis["responsibility"] == "OPERATEUR"
    with db.transaction(env.pool) as conn:
        fallback = [e for e in events_after(conn, outcome.session_id) if e.get("fallback")]
    assert fallback and "INCONNU" in fallback[-1]["message"]
