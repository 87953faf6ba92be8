"""The estate: CSV import (and its errors, and lines without a device), PUT /inventory/devices (a list, all or
nothing) and /inventory/devices/… (N3+, audited), placing an alert's device
in its site and client, maintenance windows matched through it, recoveries filtered and counted, unmapped devices
listed, the edge bodies kept (huge CONDITIONS, ALERT_STATUS without ALERT_STATE), the demo mapped, the CLI."""

from __future__ import annotations

import csv
from datetime import timedelta

import pytest
from falcon.testing import TestClient

from simulators import observium as observium_sim
from tests.test_sentinel_pipeline import T0, count, env, ingest  # noqa: F401 - fixture
from widip import cli
from widip.errors import Invalid
from widip.functions import db, seeding
from widip.functions.sentinel import alerts, inventory, maintenance
from widip.http.app import build_context, create_app

ESTATE = """hostname,device_id,site,sub_location,client,glpi_entity_id,widip,role,operator,service_ref,technology
cpe-lilas.widip.net,7001,EHPAD Les Lilas - Nantes,local technique RDC,Groupe Les Lilas,11,,access,Phibee,FTTH-N-1,ftth
sw-lilas.widip.net,7002,EHPAD Les Lilas - Nantes,1er étage,Groupe Les Lilas,11,,switch,,,
cpe-reze.widip.net,7003,EHPAD Les Lilas - Rezé,baie,Groupe Les Lilas,,,access,phibee,FTTH-R-2,ftth
"""


def body(device_id: int, hostname: str, location: str, state: str = "ALERT", at=T0) -> dict:
    row = {"device_id": str(device_id), "hostname": hostname, "status": "0" if state != "RECOVER" else "1",
           "status_type": "ping", "type": "network", "location": location, "purpose": "Commutateur"}
    return observium_sim.webhook_body(row, state, alert_id=80_000 + device_id, since=at.timestamp() - 60,
                                      now=at.timestamp())


@pytest.fixture
def estate(env, tmp_path):
    path = tmp_path / "estate.csv"
    path.write_text(ESTATE, encoding="utf-8")
    with db.transaction(env.pool) as conn:
        return inventory.import_csv(conn, path)


def test_a_location_is_split_into_the_establishment_its_room_and_its_client():
    assert inventory.parse_location("EHPAD X - Ville / local technique RDC") == (
        "EHPAD X - Ville", "local technique RDC", "EHPAD X")
    assert inventory.parse_location("  Datacenter  ") == ("Datacenter", None, "Datacenter")
    assert inventory.parse_location("unknown") == (None, None, None)


def test_the_import_maps_devices_to_sites_clients_entities_and_lines(env, estate):
    assert estate == {"devices": 3, "sites": 2, "clients": 1, "lines": 2}
    with db.transaction(env.pool) as conn:
        found = inventory.lookup(conn, device_id="7002", hostname=None)
        by_name = inventory.lookup(conn, device_id=None, hostname="CPE-LILAS.widip.net")
    assert found["site"] == "EHPAD Les Lilas - Nantes" and found["client"] == "Groupe Les Lilas"
    assert found["glpi_entity_id"] == 11 and found["role"] == "switch" and found["sub_location"] == "1er étage"
    assert [line["service_ref"] for line in found["site_lines"]] == ["FTTH-N-1"]
    assert by_name["operator"] == "phibee" and by_name["service_ref"] == "FTTH-N-1"


@pytest.mark.parametrize("text, message", [
    ("hostname,site\nx,y\n", "missing column(s) client"),
    ("hostname,site,client,role\nx,S,C,toaster\n", "line 2: role must be one of"),
    ("hostname,site,client,glpi_entity_id\nx,S,C,abc\n", "line 2: glpi_entity_id must be an integer"),
    ("hostname,site,client,service_ref\nx,S,C,REF-1\n", "line 2: service_ref REF-1 needs an operator"),
    ("hostname,site,client\nx,S,C\n,S,C\n", "line 3: hostname is required (leave it empty only to declare"),
    ("hostname,site,client,role,operator,service_ref\n,S,C,switch,orange,REF-2\n",
     "line 2: role need(s) a hostname"),
])
def test_a_bad_csv_is_refused_naming_the_line_and_nothing_is_loaded(env, tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Invalid) as raised:
        with db.transaction(env.pool) as conn:
            inventory.import_csv(conn, path)
    assert message in raised.value.message
    assert count(env, "SELECT count(*) AS n FROM inventory_devices") == 0


