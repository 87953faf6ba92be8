"""WIBOT conversations: each user message starts one `wibot` agent session carrying the memory.

A turn's final answer becomes the conversation's assistant message when the conversation is next
read or written (`sync_answers`), so nothing in the agent runtime has to know about conversations.
Only the owner sees a conversation: anyone else gets the same 404 as for an id that does not exist.
"""

from __future__ import annotations

import uuid

from psycopg import Connection

from widip.errors import Conflict, NotFound
from widip.functions import job_table, outbox
from widip.functions.access_matrix import access_for
from widip.functions.agent import sessions
from widip.functions.agent.personas import get_persona, visible_tools
from widip.functions.callers import Caller
from widip.functions.db import Jsonb
from widip.functions.docs import citations
from widip.functions.identity import get_user
from widip.functions.wibot import memory, prompt

PERSONA = "wibot"
RUNNING = ("active", "waiting_approval")


def _check_id(conversation_id: str) -> str:
    try:
        return str(uuid.UUID(str(conversation_id)))
    except ValueError:
        raise NotFound(f"no conversation {conversation_id!r}") from None


def get_owned(conn: Connection, conversation_id: str, user: Caller, *, lock: bool = False) -> dict:
    row = conn.execute("SELECT * FROM conversations WHERE id = %s AND owner_user_id = %s" +
                       (" FOR UPDATE" if lock else ""), (_check_id(conversation_id), user.user_id)).fetchone()
    if row is None:  # 404, never 403: an outsider must not learn which conversations exist
        raise NotFound(f"no conversation {conversation_id}")
    return row


def create(conn: Connection, user: Caller, title: str | None = None) -> dict:
    return conn.execute("INSERT INTO conversations (id, owner_user_id, title) VALUES (%s, %s, %s) RETURNING *",
                        (str(uuid.uuid4()), user.user_id, memory.title_from(title or ""))).fetchone()


def list_mine(conn: Connection, user: Caller, *, limit: int = 50) -> list[dict]:
    return conn.execute("SELECT id, title, created_at, last_activity_at FROM conversations "
                        "WHERE owner_user_id = %s ORDER BY last_activity_at DESC, id LIMIT %s",
                        (user.user_id, limit)).fetchall()


def public_view(row: dict) -> dict:
    return {"id": str(row["id"]), "title": row["title"], "created_at": row["created_at"].isoformat(),
            "last_activity_at": row["last_activity_at"].isoformat()}


def messages(conn: Connection, conversation_id: str) -> list[dict]:
    rows = conn.execute("SELECT m.id, m.role, m.content, m.session_id, m.citations, m.created_at, s.status "
                        "FROM conversation_messages m LEFT JOIN agent_sessions s ON s.id = m.session_id "
                        "WHERE m.conversation_id = %s ORDER BY m.id", (conversation_id,)).fetchall()
    return [{"id": r["id"], "role": r["role"], "content": r["content"],
             "session_id": str(r["session_id"]) if r["session_id"] else None, "citations": r["citations"],
             "turn_status": r["status"] if r["role"] == "user" else None,
             "created_at": r["created_at"].isoformat()} for r in rows]


def post_message(conn: Connection, conversation_id: str, user: Caller, content: str, settings) -> dict:
    """Record the user's message and start its turn; returns {session_id, events_url}."""
    conversation = get_owned(conn, conversation_id, user, lock=True)
    conversation = sync_answers(conn, conversation)
    running = conn.execute("SELECT s.id FROM conversation_messages m JOIN agent_sessions s ON s.id = m.session_id "
                           "WHERE m.conversation_id = %s AND s.status = ANY(%s) LIMIT 1",
                           (conversation["id"], list(RUNNING))).fetchone()
    if running:
        raise Conflict(f"conversation {conversation['id']}: the previous turn is still running "
                       f"(session {running['id']})")
    agent = Caller(kind="ai", username="wibot", persona=PERSONA, on_behalf_of=user.user_id,
                   accreditation=user.accreditation)
    rights = access_for(conn, user.user_id)
    history = _history(conn, conversation, settings)
    if prompt.is_authorized(rights):
        person = get_user(conn, user.user_id)
        tools = [t.name for t in visible_tools(conn, get_persona(PERSONA), agent)]
        system = prompt.system_prompt(username=person.username, display_name=person.display_name,
                                      accreditation=user.accreditation, rights=rights, tool_names=tools)
    else:
        system = None
    session = sessions.create_session(conn, PERSONA, agent, content, history=history, system_prompt=system,
                                      context={"conversation_id": str(conversation["id"])})
    sid = str(session["id"])
    conn.execute("INSERT INTO conversation_messages (conversation_id, role, content, session_id) "
                 "VALUES (%s, 'user', %s, %s)", (conversation["id"], content, sid))
    conn.execute("UPDATE conversations SET last_activity_at = now(), title = CASE WHEN title = '' THEN %s "
                 "ELSE title END WHERE id = %s", (memory.title_from(content), conversation["id"]))
    if system is None:
        _refuse(conn, sid)
    else:
        outbox.add(conn, job_table.CONTINUE_SESSION, {"session_id": sid}, dedup_key=f"start:{sid}")
    return {"session_id": sid, "events_url": f"/agent/sessions/{sid}/events"}


