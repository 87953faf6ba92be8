"""The Notificateur: one GLPI ticket and one team mail per incident, then follow-ups on that ticket.

Every effect is a tool call proposed as `system_persona("notificateur")` through SAFEGUARD (policy:
ticket, follow-up and mail are L2 for this persona: run, then approvers are told). Call ids are
derived from the incident, so running `notify` or `sync` twice never opens a second ticket.

Circuit breaker ("Mode Dégradé"): with GLPI down the ticket call is proposed with
`dependency="glpi"`, so it waits in the outbox and is created on recovery, and the mail says the
ticket is pending. With GLPI up the ticket call runs inline (its outbox row is claimed), so the
team mail can quote the ticket number; if GLPI fails right then, the call goes back to the outbox.
Follow-ups (late devices, flapping, recovery) need the ticket id: `sync` records it once the ticket
call is done and is re-run by the Sentinel sweeper until nothing is left to announce. A ticket call
that ended without a ticket (failed, refused, expired, unknown outcome) is recorded once as
`ticket_failed_at` with a timeline event (see `ticket_failures`) and no longer synced.

The ticket request (`notified_at`) and the team mail (`mailed_at`) are two commits around the GLPI
call: a worker killed in between leaves `mailed_at` NULL, and the next `notify` (the actor's retry or
the sweeper, once UNFINISHED_AFTER has passed) requests the mail — its call id is fixed, so once.

Plain text written here is French (texts.py); an incident_logs row and the workflow metrics close
the run ("Validation & log").
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from widip.errors import IntegrationError, Unavailable
from widip.functions import clock, job_table, outbox
from widip.functions.integrations import circuit
from widip.functions.safeguard import runs as tool_runs
from widip.functions.callers import system_persona
from widip.functions.db import transaction
from widip.functions.safeguard import calls
from widip.functions.safeguard.policy import Policy
from widip.functions.sentinel import incidents, texts

logger = logging.getLogger(__name__)

_IDS = uuid.UUID("0d7a1f3e-61c2-4f0b-8e51-6e6f74696669")
ENTITY_KEY = "widip:sentinel:glpi_entity:{client}"
ENTITY_TTL_SECONDS, ENTITY_MISS_TTL_SECONDS = 86_400, 600
#: A notification requested longer ago than the notify actor's time limit (120 s) but never mailed has
#: stopped (killed during the GLPI call); younger, it may still be running: do not mail without its ticket.
UNFINISHED_AFTER = timedelta(seconds=150)
#: Late devices are announced together once none joined for this long (SENTINEL_BATCH_SECONDS).
ADDITIONS_BATCH = timedelta(seconds=int(os.environ.get("SENTINEL_BATCH_SECONDS") or 60))


@dataclass(frozen=True)
class Notified:
    incident_id: int
    status: str  # notified | already | not_diagnosed
    ticket_id: int | None = None
    degraded: bool = False


def call_id(incident_id: int, purpose: str) -> str:
    return str(uuid.uuid5(_IDS, f"{incident_id}:{purpose}"))


def resolve_entity(redis, clients, client: str | None, *, ask_glpi: bool) -> int | None:
    """The GLPI entity named like the client (cached a day); None when unknown or GLPI is not asked.

    NOTE: GlpiClient has no public entity search yet; this uses its `_search` (see report).
    """
    if not client:
        return None
    key = ENTITY_KEY.format(client=client.lower())
    try:
        known = redis.get(key)
    except Exception:  # noqa: BLE001 - no cache, ask GLPI
        known = None
    if known is not None:
        return int(known) if known.isdigit() else None
    if not ask_glpi:
        return None
    try:
        found = clients.glpi.find_entity(client)
    except IntegrationError as exc:
        logger.warning("GLPI entity of %s not resolved: %s", client, exc.message)
        return None
    try:
        redis.set(key, str(found) if found is not None else "-",
                  ex=ENTITY_TTL_SECONDS if found is not None else ENTITY_MISS_TTL_SECONDS)
    except Exception:  # noqa: BLE001
        pass
    return found


def notify(pool, redis, clients, settings, incident_id: int, *, policy: Policy, now: datetime | None = None) -> Notified:
    """Open the ticket and mail the team for a diagnosed incident (idempotent).

    Two commits: the ticket request (`notified_at`), then the team mail and log (`mailed_at`). A run that
    died in between (time limit or kill during the inline GLPI call) is finished by the next `notify`.
    """
    now = now or clock.now()
    with transaction(pool) as conn:
        incident = incidents.get_incident(conn, incident_id)
        if (incident is not None and incident["notified_at"] is not None and incident["mailed_at"] is None
                and now - incident["notified_at"] >= UNFINISHED_AFTER):
            return complete(pool, settings, incident_id, policy=policy, now=now)
        if incident is None or incident["notified_at"] is not None:
            return Notified(incident_id, "already", incident and incident["ticket_id"])
        if incident["diagnosis"] is None:
            return Notified(incident_id, "not_diagnosed")
    degraded = not circuit.glpi_available(redis)
    entity = incident["glpi_entity_id"]  # from the inventory; else the GLPI entity named like the client
    if entity is None:
        entity = resolve_entity(redis, clients, incident["client"], ask_glpi=not degraded)
    notificateur = system_persona("notificateur")
    ticket_call = call_id(incident_id, "ticket")
    with transaction(pool) as conn:
        incident = incidents.get_incident(conn, incident_id, lock=True)
        if incident["notified_at"] is not None:
            return Notified(incident_id, "already", incident["ticket_id"])
        members = incidents.members(conn, incident_id)
        diagnosis = incident["diagnosis"]
        arguments = {"title": texts.ticket_title(incident, members, diagnosis),
                     "content": texts.ticket_body(incident, members, diagnosis, incident["diagnosis_source"]),
                     "urgency": texts.URGENCY[diagnosis["severity"]]}
        if entity is not None:
            arguments["entity"] = entity
        call = calls.propose(conn, calls.Proposal(
            "glpi_create_ticket", arguments, notificateur, call_id=ticket_call, dependency="glpi",
            reason=f"ticket de l'incident {incident['tracking_id']}"), policy)
        incidents.link_call(conn, incident_id, ticket_call, "ticket")
        inline = call["status"] == "ready" and not degraded
        if inline:
            calls.claim_run(conn, ticket_call)
        conn.execute("UPDATE incidents SET notified_at = %s, degraded = %s, ticket_call_id = %s, glpi_entity_id = %s "
                     "WHERE id = %s", (now, degraded, ticket_call, entity, incident_id))
        conn.execute("UPDATE incident_members SET announced = true WHERE incident_id = %s", (incident_id,))
        incidents.event(conn, incident_id, "ticket_requested", "GLPI indisponible (mode dégradé) : le ticket est en "
                        "attente et sera créé au retour de GLPI." if degraded else "Création du ticket GLPI demandée.",
                        at=now, call_id=ticket_call, degraded=degraded)
    ticket_id, pending = None, ("glpi_down" if degraded else "approval" if call["status"] == "waiting_approval" else None)
    if inline:
        ticket_id, pending = _create_inline(pool, clients, incident_id, ticket_call)
    return complete(pool, settings, incident_id, policy=policy, now=now, ticket_id=ticket_id, pending=pending)


def complete(pool, settings, incident_id: int, *, policy: Policy, now: datetime,
             ticket_id: int | None = None, pending: str | None = None) -> Notified:
    """The second half of `notify`: record the ticket, request the team mail, write the log (once).

    Called by `notify` right after the ticket, or by a later `notify` when the first one stopped before
    the mail: then what the ticket became is read from its call (`pending` is derived from it).
    """
    with transaction(pool) as conn:
        incident = incidents.get_incident(conn, incident_id, lock=True)
        if ticket_id:
            _record_ticket(conn, incident_id, ticket_id)
        if incident["mailed_at"] is not None:
            return Notified(incident_id, "already", ticket_id or incident["ticket_id"])
        call = conn.execute("SELECT id, status, result, error FROM tool_calls WHERE id = %s",
                            (incident["ticket_call_id"],)).fetchone()
        if ticket_id is None:
            ticket_id, pending = _ticket_state(conn, incident, call, pending)
        if pending == "failed" and call is not None:
            _mark_ticket_failed(conn, incident_id, call, now)
        diagnosis = incident["diagnosis"]
        members = [m for m in incidents.members(conn, incident_id) if m["announced"]]
        _mail_team(conn, settings, incident, members, diagnosis, ticket_id, pending, policy)
        _log(conn, incident, diagnosis, ticket_id, now)
        conn.execute("UPDATE incidents SET mailed_at = %s WHERE id = %s", (now, incident_id))
    _count_success(incident, now)
    return Notified(incident_id, "notified", ticket_id, pending == "glpi_down")


def _ticket_state(conn, incident: dict, call: dict | None, pending: str | None) -> tuple[int | None, str | None]:
    """(ticket id, pending reason) as the ticket call stands now; records a ticket created meanwhile."""
    if incident["ticket_id"]:
        return int(incident["ticket_id"]), None
    if call is None:
        return None, pending
    if call["status"] == "done" and (call["result"] or {}).get("ticket_id"):
        ticket_id = int(call["result"]["ticket_id"])
        _record_ticket(conn, incident["id"], ticket_id)
        return ticket_id, None
    if call["status"] in tool_runs.FINAL:
        return None, "failed"
    if call["status"] == "waiting_approval":
        return None, "approval"
    return None, pending or ("glpi_down" if incident["degraded"] else None)


def _mark_ticket_failed(conn, incident_id: int, call: dict, now: datetime) -> bool:
    """Record, once, that this incident's ticket will not be created automatically (shown, not retried)."""
    marked = conn.execute("UPDATE incidents SET ticket_failed_at = %s WHERE id = %s AND ticket_failed_at IS NULL "
                          "AND ticket_id IS NULL RETURNING tracking_id", (now, incident_id)).fetchone()
    if marked:
        logger.warning("ticket of incident %s (%s) not created: call %s ended %s", incident_id,
                       marked["tracking_id"], call["id"], call["status"])
        incidents.event(conn, incident_id, "ticket_failed",
                        f"Le ticket GLPI n'a pas été créé (appel {call['status']}"
                        + (f" : {str(call['error'])[:300]}" if call.get("error") else "")
                        + "). À créer manuellement ; les suivis de cet incident ne seront pas publiés.",
                        at=now, call_id=str(call["id"]), status=call["status"])
    return bool(marked)


