"""ObserviumClient against the Observium simulator over a real socket, and the webhook-json body."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import falcon
import httpx
import pytest

from simulators import observium as sim
from simulators.base import serve
from tests.sims import ServedSim
from widip.config import Settings
from widip.errors import ConfigError, Invalid, Rejected, Unavailable
from widip.functions.integrations.observium import ObserviumClient, derive_site_and_client

# The default webhook-json template keys, copied from docs/integrations.md (not from the simulator).
SPEC_WEBHOOK_KEYS = {
    "ALERT_STATE", "ALERT_STATE_NAME", "ALERT_EMOJI", "ALERT_EMOJI_NAME", "ALERT_STATUS", "ALERT_STATUS_CUSTOM",
    "ALERT_SEVERITY", "ALERT_COLOR", "ALERT_URL", "ALERT_UNIXTIME", "ALERT_TIMESTAMP", "ALERT_TIMESTAMP_RFC2822",
    "ALERT_TIMESTAMP_RFC3339", "ALERT_ID", "ALERT_MESSAGE", "CONDITIONS", "METRICS", "DURATION", "ENTITY_URL",
    "ENTITY_LINK", "ENTITY_NAME", "ENTITY_ID", "ENTITY_TYPE", "ENTITY_DESCRIPTION", "DEVICE_HOSTNAME",
    "DEVICE_SYSNAME", "DEVICE_DESCRIPTION", "DEVICE_ID", "DEVICE_URL", "DEVICE_LINK", "DEVICE_HARDWARE",
    "DEVICE_OS", "DEVICE_TYPE", "DEVICE_LOCATION", "DEVICE_UPTIME", "DEVICE_REBOOTED", "TITLE",
}


class Sim(ServedSim):
    def __init__(self, state: sim.State):
        super().__init__(sim, state)


@pytest.fixture(scope="module")
def _shared_observium():
    # One socket per module: stopping a server costs 0.5 s (wsgiref's poll interval).
    running = Sim(sim.State())
    yield running
    running.server.stop()


@pytest.fixture
def observium(_shared_observium):
    """The shared simulator, back to the demo story with no fault and no counted calls."""
    state = _shared_observium.state
    with state.lock:
        state.seed_demo()
        state.fault, state.sent = {}, []
        state.calls.clear()
    return _shared_observium


@pytest.fixture
def client(observium):
    with ObserviumClient(observium.url, sim.DEFAULT_USER, sim.DEFAULT_PASSWORD, timeout=2.0) as c:
        yield c


def _near(moment: datetime, expected: datetime, seconds: float = 3.0) -> bool:
    return abs((moment - expected).total_seconds()) <= seconds


def test_listing_devices_returns_the_demo_fleet_with_sites_and_clients(client):
    devices = client.list_devices()

    assert len(devices) == 20
    assert {d.client for d in devices} == {"WIDIP core", "EHPAD Les Tilleuls", "Clinique du Parc", "EHPAD Saint-Joseph"}
    router = next(d for d in devices if d.hostname == "rtr-tilleuls-lyon.widip.net")
    assert (router.site, router.client, router.status, router.status_reason) == (
        "EHPAD Les Tilleuls - Lyon", "EHPAD Les Tilleuls", "up", "ok")
    assert router.ip == "10.11.0.1" and router.hardware == "ISR1111-4P" and router.down_since is None
    assert router.uptime_seconds > 86400 and router.last_polled.tzinfo is not None
    assert {d.device_type for d in devices} >= {"network", "firewall"}


def test_listing_down_devices_returns_only_them_with_their_outage_start(client):
    down = client.list_devices(status="down")

    assert [d.id for d in down] == [204, 301]
    now = datetime.now(timezone.utc)
    fibre = down[1]
    assert fibre.status == "down" and fibre.status_reason == "ping"
    assert _near(fibre.down_since, now - timedelta(minutes=35))
    assert all(d.status == "up" for d in client.list_devices(status="up"))
    assert len(client.list_devices(status="up")) == 18


def test_a_device_flipped_down_appears_in_the_down_list_with_down_since_then_leaves_it(client, observium):
    # Given the Tilleuls router goes down, its last good poll 25 minutes ago
    observium.post("/_sim/devices/101/down", {"since_seconds": 1500})

    down = {d.id: d for d in client.list_devices(status="down")}
    assert 101 in down
    assert _near(down[101].down_since, datetime.now(timezone.utc) - timedelta(seconds=1500))
    assert client.list_alerts()[0].device_id == 101  # the checker row failed with it

    # When it answers again
    observium.post("/_sim/devices/101/up")

    assert 101 not in {d.id for d in client.list_devices(status="down")}
    router = client.get_device(101)
    assert router.status == "up" and router.down_since is None
    assert 101 not in {a.device_id for a in client.list_alerts("failed")}


def test_listing_down_devices_over_5000_devices_is_one_request(observium, client):
    observium.post("/_sim/seed", {"devices": 5000, "down": 7})
    httpx.delete(f"{observium.url}/_sim/calls", timeout=5)

    started = time.perf_counter()
    down = client.list_devices(status="down")
    elapsed = time.perf_counter() - started

    assert len(down) == 7 and all(d.down_since is not None for d in down)
    assert observium.calls()["total"] == 1
    assert elapsed < 2.0
    assert len(client.list_devices()) == 5000


def test_a_device_is_found_by_id_or_by_hostname(client):
    by_id = client.get_device(301)
    by_name = client.get_device("cpe-stjoseph-ftth.widip.net")

    assert by_id == by_name
    assert by_id.description == "CPE FTTH Phibee FTTH-VIENNE-00789"
    assert by_id.site == "EHPAD Saint-Joseph - Vienne" and by_id.is_down


def test_an_unknown_device_is_rejected_as_not_found(client):
    with pytest.raises(Rejected) as caught:
        client.get_device(4242)
    assert caught.value.status_code == 404
    with pytest.raises(Rejected):
        client.get_device("nope.widip.net")


def test_bad_credentials_are_rejected_with_401_without_leaking_the_password(observium):
    with ObserviumClient(observium.url, sim.DEFAULT_USER, "wrong-password-123", timeout=2.0) as bad:
        with pytest.raises(Rejected) as caught:
            bad.list_devices()
    assert caught.value.status_code == 401
    assert "wrong-password-123" not in str(caught.value)


def test_the_simulator_also_accepts_a_bearer_token_like_observium(observium):
    ok = httpx.get(f"{observium.url}/api/v0/devices/301/",
                   headers={"Authorization": f"Bearer {sim.DEFAULT_TOKEN}"}, timeout=5)
    refused = httpx.get(f"{observium.url}/api/v0/devices/301/", headers={"Authorization": "Bearer nope"}, timeout=5)

    assert ok.status_code == 200 and ok.json()["device"]["status"] == "0"
    assert refused.status_code == 401


def test_failed_alerts_are_the_device_down_rows_of_the_down_devices(client):
    failed = client.list_alerts()

    assert [a.device_id for a in failed] == [204, 301]
    assert all(a.status == "failed" and a.entity_type == "device" and a.has_alerted for a in failed)
    assert failed[1].metrics["device_status"] == "0"
    assert _near(failed[1].last_ok, datetime.now(timezone.utc) - timedelta(minutes=35))
    assert len(client.list_alerts("ok")) == 18
    assert len(client.list_alerts("all")) == 20
    assert [a.id for a in client.list_alerts("all", device_id=301)] == [failed[1].id]
    with pytest.raises(Invalid):
        client.list_alerts("broken")


def test_ports_of_a_device_are_listed_by_id_or_hostname(client):
    ports = client.get_device_ports(301)

    assert [p.name for p in ports] == ["GigabitEthernet0/0/0", "GigabitEthernet0/1/0"]
    assert ports[0].alias == "WAN CPE FTTH Phibee FTTH-VIENNE-00789"
    assert ports[0].oper_status == "up" and ports[0].speed_bps == 1_000_000_000
    assert client.get_device_ports("cpe-stjoseph-ftth.widip.net") == ports


def test_sensors_of_a_device_say_which_are_in_alarm_and_ports_follow_the_simulated_link(client, observium):
    # Given a UPS input-voltage sensor in alarm and a deleted sensor on the CPE of Saint-Joseph (over /_sim/)
    observium.post("/_sim/sensors", {"device_id": 302, "sensor_class": "voltage", "sensor_descr": "Tension d'entrée",
                                     "sensor_value": "0", "sensor_unit": "V", "sensor_limit_low": "207",
                                     "sensor_event": "alert", "sensor_last_change": "1755684000"})
    observium.post("/_sim/sensors", {"device_id": 302, "sensor_class": "temperature", "sensor_descr": "Ancien",
                                     "sensor_event": "alert", "sensor_deleted": "1"})
    observium.post("/_sim/ports/30202", {"ifOperStatus": "down"})
    # When the client reads them by hostname
    (sensor,) = client.get_device_sensors("cpe-stjoseph-adsl.widip.net")
    port = next(p for p in client.get_device_ports(302) if p.id == 30202)
    # Then the alarm, its value and its limit come back typed; the port is down since just now
    assert (sensor.sensor_class, sensor.description, sensor.value, sensor.limit_low) == ("voltage", "Tension d'entrée",
                                                                                         0.0, 207.0)
    assert sensor.in_alarm and sensor.to_dict()["in_alarm"] is True and sensor.last_change.year == 2025
    assert client.get_device_sensors(301) == []
    assert port.oper_status == "down" and _near(port.last_change, datetime.now(timezone.utc), 5)


def test_an_empty_observium_answers_php_empty_lists_and_the_client_copes(observium, client):
    observium.post("/_sim/seed", {"devices": 0})

    raw = httpx.get(f"{observium.url}/api/v0/devices/", auth=(sim.DEFAULT_USER, sim.DEFAULT_PASSWORD), timeout=5)
    assert raw.json() == {"status": "ok", "count": 0, "devices": []}
    assert client.list_devices(status="down") == []
    assert client.list_alerts() == []


def test_results_serialise_to_json(client):
    device = client.get_device(301)
    payload = json.loads(json.dumps([device.to_dict(), client.list_alerts()[0].to_dict(),
                                     client.get_device_ports(301)[0].to_dict()]))

    assert payload[0]["status"] == "down" and payload[0]["down_since"].endswith(("+01:00", "+02:00"))
    assert payload[1]["status"] == "failed"


def test_site_and_client_are_derived_from_the_location():
    assert derive_site_and_client("EHPAD Les Tilleuls - Lyon") == ("EHPAD Les Tilleuls - Lyon", "EHPAD Les Tilleuls")
    assert derive_site_and_client("  Clinique  du Parc ") == ("Clinique du Parc", "Clinique du Parc")
    assert derive_site_and_client("Unknown") == (None, None)
    assert derive_site_and_client(None) == (None, None)


def test_the_alert_webhook_body_has_the_observium_fields_as_strings(client, observium):
    body = observium.state.webhook_body(301, "ALERT")
    alert_id = client.list_alerts(device_id=301)[0].id

    assert set(body) == SPEC_WEBHOOK_KEYS
    assert all(isinstance(value, str) for value in body.values())
    assert body["ALERT_STATE"] == "ALERT" and body["ALERT_STATUS"] == "0" and body["ALERT_SEVERITY"] == "Critical"
    assert body["ALERT_ID"] == str(alert_id)
    assert body["ENTITY_TYPE"] == "device" and body["ENTITY_ID"] == body["DEVICE_ID"] == "301"
    assert body["DEVICE_HOSTNAME"] == "cpe-stjoseph-ftth.widip.net"
    assert body["DEVICE_LOCATION"] == "EHPAD Saint-Joseph - Vienne"
    assert body["CONDITIONS"] == "device_status equals 0 (0)" and body["METRICS"] == "device_status = 0"
    assert body["DEVICE_UPTIME"].startswith("Down (PING) 35m")
    assert body["DURATION"].startswith("35m")
    assert body["TITLE"] == "ALERT: [cpe-stjoseph-ftth.widip.net] [device] Device Down"
    assert body["ALERT_URL"].endswith(f"/device/device=301/tab=alert/alert_entry={alert_id}/")
    assert datetime.fromisoformat(body["ALERT_TIMESTAMP_RFC3339"]).tzinfo is not None


def test_the_recovery_body_keeps_the_alert_id_and_flips_the_state(observium):
    alert = observium.state.webhook_body(301, "ALERT")
    observium.post("/_sim/devices/301/up")
    recover = observium.state.webhook_body(301, "RECOVER")

    assert recover["ALERT_ID"] == alert["ALERT_ID"]
    assert (recover["ALERT_STATE"], recover["ALERT_STATUS"], recover["ALERT_COLOR"]) == ("RECOVER", "1", "#")
    assert recover["ALERT_EMOJI_NAME"] == "white_check_mark"
    assert recover["TITLE"].startswith("RECOVER: [cpe-stjoseph-ftth.widip.net]")
    assert recover["DURATION"].startswith("35m")
    assert set(recover) == SPEC_WEBHOOK_KEYS
    with pytest.raises(ValueError):
        sim.webhook_body(observium.state.devices[301], "BOOM")


def test_send_alert_posts_the_body_with_the_token_verbatim_like_the_transport(observium):
    received = []

    class Receiver:
        def on_post(self, req, resp):
            received.append((req.get_header("Authorization"), req.content_type, req.get_media()))
            resp.media = {"status": "successful"}

    receiver = serve(_app_with(Receiver()))
    try:
        answer = observium.post("/_sim/send_alert", {"device_id": 204, "state": "ALERT",
                                                     "url": f"{receiver.url}/webhook", "token": "Bearer s3cr3t"})
    finally:
        receiver.stop()

    assert answer["status_code"] == 200
    token, content_type, body = received[0]
    assert token == "Bearer s3cr3t" and content_type.startswith("application/json")
    assert body["DEVICE_ID"] == "204" and body["ALERT_STATE"] == "ALERT" and set(body) == SPEC_WEBHOOK_KEYS


def _app_with(resource) -> falcon.App:
    app = falcon.App()
    app.add_route("/webhook", resource)
    return app


def test_a_hanging_observium_is_unavailable_within_the_timeout(observium):
    observium.post("/_sim/fault", {"delay_seconds": 4})
    with ObserviumClient(observium.url, sim.DEFAULT_USER, sim.DEFAULT_PASSWORD, timeout=1.0) as slow:
        started = time.perf_counter()
        with pytest.raises(Unavailable):
            slow.list_devices(status="down")
    assert time.perf_counter() - started < 2.0


def test_a_failing_observium_is_unavailable(observium, client):
    observium.post("/_sim/fault", {"status": 503, "times": 1})

    with pytest.raises(Unavailable) as caught:
        client.list_devices(status="down")
    assert caught.value.status_code == 503
    assert len(client.list_devices(status="down")) == 2  # the fault was for one call only


def test_a_stopped_observium_is_unavailable():
    own = Sim(sim.State().seed_demo())
    with ObserviumClient(own.url, sim.DEFAULT_USER, sim.DEFAULT_PASSWORD, timeout=2.0) as client:
        assert len(client.list_devices(status="down")) == 2
        own.server.stop()

        with pytest.raises(Unavailable):
            client.list_devices(status="down")


def test_the_client_is_built_from_settings_and_refuses_missing_ones(observium):
    base = Settings(database_url="postgresql://unused", redis_url="redis://unused")
    with pytest.raises(ConfigError) as caught:
        ObserviumClient.from_settings(base)
    assert "OBSERVIUM_URL" in str(caught.value)

    configured = base.with_overrides(observium_url=f"{observium.url}/api/v0/", observium_user=sim.DEFAULT_USER,
                                     observium_pass=sim.DEFAULT_PASSWORD, integration_timeout_seconds=2.0)
    with ObserviumClient.from_settings(configured) as from_settings:
        assert [d.id for d in from_settings.list_devices(status="down")] == [204, 301]
