"""The SAFEGUARD audit trail (append-only table), argument hashing and redaction."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from psycopg import Connection

from widip.functions import untrusted
from widip.functions.db import Jsonb

#: Argument names whose values never reach the audit log or approval screens.
SENSITIVE_KEYS = ("password", "payload", "secret", "secret_handle", "token", "unicodepwd")


def args_hash(arguments: dict) -> str:
    """A stable hash of the exact arguments: an approval is bound to it."""
    canonical = json.dumps(untrusted.scrub(arguments), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


#: One-time secret links (Password Pusher `/p/<token>`): whoever opens one first reads the password.
SECRET_LINK = re.compile(r"https?://[^\s\"'<>]+/p/[A-Za-z0-9_\-]+(?:\.json)?")


def redact(value: Any) -> Any:
    """Arguments as approvers and auditors may see them: sensitive keys masked, secret links removed."""
    if isinstance(value, dict):
        return {k: ("***" if any(s in k.lower() for s in SENSITIVE_KEYS) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return SECRET_LINK.sub("[lien secret masqué]", value)
    return value


def record(conn: Connection, *, actor: str, action: str, actor_user_id: int | None = None,
           tool_name: str | None = None, call_id: str | None = None, request_id: int | None = None,
           level: str | None = None, arguments: dict | None = None, outcome: str | None = None,
           reason: str | None = None) -> None:
    """Append one audit row. Hostile text (NUL, lone surrogates, deep nesting) is scrubbed so that
    the row recording a refusal can always be written."""
    arguments = untrusted.scrub(arguments) if arguments is not None else None
    tool_name, reason, outcome, actor = (untrusted.scrub(v) if isinstance(v, str) else v
                                         for v in (tool_name, reason, outcome, actor))
    conn.execute(
        "INSERT INTO safeguard_audit (actor, actor_user_id, action, tool_name, call_id, request_id, level, "
        "args_hash, args_redacted, outcome, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (actor, actor_user_id, action, tool_name, call_id, request_id, level,
         args_hash(arguments) if arguments is not None else None,
         Jsonb(redact(arguments)) if arguments is not None else None, outcome, reason))


def search(conn: Connection, *, tool: str | None = None, user: str | None = None, since=None,
           outcome: str | None = None, limit: int = 200) -> list[dict]:
    """Newest first; `outcome` matches the action (approved, executed, …) or the recorded outcome."""
    clauses, params = [], []
    if outcome:
        clauses.append("(action = %s OR outcome = %s)")
        params.extend((outcome, outcome))
    if tool:
        clauses.append("tool_name = %s")
        params.append(tool)
    if user:
        clauses.append("actor ILIKE %s")
        params.append(f"%{user}%")
    if since:
        clauses.append("at >= %s")
        params.append(since)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return conn.execute(f"SELECT * FROM safeguard_audit {where} ORDER BY id DESC LIMIT %s", (*params, limit)).fetchall()
