"""SAFEGUARD with the real database and the GLPI simulator: proposals, approvals, deferred actions,
audit, and exactly-once execution of approved calls."""

import dataclasses
import threading
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from widip.config import PROJECT_ROOT
from widip.errors import Conflict, Forbidden, Invalid, NotFound
from widip.functions import db, job_table
from widip.functions.safeguard import runs as tool_runs
from widip.functions.callers import Caller, system_persona
from widip.functions.safeguard import calls, deferred
from widip.functions.safeguard.policy import load_policy, set_level
from widip.functions.integrations.clients import Clients

POLICY = load_policy(PROJECT_ROOT / "policy")
TECH = Caller(kind="human", username="tech", accreditation=1, user_id=3)
APPROVER = Caller(kind="human", username="approver", accreditation=3, user_id=2)
ADMIN = Caller(kind="human", username="admin", accreditation=4, user_id=1)
WIBOT_FOR_TECH = Caller(kind="ai", username="wibot", persona="wibot", on_behalf_of=3, accreditation=1)
TICKET = {"title": "Imprimante en panne", "content": "L'imprimante du 2e étage ne répond plus."}


@pytest.fixture(autouse=True)
def accounts(conn):
    """The users behind ADMIN, APPROVER and TECH (ids 1, 2, 3), with every client and category in the
    access matrix (its own checks are in test_tool_scope.py)."""
    from widip.functions import identity
    from widip.functions.access_matrix import AccessRights, set_access

    for name, level in (("admin", 4), ("approver", 3), ("tech", 1)):
        user = identity.create_user(conn, username=name, password="correct-horse-battery-staple",
                                    accreditation_level=level)
        set_access(conn, user.id, AccessRights(acces_glpi=True, clients_autorises=("*",),
                                               categories_tickets=("*",)), actor="test")


@pytest.fixture
def clients(integrated_settings, redis_client):
    c = Clients(integrated_settings, redis_client)
    yield c
    c.close()


def propose(conn, tool, args, caller, **kw):
    return calls.propose(conn, calls.Proposal(tool, args, caller, **kw), POLICY)


def tickets_created(glpi):
    return glpi.state.calls.get("POST Ticket", 0)


def audit_actions(conn, call_id):
    return [r["action"] for r in conn.execute("SELECT action FROM safeguard_audit WHERE call_id = %s ORDER BY id",
                                              (call_id,))]


def test_a_read_only_call_runs_at_once_and_a_second_run_returns_the_stored_result(conn, pool, clients, glpi):
    call = propose(conn, "glpi_get_ticket_details", {"ticket_id": 1}, WIBOT_FOR_TECH)
    assert call["decision"] == "run" and call["status"] == "ready"
    assert conn.execute("SELECT actor_name FROM outbox WHERE kwargs->>'call_id' = %s", (str(call["id"]),)).fetchone()
    first = tool_runs.run_call(pool, str(call["id"]), clients)
    reads = glpi.state.calls.get("GET Ticket/1", 0)
    second = tool_runs.run_call(pool, str(call["id"]), clients)
    assert first.executed and not second.executed
    assert first.call["status"] == "done" and second.call["result"] == first.call["result"]
    assert glpi.state.calls.get("GET Ticket/1", 0) == reads  # the replay touched nothing


def test_an_l3_call_waits_is_approved_by_someone_else_and_runs_exactly_once(conn, pool, clients, glpi):
    call = propose(conn, "glpi_create_ticket", TICKET, WIBOT_FOR_TECH)
    assert call["status"] == "waiting_approval" and call["request_id"]
    assert tool_runs.run_call(pool, str(call["id"]), clients).executed is False
    with pytest.raises(Forbidden, match="caused"):
        calls.approve(conn, call["request_id"], TECH, POLICY)  # the tech asked WIBOT: no self-approval
    with pytest.raises(Forbidden, match="N3"):
        calls.approve(conn, call["request_id"], Caller(kind="human", username="n2", accreditation=2, user_id=9), POLICY)
    calls.approve(conn, call["request_id"], APPROVER, POLICY, "ok")
    before = tickets_created(glpi)
    runs = [tool_runs.run_call(pool, str(call["id"]), clients) for _ in range(3)]
    assert [r.executed for r in runs] == [True, False, False]
    assert tickets_created(glpi) == before + 1
    ticket_id = runs[0].call["result"]["ticket_id"]
    assert TICKET["title"] in glpi.state.items["Ticket"][ticket_id]["name"]
    assert audit_actions(conn, str(call["id"])) == ["proposed", "approval_requested", "approved", "executed"]


