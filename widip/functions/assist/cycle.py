"""The Assist cycle (seed Workflow 2, "Assist Ticket v3"): every 3 minutes, new GLPI tickets are taken once.

Circuit breaker first: while GLPI is down the cycle is skipped and logged. For each ticket, in code and
before any model is involved: tickets widip opened itself are skipped; the requester is proven
(GLPI ↔ AD, proofing.py) and the text goes through intake (intake.py); with a model configured its
schema-checked classification may only add caution (model_check.py). An "auto" ticket starts one
`assist` session bound to its subject (safeguard/subject.py enforces the binding at the gate);
anything else is handed over with a private follow-up stating the reason, never solved.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis
from psycopg_pool import ConnectionPool

from widip.errors import IntegrationError
from widip.functions import job_table, outbox
from widip.functions.integrations import circuit
from widip.functions.agent.sessions import create_session
from widip.functions.callers import system_persona
from widip.functions.db import Jsonb, transaction
from widip.functions.assist import intake, model_check, proofing
from widip.functions.assist.playbook import brief
from widip.functions.safeguard import subject
from widip.functions.safeguard.policy import policy_for

logger = logging.getLogger(__name__)

LAST_CYCLE_KEY = "widip:assist:last_cycle"
#: Tickets are searched from the watermark minus this overlap (clock skew between us and GLPI).
OVERLAP = timedelta(minutes=5)
#: First cycle, or after a long stop: how far back to look (older tickets are left to people).
MAX_LOOKBACK = timedelta(days=1)
MAX_TICKETS_PER_CYCLE = 50


@dataclass(frozen=True)
class Options:
    """What a cycle needs besides its connections (built from Settings by the actor)."""

    policy_dir: Path
    l1_threshold: float = 0.80
    #: A provider whose JSON classification may veto automatic actions; None = rules only.
    classifier: object | None = None
    llm_timeout: float | None = None


def run_cycle(pool: ConnectionPool, client: redis.Redis, clients, options: Options, *,
              now: datetime | None = None) -> dict:
    """One cycle; returns (and logs to widip_agent_logs and Redis) what it did."""
    now = now or datetime.now(timezone.utc)
    started = time.monotonic()
    execution_id = f"assist-{uuid.uuid4().hex[:12]}"
    if not circuit.glpi_available(client):
        return _log(pool, client, execution_id, now, started, "skipped", [], [], ["GLPI indisponible : cycle sauté"])
    with transaction(pool) as conn:
        row = conn.execute("SELECT watermark FROM assist_state").fetchone()
    since = max(row["watermark"] - OVERLAP, now - MAX_LOOKBACK) if row else now - MAX_LOOKBACK
    minutes = max(1, int((now - since).total_seconds() // 60) + 1)
    try:
        tickets = clients.glpi.search_new_tickets(minutes, MAX_TICKETS_PER_CYCLE)
    except IntegrationError as exc:
        return _log(pool, client, execution_id, now, started, "error", [], [], [exc.message])
    processed, errors = [], []
    for ticket in tickets:
        try:
            handled = _take(pool, clients, ticket.id, ticket.date or "", options)
        except IntegrationError as exc:
            errors.append(f"ticket {ticket.id}: {exc.message}")
            continue
        if handled:
            processed.append(handled)
    with transaction(pool) as conn:
        conn.execute("INSERT INTO assist_state (id, watermark) VALUES (true, %s) ON CONFLICT (id) DO UPDATE "
                     "SET watermark = EXCLUDED.watermark, updated_at = now()", (now,))
    return _log(pool, client, execution_id, now, started, "error" if errors and not processed else "success",
                [t.id for t in tickets], processed, errors)


def _take(pool: ConnectionPool, clients, ticket_id: int, opened: str, options: Options) -> dict | None:
    """Decide and start the work for a ticket not seen before; None when it was already taken.

    A ticket is its id *and* its opening date: a GLPI restored from backup reuses ids, and the new
    ticket behind an old id must not be mistaken for the one already handled."""
    with transaction(pool) as conn:
        if conn.execute("SELECT 1 FROM assist_tickets WHERE ticket_id = %s AND ticket_date = %s",
                        (ticket_id, opened)).fetchone():
            return None
    vocab = intake.load_vocabulary(options.policy_dir)
    ticket = clients.glpi.get_ticket_details(ticket_id)
    if intake.is_own(f"{ticket.title}\n{ticket.content}", [r.login for r in ticket.requesters], vocab):
        return _record(pool, ticket, None, intake.Intake("AUTRE", "skipped", "ticket ouvert par widip", "none"),
                       None)
    verdict = intake.assess(ticket.title, ticket.content, clients.glpi.get_ticket_html(ticket_id),
                            next((r.email for r in ticket.requesters if r.email), "") or "", vocab,
                            requester_login=next((r.login for r in ticket.requesters if r.login), ""))
    proof = proofing.prove(clients, ticket.requesters, vocab.managed_ous)
    view = None
    if verdict.decision == intake.AUTO and not proof.proven:
        verdict = intake.Intake(verdict.category, intake.HANDOVER, proof.reason, "handover")
    if verdict.decision == intake.AUTO and options.classifier is not None:
        view = model_check.ask(options.classifier, ticket.title, ticket.content, timeout=options.llm_timeout)
        veto = model_check.objection(view, verdict.category, options.l1_threshold)
        if veto:
            verdict = intake.Intake(verdict.category, intake.HANDOVER, veto, "handover")
    return _record(pool, ticket, proof, verdict, view)


def _record(pool: ConnectionPool, ticket, proof, verdict, view) -> dict | None:
    """Claim the ticket, create its bound session, and queue its next step (work or hand-over)."""
    requester = proof.email if proof else None
    with transaction(pool) as conn:
        claimed = conn.execute(
            "INSERT INTO assist_tickets (ticket_id, ticket_date, category, requester_email, title, decision, reason, "
            "subject, requester_login, model_category, model_confidence) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (ticket_id, ticket_date) DO NOTHING RETURNING ticket_id",
            (ticket.id, ticket.date or "", verdict.category, requester, ticket.title[:255], verdict.decision, verdict.reason,
             proof.subject if proof else None, proof.login if proof else None,
             view.category if view else None, view.confidence if view else None)).fetchone()
        if claimed is None or verdict.decision == "skipped":
            return None if claimed is None else _summary(ticket.id, verdict, None)
        binding = {"ticket_id": ticket.id, "subject": proof.subject, "email": proof.email,
                   "category": verdict.category, "decision": verdict.decision, "reason": verdict.reason,
                   "action": verdict.action, "model_reason": view.reason if view and view.valid else None}
        first = brief(ticket.id, verdict.category, proof.subject, proof.email) if proof.proven else \
            f"Ticket GLPI {ticket.id} remis à un technicien : {verdict.reason}"
        session = create_session(conn, "assist", system_persona("assist"), first,
                                 context={"verified_requester": proof.email if proof.proven else None,
                                          "ticket_id": ticket.id, "assist": binding})
        sid = str(session["id"])
        conn.execute("UPDATE assist_tickets SET session_id = %s WHERE ticket_id = %s AND ticket_date = %s",
                     (sid, ticket.id, ticket.date or ""))
        if verdict.decision == intake.AUTO:
            outbox.add(conn, job_table.CONTINUE_SESSION, {"session_id": sid}, dedup_key=f"assist:{ticket.id}:{ticket.date or ''}")
        else:
            conn.execute("UPDATE agent_sessions SET status = 'completed', result = %s WHERE id = %s",
                         (Jsonb({"text": f"Remis à un technicien : {verdict.reason}"}), sid))
            subject.hand_over(conn, sid, verdict.reason)
    logger.info("assist: ticket %s (%s) → %s: %s", ticket.id, verdict.category, verdict.decision, verdict.reason)
    return _summary(ticket.id, verdict, sid)


def _summary(ticket_id: int, verdict, session_id: str | None) -> dict:
    return {"ticket_id": ticket_id, "category": verdict.category, "decision": verdict.decision,
            "reason": verdict.reason, "session_id": session_id}


def _log(pool, client, execution_id, now, started, status, found, processed, errors) -> dict:
    duration = time.monotonic() - started
    categories = sorted({p["category"] for p in processed})
    with transaction(pool) as conn:
        conn.execute(
            "INSERT INTO widip_agent_logs (execution_id, started_at, completed_at, status, tickets_found, "
            "tickets_processed, actions_detected, duration_seconds, errors) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (execution_id, now.replace(tzinfo=None), datetime.now(timezone.utc).replace(tzinfo=None), status,
             len(found), Jsonb(processed), ", ".join(categories), round(duration), Jsonb(errors)))
    outcome = {"execution_id": execution_id, "at": now.isoformat(), "status": status, "tickets_found": len(found),
               "tickets_processed": len(processed), "errors": errors, "duration_ms": round(duration * 1000, 1)}
    try:
        client.set(LAST_CYCLE_KEY, json.dumps(outcome), ex=86400)
    except redis.RedisError:
        logger.warning("assist: last cycle not recorded in Redis")
    logger.info("assist cycle: %s", outcome)
    return outcome


def options_for(settings) -> Options:
    """The cycle's options from the settings: a model classifies only when one is configured."""
    classifier = None
    if settings.llm_provider != "rules" and (settings.ollama_host or settings.anthropic_api_key):
        from widip.functions.llm.factory import provider_for

        classifier = provider_for(settings)
    return Options(policy_dir=settings.policy_dir, l1_threshold=policy_for(settings).l1_threshold,
                          classifier=classifier, llm_timeout=settings.llm_timeout_seconds)
