"""Handing a ticket over to a technician: one private follow-up stating the reason in French, the
ticket left open (never solved), and account creations assigned to the accounts group.

The follow-up and the assignment are tool calls through the gate like any other, bound to the
session's ticket; their call ids derive from the session, so a redelivered hand-over posts once.
"""

from __future__ import annotations

import uuid

from psycopg_pool import ConnectionPool

from widip.errors import Invalid, NotFound
from widip.functions.callers import system_persona
from widip.functions.db import transaction
from widip.functions.safeguard import calls, subject
from widip.functions.safeguard.policy import Policy

_NAMESPACE = uuid.UUID("2d0a4f4e-7a55-4c1b-9a53-617373697374")


def motive(reason: str) -> str:
    """The reason as technicians read it (gate refusals are recorded in English)."""
    if reason.startswith("assist:"):
        return f"une action proposée a été refusée par SAFEGUARD ({reason[len('assist:'):].strip()})"
    return reason


def post(pool: ConnectionPool, session_id: str, reason: str, *, policy: Policy,
         accounts_group_id: int = 0) -> list[dict]:
    """Propose the hand-over calls for this session's ticket; returns the call rows."""
    with transaction(pool) as conn:
        bound = subject.binding(conn, session_id)
        if not bound:
            return []
        ticket_id, category = bound["ticket_id"], bound.get("category") or "AUTRE"
        wanted = [("glpi_add_ticket_followup", {
            "ticket_id": ticket_id, "is_private": True,
            "content": f"[Assist] Ticket remis à un technicien, non résolu (aucune clôture automatique).\n"
                       f"Catégorie : {category}\nMotif : {motive(reason)}"
                       + (f"\nAvis du modèle : {bound['model_reason']}" if bound.get("model_reason") else "")})]
        if category == "CREATION_COMPTE" and accounts_group_id:
            wanted.append(("glpi_assign_group", {"ticket_id": ticket_id, "group_id": accounts_group_id}))
        rows = []
        for tool, arguments in wanted:
            try:
                rows.append(calls.propose(conn, calls.Proposal(
                    tool, arguments, system_persona("assist"), confidence=1.0, session_id=session_id,
                    call_id=str(uuid.uuid5(_NAMESPACE, f"{session_id}:{tool}")), reason="assist hand-over"), policy))
            except (Invalid, NotFound):
                continue
        return rows