def test_a_rejected_call_never_runs_and_the_reason_is_kept(conn, pool, clients, glpi):
    call = propose(conn, "glpi_create_ticket", TICKET, WIBOT_FOR_TECH, session_id=None)
    calls.reject(conn, call["request_id"], APPROVER, POLICY, "pas de ticket pour ça")
    before = tickets_created(glpi)
    outcome = tool_runs.run_call(pool, str(call["id"]), clients)
    assert not outcome.executed and outcome.call["status"] == "rejected"
    assert "pas de ticket pour ça" in outcome.call["error"]
    assert tickets_created(glpi) == before
    with pytest.raises(Conflict, match="already rejected"):
        calls.approve(conn, call["request_id"], APPROVER, POLICY)


def test_an_expired_request_can_no_longer_be_approved_and_never_runs(conn, pool, clients, glpi):
    call = calls.propose(conn, calls.Proposal("glpi_create_ticket", TICKET, WIBOT_FOR_TECH),
                         dataclasses.replace(POLICY, approval_ttl=timedelta(seconds=0)))
    with pytest.raises(Conflict, match="expired"):
        calls.approve(conn, call["request_id"], APPROVER, POLICY)
    assert [r["id"] for r in calls.expire_pending(conn)] == [call["request_id"]]
    outcome = tool_runs.run_call(pool, str(call["id"]), clients)
    assert outcome.call["status"] == "expired" and not outcome.executed
    assert "expired" in audit_actions(conn, str(call["id"]))


def test_twenty_concurrent_approvals_make_one_winner_and_nineteen_conflicts(conn, settings):
    call = propose(conn, "glpi_create_ticket", TICKET, WIBOT_FOR_TECH)
    results, barrier = [], threading.Barrier(20)

    def approve(i):
        approver = Caller(kind="human", username=f"approver{i}", accreditation=3, user_id=1000 + i)
        with db.connect(settings.database_url) as c:
            barrier.wait()
            try:
                calls.approve(c, call["request_id"], approver, POLICY)
                c.commit()
                results.append("approved")
            except Conflict:
                c.rollback()
                results.append("conflict")

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["approved"] + ["conflict"] * 19
    runs = conn.execute("SELECT count(*) AS n FROM outbox WHERE dedup_key = %s", (f"run:{call['id']}",)).fetchone()
    assert runs["n"] == 1


def test_arguments_changed_after_approval_are_refused(conn, pool, clients, glpi):
    call = propose(conn, "glpi_create_ticket", TICKET, WIBOT_FOR_TECH)
    calls.approve(conn, call["request_id"], APPROVER, POLICY)
    conn.execute("UPDATE tool_calls SET arguments = jsonb_set(arguments, '{title}', '\"Supprimer tout\"') "
                 "WHERE id = %s", (call["id"],))
    before = tickets_created(glpi)
    outcome = tool_runs.run_call(pool, str(call["id"]), clients)
    assert outcome.call["status"] == "refused" and "arguments differ" in outcome.call["error"]
    assert tickets_created(glpi) == before


def test_an_l4_call_from_an_ai_waits_for_a_human_schedule_then_runs_at_its_time(conn, pool, clients, glpi):
    call = propose(conn, "glpi_delete_ticket", {"ticket_id": 1}, system_persona("assist"))
    assert call["status"] == "deferred"
    assert not tool_runs.run_call(pool, str(call["id"]), clients).executed
    action = conn.execute("SELECT * FROM safeguard_deferred_actions WHERE call_id = %s", (call["id"],)).fetchone()
    now = datetime.now(timezone.utc)
    with pytest.raises(Invalid, match="between 24 h and 48 h"):
        deferred.schedule(conn, action["id"], ADMIN, POLICY, now + timedelta(hours=2))
    with pytest.raises(Forbidden):
        deferred.schedule(conn, action["id"], APPROVER, POLICY, now + timedelta(hours=30))
    deferred.schedule(conn, action["id"], ADMIN, POLICY, now + timedelta(hours=30))
    assert deferred.start_due(conn) == []  # not yet
    conn.execute("UPDATE safeguard_deferred_actions SET run_at = now() - interval '1 minute' WHERE id = %s",
                 (action["id"],))  # the clock reaches run_at
    assert [a["id"] for a in deferred.start_due(conn)] == [action["id"]]
    outcome = tool_runs.run_call(pool, str(call["id"]), clients)
    assert outcome.executed and outcome.call["status"] == "done"
    assert glpi.state.items["Ticket"][1]["is_deleted"] in (1, True)
    status = conn.execute("SELECT status FROM safeguard_deferred_actions WHERE id = %s", (action["id"],)).fetchone()
    assert status["status"] == "executed"


