"""What each polled console widget shows, read with the same domain functions as the JSON API.

A widget is `name(ctx, caller, req) -> dict`, rendered by templates/fragments/<name>.html; the page
includes the same fragment for its first paint, then the browser re-fetches it every 3 s. Widgets
only read: every change goes through the JSON API (and the SAFEGUARD gate behind it).
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone

from widip.console import charts
from widip.console.render import PARIS
from widip.errors import Invalid
from widip.functions import db, monitoring
from widip.functions.integrations import glpi_health
from widip.functions.safeguard import audit, calls, deferred
from widip.functions.safeguard.notifications import APPROVER_LEVEL
from widip.functions.safeguard.policy import LEVELS, list_config
from widip.functions.sentinel import maintenance, views
from widip.functions.wibot import conversations as wibot_conversations

PERSONAS = ("sentinel", "notificateur", "assist", "wibot")
#: How many GLPI probes the monitoring chart draws (one every 30 s: the last hour).
CHART_PROBES = 120
LIST_LIMIT = 50


def _now() -> datetime:
    return datetime.now(timezone.utc)


def conversations(ctx, caller, req) -> dict:
    """The caller's WIBOT conversations, latest activity first (the same list as GET /conversations)."""
    with db.transaction(ctx.pool) as conn:
        rows = wibot_conversations.list_mine(conn, caller, limit=LIST_LIMIT)
    return {"conversations": rows, "current": req.get_param("current") or ""}


def conversation_turns(ctx, caller, conversation_id: str) -> list[dict]:
    """[{"content", "session_id", "status"}] of one conversation the caller may read (empty if none).

    A conversation is its owner's only: each user message is a turn with its session. Failing that,
    the id may be one agent session the caller may read — the SAFEGUARD desk links an approver to
    /console/chat/{session_id} so that they can decide inline in the technician's session.
    """
    from widip.errors import NotFound
    from widip.functions.agent import sessions

    with db.transaction(ctx.pool) as conn:
        try:
            row = wibot_conversations.get_owned(conn, conversation_id, caller)
        except NotFound:
            row = None
        if row is not None:
            return [{"content": m["content"], "session_id": m["session_id"], "status": m["turn_status"]}
                    for m in wibot_conversations.messages(conn, row["id"])
                    if m["role"] == "user" and m["session_id"]]
        try:
            session = sessions.get_session(conn, conversation_id)
            sessions.check_reader(session, caller)
        except NotFound:
            return []
        # A conversation's turn carries its memory before the message: the message is the turn's own.
        own = conn.execute("SELECT content FROM conversation_messages WHERE session_id = %s AND role = 'user' "
                           "LIMIT 1", (session["id"],)).fetchone()
    transcript = session["transcript"] or []
    first = own["content"] if own else next((m["content"] for m in transcript if m.get("role") == "user"), "")
    return [{"content": first, "session_id": str(session["id"]), "status": session["status"],
             "session_only": True}]


def approvers(ctx) -> list[str]:
    """Who may decide a SAFEGUARD request (N3+), for the requester's "waiting for" banner."""
    with db.transaction(ctx.pool) as conn:
        rows = conn.execute("SELECT coalesce(nullif(display_name, ''), username) AS name FROM users "
                            "WHERE active AND accreditation_level >= %s ORDER BY accreditation_level, username "
                            "LIMIT 20", (APPROVER_LEVEL,)).fetchall()
    return [r["name"] for r in rows]


def requests(ctx, caller, req) -> dict:
    with db.transaction(ctx.pool) as conn:
        rows = [r for r in calls.list_requests(conn, "pending") if calls.visible_to(r, caller)]
        names = user_names(conn, [r["requester_user_id"] for r in rows])
    return {"requests": rows, "names": names, "can_decide": caller.accreditation >= APPROVER_LEVEL, "now": _now()}


def user_names(conn, user_ids) -> dict[int, str]:
    """{user id: display name} for showing who asked, rather than an internal caller label."""
    ids = sorted({i for i in user_ids if i is not None})
    if not ids:
        return {}
    rows = conn.execute("SELECT id, coalesce(nullif(display_name, ''), username) AS name FROM users "
                        "WHERE id = ANY(%s)", (ids,)).fetchall()
    return {r["id"]: r["name"] for r in rows}


