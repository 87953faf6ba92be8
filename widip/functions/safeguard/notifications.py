"""Telling approvers: an L3 request waits for them, or an L2 action ran and deserves a look."""

from __future__ import annotations

import logging

from psycopg_pool import ConnectionPool

from widip.functions.integrations import mail_templates
from widip.functions.callers import Caller
from widip.functions.db import transaction
from widip.functions.safeguard import audit

logger = logging.getLogger(__name__)

#: Accreditation from which a user receives SAFEGUARD notifications.
APPROVER_LEVEL = 3


def approver_addresses(conn) -> list[str]:
    rows = conn.execute("SELECT email FROM users WHERE active AND accreditation_level >= %s AND email <> '' "
                        "ORDER BY id", (APPROVER_LEVEL,)).fetchall()
    return [r["email"] for r in rows]


def notify_executed(pool: ConnectionPool, clients, call_id: str) -> int:
    """Mail the approvers about an executed L2 call; return how many were mailed (0 if none)."""
    with transaction(pool) as conn:
        call = conn.execute("SELECT * FROM tool_calls WHERE id = %s", (call_id,)).fetchone()
        recipients = approver_addresses(conn)
    if call is None or not recipients:
        return 0
    caller = Caller.from_dict(call["caller"])
    subject, body = mail_templates.action_executed_notice(
        tool=call["tool_name"], level=call["level"], call_id=str(call["id"]), requested_by=caller.label,
        outcome=call["status"], reason=call["error"] or "exécutée")
    clients.mail.send_email(recipients, subject, body, message_id=f"widip-notify-{call_id}")
    with transaction(pool) as conn:
        audit.record(conn, actor="system:notifier", action="notified", tool_name=call["tool_name"],
                     call_id=str(call["id"]), level=call["level"], outcome="mailed",
                     reason=f"{len(recipients)} approver(s) mailed")
    return len(recipients)
