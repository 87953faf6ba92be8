"""Local Observium: the API v0 read endpoints and the webhook-json alert transport, over in-memory state.

It speaks docs/integrations.md closely enough that `ObserviumClient` cannot tell it from a real
server: Basic or Bearer auth, id-keyed collections of string values (`[]` when empty), 404 on unknown
ids, device status consistent with the "device down" alert row, and a down device keeping the
`last_polled` of its last good poll. It is not a poller: devices change state only through `/_sim/`.

Simulator endpoints (no auth):
    POST /_sim/seed                 {"demo": true} or {"devices": 5000, "down": 12}  (replaces everything)
    POST /_sim/devices/{id}/down    {"status_type": "ping|snmp|dns", "since_seconds": 1500}  (both optional)
    POST /_sim/devices/{id}/up
    POST /_sim/sensors              {"device_id", "sensor_class", "sensor_descr", "sensor_value", "sensor_event"…}
    POST /_sim/ports/{id}           {"ifOperStatus": "down"}  (any port column)
    GET  /_sim/devices              every device row
    GET|DELETE /_sim/calls          API request counts per route, /_sim/ excluded (DELETE resets)
    POST /_sim/fault                {"delay_seconds": 5} | {"status": 503} (+ optional "times": n); {} clears
    POST /_sim/send_alert           {"device_id", "state": "ALERT|ALERT REMINDER|RECOVER", "url", "token"}
"""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import falcon
import httpx

from simulators.base import CallsAndFaults, add_calls_and_faults, count_and_fault

DEFAULT_USER = "observium"
DEFAULT_PASSWORD = "observium-pass"
DEFAULT_TOKEN = "observium-api-token"
DEFAULT_BASE_URL = "http://observium.local"
DEFAULT_TIMEZONE = "Europe/Paris"
DEVICE_DOWN_CHECKER = {"alert_test_id": "1", "alert_name": "device_down", "alert_message": "Device Down",
                       "severity": "crit"}
_ALERT_STATUS_CODES = {"failed": "0", "ok": "1", "delayed": "2", "suppressed": "3"}

#: Keys of the default webhook-json template (docs/integrations.md), in Observium's order.
WEBHOOK_JSON_FIELDS = (
    "ALERT_STATE", "ALERT_STATE_NAME", "ALERT_EMOJI", "ALERT_EMOJI_NAME", "ALERT_STATUS", "ALERT_STATUS_CUSTOM",
    "ALERT_SEVERITY", "ALERT_COLOR", "ALERT_URL", "ALERT_UNIXTIME", "ALERT_TIMESTAMP", "ALERT_TIMESTAMP_RFC2822",
    "ALERT_TIMESTAMP_RFC3339", "ALERT_ID", "ALERT_MESSAGE", "CONDITIONS", "METRICS", "DURATION", "ENTITY_URL",
    "ENTITY_LINK", "ENTITY_NAME", "ENTITY_ID", "ENTITY_TYPE", "ENTITY_DESCRIPTION", "DEVICE_HOSTNAME",
    "DEVICE_SYSNAME", "DEVICE_DESCRIPTION", "DEVICE_ID", "DEVICE_URL", "DEVICE_LINK", "DEVICE_HARDWARE",
    "DEVICE_OS", "DEVICE_TYPE", "DEVICE_LOCATION", "DEVICE_UPTIME", "DEVICE_REBOOTED", "TITLE",
)
ALERT_STATES = ("ALERT", "ALERT REMINDER", "RECOVER")

# -- demo data -------------------------------------------------------------------------------