def _create_inline(pool, clients, incident_id: int, ticket_call: str) -> tuple[int | None, str | None]:
    try:
        outcome = tool_runs.run_call(pool, ticket_call, clients)
    except Unavailable as exc:
        logger.warning("GLPI failed while creating the ticket of incident %s: %s; left in the outbox",
                       incident_id, exc.message)
        with transaction(pool) as conn:
            outbox.add(conn, job_table.RUN_TOOL, {"call_id": ticket_call}, dependency="glpi",
                       dedup_key=calls.run_key(ticket_call) + ":retry", description="glpi_create_ticket after a GLPI failure")
            conn.execute("UPDATE incidents SET degraded = true WHERE id = %s", (incident_id,))
        return None, "glpi_down"
    row = outcome.call
    with transaction(pool) as conn:
        if outcome.executed and row["decision"] == "notify":
            outbox.add(conn, job_table.NOTIFY_APPROVERS, {"call_id": ticket_call}, dedup_key=f"notify:{ticket_call}")
    if row["status"] == "done" and row["result"]:
        return int(row["result"]["ticket_id"]), None
    logger.warning("ticket call %s of incident %s ended %s: %s", ticket_call, incident_id, row["status"], row["error"])
    return None, "failed"


def _record_ticket(conn, incident_id: int, ticket_id: int) -> None:
    updated = conn.execute("UPDATE incidents SET ticket_id = %s WHERE id = %s AND ticket_id IS NULL RETURNING tracking_id",
                           (ticket_id, incident_id)).fetchone()
    if updated:
        conn.execute("UPDATE incident_logs SET ticket_id = %s WHERE tracking_id = %s",
                     (str(ticket_id), updated["tracking_id"]))
        incidents.event(conn, incident_id, "ticket_created", f"Ticket GLPI n° {ticket_id} créé.", ticket_id=ticket_id)


