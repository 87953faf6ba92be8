"""The 3-minute Assist cycle on the simulators: each new ticket starts one session once, the sessions
do the work end to end, the cycle is logged, GLPI down skips it, and the reset cap is enforced by the gate."""

from datetime import timedelta

import pytest

from tests.conftest import drain
from widip import deps as actor_deps
from widip.actors.tools import flush_outbox
from widip.config import PROJECT_ROOT
from widip.functions import db
from widip.functions.assist import cycle as assist
from widip.functions.callers import system_persona
from widip.functions.safeguard import calls
from widip.functions.safeguard.policy import load_policy

POLICY = load_policy(PROJECT_ROOT / "policy")


@pytest.fixture
def world(directory_settings, stub_broker, people, redis_client):
    settings = directory_settings.with_overrides(llm_provider="rules")
    deps = actor_deps.configure(settings)
    return deps


def cycle(world):
    outcome = assist.run_cycle(world.pool, world.redis, world.clients)
    flush_outbox()
    return outcome


def test_each_new_ticket_is_handled_once_end_to_end(world, stub_broker, stub_worker, glpi, mail_sink, pwpush, conn):
    first = cycle(world)
    assert first["status"] == "success" and first["tickets_processed"] == 4
    assert cycle(world)["tickets_processed"] == 0  # the same tickets are never taken twice
    drain(stub_broker, stub_worker)
    tickets = glpi.state.items["Ticket"]
    assert tickets[1]["status"] in (5, 6) and tickets[2]["status"] in (5, 6)  # reset and unlock, closed
    escalated = {f["items_id"] for f in glpi.state.items["ITILFollowup"].values() if f["is_private"] in (1, True)}
    assert escalated == {3, 4}  # account creation and the printer go to a technician
    assert [m for m in mail_sink.messages() if "jdupont@ehpad-tilleuls.fr" in m["To"]]
    logs = conn.execute("SELECT status, tickets_found, actions_detected FROM widip_agent_logs ORDER BY id").fetchall()
    assert logs[0]["status"] == "success" and logs[0]["tickets_found"] == 4
    assert set(logs[0]["actions_detected"].split(", ")) == {"RESET_MDP", "DEBLOCAGE_COMPTE", "CREATION_COMPTE", "AUTRE"}
    assert world.redis.get(assist.LAST_CYCLE_KEY)


def test_the_cycle_is_skipped_and_logged_while_glpi_is_down(world, glpi, conn):
    world.redis.set("glpi_health_status", "down")
    outcome = cycle(world)
    assert outcome["status"] == "skipped" and outcome["tickets_found"] == 0
    assert glpi.state.calls.get("GET search/Ticket", 0) == 0
    row = conn.execute("SELECT status, errors FROM widip_agent_logs").fetchone()
    assert row["status"] == "skipped" and "GLPI" in row["errors"][0]


def test_a_fourth_reset_of_the_same_account_in_a_day_is_refused_by_the_gate(conn):
    for _ in range(3):
        assert calls.propose(conn, tool_name="ad_reset_password", arguments={"username": "jdupont"},
                             caller=system_persona("assist"), policy=POLICY,
                             approval_ttl=timedelta(hours=1))["status"] == "ready"
    fourth = calls.propose(conn, tool_name="ad_reset_password", arguments={"username": "jdupont"},
                           caller=system_persona("assist"), policy=POLICY, approval_ttl=timedelta(hours=1))
    assert fourth["status"] == "refused" and "limit 3" in fourth["decision_reason"]
    other = calls.propose(conn, tool_name="ad_reset_password", arguments={"username": "mmartin"},
                          caller=system_persona("assist"), policy=POLICY, approval_ttl=timedelta(hours=1))
    assert other["status"] == "ready"


def test_a_restored_glpi_reusing_a_ticket_id_gets_its_new_ticket_handled(world, glpi, conn):
    from datetime import datetime

    assert cycle(world)["tickets_processed"] == 4
    # GLPI restored from an older backup: id 3 now belongs to a different, newer ticket
    reused = glpi.state.items["Ticket"][3]
    reused.update(name="Imprimante du 2e étage HS", date=datetime.now().strftime("%Y-%m-%d %H:%M:%S"), status=1)
    again = cycle(world)
    assert again["tickets_processed"] == 1
    rows = conn.execute("SELECT ticket_id, title FROM assist_tickets WHERE ticket_id = 3 ORDER BY created_at").fetchall()
    assert [r["title"] for r in rows][-1] == "Imprimante du 2e étage HS" and len(rows) == 2
    assert cycle(world)["tickets_processed"] == 0  # and it too is taken only once