DEMO_SITES = {
    "core": "WIDIP core - Datacenter Lyon",
    "tilleuls": "EHPAD Les Tilleuls - Lyon",
    "parc": "Clinique du Parc - Villeurbanne",
    "stjoseph": "EHPAD Saint-Joseph - Vienne",
}
#: The story: the FTTH CPE of EHPAD Saint-Joseph is down for 35 min (Phibee's fibre outage in Vienne,
#: its ADSL backup keeps the site up); a floor switch of Clinique du Parc is down for 8 min (local).
#: (id, hostname, site, ip, type, os, os_text, hardware, purpose, (status_type, minutes down) or None)
DEMO_DEVICES = (
    (1, "core-rtr-01.widip.net", "core", "10.0.0.1", "network", "junos", "Juniper JunOS", "MX204",
     "Routeur cœur de réseau", None),
    (2, "core-rtr-02.widip.net", "core", "10.0.0.2", "network", "junos", "Juniper JunOS", "MX204",
     "Routeur cœur de réseau (secours)", None),
    (3, "core-sw-01.widip.net", "core", "10.0.0.3", "network", "arista_eos", "Arista EOS", "DCS-7050SX3",
     "Commutateur cœur", None),
    (4, "fw-core-01.widip.net", "core", "10.0.0.4", "firewall", "fortigate", "Fortinet FortiOS", "FortiGate 600E",
     "Pare-feu hébergement", None),
    (5, "bras-phibee-01.widip.net", "core", "10.0.0.5", "network", "iosxe", "Cisco IOS-XE", "ASR1001-X",
     "Collecte Phibee (L2TP)", None),
    (101, "rtr-tilleuls-lyon.widip.net", "tilleuls", "10.11.0.1", "network", "iosxe", "Cisco IOS-XE", "ISR1111-4P",
     "CPE FTTH Phibee FTTH-LYON-00123", None),
    (102, "cpe-tilleuls-adsl.widip.net", "tilleuls", "10.11.0.2", "network", "zyxel", "ZyXEL", "VMG3625-T50B",
     "Secours ADSL Phibee ADSL-LYON-00124", None),
    (103, "fw-tilleuls-lyon.widip.net", "tilleuls", "10.11.0.3", "firewall", "fortigate", "Fortinet FortiOS",
     "FortiGate 60F", "Pare-feu site", None),
    (104, "sw-tilleuls-rdc.widip.net", "tilleuls", "10.11.0.4", "network", "procurve", "HPE ProCurve", "Aruba 2530-24G",
     "Commutateur rez-de-chaussée", None),
    (105, "sw-tilleuls-etage1.widip.net", "tilleuls", "10.11.0.5", "network", "procurve", "HPE ProCurve",
     "Aruba 2530-24G", "Commutateur 1er étage", None),
    (201, "rtr-parc-villeurbanne.widip.net", "parc", "10.12.0.1", "network", "iosxe", "Cisco IOS-XE", "ISR4321",
     "CPE FTTH Phibee FTTH-VILLEURBANNE-00456", None),
    (202, "fw-parc-villeurbanne.widip.net", "parc", "10.12.0.2", "firewall", "fortigate", "Fortinet FortiOS",
     "FortiGate 100F", "Pare-feu site", None),
    (203, "sw-parc-core.widip.net", "parc", "10.12.0.3", "network", "procurve", "HPE ProCurve", "Aruba 3810M",
     "Commutateur cœur clinique", None),
    (204, "sw-parc-bloc-a.widip.net", "parc", "10.12.0.4", "network", "procurve", "HPE ProCurve", "Aruba 2930F",
     "Commutateur bloc opératoire A", ("ping", 8)),
    (205, "sw-parc-urgences.widip.net", "parc", "10.12.0.5", "network", "procurve", "HPE ProCurve", "Aruba 2930F",
     "Commutateur urgences", None),
    (206, "wlc-parc-villeurbanne.widip.net", "parc", "10.12.0.6", "wireless", "arubaos", "Aruba OS", "Aruba 7010",
     "Contrôleur Wi-Fi", None),
    (301, "cpe-stjoseph-ftth.widip.net", "stjoseph", "10.13.0.1", "network", "iosxe", "Cisco IOS-XE", "ISR1111-4P",
     "CPE FTTH Phibee FTTH-VIENNE-00789", ("ping", 35)),
    (302, "cpe-stjoseph-adsl.widip.net", "stjoseph", "10.13.0.2", "network", "zyxel", "ZyXEL", "VMG3625-T50B",
     "Secours ADSL Phibee ADSL-VIENNE-00790", None),
    (303, "fw-stjoseph-vienne.widip.net", "stjoseph", "10.13.0.3", "firewall", "fortigate", "Fortinet FortiOS",
     "FortiGate 40F", "Pare-feu site", None),
    (304, "sw-stjoseph-vienne.widip.net", "stjoseph", "10.13.0.4", "network", "procurve", "HPE ProCurve",
     "Aruba 2530-24G", "Commutateur site", None),
)