def _mail_team(conn, settings, incident, members, diagnosis, ticket_id, pending, policy) -> None:
    recipients = list(settings.alert_mail_recipients or ())
    if not recipients:
        incidents.event(conn, incident["id"], "mail_skipped", "Aucun destinataire configuré (ALERT_MAIL_RECIPIENTS).")
        return
    mail_call = call_id(incident["id"], "mail")
    calls.propose(conn, calls.Proposal(
        "smtp_send_email", {"to": recipients[:10], "subject": texts.mail_subject(incident, diagnosis),
                            "body": texts.mail_body(incident, members, diagnosis, ticket_id=ticket_id, pending=pending)},
        system_persona("notificateur"), call_id=mail_call,
        reason=f"alerte équipe, incident {incident['tracking_id']}"), policy)
    incidents.link_call(conn, incident["id"], mail_call, "mail")
    incidents.event(conn, incident["id"], "mail_requested", "Mail à l'équipe demandé"
                    + (" (ticket en attente)." if pending == "glpi_down" else "."), call_id=mail_call)


def _log(conn, incident: dict, diagnosis: dict, ticket_id: int | None, now: datetime) -> None:
    received = conn.execute("SELECT received_at FROM alerts WHERE tracking_id = %s",
                            (incident["tracking_id"],)).fetchone()
    duration_ms = int((now - received["received_at"]).total_seconds() * 1000) if received else None
    conn.execute(
        "INSERT INTO incident_logs (tracking_id, device_name, ip_address, responsibility, severity, ticket_id, "
        "workflow_duration_ms, cache_used, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (tracking_id) DO NOTHING",
        (incident["tracking_id"], incident["primary_hostname"], incident["primary_ip"], diagnosis["responsibility"],
         diagnosis["severity"], str(ticket_id) if ticket_id else None, max(0, duration_ms or 0),
         bool(incident["cache_used"]), now))


