"""The Sentinel diagnosis: the 20-minute cache, else a bounded agent loop, validated against a schema.

Why a loop here rather than the agent runtime's step-per-message: the diagnosis must end within 20 s
(seed "Timeout: 20s max") and be followed by the notifier, and the runtime offers no completion hook.
So this function runs the whole session itself, on the `llm.p0` priority queue (it is registered as
LLM job kind "sentinel_diagnosis"), which gives it priority 1000 and the GPU mutex. It still is a
real agent session (persona `sentinel`, events readable at /agent/sessions/{id}/events), and every
tool call goes through SAFEGUARD (`calls.propose`; the sentinel's read tools are L0, so the gate
says run) and the exactly-once executor (`tool_runs.run_call`). The calls are proposed without a
session id, so the lead runtime never tries to resume this session, and their `run_tool` outbox row
is claimed here since the call is executed inline.

Before the model speaks, the evidence is gathered once (evidence.gather: inventory, Phibee lines and
collective incidents, Observium, GLPI announcements), each read gated like the model's own, and put
in the first message: the model and the rules reason over the same facts, and the model may still
call its tools.

Output contract: one JSON object (SCHEMA). An invalid answer gets one corrective retry; then, or when
the budget runs out, or when the model says INCONNU where the rules find a cause (unsure), the
responsibility rules (policy/sentinel_rules.toml) conclude from the evidence.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from jsonschema import Draft202012Validator

from widip.errors import Invalid, IntegrationError, NotFound
from widip.functions.safeguard import runs as tool_runs
from widip.functions.agent.personas import get_persona, visible_tools
from widip.functions.agent.sessions import add_event, create_session
from widip.functions.callers import system_persona
from widip.functions.db import Jsonb, transaction
from widip.functions import clock
from widip.functions.llm.base import Message, ToolCall, ToolSpec, extract_json_text
from widip.functions.safeguard import audit, calls
from widip.functions.safeguard.policy import Policy
from widip.functions.sentinel import evidence, incidents, inventory
from widip.functions.sentinel.playbook import conclude, facts_from
from widip.functions.tools import get_tool

logger = logging.getLogger(__name__)

CACHE_KEY = "phibee_diag_{device}"
CACHE_TTL = timedelta(minutes=20)
RESPONSIBILITIES = ("WIDIP", "CLIENT", "OPERATEUR", "INCONNU")
SEVERITIES = ("critique", "majeure", "mineure")
_TEXTS = {"type": "array", "maxItems": 30, "items": {"type": "string", "minLength": 1, "maxLength": 2000}}
SCHEMA = {
    "type": "object", "required": ["responsibility", "severity", "summary", "evidence", "recommended_actions"],
    "properties": {"responsibility": {"enum": list(RESPONSIBILITIES)}, "severity": {"enum": list(SEVERITIES)},
                   "summary": {"type": "string", "minLength": 5, "maxLength": 4000},
                   "evidence": _TEXTS, "recommended_actions": _TEXTS,
                   "rule": {"type": "string", "maxLength": 100}},
}
_VALIDATOR = Draft202012Validator(SCHEMA)
_CALLS = uuid.UUID("2b0f5c61-3f0e-4d43-9a55-73656e74696e")


@dataclass(frozen=True)
class Outcome:
    incident_id: int
    diagnosis: dict
    source: str  # cache | llm | rules | existing
    cache_used: bool
    seconds: float
    session_id: str | None = None


def validate(data) -> dict:
    """The diagnosis restricted to its five keys; Invalid with the first schema error otherwise."""
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "diagnostic"
        raise Invalid(f"{where}: {errors[0].message}")
    return {key: data[key] for key in SCHEMA["properties"] if key in data}


def parse(text: str) -> dict:
    try:
        data = json.loads(extract_json_text(text))
    except ValueError:
        raise Invalid("la réponse n'est pas un objet JSON") from None
    return validate(data)


def cached(redis, hostname: str, now: datetime) -> dict | None:
    """A diagnosis of this device made less than 20 min before `now`, or None (Redis errors: None)."""
    try:
        raw = redis.get(CACHE_KEY.format(device=hostname))
    except Exception:  # noqa: BLE001 - a cache that cannot be read is a miss
        return None
    if not raw:
        return None
    try:
        entry = json.loads(raw)
        at = datetime.fromisoformat(entry["cached_at"])
        return validate(entry["diagnosis"]) if timedelta(0) <= now - at < CACHE_TTL else None
    except (ValueError, KeyError, TypeError, Invalid):
        return None


def remember(redis, hostname: str, diagnosis: dict, now: datetime) -> None:
    try:
        redis.set(CACHE_KEY.format(device=hostname), json.dumps({"diagnosis": diagnosis, "cached_at": now.isoformat()},
                  ensure_ascii=False), ex=int(CACHE_TTL.total_seconds()))
    except Exception:  # noqa: BLE001 - losing the cache only costs a later LLM call
        logger.warning("diagnosis of %s not cached: Redis unavailable", hostname)


def facts_message(incident: dict, members: list[dict], first_alert: dict | None,
                  gathered: evidence.Evidence | None = None) -> str:
    """The session's first message: the facts in French plus a JSON block (what the playbook reads)."""
    from widip.functions.sentinel.alerts import facts as alert_facts

    alert = alert_facts(first_alert["body"]) if first_alert else None
    devices = [{"device_id": m["device_id"], "hostname": m["hostname"], "ip": m["ip_address"], "site": m["site"],
                "client": m["client"], "role": m.get("role"), "operator": m.get("operator"),
                "entity": (m["entity"] or "")[:200], "condition": (m["condition"] or "")[:300]} for m in members[:50]]
    if alert and devices:
        devices[0].update(description=alert.description, status_type=alert.status_type,
                          line_reference=alert.line_reference, device_type=alert.device_type)
    data = {"tracking_id": incident["tracking_id"], "site": incident["site"], "client": incident["client"],
            "sites": _distinct(m["site"] for m in members), "clients": _distinct(m["client"] for m in members),
            "operator": incident["operator"], "device_count": len(members), "devices": devices,
            "alert": {"title": (alert.title or "")[:300], "state": alert.state} if alert else None,
            "duration": str((first_alert or {}).get("body", {}).get("DURATION") or "")[:50] or None,
            "evidence": gathered.to_dict() if gathered else None}
    return ("Alerte de supervision Observium à diagnostiquer (incident " + incident["tracking_id"] + "). "
            "Les faits recueillis (inventaire, Phibee, Observium, GLPI) sont ci-dessous avec leur source ; "
            "tu peux vérifier avec les outils en lecture, "
            "puis réponds uniquement par un objet JSON avec les clés responsibility (WIDIP, CLIENT, "
            "OPERATEUR ou INCONNU), severity (critique, majeure ou mineure), summary (en français), evidence "
            "(liste de faits) et recommended_actions (liste d'actions).\nFaits :\n```json\n"
            + json.dumps(data, ensure_ascii=False, default=str).replace("`", "\\u0060") + "\n```")