def _refuse(conn: Connection, session_id: str) -> None:
    """The seed's unauthorized response, without any model call."""
    sessions.add_event(conn, session_id, "response", message=prompt.REFUSAL)
    sessions.add_event(conn, session_id, "done", success=False)
    conn.execute("UPDATE agent_sessions SET status = 'completed', provider = 'none', result = %s WHERE id = %s",
                 (Jsonb({"text": prompt.REFUSAL}), session_id))


def _history(conn: Connection, conversation: dict, settings) -> list[dict]:
    """Memory for the next turn: a system note (summary of older turns, last entities), then recent turns."""
    rows = conn.execute("SELECT role, content FROM conversation_messages WHERE conversation_id = %s ORDER BY id",
                        (conversation["id"],)).fetchall()
    budget = memory.HISTORY_TOKENS.get(memory.provider_name(settings), memory.HISTORY_TOKENS["rules"])
    older, recent = memory.window([dict(r) for r in rows], budget)
    summary = memory.summarize(older, budget)
    if summary != conversation["summary"]:
        conn.execute("UPDATE conversations SET summary = %s WHERE id = %s", (summary, conversation["id"]))
    note = memory.memory_message(summary, conversation["entities"])
    return ([{"role": "system", "content": note}] if note else []) + \
        [{"role": r["role"], "content": r["content"]} for r in recent]


def sync_answers(conn: Connection, conversation: dict) -> dict:
    """Turn each finished session of the conversation into its assistant message (once)."""
    pending = conn.execute(
        "SELECT m.session_id, m.content, s.status, s.result, s.error FROM conversation_messages m "
        "JOIN agent_sessions s ON s.id = m.session_id WHERE m.conversation_id = %s AND m.role = 'user' "
        "AND s.status <> ALL(%s) AND NOT EXISTS (SELECT 1 FROM conversation_messages a "
        "WHERE a.session_id = m.session_id AND a.role = 'assistant') ORDER BY m.id",
        (conversation["id"], list(RUNNING))).fetchall()
    entities = dict(conversation["entities"])
    for turn in pending:
        if turn["status"] == "completed":
            text = (turn["result"] or {}).get("text") or ""
        else:
            text = "Désolé, je n'ai pas pu terminer cette demande : " + (turn["error"] or turn["status"]) + "."
        calls = conn.execute("SELECT tool_name, arguments, status, result FROM tool_calls WHERE session_id = %s "
                             "ORDER BY created_at", (turn["session_id"],)).fetchall()
        cited = citations.cited(text, [c["result"] for c in calls
                                       if c["tool_name"] == citations.SEARCH_TOOL and c["status"] == "done"])
        conn.execute("INSERT INTO conversation_messages (conversation_id, role, content, session_id, citations) "
                     "VALUES (%s, 'assistant', %s, %s, %s) ON CONFLICT DO NOTHING",
                     (conversation["id"], text, turn["session_id"], Jsonb(cited)))
        found = memory.extract_entities(turn["content"] + "\n" + text,
                                        [(c["tool_name"], c["arguments"] or {}) for c in calls],
                                        [c["result"] for c in calls if c["status"] == "done"])
        entities = memory.merge_entities(entities, found)
    if pending:
        conn.execute("UPDATE conversations SET entities = %s, last_activity_at = now() WHERE id = %s",
                     (Jsonb(entities), conversation["id"]))
        conversation = {**conversation, "entities": entities}
    return conversation


def delete(conn: Connection, conversation_id: str, user: Caller) -> None:
    conversation = get_owned(conn, conversation_id, user, lock=True)
    _erase(conn, [conversation["id"]])


def _erase(conn: Connection, conversation_ids: list) -> int:
    """Delete conversations and the words they carried in their sessions (GDPR); tool calls stay
    in the append-only audit trail."""
    if not conversation_ids:
        return 0
    session_ids = [r["session_id"] for r in conn.execute(
        "SELECT DISTINCT session_id FROM conversation_messages WHERE conversation_id = ANY(%s) "
        "AND session_id IS NOT NULL", (conversation_ids,))]
    if session_ids:
        conn.execute("DELETE FROM agent_events WHERE session_id = ANY(%s)", (session_ids,))
        conn.execute("UPDATE agent_sessions SET transcript = '[]'::jsonb, result = NULL, "
                     "context = context - 'conversation_id' WHERE id = ANY(%s)", (session_ids,))
    return conn.execute("DELETE FROM conversations WHERE id = ANY(%s)", (conversation_ids,)).rowcount


def purge_expired(conn: Connection, retention_days: int) -> int:
    """Delete conversations idle for more than `retention_days` (CONVERSATION_RETENTION_DAYS)."""
    rows = conn.execute("SELECT id FROM conversations WHERE last_activity_at < now() - make_interval(days => %s) "
                        "FOR UPDATE SKIP LOCKED LIMIT 1000", (retention_days,)).fetchall()
    return _erase(conn, [r["id"] for r in rows])

