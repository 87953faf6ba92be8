"""What Assist did, per ticket and per cycle: the rows behind GET /assist/tickets and GET /assist/cycles.

Actions come from the session's gated tool calls (never their secrets: no mail body, no handle);
the outcome is what a technician needs to know — solved, handed over, still running, or skipped.
"""

from __future__ import annotations

from psycopg import Connection

from widip.errors import Invalid
from widip.functions.jsonable import json_safe

DECISIONS = ("auto", "handover", "skipped")
#: The one argument of each tool worth showing: who or what it targeted.
_TARGET = {"ad_reset_password": "username", "ad_unlock_account": "username", "ad_check_user": "username",
           "ad_find_user_by_mail": "email", "smtp_send_email": "to", "glpi_add_ticket_followup": "ticket_id",
           "glpi_close_ticket": "ticket_id", "glpi_assign_group": "group_id"}


def _outcome(row: dict, actions: list[dict]) -> str:
    done = {a["tool"] for a in actions if a["status"] == "done"}
    if row["decision"] == "skipped":
        return "skipped"
    if "glpi_close_ticket" in done:
        return "solved"
    if "glpi_add_ticket_followup" in done:
        return "handed_over"
    if row["session_status"] == "failed":
        return "failed"
    return "in_progress"


def list_tickets(conn: Connection, *, decision: str | None = None, limit: int = 100) -> list[dict]:
    if decision is not None and decision not in DECISIONS:
        raise Invalid(f"decision must be one of {', '.join(DECISIONS)}")
    rows = conn.execute(
        "SELECT t.*, s.status AS session_status, s.context->'assist'->>'reason' AS final_reason "
        "FROM assist_tickets t LEFT JOIN agent_sessions s ON s.id = t.session_id "
        "WHERE %s::text IS NULL OR t.decision = %s ORDER BY t.created_at DESC, t.ticket_id DESC LIMIT %s",
        (decision, decision, limit)).fetchall()
    sessions = [r["session_id"] for r in rows if r["session_id"]]
    calls: dict[str, list[dict]] = {}
    for call in conn.execute("SELECT session_id, tool_name, arguments, status, created_at FROM tool_calls "
                             "WHERE session_id = ANY(%s) ORDER BY created_at", (sessions,)):
        key = _TARGET.get(call["tool_name"])
        calls.setdefault(str(call["session_id"]), []).append(
            {"tool": call["tool_name"], "status": call["status"], "at": call["created_at"],
             "target": call["arguments"].get(key) if key else None})
    out = []
    for row in rows:
        actions = calls.get(str(row["session_id"]), [])
        out.append(json_safe({
            "ticket_id": row["ticket_id"], "title": row["title"], "category": row["category"],
            "decision": row["decision"], "reason": row["final_reason"] or row["reason"],
            "requester": {"login": row["requester_login"], "email": row["requester_email"],
                          "ad_account": row["subject"]},
            "model": {"category": row["model_category"], "confidence": row["model_confidence"]}
            if row["model_category"] else None,
            "actions": actions, "outcome": _outcome(row, actions), "created_at": row["created_at"],
            "session": f"/agent/sessions/{row['session_id']}" if row["session_id"] else None}))
    return out


def list_cycles(conn: Connection, *, limit: int = 50) -> list[dict]:
    """The seed's widip_agent_logs rows, newest first."""
    return json_safe(conn.execute("SELECT * FROM widip_agent_logs ORDER BY id DESC LIMIT %s", (limit,)).fetchall())
