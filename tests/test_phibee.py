"""PhibeeClient against the Phibee simulator over a real socket: line status, line tests, incidents."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from simulators import phibee as sim
from simulators.base import serve
from tests.sims import ServedSim
from widip.config import Settings
from widip.errors import ConfigError, Invalid, Rejected, Unavailable
from widip.functions.integrations.phibee import LineTestStep, PhibeeClient, line_verdict

TILLEULS = "EHPAD Les Tilleuls - Lyon"
SAINT_JOSEPH = "EHPAD Saint-Joseph - Vienne"


class Sim(ServedSim):
    def __init__(self, state: sim.State):
        super().__init__(sim, state)

    def calls(self) -> dict:
        return super().calls()["by_route"]


@pytest.fixture(scope="module")
def _shared_phibee():
    # One socket per module: stopping a server costs 0.5 s (wsgiref's poll interval).
    running = Sim(sim.State())
    yield running
    running.server.stop()


@pytest.fixture
def phibee(_shared_phibee):
    """The shared simulator, back to the demo story, tests lasting 0.4 s, no fault, no counted calls."""
    state = _shared_phibee.state
    with state.lock:
        state.seed_demo()
        state.test_duration_seconds = 0.4
        state.fault = {}
        state.calls.clear()
    return _shared_phibee


@pytest.fixture
def client(phibee):
    with PhibeeClient(phibee.url, sim.DEFAULT_TOKEN, timeout=2.0, poll_interval=0.1) as c:
        yield c


def test_a_healthy_fibre_line_reports_its_sync_and_optical_levels(client):
    line = client.get_line_status("FTTH-LYON-00123")

    assert (line.reference, line.site, line.technology) == ("FTTH-LYON-00123", TILLEULS, "ftth")
    assert line.oper_status == "up" and line.sync_status == "up" and line.session_up is True
    assert line.down_kbps == 1_000_000 and line.up_kbps == 500_000
    assert line.optical_rx_dbm == pytest.approx(-19.8)
    assert line.operator_incident is False and line.incident_ref is None
    assert line.last_resync < datetime.now(timezone.utc) - timedelta(days=1)


def test_a_degraded_copper_line_reports_a_low_noise_margin(client):
    line = client.get_line_status("ADSL-LYON-00124")

    assert line.oper_status == "degraded" and line.sync_status == "up"
    assert line.snr_margin_db == pytest.approx(2.1) and line.attenuation_db == pytest.approx(31.5)
    assert line.down_kbps < line.attainable_down_kbps


def test_a_line_inside_an_operator_outage_is_down_and_flagged(client):
    line = client.get_line_status("FTTH-VIENNE-00789")

    assert line.oper_status == "down" and line.sync_status == "down" and line.down_kbps == 0
    assert line.operator_incident is True and line.incident_ref.startswith("INC")
    assert client.get_line_status("ADSL-VIENNE-00790").operator_incident is False  # copper backup spared


def test_a_line_test_is_started_then_polled_until_done(client, phibee):
    started = time.perf_counter()
    result = client.run_line_test("FTTH-LYON-00123", max_wait=5)
    elapsed = time.perf_counter() - started

    assert result.completed and result.status == "completed"
    assert (result.verdict, result.responsibility) == ("Ligne OK", "aucune")
    assert [s.unit for s in result.steps] == ["derco", "synchro", "technicalinfo", "cpemac"]
    assert all(s.status == "ok" for s in result.steps)
    assert result.run_id.startswith("D") and result.completed_at >= result.started_at
    assert 0.4 <= elapsed < 2.0
    calls = phibee.calls()
    assert calls["POST /services/{ref}/diagnostics"] == 1
    assert calls["GET /diagnostics/{run_id}"] >= 2  # pending/running answers were polled through


def test_a_fibre_line_cut_by_the_operator_outage_gets_the_operator_verdict(client):
    result = client.run_line_test("FTTH-VIENNE-00789", max_wait=5)

    assert result.verdict == "Coupure fibre côté opérateur"
    assert result.responsibility == "opérateur"
    assert result.collective_outage and result.incident_ref.startswith("INC")


def test_a_synchronised_line_without_its_customer_box_blames_the_client_equipment(client):
    result = client.run_line_test("VDSL-VILLEURBANNE-00457", max_wait=5)

    assert (result.verdict, result.responsibility) == ("Équipement client injoignable", "client")


def test_a_line_that_lost_sync_outside_any_outage_is_reported_unsynchronised(client, phibee):
    phibee.post("/_sim/lines/FTTH-VILLEURBANNE-00456", {"condition": "down"})

    result = client.run_line_test("FTTH-VILLEURBANNE-00456", max_wait=5)

    assert result.verdict == "Perte du signal optique, ligne non synchronisée"
    assert result.responsibility == "opérateur" and not result.collective_outage


def test_a_line_test_slower_than_max_wait_returns_an_unfinished_result(client, phibee):
    phibee.post("/_sim/config", {"test_duration_seconds": 10})

    started = time.perf_counter()
    result = client.run_line_test("FTTH-LYON-00123", max_wait=0.5)
    elapsed = time.perf_counter() - started

    assert not result.completed and result.status in ("pending", "running")
    assert "en cours" in result.verdict and result.responsibility == "indéterminée"
    assert elapsed < 1.5


def test_an_outage_toggled_on_a_site_is_listed_then_cleared(client, phibee):
    assert client.list_site_incidents(TILLEULS) == []

    phibee.post("/_sim/incidents", {"site": TILLEULS, "active": True, "title": "Panne OLT Lyon 3"})
    incidents = client.list_site_incidents(TILLEULS)

    assert [i.title for i in incidents] == ["Panne OLT Lyon 3"]
    assert set(incidents[0].impacted_services) == {"FTTH-LYON-00123", "ADSL-LYON-00124"}
    assert client.get_line_status("FTTH-LYON-00123").incident_ref == incidents[0].reference

    phibee.post("/_sim/incidents", {"site": TILLEULS, "active": False})

    assert client.list_site_incidents(TILLEULS) == []
    assert [i.status for i in client.list_site_incidents(TILLEULS, status="all")] == ["cleared"]
    assert client.get_line_status("FTTH-LYON-00123").operator_incident is False


def test_incidents_are_found_by_site_or_by_area(client, phibee):
    by_site = client.list_site_incidents(SAINT_JOSEPH)

    assert len(by_site) == 1 and by_site[0].area == "Vienne"
    assert client.list_site_incidents("Vienne") == by_site
    assert client.list_site_incidents("Clinique du Parc - Villeurbanne") == []

    # An area-wide outage concerns every site of the area
    phibee.post("/_sim/incidents", {"area": "Villeurbanne", "active": True})
    assert len(client.list_site_incidents("Clinique du Parc - Villeurbanne")) == 1
    with pytest.raises(Invalid):
        client.list_site_incidents(TILLEULS, status="whatever")


def test_an_unknown_line_is_rejected_as_not_found(client):
    with pytest.raises(Rejected) as caught:
        client.get_line_status("FTTH-NOWHERE-99999")
    assert caught.value.status_code == 404
    with pytest.raises(Rejected):
        client.run_line_test("FTTH-NOWHERE-99999", max_wait=1)


def test_a_bad_token_is_rejected_with_401_without_leaking_it(phibee):
    with PhibeeClient(phibee.url, "not-the-token-42", timeout=2.0) as bad:
        with pytest.raises(Rejected) as caught:
            bad.get_line_status("FTTH-LYON-00123")
    assert caught.value.status_code == 401
    assert "not-the-token-42" not in str(caught.value)


def test_a_hanging_phibee_is_unavailable_within_the_timeout(phibee):
    phibee.post("/_sim/fault", {"delay_seconds": 4})
    with PhibeeClient(phibee.url, sim.DEFAULT_TOKEN, timeout=1.0) as slow:
        started = time.perf_counter()
        with pytest.raises(Unavailable):
            slow.get_line_status("FTTH-LYON-00123")
    assert time.perf_counter() - started < 2.0


def test_a_failing_phibee_is_unavailable(phibee, client):
    phibee.post("/_sim/fault", {"status": 503, "times": 1})

    with pytest.raises(Unavailable) as caught:
        client.list_site_incidents(SAINT_JOSEPH)
    assert caught.value.status_code == 503
    assert len(client.list_site_incidents(SAINT_JOSEPH)) == 1


def test_a_stopped_phibee_is_unavailable():
    own = Sim(sim.State().seed_demo())
    with PhibeeClient(own.url, sim.DEFAULT_TOKEN, timeout=2.0) as client:
        assert client.get_line_status("FTTH-LYON-00123").sync_status == "up"
        own.server.stop()

        with pytest.raises(Unavailable):
            client.get_line_status("FTTH-LYON-00123")


def test_results_serialise_to_json(client):
    payload = json.loads(json.dumps([client.get_line_status("FTTH-VIENNE-00789").to_dict(),
                                     client.run_line_test("FTTH-VIENNE-00789", max_wait=5).to_dict(),
                                     client.list_site_incidents(SAINT_JOSEPH)[0].to_dict()]))

    assert payload[0]["operator_incident"] is True
    assert payload[1]["verdict"] == "Coupure fibre côté opérateur" and payload[1]["steps"][0]["unit"] == "derco"
    assert payload[2]["impacted_services"] == ["FTTH-VIENNE-00789"]


def test_the_client_is_built_from_settings_and_refuses_missing_ones(phibee):
    base = Settings(database_url="postgresql://unused", redis_url="redis://unused")
    with pytest.raises(ConfigError) as caught:
        PhibeeClient.from_settings(base)
    assert "PHIBEE_API_URL" in str(caught.value)

    configured = base.with_overrides(phibee_api_url=phibee.url, phibee_api_token=sim.DEFAULT_TOKEN,
                                     integration_timeout_seconds=2.0)
    with PhibeeClient.from_settings(configured) as from_settings:
        assert from_settings.get_line_status("FTTH-LYON-00123").reference == "FTTH-LYON-00123"


def test_the_wire_is_replaceable_by_another_transport():
    # The real Phibee contract will come as another transport returning the same normalised shapes.
    class CannedTransport:
        def line_status(self, reference):
            return {"service_ref": reference, "oper_status": "up", "sync": {"status": "up", "down_kbps": 8000}}

        def start_test(self, reference, tests):
            return {"run_id": "R1", "status": "completed", "technology": "vdsl2",
                    "results": [{"unit": "synchro", "status": "ok", "summary": ""}]}

        def test_run(self, run_id):
            raise AssertionError("a completed run needs no polling")

        def incidents(self, site, status):
            return []

        def close(self):
            pass

    client = PhibeeClient("unused", "unused", transport=CannedTransport())

    assert client.get_line_status("X-1").down_kbps == 8000
    assert client.run_line_test("X-1").verdict == "Ligne OK"


@pytest.mark.parametrize(("technology", "steps", "outage", "expected"), [
    ("vdsl2", {"derco": "ko"}, True, ("Incident collectif opérateur", "opérateur")),
    ("ftth", {"synchro": "ok", "technicalinfo": "error"}, False, ("Test incomplet, résultat indéterminé",
                                                                  "indéterminée")),
    ("adsl2+", {"synchro": "ok", "technicalinfo": "ko"}, False,
     ("Ligne dégradée (débit ou marge de bruit insuffisants)", "opérateur")),
])
def test_the_verdict_names_the_widest_cause_first(technology, steps, outage, expected):
    assert line_verdict(technology, [LineTestStep(u, s, "") for u, s in steps.items()], outage) == expected