def diagnose(pool, redis, clients, provider, incident_id: int, *, policy: Policy, llm_timeout: float, now: datetime | None = None) -> Outcome:
    """Diagnose an incident once (idempotent): cache hit, or agent loop; stores it on the incident."""
    started = time.monotonic()
    now = now or clock.now()
    with transaction(pool) as conn:
        incident = incidents.get_incident(conn, incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        if incident["diagnosis"] is not None:
            return Outcome(incident_id, incident["diagnosis"], "existing", bool(incident["cache_used"]), 0.0)
        members = incidents.members(conn, incident_id)
        first_alert = conn.execute("SELECT body FROM alerts WHERE tracking_id = %s", (incident["tracking_id"],)).fetchone()
    hostname = incident["primary_hostname"]
    diagnosis = cached(redis, hostname, now)
    session_id, source, gathered = None, "cache", None
    if diagnosis is None:
        deadline = started + get_persona("sentinel").budget_seconds
        gathered = collect(pool, clients, incident, members, first_alert, deadline=deadline, policy=policy)
        message = facts_message(incident, members, first_alert, gathered)
        diagnosis, source, session_id = run_agent(pool, clients, provider, incident, message, policy=policy,
                                                  llm_timeout=llm_timeout, deadline=deadline)
        remember(redis, hostname, diagnosis, now)
    seconds = time.monotonic() - started
    with transaction(pool) as conn:
        stored = conn.execute(
            "UPDATE incidents SET diagnosis = %s, diagnosis_source = %s, cache_used = %s, diagnosed_at = %s, "
            "session_id = %s, evidence = %s WHERE id = %s AND diagnosis IS NULL RETURNING id",
            (Jsonb(diagnosis), source, source == "cache", now, session_id,
             Jsonb(gathered.to_dict()) if gathered else None, incident_id)).fetchone()
        if stored:
            origin = {"cache": "diagnostic en cache réutilisé (moins de 20 min)", "llm": "agent Sentinel",
                      "rules": "règles (mode dégradé)"}[source]
            incidents.event(conn, incident_id, "diagnosed", f"Diagnostic ({origin}) : {diagnosis['summary']}",
                            responsibility=diagnosis["responsibility"], severity=diagnosis["severity"], source=source)
    _observe(seconds, source == "cache")
    return Outcome(incident_id, diagnosis, source, source == "cache", seconds, session_id)


def collect(pool, clients, incident: dict, members: list[dict], first_alert: dict | None, *, deadline: float,
            policy: Policy) -> evidence.Evidence:
    """The incident's evidence: inventory rows of its devices, then gated reads until `deadline` nears."""
    with transaction(pool) as conn:
        estate = {}
        for member in members[:50]:
            row = inventory.lookup(conn, device_id=member["device_id"], hostname=member["hostname"])
            if row:
                estate[member["hostname"].lower()] = row
        widip_entity = inventory.widip_entity(conn)
    counter = itertools.count()

    def read(tool: str, arguments: dict):
        key = f"evidence:{incident['id']}:{next(counter)}"
        text = _run_read(pool, clients, None, incident["id"], key, ToolCall(key, tool, arguments), policy)
        try:
            return json.loads(text)
        except ValueError:
            return {"error": text[:200]}

    return evidence.gather(read, incident, members, estate, first_alert, deadline=deadline,
                           widip_entity=widip_entity)


def run_agent(pool, clients, provider, incident: dict, first_message: str, *, policy: Policy,
              llm_timeout: float, deadline: float | None = None) -> tuple[dict, str, str]:
    """(diagnosis, source, session id): the Sentinel session, ≤ 20 s, read-only tools, one retry on bad JSON."""
    persona = get_persona("sentinel")
    caller = system_persona("sentinel")
    deadline = deadline or time.monotonic() + persona.budget_seconds
    with transaction(pool) as conn:
        session = create_session(conn, "sentinel", caller, first_message,
                                 context={"incident_id": incident["id"], "tracking_id": incident["tracking_id"]})
        tools = [ToolSpec(t.name, t.description, t.schema) for t in visible_tools(conn, persona, caller)]
    sid = str(session["id"])
    transcript = [Message.from_dict(m) for m in session["transcript"]]
    diagnosis, source, retried, reason = None, "llm", False, "budget de 20 s épuisé"
    for iteration in range(persona.max_iterations):
        remaining = deadline - time.monotonic()
        if remaining <= 0.5:
            break
        try:
            completion = provider.complete(transcript, tools, json_schema=SCHEMA, timeout=min(llm_timeout, remaining))
        except IntegrationError as exc:
            reason = f"LLM en erreur ({exc.message})"
            break
        transcript.append(completion.message())
        with transaction(pool) as conn:
            add_event(conn, sid, "thinking", message="Analyse en cours…",
                      fallback=bool(completion.fallback_reasons) or None)
        if completion.tool_calls:
            for index, tool_call in enumerate(completion.tool_calls):
                content = _run_read(pool, clients, sid, incident["id"], f"{sid}:{iteration}:{index}", tool_call,
                                    policy)
                transcript.append(Message(role="tool", content=content, tool_call_id=tool_call.id,
                                          name=tool_call.name))
            continue
        try:
            diagnosis = parse(completion.text)
            source = "rules" if completion.provider == "rules" else "llm"
            break
        except Invalid as exc:
            if retried:
                reason = f"réponse invalide après une nouvelle tentative ({exc.message})"
                break
            retried = True
            transcript.append(Message(role="user", content=(
                f"Ta réponse n'est pas un diagnostic valide ({exc.message}). Réponds uniquement par l'objet JSON "
                "demandé, sans texte autour.")))
    if diagnosis is not None and source == "llm" and diagnosis["responsibility"] == "INCONNU":
        ruled = validate(conclude(facts_from(transcript)))
        if ruled["responsibility"] != "INCONNU":  # the model is unsure where the evidence decides
            diagnosis, reason = None, "le modèle répond INCONNU alors que les règles concluent"
    if diagnosis is None:
        diagnosis, source = validate(conclude(facts_from(transcript))), "rules"
        logger.info("sentinel diagnosis of incident %s by rules: %s", incident["id"], reason)
    _finish_session(pool, sid, transcript, diagnosis, source, reason if source == "rules" else None)
    return diagnosis, source, sid


#: What the Sentinel diagnosis may call: its persona's tools that change nothing (run inline, no notice).
READ_ONLY_TOOLS = frozenset(name for name in (get_persona("sentinel").tools or ()) if get_tool(name).read_only)


def _run_read(pool, clients, sid: str | None, incident_id: int, key: str, tool_call, policy: Policy) -> str:
    """Propose one call as Sentinel, run it inline when the gate says run; the text the model reads.

    `key` makes the call id (a retried diagnosis finds its calls again); `sid` None: evidence gathering,
    before the session exists (the calls are still linked to the incident and audited)."""
    call_id = str(uuid.uuid5(_CALLS, key))
    caller = system_persona("sentinel")
    add_event = _session_event if sid else _no_event
    with transaction(pool) as conn:
        add_event(conn, sid, "tool_call", tool=tool_call.name, params=tool_call.arguments)
        try:
            call = calls.propose(conn, calls.Proposal(tool_call.name, tool_call.arguments, caller, call_id=call_id,
                                                      reason="diagnostic Sentinel", offered=READ_ONLY_TOOLS), policy)
        except (Invalid, NotFound) as exc:
            add_event(conn, sid, "tool_blocked", tool=tool_call.name, error=exc.message)
            return json.dumps({"error": f"appel refusé : {exc.message}"}, ensure_ascii=False)
        incidents.link_call(conn, incident_id, call_id, "diagnosis")
        if call["status"] != "ready":
            add_event(conn, sid, "tool_blocked", tool=call["tool_name"], security_level=call["level"],
                      error=call.get("decision_reason") or call["status"])
            return json.dumps({"error": "outil non autorisé en lecture seule pour le diagnostic"}, ensure_ascii=False)
        calls.claim_run(conn, call_id)
    try:
        row = tool_runs.run_call(pool, call_id, clients).call
    except IntegrationError as exc:
        row = {"status": "failed", "error": exc.message, "result": None}
        _abandon(pool, call_id, tool_call.name, exc.message)
    with transaction(pool) as conn:
        ok = row["status"] == "done"
        add_event(conn, sid, "tool_result", tool=tool_call.name, success=ok, call_id=call_id,
                  result=row["result"] if ok else None, error=None if ok else (row["error"] or row["status"]))
    if row["status"] == "done":
        return json.dumps(row["result"], ensure_ascii=False, default=str)
    return json.dumps({"error": row["error"] or f"appel {row['status']}"}, ensure_ascii=False)


def _session_event(conn, sid, kind, **data) -> None:
    add_event(conn, sid, kind, **data)


def _no_event(conn, sid, kind, **data) -> None:
    return None


def _distinct(values) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _abandon(pool, call_id: str, tool_name: str, error: str) -> None:
    """Close a read the diagnosis gave up on (run_call put it back to `ready` for a retry that will not come):
    left `ready`, the stuck-call sweep would re-run it every 10 minutes long after the diagnosis ended."""
    with transaction(pool) as conn:
        closed = conn.execute("UPDATE tool_calls SET status = 'failed', error = %s, finished_at = now() "
                              "WHERE id = %s AND status = 'ready' RETURNING level", (error[:500], call_id)).fetchone()
        if closed:
            audit.record(conn, actor="system:sentinel", action="failed", tool_name=tool_name, call_id=call_id,
                         level=closed["level"], outcome="failed",
                         reason=f"unavailable during the diagnosis, not retried: {error}"[:500])


def _finish_session(pool, sid: str, transcript: list[Message], diagnosis: dict, source: str,
                    fallback_reason: str | None) -> None:
    text = json.dumps(diagnosis, ensure_ascii=False)
    with transaction(pool) as conn:
        if fallback_reason:
            add_event(conn, sid, "thinking", fallback=True, message=f"Diagnostic par règles : {fallback_reason}.")
        add_event(conn, sid, "response", message=text)
        add_event(conn, sid, "done", success=True)
        conn.execute("UPDATE agent_sessions SET status = 'completed', transcript = %s, result = %s, "
                     "iteration = %s, provider = %s, updated_at = now() WHERE id = %s",
                     (Jsonb([m.to_dict() for m in transcript]), Jsonb({"text": text, "source": source}),
                      sum(1 for m in transcript if m.role == "assistant"), source, sid))


def _observe(seconds: float, cache_hit: bool) -> None:
    try:
        from widip.functions.metrics import CACHE_HIT, SENTINEL_DURATION
    except ImportError:  # metrics module not deployed
        return
    SENTINEL_DURATION.observe(seconds)
    if cache_hit:
        CACHE_HIT.labels(workflow="proactif").inc()
