"""The 3-minute Assist cycle on the simulators: each new ticket is decided once, in code (skip widip's
own tickets, prove the requester, intake), automatic ones are done end to end and read back before
closing, everything else is handed over with a private follow-up and left open."""

import pytest

from tests.conftest import drain
from widip import deps as actor_deps
from widip.messaging.relay import flush_outbox
from simulators.ad_directory import LdapError, to_filetime
from simulators.active_directory import DEMO_PASSWORDS
from widip.functions.assist import cycle as assist

ACCOUNTS_GROUP = 12


@pytest.fixture
def world(directory_settings, stub_broker, people, redis_client):
    settings = directory_settings.with_overrides(llm_provider="rules", assist_accounts_group_id=ACCOUNTS_GROUP)
    return actor_deps.configure(settings)


def cycle(world, stub_broker=None, stub_worker=None):
    outcome = assist.run_cycle(world.pool, world.redis, world.clients, assist.options_for(world.settings))
    flush_outbox()
    if stub_broker is not None:
        drain(stub_broker, stub_worker, rounds=100)
    return outcome


def followups(glpi, ticket_id):
    return [f for f in glpi.state.items["ITILFollowup"].values() if f["items_id"] == ticket_id]


def file(glpi, requester, title, content):
    return glpi.state.seed({"tickets": [{"name": title, "requester": requester, "content": f"<p>{content}</p>",
                                         "minutes_ago": 1}]})["tickets"][0]


def test_each_new_ticket_is_handled_once_end_to_end(world, stub_broker, stub_worker, glpi, mail_sink, pwpush, conn,
                                                    active_directory):
    first = cycle(world, stub_broker, stub_worker)
    assert first["status"] == "success" and first["tickets_processed"] == 4
    assert cycle(world)["tickets_processed"] == 0  # the same tickets are never taken twice
    drain(stub_broker, stub_worker)
    tickets = glpi.state.items["Ticket"]
    assert tickets[1]["status"] in (5, 6) and tickets[2]["status"] in (5, 6)  # reset and unlock, closed
    for ticket_id in (3, 4):  # account creation and the printer go to a technician, not solved
        notes = followups(glpi, ticket_id)
        assert len(notes) == 1 and notes[0]["is_private"] in (1, True) and tickets[ticket_id]["status"] < 5
    assert "CREATION_COMPTE" in followups(glpi, 3)[0]["content"] and "AUTRE" in followups(glpi, 4)[0]["content"]
    groups = [g for g in glpi.state.items["Group_Ticket"].values() if g["tickets_id"] == 3]
    assert [g["groups_id"] for g in groups] == [ACCOUNTS_GROUP]
    mail = [m for m in mail_sink.messages() if "jdupont@ehpad-tilleuls.fr" in m["To"]]
    assert len(mail) == 1 and "changer dès votre première connexion" in mail[0].get_content()
    logs = conn.execute("SELECT status, tickets_found, actions_detected FROM widip_agent_logs ORDER BY id").fetchall()
    assert logs[0]["status"] == "success" and logs[0]["tickets_found"] == 4
    assert set(logs[0]["actions_detected"].split(", ")) == {"RESET_MDP", "DEBLOCAGE_COMPTE", "CREATION_COMPTE", "AUTRE"}
    rows = {r["ticket_id"]: r for r in conn.execute("SELECT * FROM assist_tickets")}
    assert rows[1]["decision"] == "auto" and rows[1]["subject"] == "jdupont"
    assert rows[3]["decision"] == "handover" and "création" in rows[3]["reason"]


def test_the_cycle_is_skipped_and_logged_while_glpi_is_down(world, glpi, conn):
    world.redis.set("glpi_health_status", "down")
    outcome = cycle(world)
    assert outcome["status"] == "skipped" and outcome["tickets_found"] == 0
    assert glpi.state.calls.get("GET search/Ticket", 0) == 0
    row = conn.execute("SELECT status, errors FROM widip_agent_logs").fetchone()
    assert row["status"] == "skipped" and "GLPI" in row["errors"][0]