def _count_success(incident: dict, now: datetime) -> None:
    try:
        from widip.functions.metrics import WORKFLOW_DURATION, WORKFLOW_SUCCESS
    except ImportError:
        return
    WORKFLOW_DURATION.labels(workflow="proactif", version="v7").observe(
        max(0.0, (now - incident["opened_at"]).total_seconds()))
    WORKFLOW_SUCCESS.labels(workflow="proactif").inc()


def count_error() -> None:
    try:
        from widip.functions.metrics import WORKFLOW_ERROR
    except ImportError:
        return
    WORKFLOW_ERROR.labels(workflow="proactif").inc()


def sync(pool, incident_id: int, *, policy: Policy, now: datetime | None = None) -> list[str]:
    """Record the ticket id once created; post due follow-ups (late devices, flapping, recovery). Idempotent.

    Late devices are batched: their follow-up waits until none joined for ADDITIONS_BATCH (or the
    incident recovered), so an outage spreading over minutes adds one consolidated follow-up, not one
    per device."""
    now = now or clock.now()
    posted: list[str] = []
    with transaction(pool) as conn:
        incident = incidents.get_incident(conn, incident_id, lock=True)
        if incident is None or incident["ticket_call_id"] is None:
            return posted
        if incident["ticket_id"] is None:
            call = conn.execute("SELECT id, status, result, error FROM tool_calls WHERE id = %s",
                                (incident["ticket_call_id"],)).fetchone()
            if call and call["status"] in tool_runs.FINAL and not (call["result"] or {}).get("ticket_id"):
                if _mark_ticket_failed(conn, incident_id, call, now):
                    posted.append("ticket_failed")
                return posted
            if not call or call["status"] != "done":
                return posted
            _record_ticket(conn, incident_id, int(call["result"]["ticket_id"]))
            incident = incidents.get_incident(conn, incident_id)
            posted.append("ticket_id")
        ticket_id = int(incident["ticket_id"])
        members = incidents.members(conn, incident_id)
        late = [m for m in members if not m["announced"]]
        settled = incident["status"] == "recovered" or all(now - m["first_seen"] >= ADDITIONS_BATCH for m in late)
        if late and settled:
            _followup(conn, incident, ticket_id, f"additions:{max(m['id'] for m in late)}",
                      texts.additions_followup(late), policy)
            conn.execute("UPDATE incident_members SET announced = true WHERE id = ANY(%s)", ([m["id"] for m in late],))
            posted.append("additions")
        if incident["kind"] == "flapping" and not incident["flapping_announced"]:
            _followup(conn, incident, ticket_id, "flapping", texts.flapping_followup(incident), policy)
            conn.execute("UPDATE incidents SET flapping_announced = true WHERE id = %s", (incident_id,))
            posted.append("flapping")
        if incident["status"] == "recovered" and not incident["recovery_announced"]:
            if incident["kind"] != "flapping":
                _followup(conn, incident, ticket_id, f"recovery:{incident['recovered_at'].isoformat()}",
                          texts.recovery_followup(incident, members), policy)
                posted.append("recovery")
            conn.execute("UPDATE incidents SET recovery_announced = true WHERE id = %s", (incident_id,))
    return posted