def demo_row(spec: tuple) -> dict[str, str]:
    """An Observium device row (string values) from one DEMO_DEVICES entry."""
    device_id, hostname, site, ip, kind, os_name, os_text, hardware, purpose, _ = spec
    return {"device_id": str(device_id), "hostname": hostname, "sysName": hostname.split(".")[0], "ip": ip,
            "type": kind, "os": os_name, "os_text": os_text, "hardware": hardware, "vendor": os_text.split()[0],
            "location": DEMO_SITES[site], "purpose": purpose, "snmp_version": "v2c", "poller_id": "0"}


def demo_ports(device: dict[str, str], last_change: str) -> list[dict[str, str]]:
    """Two to four plausible interfaces for a demo device, all up."""
    device_id, kind, purpose = int(device["device_id"]), device["type"], device.get("purpose", "")
    if kind == "firewall":
        names = [("wan1", "WAN"), ("internal1", "LAN")]
    elif purpose.startswith(("CPE", "Secours")):
        names = [("GigabitEthernet0/0/0", f"WAN {purpose}"), ("GigabitEthernet0/1/0", "LAN vers pare-feu")]
    else:
        names = [(f"{n}", f"Port {n}") for n in range(1, 4)] + [("25", "Uplink")]
    ports = []
    for index, (name, alias) in enumerate(names, start=1):
        ports.append({
            "port_id": str(device_id * 100 + index), "device_id": str(device_id), "ifIndex": str(index),
            "ifName": name, "ifDescr": name, "ifAlias": alias, "port_label": name, "port_label_short": name,
            "ifOperStatus": "up", "ifAdminStatus": "up", "ifSpeed": "1000000000", "ifHighSpeed": "1000",
            "ifLastChange": last_change, "ifInOctets_rate": str(120_000 * index),
            "ifOutOctets_rate": str(80_000 * index), "ifInErrors_rate": "0",
            "ignore": "0", "disabled": "0", "deleted": "0",
        })
    return ports


def synthetic_device(index: int) -> dict[str, str]:
    """Device number `index` of the benchmark fleet: a CPE of client `index // 8`."""
    client = index // 8
    return {"device_id": str(10001 + index), "hostname": f"cpe-{index:05d}.c{client:04d}.widip.net",
            "ip": f"10.{100 + index // 65536}.{(index // 256) % 256}.{index % 256}", "type": "network",
            "os": "iosxe", "os_text": "Cisco IOS-XE", "hardware": "ISR1111-4P", "vendor": "Cisco",
            "location": f"Client {client:04d} - Site {index % 8}", "purpose": "CPE", "snmp_version": "v2c"}