def deferred_actions(ctx, caller, req) -> dict:
    if caller.accreditation < APPROVER_LEVEL:
        return {"allowed": False, "actions": [], "can_decide": False}
    with db.transaction(ctx.pool) as conn:
        rows = deferred.list_deferred(conn, limit=LIST_LIMIT)
    return {"allowed": True, "actions": rows, "can_decide": caller.accreditation >= 4, "now": _now()}


def audit_log(ctx, caller, req) -> dict:
    filters = {k: (req.get_param(k) or "").strip()[:100] for k in ("tool", "user", "outcome", "since")}
    if caller.accreditation < APPROVER_LEVEL:
        return {"allowed": False, "rows": [], "filters": filters}
    since = None
    if filters["since"]:
        try:
            since = datetime.combine(date.fromisoformat(filters["since"]), time.min, PARIS)
        except ValueError:
            raise Invalid("la date doit être au format AAAA-MM-JJ") from None
    with db.transaction(ctx.pool) as conn:
        rows = audit.search(conn, tool=filters["tool"] or None, user=filters["user"] or None,
                            outcome=filters["outcome"] or None, since=since, limit=LIST_LIMIT)
    return {"allowed": True, "rows": rows, "filters": filters}


def levels(ctx, caller, req) -> dict:
    with db.transaction(ctx.pool) as conn:
        rows = list_config(conn)
    table: dict[str, dict] = {}
    for row in rows:
        table.setdefault(row["tool_name"], {})[row["persona"]] = row
    return {"tools": table, "personas": PERSONAS, "levels": LEVELS, "can_edit": caller.accreditation >= 4}


def supervision(ctx, caller, req) -> dict:
    report = monitoring.snapshot(ctx.pool, ctx.redis)
    with db.transaction(ctx.pool) as conn:
        probes = glpi_health.history(conn, hours=1, recent=CHART_PROBES)["recent"]
        incidents = views.list_incidents(conn, limit=5)
        diagnoses = {r["tracking_id"]: r["diagnosis"] for r in conn.execute(
            "SELECT tracking_id, diagnosis FROM incidents WHERE tracking_id = ANY(%s)",
            ([i["tracking_id"] for i in incidents],)).fetchall()}
        cycles = conn.execute("SELECT execution_id, started_at, status, tickets_found, tickets_processed, errors "
                              "FROM widip_agent_logs ORDER BY id DESC LIMIT 5").fetchall()
    return {"report": report, "chart": charts.glpi_probes(probes, slow_ms=ctx.settings.glpi_slow_threshold_ms),
            "incidents": incidents, "diagnoses": diagnoses, "cycles": cycles,
            "ticket_url": ticket_url(ctx.settings)}


def incidents(ctx, caller, req) -> dict:
    status = req.get_param("status") or None
    with db.transaction(ctx.pool) as conn:
        rows = views.list_incidents(conn, status=status, limit=100)
    return {"incidents": rows, "status": status or "", "ticket_url": ticket_url(ctx.settings)}


def incident(ctx, caller, req) -> dict:
    tracking_id = (req.get_param("id") or "")[:80]
    with db.transaction(ctx.pool) as conn:
        story = views.story(conn, tracking_id)
    return {"story": story, "ticket_url": ticket_url(ctx.settings)}


def windows(ctx, caller, req) -> dict:
    with db.transaction(ctx.pool) as conn:
        rows = maintenance.list_windows(conn)
    return {"windows": rows, "can_edit": caller.accreditation >= 2, "now": _now(),
            "scopes": maintenance.SCOPES}


def ticket_url(settings) -> str:
    """GLPI's ticket page prefix (…/front/ticket.form.php?id=), from the API URL; empty without GLPI."""
    base = (settings.glpi_url or "").rstrip("/")
    if not base:
        return ""
    if base.endswith("/apirest.php"):
        base = base[: -len("/apirest.php")]
    return base + "/front/ticket.form.php?id="


WIDGETS = {"conversations": conversations, "requests": requests, "deferred": deferred_actions,
           "audit": audit_log, "levels": levels, "supervision": supervision, "incidents": incidents,
           "incident": incident, "windows": windows}
