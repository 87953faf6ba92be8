"""Assist's subject binding, checked at the gate below every provider (rules, Ollama, Anthropic).

An Assist session carries its *subject* in its context (`context["assist"]`): the AD account resolved
from the verified GLPI requester, that requester's verified address, the ticket, and what intake
decided ("auto" or "handover"). For the assist persona every call that changes something is refused
unless it stays on that subject:

- AD writes only on the subject's account, and only when intake decided "auto";
- a secret link only from a handle that a done reset *of the subject in this session* returned;
- mail only to the subject's verified address; follow-ups only private, one per session;
- ticket tools only on the session's ticket; closing only after the write was read back from AD.

Any refusal hands the ticket over: the session's decision becomes "handover" (nothing more is
written or closed) and a private follow-up stating the reason is queued (`job_table.ASSIST_HAND_OVER`).
"""

from __future__ import annotations

from psycopg import Connection

from widip.functions import job_table, outbox
from widip.functions.callers import Caller
from widip.functions.db import Jsonb

#: The actor that posts the hand-over follow-up (widip/actors/assist.py).
AD_WRITES = frozenset({"ad_reset_password", "ad_unlock_account", "ad_disable_account"})
_READS = frozenset({"glpi_get_ticket_details", "ad_check_user", "ad_find_user_by_mail", "ad_get_user_info",
                    "glpi_get_user", "glpi_search_client"})


def binding(conn: Connection, session_id: str | None) -> dict | None:
    """The Assist binding of a session (subject, email, ticket_id, decision), or None."""
    if not session_id:
        return None
    row = conn.execute("SELECT context->'assist' AS assist FROM agent_sessions WHERE id = %s",
                       (session_id,)).fetchone()
    return row["assist"] if row and isinstance(row["assist"], dict) else None


def check(conn: Connection, caller: Caller, tool_name: str, arguments: dict, session_id: str | None,
          level: str = "") -> str | None:
    """Why this call must be refused for the assist persona, or None. Refusals hand the ticket over.

    L4 calls are left to the gate: they never run for an AI, a human schedules them (and a session is
    never offered them)."""
    if not caller.is_ai or caller.persona != "assist" or tool_name in _READS or level == "L4":
        return None
    bound = binding(conn, session_id)
    if bound is None:
        return "assist: no verified subject bound to this session"
    reason = _violation(conn, bound, tool_name, arguments, session_id)
    if reason and tool_name != "glpi_add_ticket_followup":
        hand_over(conn, session_id, reason)
    return reason


def _violation(conn: Connection, bound: dict, tool: str, args: dict, session_id: str) -> str | None:
    if "ticket_id" in args and args["ticket_id"] != bound.get("ticket_id"):
        return f"assist: ticket {args['ticket_id']} is not this session's ticket {bound.get('ticket_id')}"
    if tool == "glpi_add_ticket_followup":
        if not args.get("is_private"):
            return "assist: follow-ups are private (the requester is told by mail)"
        if _calls(conn, session_id, tool, statuses=("ready", "running", "done", "waiting_approval")):
            return "assist: this ticket was already handed over"
        return None
    if tool == "glpi_assign_group":
        return None
    if bound.get("decision") != "auto":
        return f"assist: intake handed this ticket over ({bound.get('reason') or 'no automatic action'})"
    subject = str(bound.get("subject") or "").lower()
    if tool in AD_WRITES:
        target = str(args.get("username", "")).lower()
        return None if subject and target == subject else \
            f"assist: {tool} on {args.get('username')!r} but the verified requester's account is {subject!r}"
    if tool == "mysecret_create_secret":
        return _secret_violation(conn, args, subject, session_id)
    if tool == "smtp_send_email":
        wanted = str(bound.get("email") or "").lower()
        recipients = [str(r).lower() for r in args.get("to", [])]
        return None if wanted and recipients == [wanted] else \
            "assist: mail only goes to the verified requester's own address"
    if tool == "glpi_close_ticket":
        return _unverified(conn, subject, session_id)
    return f"assist: {tool} is not an Assist action"


def _secret_violation(conn: Connection, args: dict, subject: str, session_id: str) -> str | None:
    if "secret_handle" not in args:
        return "assist: a secret link only wraps the handle of the requester's own reset"
    resets = _calls(conn, session_id, "ad_reset_password", statuses=("done",))
    if any(r["result"] and r["result"].get("secret_handle") == args["secret_handle"]
           and str(r["arguments"].get("username", "")).lower() == subject for r in resets):
        return None
    return "assist: this secret handle does not come from the verified requester's reset in this session"


def _unverified(conn: Connection, subject: str, session_id: str) -> str | None:
    """None when a done write on the subject was read back from AD afterwards and holds."""
    writes = [c for c in _calls(conn, session_id, *AD_WRITES, statuses=("done",))
              if str(c["arguments"].get("username", "")).lower() == subject]
    if not writes:
        return "assist: nothing was done on the requester's account, the ticket stays open"
    last = max(c["finished_at"] for c in writes)
    reset = any(c["tool_name"] == "ad_reset_password" for c in writes)
    for check in _calls(conn, session_id, "ad_check_user", statuses=("done",)):
        state = check["result"] or {}
        if (check["created_at"] >= last and str(state.get("username", "")).lower() == subject
                and state.get("exists") and state.get("enabled") and not state.get("locked")
                and (state.get("must_change_password") or not reset)):
            if reset and not _calls(conn, session_id, "smtp_send_email", statuses=("done",)):
                return "assist: the requester was not sent the link, the ticket stays open"
            return None
    return "assist: the account was not read back as fixed after the write, the ticket stays open"


def _calls(conn: Connection, session_id: str, *tools: str, statuses: tuple[str, ...]) -> list[dict]:
    return conn.execute("SELECT tool_name, arguments, result, status, created_at, finished_at FROM tool_calls "
                        "WHERE session_id = %s AND tool_name = ANY(%s) AND status = ANY(%s) ORDER BY created_at",
                        (session_id, list(tools), list(statuses))).fetchall()


def hand_over(conn: Connection, session_id: str, reason: str) -> None:
    """Mark the session handed over (no write or close from now on) and queue the private follow-up."""
    conn.execute("UPDATE agent_sessions SET context = jsonb_set(context, '{assist}', context->'assist' || %s) "
                 "WHERE id = %s AND context->'assist'->>'decision' = 'auto'",
                 (Jsonb({"decision": "handover", "reason": reason}), session_id))
    outbox.add(conn, job_table.ASSIST_HAND_OVER, {"session_id": str(session_id), "reason": reason},
               dedup_key=f"assist-handover:{session_id}", description=f"assist hand-over: {reason[:80]}")