def test_an_alert_of_a_mapped_device_lands_in_its_site_client_and_entity_not_its_room(env, estate):
    processed = ingest(env, body(7002, "sw-lilas.widip.net", "EHPAD Les Lilas - Nantes / 1er étage"))
    with db.transaction(env.pool) as conn:
        incident = conn.execute("SELECT * FROM incidents WHERE id = %s", (processed.incident_id,)).fetchone()
        member = conn.execute("SELECT * FROM incident_members WHERE incident_id = %s",
                              (processed.incident_id,)).fetchone()
    assert incident["site"] == "EHPAD Les Lilas - Nantes" and incident["client"] == "Groupe Les Lilas"
    assert incident["glpi_entity_id"] == 11 and member["role"] == "switch" and member["operator"] is None


def test_an_unmapped_device_keeps_what_its_location_says_and_is_listed_to_be_mapped(env, estate):
    processed = ingest(env, body(9100, "sw-mimosa.example.net", "EHPAD Les Mimosas - Lorient / baie 2"))
    with db.transaction(env.pool) as conn:
        incident = conn.execute("SELECT * FROM incidents WHERE id = %s", (processed.incident_id,)).fetchone()
        listed = inventory.unmapped(conn, now=T0 + timedelta(minutes=1))
    assert incident["site"] == "EHPAD Les Mimosas - Lorient"
    assert incident["client"] == "EHPAD Les Mimosas" and incident["glpi_entity_id"] is None
    assert [(d["hostname"], d["alerts"]) for d in listed] == [("sw-mimosa.example.net", 1)]


def test_three_sites_of_one_client_make_one_incident_and_an_unrelated_client_another(env, estate):
    first = ingest(env, body(7001, "cpe-lilas.widip.net", "EHPAD Les Lilas - Nantes / local technique RDC"))
    second = ingest(env, body(7003, "cpe-reze.widip.net", "EHPAD Les Lilas - Rezé / baie", at=T0 + timedelta(seconds=30)),
                    T0 + timedelta(seconds=30))
    other = ingest(env, body(9200, "sw-x.example.net", "Clinique Y - Tours", at=T0 + timedelta(seconds=40)),
                   T0 + timedelta(seconds=40))
    assert second.outcome == "correlated" and second.incident_id == first.incident_id
    assert other.outcome == "opened" and other.incident_id != first.incident_id
    with db.transaction(env.pool) as conn:
        scope = conn.execute("SELECT scope FROM incidents WHERE id = %s", (first.incident_id,)).fetchone()["scope"]
    assert scope == "client"


def test_a_site_window_matches_room_suffixed_locations_and_recoveries_are_filtered_and_counted(env, estate):
    with db.transaction(env.pool) as conn:
        maintenance.create(conn, {"scope": "site", "value": "ehpad les lilas - nantes",
                                  "starts_at": (T0 - timedelta(hours=1)).isoformat()}, actor="test")
    down = ingest(env, body(7002, "sw-lilas.widip.net", "EHPAD Les Lilas - Nantes / 1er étage"))
    up = ingest(env, body(7002, "sw-lilas.widip.net", "EHPAD Les Lilas - Nantes / 1er étage", "RECOVER",
                          at=T0 + timedelta(minutes=2)), T0 + timedelta(minutes=2))
    assert down.outcome.startswith("filtered:maintenance") and up.outcome.startswith("filtered:maintenance")
    assert count(env, "SELECT count(*) AS n FROM alerts WHERE status = 'filtered'") == 2
    assert count(env, "SELECT count(*) AS n FROM incidents") == 0


def test_a_recovery_of_a_device_down_before_its_window_still_closes_its_incident(env, estate):
    opened = ingest(env, body(7002, "sw-lilas.widip.net", "EHPAD Les Lilas - Nantes / 1er étage"))
    with db.transaction(env.pool) as conn:
        maintenance.create(conn, {"scope": "client", "value": "Groupe Les Lilas",
                                  "starts_at": (T0 + timedelta(minutes=1)).isoformat()}, actor="test")
    later = T0 + timedelta(minutes=3)
    up = ingest(env, body(7002, "sw-lilas.widip.net", "EHPAD Les Lilas - Nantes / 1er étage", "RECOVER", at=later),
                later)
    assert up.outcome == "recovered" and up.incident_id == opened.incident_id