class State:
    """Devices, their "device down" alert rows, ports and sensors, plus call counts, faults and sent webhooks."""

    def __init__(self, *, user: str = DEFAULT_USER, password: str = DEFAULT_PASSWORD,
                 token: str = DEFAULT_TOKEN, timezone: str = DEFAULT_TIMEZONE, base_url: str = DEFAULT_BASE_URL):
        self.user, self.password, self.token = user, password, token
        self.tz = ZoneInfo(timezone)
        self.base_url = base_url
        self.lock = threading.RLock()
        self.devices: dict[int, dict[str, str]] = {}
        self.alerts: dict[int, dict[str, str]] = {}  # alert_table_id -> row
        self.ports: dict[int, dict[str, str]] = {}
        self.sensors: dict[int, dict[str, str]] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.fault: dict = {}
        self.sent: list[dict] = []
        self._outage_start: dict[int, float] = {}  # device_id -> unix time it went down (kept after recovery)

    # -- seeding -----------------------------------------------------------------------------

    def clear(self) -> None:
        with self.lock:
            for table in (self.devices, self.alerts, self.ports, self.sensors, self._outage_start):
                table.clear()

    def seed_demo(self) -> "State":
        """Twenty devices of WIDIP's core and three clients; two are down (see DEMO_DEVICES)."""
        now = time.time()
        with self.lock:
            self.clear()
            for spec in DEMO_DEVICES:
                self.add_ports(self.add_device(demo_row(spec), now=now), now=now)
                if spec[-1]:
                    kind, minutes = spec[-1]
                    self.set_down(spec[0], status_type=kind, since_seconds=minutes * 60)
        return self

    def seed_synthetic(self, count: int, *, down: int = 0) -> "State":
        """`count` generated devices (ids from 10001), the first `down` of them down: the benchmark fleet."""
        now = time.time()
        with self.lock:
            self.clear()
            for index in range(count):
                self.add_device(synthetic_device(index), now=now)
            for index in range(min(down, count)):
                self.set_down(10001 + index, since_seconds=300 * (1 + index % 12))
        return self

    def add_device(self, row: dict[str, str], *, now: float | None = None) -> dict[str, str]:
        """Store one device row (string values) and its "device down" checker row, both up."""
        now = time.time() if now is None else now
        device_id = int(row["device_id"])
        row = {key: str(value) for key, value in row.items()}
        row.setdefault("sysName", row["hostname"].split(".")[0])
        row.update(status="1", status_type="ok", ignore=row.get("ignore", "0"), disabled=row.get("disabled", "0"),
                   last_polled=self._local(now - 60), last_discovered=self._local(now - 3600))
        row.setdefault("uptime", str(86400 * 12))
        row.setdefault("last_rebooted", str(int(now) - int(row["uptime"])))
        with self.lock:
            self.devices[device_id] = row
            self.alerts[_alert_id(device_id)] = {
                "alert_table_id": str(_alert_id(device_id)), "alert_test_id": DEVICE_DOWN_CHECKER["alert_test_id"],
                "device_id": str(device_id), "entity_type": "device", "entity_id": str(device_id),
                "alert_status": "1", "last_message": "Checks OK", "count": "0", "delay": "0", "has_alerted": "0",
                "last_alerted": "0", "last_changed": str(int(now) - 86400), "last_checked": str(int(now) - 60),
                "last_ok": str(int(now) - 60), "last_failed": "0", "last_recovered": "0", "ignore_until": "",
                "state": json.dumps({"metrics": {"device_status": "1"}, "failed": []}),
            }
        return row

    def add_ports(self, device: dict[str, str], *, now: float | None = None) -> list[dict[str, str]]:
        """The plausible interfaces of `demo_ports` for a stored device, all up for twelve days."""
        now = time.time() if now is None else now
        ports = demo_ports(device, self._local(now - 86400 * 12))
        with self.lock:
            for port in ports:
                self.ports[int(port["port_id"])] = port
        return ports

    def add_sensor(self, device_id: int, **fields) -> dict[str, str]:
        """A sensor row as the `sensors` table holds it (string values); `sensor_event` ok|warning|alert|ignore."""
        now = int(time.time())
        with self.lock:
            sensor_id = max(self.sensors, default=0) + 1
            row = {"sensor_id": str(sensor_id), "device_id": str(device_id), "sensor_class": "temperature",
                   "sensor_type": "simulated", "sensor_descr": "Capteur", "sensor_value": "0", "sensor_unit": "",
                   "sensor_limit": "", "sensor_limit_low": "", "sensor_event": "ok", "sensor_status": "",
                   "sensor_last_change": str(now - 300), "sensor_polled": str(now - 60), "sensor_ignore": "0",
                   "sensor_disable": "0", "sensor_deleted": "0"}
            row.update({key: str(value) for key, value in fields.items()})
            self.sensors[sensor_id] = row
            return row

    def set_port(self, port_id: int, **fields) -> dict[str, str]:
        """Change port columns (e.g. ifOperStatus="down"); a status change moves ifLastChange to now."""
        with self.lock:
            row = self.ports[port_id]
            if fields.get("ifOperStatus") not in (None, row["ifOperStatus"]):
                row["ifLastChange"] = self._local(time.time())
            row.update({key: str(value) for key, value in fields.items()})
            return row

    # -- state changes -----------------------------------------------------------------------

    def set_down(self, device_id: int, *, status_type: str = "ping", since_seconds: float = 0) -> dict[str, str]:
        """Device unreachable since `since_seconds` ago: last_polled frozen there, checker row failed."""
        now = time.time()
        since = now - max(0.0, float(since_seconds))
        with self.lock:
            row = self.devices[device_id]
            if row["status"] == "0":
                return row
            row.update(status="0", status_type=status_type, last_polled=self._local(since), uptime="0")
            self._outage_start[device_id] = since
            # The first failed poll (every 5 min) noticed it; the alert fired then (delay 0).
            noticed = str(int(min(now, since + 300)))
            alert = self.alerts[_alert_id(device_id)]
            alert.update(alert_status="0", last_message="Checks failed", count=str(max(1, int((now - since) // 300))),
                         has_alerted="1", last_alerted=noticed, last_changed=noticed,
                         last_checked=str(int(now)), last_failed=str(int(now)), last_ok=str(int(since)),
                         state=json.dumps({"metrics": {"device_status": "0", "device_status_type": status_type},
                                           "failed": [{"metric": "device_status", "condition": "equals",
                                                       "value": "0"}]}))
            return row

    def set_up(self, device_id: int) -> dict[str, str]:
        """Device answering again: polled now, freshly booted uptime, checker row ok."""
        now = time.time()
        with self.lock:
            row = self.devices[device_id]
            if row["status"] == "1":
                return row
            row.update(status="1", status_type="ok", last_polled=self._local(now), uptime="120",
                       last_rebooted=str(int(now) - 120))
            self.alerts[_alert_id(device_id)].update(
                alert_status="1", last_message="Checks OK", count="0", has_alerted="0", last_changed=str(int(now)),
                last_checked=str(int(now)), last_ok=str(int(now)), last_recovered=str(int(now)),
                state=json.dumps({"metrics": {"device_status": "1", "device_status_type": "ok"}, "failed": []}))
            return row

    # -- webhook -----------------------------------------------------------------------------

    def webhook_body(self, device_id: int, state: str = "ALERT", *, now: float | None = None) -> dict[str, str]:
        """The webhook-json body Observium would post now for this device's "device down" alert."""
        with self.lock:
            device = dict(self.devices[device_id])
            since = self._outage_start.get(device_id)
        return webhook_body(device, state, alert_id=_alert_id(device_id), since=since, now=now,
                            base_url=self.base_url, tz=self.tz)

    def _local(self, unix: float) -> str:
        return datetime.fromtimestamp(unix, self.tz).strftime("%Y-%m-%d %H:%M:%S")


def webhook_body(device: dict, state: str = "ALERT", *, alert_id: int | str | None = None,
                 since: float | None = None, now: float | None = None, base_url: str = DEFAULT_BASE_URL,
                 tz: ZoneInfo | None = None) -> dict[str, str]:
    """The exact JSON object Observium's webhook-json transport posts (all values strings).

    `device` is an API device row; `since` is the outage start (unix seconds; default: the row's
    `last_polled`, as Observium computes "Down <duration>"); `alert_id` defaults to the one this
    simulator gives the device's "device down" checker row.
    """
    if state not in ALERT_STATES:
        raise ValueError(f"state must be one of {ALERT_STATES}, got {state!r}")
    tz = tz or ZoneInfo(DEFAULT_TIMEZONE)
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(now, tz)
    device_id = str(device["device_id"])
    alert_id = str(alert_id if alert_id is not None else _alert_id(int(device_id)))
    if since is None:
        since = _parse_local(device.get("last_polled"), tz) or now
    recovering = state == "RECOVER"
    hostname = str(device.get("hostname", ""))
    device_url = f"{base_url}/device/device={device_id}/"
    link = f'<a href="{device_url}" class="entity-popup" data-eid="{device_id}" data-etype="device">{hostname}</a>'
    down = str(device.get("status")) == "0"
    uptime = (f"Down ({str(device.get('status_type', 'ping')).upper()}) {format_uptime(now - since)}" if down
              else format_uptime(int(device.get("uptime") or 0)))
    rebooted = device.get("last_rebooted")
    tags = {
        "ALERT_STATE": state, "ALERT_STATE_NAME": state,
        "ALERT_EMOJI": "\u2705" if recovering else "\U0001F525",
        "ALERT_EMOJI_NAME": "white_check_mark" if recovering else "fire",
        "ALERT_STATUS": "1" if recovering else "0", "ALERT_STATUS_CUSTOM": "1" if recovering else "0",
        "ALERT_SEVERITY": "Critical", "ALERT_COLOR": "#" if recovering else "#D94640",
        "ALERT_URL": f"{base_url}/device/device={device_id}/tab=alert/alert_entry={alert_id}/",
        "ALERT_UNIXTIME": str(int(now)), "ALERT_TIMESTAMP": f"{moment:%Y-%m-%d %H:%M:%S} {moment.isoformat()[-6:]}",
        "ALERT_TIMESTAMP_RFC2822": moment.strftime("%a, %d %b %Y %H:%M:%S %z"),
        "ALERT_TIMESTAMP_RFC3339": moment.isoformat(timespec="seconds"), "ALERT_ID": alert_id,
        "ALERT_MESSAGE": DEVICE_DOWN_CHECKER["alert_message"],
        "CONDITIONS": f"device_status equals 0 ({'1' if recovering else '0'})",
        "METRICS": f"device_status = {'1' if recovering else '0'}",
        "DURATION": f"{format_uptime(now - since)} ({datetime.fromtimestamp(since, tz):%Y-%m-%d %H:%M:%S})",
        "ENTITY_URL": device_url, "ENTITY_LINK": link, "ENTITY_NAME": hostname, "ENTITY_ID": device_id,
        "ENTITY_TYPE": "device", "ENTITY_DESCRIPTION": str(device.get("purpose", "")),
        "DEVICE_HOSTNAME": hostname, "DEVICE_SYSNAME": str(device.get("sysName", "")),
        "DEVICE_DESCRIPTION": str(device.get("purpose", "")), "DEVICE_ID": device_id, "DEVICE_URL": device_url,
        "DEVICE_LINK": link, "DEVICE_HARDWARE": str(device.get("hardware", "")),
        "DEVICE_OS": str(device.get("os_text") or device.get("os", "")), "DEVICE_TYPE": str(device.get("type", "")),
        "DEVICE_LOCATION": str(device.get("location", "")), "DEVICE_UPTIME": uptime,
        "DEVICE_REBOOTED": (f"{datetime.fromtimestamp(int(rebooted), tz):%Y-%m-%d %H:%M:%S}"
                            if str(rebooted or "").isdigit() and int(rebooted) else ""),
        "TITLE": f"{state}: [{hostname}] [device] {DEVICE_DOWN_CHECKER['alert_message']}",
    }
    return {key: tags[key] for key in WEBHOOK_JSON_FIELDS}


def format_uptime(seconds: float) -> str:
    """Observium's long duration format: "1 year, 2 days, 3h 4m 5s", "4m 29s", "0s"."""
    seconds = int(max(0, seconds))
    if not seconds:
        return "0s"
    years, rest = divmod(seconds, 31_536_000)
    days, rest = divmod(rest, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    head = [f"{n} {unit}{'s' if n > 1 else ''}" for n, unit in ((years, "year"), (days, "day")) if n]
    tail = " ".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return ", ".join(head + ([tail] if tail else []))


def _parse_local(value, tz: ZoneInfo) -> float | None:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz).timestamp()
    except ValueError:
        return None


def _alert_id(device_id: int) -> int:
    return 90000 + device_id


# -- HTTP ------------------------------------------------------------------------------------


class _Gate:
    """For every API call (not /_sim/): counts it, applies the injected fault, checks Basic/Bearer auth."""

    def __init__(self, state: State):
        self._state = state

    def process_resource(self, req, resp, resource, params):
        state = self._state
        if req.path.startswith("/_sim/"):
            return
        status = count_and_fault(state, req)
        if status:
            _answer(resp, status, {"status": "failed", "message": "Simulated fault"})
            return
        if not _authorised(req.get_header("Authorization") or "", state):
            resp.set_header("WWW-Authenticate", 'Basic realm="Observium API"')
            _answer(resp, 401, {"status": "failed", "message": "Authentication failed"})


def _authorised(header: str, state: State) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() == state.token
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (user, password) == (state.user, state.password)
    return False


def _answer(resp, status: int, media) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.media = media
    resp.complete = True


def _collection(rows: dict[int, dict], key: str) -> dict:
    """Observium's shape: {"status":"ok","count":N,key:{id:row}}, or `[]` when empty (PHP)."""
    return {"status": "ok", "count": len(rows), key: {str(i): row for i, row in rows.items()} if rows else []}


def _matches(row: dict, filters: dict) -> bool:
    return all(row.get(key) == value for key, value in filters.items() if key in row)


class _Devices:
    def __init__(self, state: State):
        self._state = state

    def on_get(self, req, resp):
        with self._state.lock:
            rows = {i: dict(r) for i, r in sorted(self._state.devices.items()) if _matches(r, req.params)}
        resp.media = _collection(rows, "devices")

    def on_get_one(self, req, resp, device):
        with self._state.lock:
            rows = self._state.devices
            row = rows.get(int(device)) if device.isdigit() else next(
                (r for r in rows.values() if r["hostname"].lower() == device.lower()), None)
            row = dict(row) if row else None
        if row is None:
            _answer(resp, 404, {"status": "failed", "message": "Device not found"})
        else:
            resp.media = {"status": "ok", "device": row}


class _Alerts:
    def __init__(self, state: State):
        self._state = state

    def on_get(self, req, resp):
        filters = dict(req.params)
        status = filters.pop("status", "all")
        if status != "all" and status not in _ALERT_STATUS_CODES:
            _answer(resp, 400, {"status": "failed", "message": f"Unknown alert status {status}"})
            return
        if status != "all":
            filters["alert_status"] = _ALERT_STATUS_CODES[status]
        with self._state.lock:
            rows = {i: dict(r) for i, r in sorted(self._state.alerts.items()) if _matches(r, filters)}
        resp.media = _collection(rows, "alerts")

    def on_get_one(self, req, resp, alert_id):
        with self._state.lock:
            row = self._state.alerts.get(int(alert_id)) if alert_id.isdigit() else None
            row = dict(row) if row else None
        if row is None:
            _answer(resp, 404, {"status": "failed", "message": "Alert not found"})
        else:
            resp.media = {"status": "ok", "alert": row}


class _Rows:
    """A filterable collection of the state (`ports`, `sensors`): GET /api/v0/<name>?column=value."""

    def __init__(self, state: State, name: str):
        self._state, self._name = state, name

    def on_get(self, req, resp):
        with self._state.lock:
            table = getattr(self._state, self._name)
            rows = {i: dict(r) for i, r in sorted(table.items()) if _matches(r, req.params)}
        resp.media = _collection(rows, self._name)


class _Sim(CallsAndFaults):
    """The /_sim/ endpoints (see module docstring)."""

    def __init__(self, state: State):
        self._state = state

    def on_post_seed(self, req, resp):
        body = req.get_media(default_when_empty={}) or {}
        if body.get("demo"):
            self._state.seed_demo()
        else:
            self._state.seed_synthetic(int(body.get("devices", body.get("count", 0))), down=int(body.get("down", 0)))
        resp.media = {"devices": len(self._state.devices)}

    def on_post_flip(self, req, resp, device_id, direction):
        body = req.get_media(default_when_empty={}) or {}
        if device_id not in self._state.devices or direction not in ("down", "up"):
            raise falcon.HTTPNotFound()
        if direction == "down":
            row = self._state.set_down(device_id, status_type=body.get("status_type", "ping"),
                                       since_seconds=float(body.get("since_seconds", 0)))
        else:
            row = self._state.set_up(device_id)
        resp.media = {"device": dict(row), "alert": dict(self._state.alerts[_alert_id(device_id)])}

    def on_post_sensors(self, req, resp):
        body = dict(req.get_media())
        device_id = int(body.pop("device_id"))
        if device_id not in self._state.devices:
            raise falcon.HTTPNotFound()
        resp.media = {"sensor": self._state.add_sensor(device_id, **body)}

    def on_post_port(self, req, resp, port_id):
        if port_id not in self._state.ports:
            raise falcon.HTTPNotFound()
        resp.media = {"port": dict(self._state.set_port(port_id, **req.get_media()))}

    def on_get_devices(self, req, resp):
        with self._state.lock:
            resp.media = {"devices": [dict(r) for _, r in sorted(self._state.devices.items())]}

    def on_post_send_alert(self, req, resp):
        body = req.get_media()
        device_id = int(body["device_id"])
        if device_id not in self._state.devices:
            raise falcon.HTTPNotFound()
        payload = self._state.webhook_body(device_id, body.get("state", "ALERT"))
        headers = {"Authorization": body["token"]} if body.get("token") else {}
        try:
            reply = httpx.post(body["url"], json=payload, headers=headers, timeout=float(body.get("timeout", 10)))
        except httpx.HTTPError as exc:
            resp.status, resp.media = falcon.HTTP_502, {"error": f"delivery failed: {type(exc).__name__}"}
            return
        self._state.sent.append({"url": body["url"], "body": payload, "status_code": reply.status_code})
        resp.media = {"status_code": reply.status_code, "response": reply.text[:2000], "body": payload}


def make_app(state: State | None = None) -> falcon.App:
    """The Observium API v0 subset plus /_sim/; a demo-seeded state when none is given."""
    state = state or State().seed_demo()
    app = falcon.App(middleware=[_Gate(state)])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    devices, alerts, sim = _Devices(state), _Alerts(state), _Sim(state)
    app.add_route("/api/v0/devices", devices)
    app.add_route("/api/v0/devices/{device}", devices, suffix="one")
    app.add_route("/api/v0/alerts", alerts)
    app.add_route("/api/v0/alerts/{alert_id}", alerts, suffix="one")
    app.add_route("/api/v0/ports", _Rows(state, "ports"))
    app.add_route("/api/v0/sensors", _Rows(state, "sensors"))
    app.add_route("/_sim/seed", sim, suffix="seed")
    app.add_route("/_sim/devices", sim, suffix="devices")
    app.add_route("/_sim/sensors", sim, suffix="sensors")
    app.add_route("/_sim/ports/{port_id:int}", sim, suffix="port")
    app.add_route("/_sim/devices/{device_id:int}/{direction}", sim, suffix="flip")
    add_calls_and_faults(app, sim)
    app.add_route("/_sim/send_alert", sim, suffix="send_alert")
    return app


def main(argv: list[str] | None = None) -> None:
    """`python -m simulators.observium --port 8102`: the demo story until interrupted."""
    from simulators.base import option, run

    run("Local Observium API v0 simulator", 8102,
        lambda args: make_app(State(user=args.user, password=args.password).seed_demo()),
        "Observium simulator: {url}/api/v0/", argv,
        option("--user", default=DEFAULT_USER), option("--password", default=DEFAULT_PASSWORD))


if __name__ == "__main__":
    main()
