"""Agent sessions and their ordered events (what `GET /agent/sessions/{id}/events?after=` returns)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from psycopg import Connection

from widip.errors import NotFound
from widip.functions.agent.personas import get_persona
from widip.functions.callers import Caller
from widip.functions.db import Jsonb

#: Fields of the seed's StreamingStep an event may carry (docs/architecture.md); `citations` on an
#: answer lists the documentation passages it quotes (widip.functions.docs.citations).
EVENT_FIELDS = ("message", "tool", "params", "result", "success", "error", "request_id", "security_level",
                "call_id", "deferred_id", "fallback", "citations")
#: Accreditation that may read any session's events (approvers and admins).
READ_ANY_LEVEL = 3


def create_session(conn: Connection, persona_name: str, caller: Caller, first_message: str, *,
                   context: dict | None = None, session_id: str | None = None,
                   history: list[dict] | None = None, system_prompt: str | None = None) -> dict:
    """A new active session with its system prompt and first user message; emits `start`.

    `history` (role/content dicts) goes between the system prompt and the message: a WIBOT
    conversation's memory; `system_prompt` replaces the persona's (WIBOT's names the user's rights).
    """
    persona = get_persona(persona_name)
    session_id = session_id or str(uuid.uuid4())
    transcript = [{"role": "system", "content": system_prompt or persona.prompt}, *(history or ()),
                  {"role": "user", "content": first_message}]
    row = conn.execute(
        "INSERT INTO agent_sessions (id, persona, owner_user_id, caller, transcript, context, deadline) "
        "VALUES (%s, %s, %s, %s, %s, %s, now() + %s) ON CONFLICT (id) DO NOTHING RETURNING *",
        (session_id, persona.name, caller.user_id if caller.is_human else caller.on_behalf_of,
         Jsonb(caller.to_dict()), Jsonb(transcript), Jsonb(context or {}),
         timedelta(seconds=persona.budget_seconds))).fetchone()
    if row is None:
        return get_session(conn, session_id)
    add_event(conn, session_id, "start", message=f"Session {persona.name} démarrée")
    return row


def get_session(conn: Connection, session_id: str, *, lock: bool = False) -> dict:
    try:
        uuid.UUID(str(session_id))
    except ValueError:
        raise NotFound(f"no agent session {session_id!r}") from None
    row = conn.execute("SELECT * FROM agent_sessions WHERE id = %s" + (" FOR UPDATE" if lock else ""),
                       (session_id,)).fetchone()
    if row is None:
        raise NotFound(f"no agent session {session_id}")
    return row


def check_reader(session: dict, reader: Caller) -> None:
    """The owner, or an N3+ human, may follow a session; others get a 404-like refusal."""
    if reader.is_human and (reader.accreditation >= READ_ANY_LEVEL or
                            (session["owner_user_id"] is not None and session["owner_user_id"] == reader.user_id)):
        return
    # 404, not 403: an outsider must not learn which session ids exist.
    raise NotFound(f"no agent session {session['id']}")


def add_event(conn: Connection, session_id: str, event_type: str, **fields) -> int:
    """Append an event with the next sequence number (the session row lock orders writers)."""
    data = {k: v for k, v in fields.items() if k in EVENT_FIELDS and v is not None}
    row = conn.execute(
        "INSERT INTO agent_events (session_id, seq, type, data) "
        "SELECT %s, coalesce(max(seq), 0) + 1, %s, %s FROM agent_events WHERE session_id = %s RETURNING seq",
        (session_id, event_type, Jsonb(data), session_id)).fetchone()
    return row["seq"]


def events_after(conn: Connection, session_id: str, after: int = 0, limit: int = 200) -> list[dict]:
    rows = conn.execute("SELECT seq, type, data, created_at FROM agent_events WHERE session_id = %s AND seq > %s "
                        "ORDER BY seq LIMIT %s", (session_id, after, limit)).fetchall()
    return [{"seq": r["seq"], "type": r["type"], "session_id": str(session_id), **r["data"],
             "at": r["created_at"].isoformat()} for r in rows]


def public_view(session: dict) -> dict:
    return {"id": str(session["id"]), "persona": session["persona"], "status": session["status"],
            "iteration": session["iteration"], "pending_request_id": session["pending_request_id"],
            "provider": session["provider"], "result": session["result"], "error": session["error"],
            "created_at": session["created_at"].isoformat(), "updated_at": session["updated_at"].isoformat()}


def verified_requester(conn: Connection, session_id: str | None) -> str | None:
    """The requester e-mail a session's pipeline verified in GLPI (never taken from ticket text):
    the only external address its mails may go to."""
    if not session_id:
        return None
    row = conn.execute("SELECT context->>'verified_requester' AS email FROM agent_sessions WHERE id = %s",
                       (session_id,)).fetchone()
    return row["email"] if row else None
