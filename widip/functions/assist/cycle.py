"""The Assist cycle (seed Workflow 2, "Assist Ticket v3"): every 3 minutes, new GLPI tickets each
start one `assist` agent session, once.

Circuit breaker first: while GLPI is down the cycle is skipped and logged. The ticket's requester is
read from GLPI (`get_ticket_details`), never from the ticket text, and handed to the session as the
verified requester: the only external address its mails may reach and the e-mail the Assist
playbook looks up in Active Directory. What the session may do is decided by the gate as for any
agent (including the per-account reset cap in policy/safeguard.toml).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone

import redis
from psycopg_pool import ConnectionPool

from widip.errors import IntegrationError
from widip.functions import outbox
from widip.functions.integrations import circuit
from widip.functions.agent.sessions import create_session
from widip.functions.callers import system_persona
from widip.functions.db import Jsonb, transaction
from widip.functions.assist.playbook import classify
from widip.functions.safeguard.calls import CONTINUE_SESSION_ACTOR

logger = logging.getLogger(__name__)

LAST_CYCLE_KEY = "widip:assist:last_cycle"
#: Tickets are searched from the watermark minus this overlap (clock skew between us and GLPI).
OVERLAP = timedelta(minutes=5)
#: First cycle, or after a long stop: how far back to look (older tickets are left to people).
MAX_LOOKBACK = timedelta(days=1)
MAX_TICKETS_PER_CYCLE = 50


def run_cycle(pool: ConnectionPool, client: redis.Redis, clients, *, now: datetime | None = None) -> dict:
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
            handled = _take(pool, clients, ticket.id)
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


def _take(pool: ConnectionPool, clients, ticket_id: int) -> dict | None:
    """Start the session for a ticket not seen before; None when it was already taken.

    A ticket is its id *and* its opening date: a GLPI restored from backup reuses ids, and the new
    ticket behind an old id must not be mistaken for the one already handled."""
    ticket = clients.glpi.get_ticket_details(ticket_id)
    opened = ticket.date or ""
    requester = next((r.email for r in ticket.requesters if r.email), None)
    category = classify(f"{ticket.title}\n{ticket.content}")
    with transaction(pool) as conn:
        claimed = conn.execute(
            "INSERT INTO assist_tickets (ticket_id, ticket_date, category, requester_email, title) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (ticket_id, ticket_date) DO NOTHING RETURNING ticket_id",
            (ticket_id, opened, category, requester, ticket.title[:255])).fetchone()
        if claimed is None:
            return None
        session = create_session(conn, "assist", system_persona("assist"), f"Ticket GLPI {ticket_id} à traiter",
                                 context={"verified_requester": requester, "ticket_id": ticket_id})
        conn.execute("UPDATE assist_tickets SET session_id = %s WHERE ticket_id = %s AND ticket_date = %s",
                     (session["id"], ticket_id, opened))
        outbox.add(conn, CONTINUE_SESSION_ACTOR, {"session_id": str(session["id"])},
                   dedup_key=f"assist:{ticket_id}:{opened}")
    logger.info("assist: ticket %s (%s) → session %s", ticket_id, category, session["id"])
    return {"ticket_id": ticket_id, "category": category, "session_id": str(session["id"])}


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