def test_a_huge_conditions_body_is_kept_raw_and_only_its_excerpts_are_bounded(env):
    big = body(9300, "sw-big.example.net", "Client Z - Site")
    big["CONDITIONS"] = "device_status equals 0 (0)\n" * 2000  # ~54,000 characters
    processed = ingest(env, big)
    with db.transaction(env.pool) as conn:
        stored = conn.execute("SELECT body FROM alerts WHERE id = %s", (processed.alert_id,)).fetchone()["body"]
        condition = conn.execute("SELECT condition FROM incident_members").fetchone()["condition"]
    assert stored["CONDITIONS"] == big["CONDITIONS"]
    assert len(condition) <= alerts.MAX_CONDITION_CHARS


def test_alert_status_without_alert_state_is_understood_and_a_body_with_neither_is_refused(env):
    down = body(9400, "sw-status.example.net", "Client S - Site")
    del down["ALERT_STATE"]
    opened = ingest(env, down)
    assert opened.outcome == "opened"
    up = body(9400, "sw-status.example.net", "Client S - Site", "RECOVER", at=T0 + timedelta(minutes=1))
    del up["ALERT_STATE"]
    assert ingest(env, up, T0 + timedelta(minutes=1)).outcome == "recovered"
    neither = dict(down, ALERT_STATUS="2")
    with pytest.raises(Invalid, match="ALERT_STATE is missing"):
        alerts.validate(neither)


def test_the_demo_inventory_maps_every_simulated_device(env):
    with db.transaction(env.pool) as conn:
        report = seeding.seed_demo_inventory(conn)
        mapped = {r["hostname"] for r in conn.execute("SELECT hostname FROM inventory_devices").fetchall()}
    assert mapped == {spec[1] for spec in observium_sim.DEMO_DEVICES}
    assert report["devices"] == len(observium_sim.DEMO_DEVICES)


def test_put_inventory_device_needs_n3_is_audited_and_bad_bodies_get_a_400(settings, people, conn):
    api = TestClient(create_app(build_context(settings)))
    path = "/inventory/devices/sw-new.widip.net"
    good = {"site": "EHPAD Neuf - Brest", "client": "EHPAD Neuf", "glpi_entity_id": 42, "role": "switch"}
    assert api.simulate_put(path, json=good, headers=people.tech.headers).status_code == 403
    bad = api.simulate_put(path, json={**good, "role": "toaster"}, headers=people.approver.headers)
    assert bad.status_code == 400 and bad.json["title"] and "role" in bad.json["description"]
    made = api.simulate_put(path, json=good, headers=people.approver.headers)
    assert made.status_code == 200 and made.json["site"] == "EHPAD Neuf - Brest" and made.json["glpi_entity_id"] == 42
    assert api.simulate_get(path, headers=people.tech.headers).json["client"] == "EHPAD Neuf"
    summary = api.simulate_get("/inventory", headers=people.tech.headers).json
    assert summary["devices"] == 1 and summary["unmapped"] == []
    audited = conn.execute("SELECT actor, action, reason FROM safeguard_audit WHERE action = 'inventory_changed'"
                           ).fetchall()
    assert audited and audited[0]["actor"] == "human:approver" and "EHPAD Neuf - Brest" in audited[0]["reason"]
    assert api.simulate_delete(path, headers=people.approver.headers).status_code == 200
    assert api.simulate_get(path, headers=people.tech.headers).status_code == 404


def test_a_csv_row_without_device_declares_an_operator_line_of_the_site(env, tmp_path):
    path = tmp_path / "estate.csv"
    path.write_text(ESTATE + ",,EHPAD Les Lilas - Nantes,,Groupe Les Lilas,,,,Orange,SDSL-N-9,sdsl\n"
                    ",,Clinique du Parc - Lyon,,Clinique du Parc,,,,phibee,FTTH-P-1,\n", encoding="utf-8")
    with db.transaction(env.pool) as conn:
        report = inventory.import_csv(conn, path)
        nantes = inventory.lookup(conn, device_id=None, hostname="sw-lilas.widip.net")
        parc = inventory.site_named(conn, "Clinique du Parc - Lyon")
    assert report == {"devices": 3, "sites": 3, "clients": 2, "lines": 4}
    assert [(line["service_ref"], line["operator"], line["technology"]) for line in nantes["site_lines"]] == [
        ("FTTH-N-1", "phibee", "ftth"), ("SDSL-N-9", "orange", "sdsl")]
    assert parc["client"] == "Clinique du Parc" and parc["site_devices"] == []
    assert [line["service_ref"] for line in parc["site_lines"]] == ["FTTH-P-1"]