def test_a_locked_account_with_a_forgotten_password_gets_one_reset_that_also_clears_the_lockout(
        world, stub_broker, stub_worker, glpi, active_directory, pwpush, mail_sink):
    directory = active_directory.state
    dn = directory.user("jdupont").dn
    directory.entry(dn).set("lockoutTime", [str(to_filetime(directory.clock()))])  # ticket 1: forgotten password
    cycle(world, stub_broker, stub_worker)
    writes = [w for w in directory.writes if w["dn"] == dn]
    assert len(writes) == 1 and {"unicodePwd", "lockoutTime", "pwdLastSet"} <= set(writes[0]["attributes"])
    assert glpi.state.items["Ticket"][1]["status"] in (5, 6)
    told = [m for m in mail_sink.messages() if "jdupont@" in m["To"]][0].get_content()
    assert "débloqué" in told and "première connexion" in told
    # A logon attempt is no longer refused as locked out (775): only the old password is wrong now (52e).
    with pytest.raises(LdapError) as refused:
        directory.bind("jdupont", DEMO_PASSWORDS["jdupont"], secure=True)
    assert "data 52e" in refused.value.message


def test_an_expired_lockout_is_not_locked_and_nothing_is_written(world, stub_broker, stub_worker, glpi,
                                                                 active_directory, mail_sink):
    directory = active_directory.state
    dn = directory.user("mmartin").dn
    directory.entry(dn).set("lockoutTime", [str(to_filetime(directory.clock() - 7200))])  # 2 h ago, 30 min policy
    cycle(world, stub_broker, stub_worker)
    assert [w for w in directory.writes if w["dn"] == dn] == []
    assert glpi.state.items["Ticket"][2]["status"] < 5
    assert "pas verrouillé" in followups(glpi, 2)[0]["content"]
    assert not [m for m in mail_sink.messages() if "mmartin@" in m["To"]]


def test_a_second_glpi_user_carrying_someone_elses_email_is_handed_over(world, stub_broker, stub_worker, glpi,
                                                                       active_directory, mail_sink, conn):
    glpi.state.seed({"users": [{"name": "ggarcia", "realname": "Garcia", "firstname": "G", "entities_id": 3,
                                "emails": ["agarcia@ehpad-glycines.fr"]}]})
    ticket = file(glpi, "ggarcia", "Mot de passe oublié", "Bonjour, j'ai oublié mon mot de passe.")
    cycle(world, stub_broker, stub_worker)
    victim = active_directory.state.user("agarcia").dn
    assert [w for w in active_directory.state.writes if w["dn"] == victim] == []
    assert not [m for m in mail_sink.messages() if "agarcia@" in m["To"]]
    note = followups(glpi, ticket)[0]
    assert note["is_private"] in (1, True) and "ne correspond pas" in note["content"]
    assert glpi.state.items["Ticket"][ticket]["status"] < 5


def test_tickets_opened_by_widip_itself_are_skipped(world, stub_broker, stub_worker, glpi, active_directory, conn):
    own = file(glpi, "widip-api", "Mot de passe oublié", "Réinitialisation demandée par l'agent")
    marked = file(glpi, "jdupont", "Incident réseau", "Mot de passe oublié [widip:1234-abcd]")
    cycle(world, stub_broker, stub_worker)
    assert followups(glpi, own) == [] and followups(glpi, marked) == []
    rows = {r["ticket_id"]: r["decision"] for r in conn.execute("SELECT ticket_id, decision FROM assist_tickets")}
    assert rows[own] == "skipped" and rows[marked] == "skipped"


def test_assist_enabled_off_pauses_the_cycle(directory_settings, stub_broker, people, glpi):
    from widip.actors.assist import run_assist_cycle

    actor_deps.configure(directory_settings.with_overrides(assist_enabled=False))
    assert run_assist_cycle()["status"] == "skipped"
    assert glpi.state.calls.get("GET search/Ticket", 0) == 0


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