def _followup(conn, incident: dict, ticket_id: int, purpose: str, content: str, policy: Policy) -> None:
    followup_call = call_id(incident["id"], purpose)
    calls.propose(conn, calls.Proposal(
        "glpi_add_ticket_followup", {"ticket_id": ticket_id, "content": content}, system_persona("notificateur"),
        call_id=followup_call, dependency="glpi", reason=f"suivi de l'incident {incident['tracking_id']}"), policy)
    incidents.link_call(conn, incident["id"], followup_call, f"followup:{purpose.split(':')[0]}")
    incidents.event(conn, incident["id"], "followup_requested", f"Suivi ajouté au ticket n° {ticket_id} : "
                    + content.split("\n")[0][:200], call_id=followup_call)


#: A ticket call in one of these states, without a ticket id, will never give one (SQL twin of the Python test).
_TICKET_LOST = ("(c.status = ANY(%(final)s) AND (c.status <> 'done' OR c.result->'ticket_id' IS NULL "
                "OR jsonb_typeof(c.result->'ticket_id') = 'null'))")


def needing_attention(conn, *, now: datetime | None = None, limit: int = 200) -> dict[str, list[int]]:
    """Incidents whose next step seems lost (no diagnosis, not notified, notified but never mailed) or that
    have something for `sync` to do. An incident whose ticket call ended without a ticket is synced once
    (which records it as failed: `ticket_failed_at`, a timeline event) and then left out for good."""
    now = now or clock.now()
    stale = now - timedelta(minutes=2)
    undiagnosed = conn.execute("SELECT id FROM incidents WHERE diagnosis IS NULL AND opened_at < %s ORDER BY id "
                               "LIMIT %s", (stale, limit)).fetchall()
    unnotified = conn.execute("SELECT id FROM incidents WHERE diagnosis IS NOT NULL AND notified_at IS NULL "
                              "AND diagnosed_at < %s ORDER BY id LIMIT %s", (stale, limit)).fetchall()
    unmailed = conn.execute("SELECT id FROM incidents WHERE notified_at IS NOT NULL AND mailed_at IS NULL "
                            "AND notified_at < %s ORDER BY id LIMIT %s", (now - UNFINISHED_AFTER, limit)).fetchall()
    due = conn.execute(
        "SELECT i.id FROM incidents i LEFT JOIN tool_calls c ON c.id = i.ticket_call_id "
        "WHERE i.ticket_call_id IS NOT NULL AND CASE WHEN i.ticket_id IS NULL "
        f"THEN NOT coalesce({_TICKET_LOST}, false) OR i.ticket_failed_at IS NULL "
        "ELSE (i.status = 'recovered' AND NOT i.recovery_announced) OR "
        "(i.kind = 'flapping' AND NOT i.flapping_announced) OR EXISTS (SELECT 1 FROM incident_members m "
        "WHERE m.incident_id = i.id AND NOT m.announced) END ORDER BY i.id LIMIT %(limit)s",
        {"final": list(tool_runs.FINAL), "limit": limit}).fetchall()
    return {"diagnose": [r["id"] for r in undiagnosed], "notify": [r["id"] for r in unnotified],
            "mail": [r["id"] for r in unmailed], "sync": [r["id"] for r in due]}


def ticket_failures(conn, *, limit: int = 50) -> dict:
    """Incidents whose GLPI ticket was never created (a technician must open it): for monitoring."""
    rows = conn.execute(
        "SELECT i.id, i.tracking_id, i.client, i.primary_hostname, i.ticket_failed_at, c.status AS call_status, "
        "c.error FROM incidents i LEFT JOIN tool_calls c ON c.id = i.ticket_call_id "
        "WHERE i.ticket_failed_at IS NOT NULL AND i.ticket_id IS NULL ORDER BY i.ticket_failed_at DESC LIMIT %s",
        (limit,)).fetchall()
    total = conn.execute("SELECT count(*) AS n FROM incidents WHERE ticket_failed_at IS NOT NULL "
                         "AND ticket_id IS NULL").fetchone()["n"]
    return {"count": total, "recent": [{**r, "ticket_failed_at": r["ticket_failed_at"].isoformat()} for r in rows]}