def test_put_inventory_devices_loads_a_list_all_or_nothing_naming_the_bad_row_and_audits_each(
        settings, people, conn):
    api = TestClient(create_app(build_context(settings)))
    rows = [{"hostname": "cpe-neuf.widip.net", "site": "EHPAD Neuf - Brest", "client": "EHPAD Neuf",
             "glpi_entity_id": 42, "role": "access", "operator": "Phibee", "service_ref": "FTTH-B-1",
             "technology": "ftth"},
            {"hostname": "sw-neuf.widip.net", "device_id": 9002, "site": "EHPAD Neuf - Brest", "client": "EHPAD Neuf",
             "role": "switch", "sub_location": "baie"},
            {"site": "EHPAD Neuf - Brest", "client": "EHPAD Neuf", "operator": "Orange", "service_ref": "SDSL-B-2",
             "technology": "sdsl"}]
    put = lambda body, who: api.simulate_put("/inventory/devices", json=body, headers=who.headers)  # noqa: E731
    assert put(rows, people.tech).status_code == 403
    for bad, message in (
            ([rows[0], {**rows[1], "role": "toaster"}], "row 2: role: 'toaster' is not one of"),
            ([rows[0], {"site": "S"}], "row 2: fields: 'client' is a required property"),
            ([rows[0], rows[1], {**rows[2], "service_ref": None}], "row 3: hostname is required"),
            ([{**rows[0], "operator": None}], "row 1: service_ref FTTH-B-1 needs an operator"),
            ([{**rows[1], "hostname": "sw neuf"}], "row 1: hostname: 'sw neuf' does not match"),
            ([], "should be non-empty")):
        refused = put(bad, people.approver)
        assert refused.status_code == 400 and message in refused.json["description"], refused.json
    assert conn.execute("SELECT count(*) AS n FROM inventory_devices").fetchone()["n"] == 0  # nothing half-loaded
    loaded = put(rows, people.approver)
    assert loaded.status_code == 200 and loaded.json == {"devices": 2, "sites": 1, "clients": 1, "lines": 2}
    switch = api.simulate_get("/inventory/devices/sw-neuf.widip.net", headers=people.tech.headers).json
    assert switch["device_id"] == "9002" and switch["glpi_entity_id"] == 42 and switch["sub_location"] == "baie"
    assert [line["service_ref"] for line in switch["site_lines"]] == ["FTTH-B-1", "SDSL-B-2"]
    audited = conn.execute("SELECT actor, reason FROM safeguard_audit WHERE action = 'inventory_changed' "
                           "ORDER BY id").fetchall()
    assert [a["actor"] for a in audited] == ["human:approver"] * 3
    assert audited[0]["reason"] == "device cpe-neuf.widip.net mapped to EHPAD Neuf - Brest (EHPAD Neuf)"
    assert audited[2]["reason"] == "line SDSL-B-2 of Orange declared for EHPAD Neuf - Brest (EHPAD Neuf)"


def test_widip_inventory_import_loads_a_file_and_reports_a_bad_one(settings, tmp_path, monkeypatch, capsys):
    for name, value in (("DATABASE_URL", settings.database_url), ("REDIS_URL", settings.redis_url),
                        ("WIDIP_ENV", "test")):
        monkeypatch.setenv(name, value)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(ESTATE, encoding="utf-8")
    with open(bad, "w", newline="") as f:
        csv.writer(f).writerows([("hostname", "site", "client", "role"), ("x.widip.net", "S", "C", "toaster")])
    assert cli.main(["inventory", "import", str(good)]) == 0
    assert "'devices': 3" in capsys.readouterr().out
    assert cli.main(["inventory", "import", str(bad)]) == 1
    assert "line 2: role must be one of" in capsys.readouterr().err


def test_the_observium_sync_adds_unmapped_devices_with_their_glpi_entity_and_keeps_imported_rows(env, observium, glpi):
    with db.transaction(env.pool) as conn:
        inventory.upsert_device(conn, "cpe-stjoseph-ftth.widip.net", {
            "site": "EHPAD Saint-Joseph - Vienne", "client": "Groupe Saint-Joseph", "glpi_entity_id": 3,
            "role": "access", "operator": "phibee", "service_ref": "FTTH-VIENNE-00789"}, source="import")
    report = inventory.sync_observium(env.pool, env.clients)
    with db.transaction(env.pool) as conn:
        kept = inventory.lookup(conn, device_id=None, hostname="cpe-stjoseph-ftth.widip.net")
        firewall = inventory.lookup(conn, device_id="103", hostname=None)
    assert report["added"] == len(observium_sim.DEMO_DEVICES) - 1
    assert kept["client"] == "Groupe Saint-Joseph" and kept["service_ref"] == "FTTH-VIENNE-00789"
    assert firewall["site"] == "EHPAD Les Tilleuls - Lyon" and firewall["client"] == "EHPAD Les Tilleuls"
    assert firewall["glpi_entity_id"] == 1 and firewall["role"] == "firewall"