def test_a_cancelled_deferred_action_never_runs(conn, pool, clients, glpi):
    call = propose(conn, "glpi_delete_ticket", {"ticket_id": 1}, system_persona("assist"))
    action = conn.execute("SELECT id FROM safeguard_deferred_actions WHERE call_id = %s", (call["id"],)).fetchone()
    deferred.schedule(conn, action["id"], ADMIN, POLICY, datetime.now(timezone.utc) + timedelta(hours=25))
    deferred.cancel(conn, action["id"], ADMIN, POLICY, "plus nécessaire")
    conn.execute("UPDATE safeguard_deferred_actions SET run_at = now() - interval '1 hour' WHERE id = %s",
                 (action["id"],))
    assert deferred.start_due(conn) == []
    assert not tool_runs.run_call(pool, str(call["id"]), clients).executed
    assert glpi.state.items["Ticket"][1]["is_deleted"] in (0, False)


def test_every_tool_set_to_l4_refuses_every_ai_persona(conn):
    from widip.functions.callers import PERSONAS
    from widip.functions.tools import all_tools

    for tool in all_tools():
        conn.execute("UPDATE safeguard_config SET level = 'L4' WHERE tool_name = %s", (tool.name,))
    for tool in all_tools():
        for persona in PERSONAS:
            caller = Caller(kind="ai", username=persona, persona=persona, on_behalf_of=1 if persona == "wibot" else None)
            call = propose(conn, tool.name, _valid_args(tool.name), caller, confidence=1.0)
            assert call["status"] in ("deferred", "refused"), (tool.name, persona)
    assert not conn.execute("SELECT 1 FROM outbox WHERE actor_name = 'run_tool'").fetchone()


def _valid_args(name):
    samples = {"glpi_search_new_tickets": {"minutes_since": 5}, "glpi_search_recent_works": {"entity_id": 1},
               "glpi_search_client": {"query": "dupont"},
               "glpi_get_user": {"user_id": 2}, "glpi_add_ticket_followup": {"ticket_id": 1, "content": "x"},
               "glpi_close_ticket": {"ticket_id": 1, "solution": "ok"}, "glpi_assign_ticket": {"ticket_id": 1, "user_id": 2},
               "glpi_assign_group": {"ticket_id": 1, "group_id": 3},
               "glpi_update_ticket": {"ticket_id": 1, "fields": {"urgency": 2}}, "glpi_create_ticket": TICKET,
               "observium_list_devices": {}, "observium_list_alerts": {}, "phibee_get_line_status": {"reference": "FTTH-1"},
               "phibee_run_line_test": {"reference": "FTTH-1"}, "phibee_list_site_incidents": {"site": "Lyon"},
               "smtp_test_connection": {}, "smtp_send_email": {"to": ["a@widip.fr"], "subject": "s", "body": "b"},
               "smtp_send_alert": {"device": "r1", "duration_minutes": 21},
               "mysecret_create_secret": {"payload": "x"}, "ad_find_user_by_mail": {"email": "a@b.fr"},
               "docs_search": {"query": "vpn"}}
    if name in samples:
        return samples[name]
    if name.startswith(("glpi_get_ticket", "glpi_delete")):
        return {"ticket_id": 1}
    if name.startswith("observium_"):
        return {"device": 1}
    return {"username": "jdupont"}


def test_an_agent_cannot_call_a_tool_it_was_not_offered(conn):
    with pytest.raises(NotFound, match="not available"):
        propose(conn, "glpi_close_ticket", {"ticket_id": 1, "solution": "x"}, system_persona("sentinel"),
                offered=frozenset({"observium_get_device"}))
    assert conn.execute("SELECT count(*) AS n FROM tool_calls").fetchone()["n"] == 0


