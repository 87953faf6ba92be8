"""One agent step: resolve the previous tool calls, ask the provider, route new tool calls to the gate.

A step is safe to run twice (at-least-once delivery): everything it decides is written in one
transaction guarded by the session's iteration number, tool call ids are derived from
(session, iteration, index) so a re-proposed call is the same call, and a step that finds calls
still running or waiting simply returns — `run_tool` and the approval handlers wake the session
again when they are done.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from psycopg import Connection
from psycopg_pool import ConnectionPool

from widip.errors import Invalid, NotFound
from widip.functions import job_table, outbox
from widip.functions.agent.personas import Persona, get_persona, visible_tools
from widip.functions.agent.sessions import add_event, get_session
from widip.functions.callers import Caller
from widip.functions.db import Jsonb, transaction
from widip.functions.docs import citations
from widip.functions.llm.base import Message, ToolSpec
from widip.functions.safeguard import calls
from widip.functions.safeguard.policy import Policy
from widip.functions.safeguard.runs import FINAL

logger = logging.getLogger(__name__)

_CALL_NAMESPACE = uuid.UUID("6f1c0c8e-9a53-4b0e-8f0e-7769646970aa")
#: Calls in these states no longer hold the session: their outcome can be told to the model.
RESOLVED = FINAL + ("deferred",)
SESSION_FINAL = ("completed", "failed", "rejected")


@dataclass(frozen=True)
class StepOutcome:
    status: str  # completed | waiting_approval | waiting_tools | failed | final | stale
    session_id: str


def call_uuid(session_id: str, iteration: int, index: int) -> str:
    return str(uuid.uuid5(_CALL_NAMESPACE, f"{session_id}:{iteration}:{index}"))


def step(pool: ConnectionPool, session_id: str, provider, *, policy: Policy,
         llm_timeout: float | None = None) -> StepOutcome:
    with transaction(pool) as conn:
        prepared = _prepare(conn, session_id)
        if isinstance(prepared, StepOutcome):
            return prepared
        session, persona, caller, transcript, tools = prepared
        add_event(conn, session_id, "thinking", message="Analyse en cours…")
    completion = provider.complete(transcript, tools, want_confidence=persona.want_confidence, timeout=llm_timeout)
    with transaction(pool) as conn:
        current = get_session(conn, session_id, lock=True)
        if current["iteration"] != session["iteration"] or current["status"] != "active":
            logger.info("session %s: concurrent step already advanced it; discarding this answer", session_id)
            return StepOutcome("stale", session_id)
        for reason in completion.fallback_reasons:
            add_event(conn, session_id, "thinking", fallback=True,
                      message=f"LLM indisponible ({reason}) : réponse en mode dégradé (règles).")
        return _apply(conn, current, persona, caller, transcript, completion, policy,
                      frozenset(t.name for t in tools))


def _prepare(conn: Connection, session_id: str):
    """Lock the session, fold resolved tool calls into the transcript, and decide whether to ask the model."""
    session = get_session(conn, session_id, lock=True)
    if session["status"] in SESSION_FINAL:
        return StepOutcome("final", session_id)
    persona = get_persona(session["persona"])
    caller = Caller.from_dict(session["caller"])
    transcript = [Message.from_dict(m) for m in session["transcript"]]
    waiting = _fold_tool_results(conn, session, transcript)
    if waiting:
        return StepOutcome(waiting, session_id)
    if session["iteration"] >= persona.max_iterations:
        fail(conn, session_id, f"limite de {persona.max_iterations} itérations atteinte")
        return StepOutcome("failed", session_id)
    tools = [ToolSpec(t.name, t.description, t.schema) for t in visible_tools(conn, persona, caller)]
    return session, persona, caller, transcript, tools


def _pending_calls(transcript: list[Message]) -> list:
    """Tool calls of the last assistant message that have no tool result after them yet."""
    for position in range(len(transcript) - 1, -1, -1):
        message = transcript[position]
        if message.role == "assistant":
            answered = {m.tool_call_id for m in transcript[position + 1:] if m.role == "tool"}
            return [(i, tc) for i, tc in enumerate(message.tool_calls) if tc.id not in answered]
    return []


def _fold_tool_results(conn: Connection, session: dict, transcript: list[Message]) -> str | None:
    """Append results of resolved calls; return 'waiting_approval'/'waiting_tools' if some still hold."""
    pending = _pending_calls(transcript)
    if not pending:
        return None
    iteration = session["iteration"] - 1
    ids = [call_uuid(str(session["id"]), iteration, index) for index, _ in pending]
    rows = {str(r["id"]): r for r in conn.execute("SELECT * FROM tool_calls WHERE id = ANY(%s::uuid[])", (ids,))}
    unresolved = [rows[i] for i in ids if i in rows and rows[i]["status"] not in RESOLVED]
    if unresolved:
        waiting = [r for r in unresolved if r["status"] == "waiting_approval"]
        if waiting and session["status"] != "waiting_approval":
            _mark_waiting(conn, session, waiting[0])
        return "waiting_approval" if waiting else "waiting_tools"
    if session["status"] == "waiting_approval":
        conn.execute("UPDATE agent_sessions SET status = 'active', pending_request_id = NULL, "
                     "deadline = now() + %s WHERE id = %s",
                     (timedelta(seconds=get_persona(session["persona"]).budget_seconds), session["id"]))
    for (index, tool_call), call_id in zip(pending, ids):
        row = rows.get(call_id)
        content = _result_event(conn, session, tool_call, row)
        transcript.append(Message(role="tool", content=content, tool_call_id=tool_call.id, name=tool_call.name))
    conn.execute("UPDATE agent_sessions SET transcript = %s, updated_at = now() WHERE id = %s",
                 (Jsonb([m.to_dict() for m in transcript]), session["id"]))
    return None


def _mark_waiting(conn: Connection, session: dict, call: dict) -> None:
    conn.execute("UPDATE agent_sessions SET status = 'waiting_approval', pending_request_id = %s, updated_at = now() "
                 "WHERE id = %s", (call["request_id"], session["id"]))
    session["status"] = "waiting_approval"


def _result_event(conn: Connection, session: dict, tool_call, row: dict | None) -> str:
    """Record the event for a resolved call and return the text the model will read as its result."""
    sid = str(session["id"])
    if row is None:  # refused before a call row existed (unknown tool, invalid arguments)
        return json.dumps({"error": "appel refusé : outil inconnu ou arguments invalides"}, ensure_ascii=False)
    status = row["status"]
    if status == "done":
        if row["decision"] == "approval":
            add_event(conn, sid, "resumed", tool=row["tool_name"], request_id=row["request_id"],
                      message="Action approuvée, reprise de l'agent")
        add_event(conn, sid, "tool_result", tool=row["tool_name"], result=row["result"], success=True,
                  call_id=str(row["id"]))
        return json.dumps(row["result"], ensure_ascii=False, default=str)
    if status == "rejected":
        add_event(conn, sid, "rejected", tool=row["tool_name"], request_id=row["request_id"], error=row["error"])
        return json.dumps({"error": row["error"]}, ensure_ascii=False)
    if status == "deferred":
        return json.dumps({"error": "action réservée aux humains : une demande différée a été créée pour un "
                                    "administrateur ; ne la retente pas."}, ensure_ascii=False)
    add_event(conn, sid, "tool_result", tool=row["tool_name"], success=False, error=row["error"] or status,
              call_id=str(row["id"]))
    return json.dumps({"error": row["error"] or f"appel {status}"}, ensure_ascii=False)


def _apply(conn: Connection, session: dict, persona: Persona, caller: Caller, transcript: list[Message],
           completion, policy: Policy, offered: frozenset[str]) -> StepOutcome:
    sid = str(session["id"])
    iteration = session["iteration"]
    transcript.append(completion.message())
    conn.execute("UPDATE agent_sessions SET transcript = %s, iteration = iteration + 1, provider = %s, "
                 "updated_at = now() WHERE id = %s",
                 (Jsonb([m.to_dict() for m in transcript]), completion.provider, sid))
    if not completion.tool_calls:
        add_event(conn, sid, "response", message=completion.text,
                  citations=citations.of_session(conn, sid, completion.text) or None)
        add_event(conn, sid, "done", success=True)
        conn.execute("UPDATE agent_sessions SET status = 'completed', result = %s WHERE id = %s",
                     (Jsonb({"text": completion.text}), sid))
        return StepOutcome("completed", sid)
    holds = False  # does some call still need run_tool or a human before the next step?
    for index, tool_call in enumerate(completion.tool_calls):
        add_event(conn, sid, "tool_call", tool=tool_call.name, params=tool_call.arguments)
        try:
            call = calls.propose(conn, calls.Proposal(
                tool_call.name, tool_call.arguments, caller, confidence=completion.confidence, session_id=sid,
                call_id=call_uuid(sid, iteration, index), reason=f"demandé par l'agent {persona.name}",
                offered=offered), policy)
        except (Invalid, NotFound) as exc:
            add_event(conn, sid, "tool_blocked", tool=tool_call.name, error=exc.message)
            continue
        if call["status"] == "waiting_approval":
            add_event(conn, sid, "waiting_approval", tool=call["tool_name"], request_id=call["request_id"],
                      security_level=call["level"], call_id=str(call["id"]),
                      message=f"En attente de validation (demande {call['request_id']})")
            if session["status"] != "waiting_approval":
                _mark_waiting(conn, session, call)
            holds = True
        elif call["status"] in ("deferred", "refused"):
            add_event(conn, sid, "tool_blocked", tool=call["tool_name"], security_level=call["level"],
                      call_id=str(call["id"]), error=call.get("decision_reason") or call["status"])
        else:
            holds = True
    if not holds:  # every call was blocked at once: continue right away with the refusals
        outbox.add(conn, job_table.CONTINUE_SESSION, {"session_id": sid}, dedup_key=f"resume:{sid}:{iteration}")
    return StepOutcome("waiting_approval" if session["status"] == "waiting_approval" else "waiting_tools", sid)


def fail(conn: Connection, session_id: str, reason: str) -> None:
    add_event(conn, session_id, "error", error=reason)
    add_event(conn, session_id, "done", success=False)
    conn.execute("UPDATE agent_sessions SET status = 'failed', error = %s, updated_at = now() WHERE id = %s",
                 (reason, session_id))


def fail_overdue(conn: Connection) -> list[str]:
    """End active sessions past their budget with an error event: a session never hangs silently."""
    overdue = conn.execute("SELECT id FROM agent_sessions WHERE status = 'active' AND deadline < now() "
                           "FOR UPDATE SKIP LOCKED").fetchall()
    for row in overdue:
        fail(conn, str(row["id"]), "délai de traitement dépassé")
    return [str(r["id"]) for r in overdue]


#: A session unchanged this long while active or waiting may have lost its wake-up message.
QUIET_AFTER = timedelta(minutes=5)


def nudge_quiet(conn: Connection) -> list[str]:
    """Queue a step for sessions that went quiet: a step that finds calls still pending does nothing,
    one that finds them resolved moves on — so a lost continuation never strands a session."""
    rows = conn.execute("SELECT id FROM agent_sessions WHERE status IN ('active', 'waiting_approval') "
                        "AND updated_at < now() - %s", (QUIET_AFTER,)).fetchall()
    epoch = int(conn.execute("SELECT extract(epoch FROM now())::bigint / 600 AS e").fetchone()["e"])
    for row in rows:
        outbox.add(conn, job_table.CONTINUE_SESSION, {"session_id": str(row["id"])},
                   dedup_key=f"nudge:{row['id']}:{epoch}")
    return [str(r["id"]) for r in rows]