def test_widip_inventory_sync_maps_observium_from_the_command_line(integrated_settings, monkeypatch, capsys, env):
    s = integrated_settings
    for name, value in (("DATABASE_URL", s.database_url), ("REDIS_URL", s.redis_url), ("WIDIP_ENV", "test"),
                        ("OBSERVIUM_URL", s.observium_url), ("OBSERVIUM_USER", s.observium_user),
                        ("OBSERVIUM_PASS", s.observium_pass), ("GLPI_URL", s.glpi_url),
                        ("GLPI_APP_TOKEN", s.glpi_app_token), ("GLPI_USER_TOKEN", s.glpi_user_token)):
        monkeypatch.setenv(name, value)
    assert cli.main(["inventory", "sync"]) == 0
    assert f"'added': {len(observium_sim.DEMO_DEVICES)}" in capsys.readouterr().out
    with db.transaction(env.pool) as conn:
        assert inventory.lookup(conn, device_id="103", hostname=None)["glpi_entity_id"] == 1


def test_the_observium_sync_keeps_what_ops_mapped_while_it_asked_glpi(env, observium, glpi, monkeypatch):
    # Ops import a device and give a client its entity while the sync is waiting for GLPI.
    asked = []

    def slow_glpi_answer(clients, client):
        asked.append(client)
        if len(asked) == 1:
            with db.transaction(env.pool) as conn:
                inventory.upsert_device(conn, "fw-tilleuls-lyon.widip.net", {
                    "site": "Salle serveur Tilleuls", "client": "EHPAD Les Tilleuls", "glpi_entity_id": 77,
                    "role": "firewall", "operator": "phibee", "service_ref": "FTTH-LYON-1"}, source="import")
        return 5

    monkeypatch.setattr(inventory, "_glpi_entity", slow_glpi_answer)
    inventory.sync_observium(env.pool, env.clients)
    with db.transaction(env.pool) as conn:
        kept = inventory.lookup(conn, device_id=None, hostname="fw-tilleuls-lyon.widip.net")
        neighbour = inventory.lookup(conn, device_id=None, hostname="rtr-tilleuls-lyon.widip.net")
    assert asked and kept["site"] == "Salle serveur Tilleuls" and kept["service_ref"] == "FTTH-LYON-1"
    assert kept["glpi_entity_id"] == 77 and neighbour["glpi_entity_id"] == 77  # not GLPI's 5


def test_monitoring_lists_alerting_devices_missing_from_the_inventory(env, estate):
    from widip.functions import monitoring

    ingest(env, body(9500, "sw-orphan.example.net", "Client O - Site", at=T0), T0)
    ingest(env, body(7002, "sw-lilas.widip.net", "EHPAD Les Lilas - Nantes / 1er étage"))
    report = monitoring.snapshot(env.pool, env.redis, now=(T0 + timedelta(minutes=5)).timestamp())
    assert [d["hostname"] for d in report["sentinel"]["unmapped_devices"]] == ["sw-orphan.example.net"]
    assert any("missing from the inventory" in p["what"] for p in monitoring.problems(report))


def test_the_hourly_inventory_tick_maps_the_devices_observium_knows(integrated_settings, stub_broker, stub_worker):
    from tests.conftest import drain
    from widip import deps as actor_deps
    from widip.functions import job_table
    from widip.messaging import door

    # Given the tick in the one job table, on the ticks queue, and a worker wired to the simulators
    assert job_table.SYNC_INVENTORY in job_table.periodic_jobs() and job_table.SYNC_INVENTORY.queue == "ticks"
    actor_deps.configure(integrated_settings)
    # When the scheduler fires it
    door.send(job_table.SYNC_INVENTORY)
    drain(stub_broker, stub_worker)
    # Then every demo device is placed in its site and client, with the GLPI entity named like it
    with db.transaction(actor_deps.deps().pool) as conn:
        mapped = conn.execute("SELECT count(*) AS n FROM inventory_devices WHERE source = 'observium'").fetchone()["n"]
        firewall = inventory.lookup(conn, device_id="103", hostname=None)
    assert mapped == len(observium_sim.DEMO_DEVICES)
    assert firewall["site"] == "EHPAD Les Tilleuls - Lyon" and firewall["glpi_entity_id"] == 1