def test_unknown_tools_and_invalid_arguments_are_refused_and_audited_before_anything_runs(conn):
    with pytest.raises(NotFound):
        propose(conn, "ad_delete_everything", {}, WIBOT_FOR_TECH)
    with pytest.raises(Invalid, match="_bypass_safeguard"):
        propose(conn, "glpi_get_ticket_details", {"ticket_id": 1, "_bypass_safeguard": True}, WIBOT_FOR_TECH)
    with pytest.raises(Invalid):
        propose(conn, "ad_reset_password", {"username": "*)(objectClass=*"}, WIBOT_FOR_TECH)
    assert conn.execute("SELECT count(*) AS n FROM tool_calls").fetchone()["n"] == 0
    refusals = conn.execute("SELECT count(*) AS n FROM safeguard_audit WHERE action = 'refused'").fetchone()
    assert refusals["n"] == 3


def test_the_audit_log_refuses_updates_and_deletes(conn):
    propose(conn, "glpi_get_ticket_details", {"ticket_id": 1}, WIBOT_FOR_TECH)
    for statement in ("UPDATE safeguard_audit SET reason = 'x'", "DELETE FROM safeguard_audit",
                      "TRUNCATE safeguard_audit"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(statement)


def test_a_level_change_is_live_for_the_next_decision(conn):
    set_level(conn, "glpi_get_ticket_details", "", "L3", reason="incident en cours", changed_by="admin")
    call = propose(conn, "glpi_get_ticket_details", {"ticket_id": 1}, WIBOT_FOR_TECH)
    assert call["status"] == "waiting_approval"


def test_a_persona_refinement_applies_only_to_that_persona(conn):
    notifier = propose(conn, "glpi_create_ticket", TICKET, system_persona("notificateur"))
    chat = propose(conn, "glpi_create_ticket", TICKET, WIBOT_FOR_TECH)
    assert (notifier["level"], notifier["decision"]) == ("L2", "notify")
    assert (chat["level"], chat["decision"]) == ("L3", "approval")


def test_a_crash_after_the_ticket_was_created_does_not_create_a_second_one(conn, pool, clients, glpi):
    # Given an approved creation whose worker died after GLPI created the ticket but before recording it
    call = propose(conn, "glpi_create_ticket", TICKET, system_persona("notificateur"))
    from widip.functions.tools import ToolContext, execute
    with db.transaction(pool) as c:
        tool_runs._claim(c, str(call["id"]))
    execute("glpi_create_ticket", call["arguments"], clients, ToolContext(call_id=str(call["id"])))
    before = tickets_created(glpi)
    # When the message is redelivered
    outcome = tool_runs.run_call(pool, str(call["id"]), clients)
    # Then the marker is found: no second ticket
    assert outcome.call["status"] == "done" and outcome.call["result"]["created"] is False
    assert tickets_created(glpi) == before


def test_a_crash_during_a_mail_send_is_not_repeated_but_left_for_a_human(conn, pool, clients, mail_sink):
    call = propose(conn, "smtp_send_email", {"to": ["astreinte@widip.fr"], "subject": "Test", "body": "x"},
                   system_persona("notificateur"))
    with db.transaction(pool) as c:
        tool_runs._claim(c, str(call["id"]))
    outcome = tool_runs.run_call(pool, str(call["id"]), clients)
    assert outcome.call["status"] == "unknown_outcome" and not outcome.executed
    assert mail_sink.count() == 0


def test_a_call_whose_message_was_lost_is_resent_by_the_sweep_once_per_period(conn, pool, clients, glpi):
    call = propose(conn, "glpi_create_ticket", TICKET, system_persona("notificateur"))
    conn.execute("UPDATE tool_calls SET created_at = now() - interval '1 hour' WHERE id = %s", (call["id"],))
    assert calls.resend_stuck(conn, timedelta(minutes=10)) == []  # its outbox row still waits: not lost
    conn.execute("UPDATE outbox SET status = 'sent'")  # relayed, then the message was lost with a worker
    assert calls.resend_stuck(conn, timedelta(minutes=10)) == [str(call["id"])]
    calls.resend_stuck(conn, timedelta(minutes=10))  # same period: no second row
    rows = conn.execute("SELECT count(*) AS n FROM outbox WHERE kwargs->>'call_id' = %s AND dedup_key LIKE 'resend:%%'",
                        (str(call["id"]),)).fetchone()
    assert rows["n"] == 1
    fresh = propose(conn, "glpi_create_ticket", TICKET, system_persona("notificateur"))
    assert str(fresh["id"]) not in calls.resend_stuck(conn, timedelta(minutes=10))
    conn.execute("UPDATE tool_calls SET created_at = now() - interval '25 hours' WHERE id = %s", (fresh["id"],))
    assert calls.abandon_calls(conn) == [str(fresh["id"])]
    assert conn.execute("SELECT status FROM tool_calls WHERE id = %s", (fresh["id"],)).fetchone()["status"] == "failed"


def test_a_second_delivery_while_the_first_worker_still_runs_the_call_does_nothing(conn, pool, clients, glpi):
    import threading

    call = propose(conn, "glpi_create_ticket", TICKET, system_persona("notificateur"))
    glpi.state.fault = {"delay_seconds": 1.0}
    first = []
    worker = threading.Thread(target=lambda: first.append(tool_runs.run_call(pool, str(call["id"]), clients)))
    worker.start()
    import time
    time.sleep(0.4)  # the first worker is inside the GLPI call
    second = tool_runs.run_call(pool, str(call["id"]), clients)
    worker.join(10)
    glpi.state.fault = {}
    assert not second.executed and first[0].executed
    assert first[0].call["status"] == "done" and tickets_created(glpi) == 1


def test_a_timeout_after_sending_is_not_repeated_for_a_non_idempotent_tool(conn, pool, integrated_settings,
                                                                           redis_client, glpi):
    # Given GLPI that answers too late (the follow-up may well have been written)
    slow = Clients(integrated_settings.with_overrides(integration_timeout_seconds=0.5), redis_client)
    call = propose(conn, "glpi_add_ticket_followup", {"ticket_id": 1, "content": "Rappel effectué"},
                   system_persona("notificateur"))
    glpi.state.fault = {"delay_seconds": 1.5}
    outcome = tool_runs.run_call(pool, str(call["id"]), slow)
    glpi.state.fault = {}
    # Then the call stops for a human instead of writing a second follow-up on retry
    assert outcome.call["status"] == "unknown_outcome" and "not repeated" in outcome.call["error"]
    assert not tool_runs.run_call(pool, str(call["id"]), slow).executed
    slow.close()


def test_a_refused_connection_is_retried_later_because_nothing_was_sent(conn, pool, integrated_settings,
                                                                        redis_client):
    import socket

    from widip.errors import Unavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    down = Clients(integrated_settings.with_overrides(glpi_url=f"http://127.0.0.1:{dead}/apirest.php"), redis_client)
    call = propose(conn, "glpi_add_ticket_followup", {"ticket_id": 1, "content": "Rappel effectué"},
                   system_persona("notificateur"))
    with pytest.raises(Unavailable) as raised:
        tool_runs.run_call(pool, str(call["id"]), down)
    assert raised.value.maybe_applied is False
    assert conn.execute("SELECT status FROM tool_calls WHERE id = %s", (call["id"],)).fetchone()["status"] == "ready"
    down.close()


def test_outbox_rows_waiting_for_a_down_system_never_hold_back_the_others(conn, pool):
    from widip.functions import outbox

    for i in range(5):
        outbox.add(conn, job_table.RUN_TOOL, {"call_id": f"glpi-{i}"}, dependency="glpi")
    outbox.add(conn, job_table.RUN_TOOL, {"call_id": "ad-reset"})
    sent = []
    assert outbox.relay(pool, lambda name, kwargs: sent.append(kwargs["call_id"]),
                        lambda dependency: dependency != "glpi", limit=3) == 1
    assert sent == ["ad-reset"]


def test_a_broker_outage_never_fails_an_outbox_row(conn, pool):
    import redis

    from widip.functions import outbox

    outbox.add(conn, job_table.RUN_TOOL, {"call_id": "x"})

    def broker_down(name, kwargs):
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    for _ in range(outbox.MAX_SEND_ATTEMPTS + 5):
        outbox.relay(pool, broker_down)
    row = conn.execute("SELECT status, attempts FROM outbox").fetchone()
    assert row["status"] == "pending" and row["attempts"] == 0
