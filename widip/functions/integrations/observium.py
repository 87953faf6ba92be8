"""Client for the Observium API v0: devices, alerts, ports and sensors, read-only.

It answers "what is down, since when, where" for Sentinel and the agent tools. It deliberately does
not receive Observium's alert webhooks (that is the Sentinel webhook handler's job) and does not
change anything in Observium.

Wire facts (docs/integrations.md): HTTP Basic auth, `/api/v0/<entity>/[<id>/]`, collections are JSON
objects keyed by id (or `[]` when empty, PHP style), every value is a MySQL string, an unknown id is a
404. A down device keeps the `last_polled` of its last successful poll, and Observium itself shows
"Down <now - last_polled>"; we therefore read `down_since` from `last_polled` and need one single
request, `GET /api/v0/devices/?status=0`, to list every down device with its outage start.

Site and client: Observium only has a free-text `location` (and device groups, which the device
endpoint does not return). WIDIP writes locations as "<client> - <place>", e.g.
"EHPAD Les Tilleuls - Lyon". We derive
- `client` = the text before the first " - " (the whole location when there is no separator),
- `site`   = the whole location, whitespace-normalised: it names one physical place of one client
  and is the key the Phibee incidents and the GLPI entity lookups use.
Empty or "Unknown" locations give `None` for both.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, Mapping
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from widip.errors import ConfigError, Invalid, Rejected
from widip.functions.coerce import as_float as _float, as_int as _int, as_text as _text
from widip.functions.jsonable import json_safe as _json_safe
from widip.functions.integrations.http_client import make_client, send

logger = logging.getLogger(__name__)

SYSTEM = "observium"
API_PREFIX = "/api/v0"
DEFAULT_SERVER_TIMEZONE = "Europe/Paris"
ALERT_STATUSES = ("failed", "ok", "delayed", "suppressed", "all")
_ALERT_STATUS_NAMES = {"0": "failed", "1": "ok", "2": "delayed", "3": "suppressed", "-1": "unchecked"}
_CLIENT_SEPARATOR = " - "


@dataclass(frozen=True)
class Device:
    """One monitored device as Sentinel needs it; `status` is "up" or "down"."""

    id: int
    hostname: str
    sysname: str | None
    ip: str | None
    status: str
    status_reason: str | None
    location: str | None
    site: str | None
    client: str | None
    os: str | None
    hardware: str | None
    uptime_seconds: int | None
    last_polled: datetime | None
    down_since: datetime | None
    ignored: bool
    disabled: bool
    device_type: str | None = None
    description: str | None = None

    @property
    def is_down(self) -> bool:
        return self.status == "down"

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


@dataclass(frozen=True)
class Alert:
    """One alert-table row (one checker × one entity); `status` is failed/ok/delayed/suppressed/unchecked."""

    id: int
    checker_id: int | None
    device_id: int | None
    entity_type: str
    entity_id: int | None
    status: str
    message: str | None
    count: int
    delay: int
    has_alerted: bool
    last_changed: datetime | None
    last_ok: datetime | None
    last_failed: datetime | None
    last_alerted: datetime | None
    metrics: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


@dataclass(frozen=True)
class Port:
    """One network interface of a device; rates are per second as Observium computes them."""

    id: int
    device_id: int
    if_index: int | None
    name: str | None
    description: str | None
    alias: str | None
    label: str | None
    oper_status: str | None
    admin_status: str | None
    speed_bps: int | None
    last_change: datetime | None
    in_octets_rate: int | None
    out_octets_rate: int | None
    in_errors_rate: float | None
    ignored: bool
    disabled: bool
    deleted: bool

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


@dataclass(frozen=True)
class Sensor:
    """One sensor of a device (temperature, voltage, UPS runtime…); `event` is Observium's verdict on its
    value against its limits: ok, warning, alert or ignore."""

    id: int
    device_id: int
    sensor_class: str
    description: str | None
    value: float | None
    unit: str | None
    event: str
    limit_low: float | None
    limit_high: float | None
    last_change: datetime | None
    ignored: bool
    disabled: bool
    deleted: bool

    @property
    def in_alarm(self) -> bool:
        return self.event == "alert" and not (self.ignored or self.disabled or self.deleted)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe({**asdict(self), "in_alarm": self.in_alarm})


class ObserviumClient:
    """Read devices, alerts, ports and sensors from one Observium server over its API v0."""

    def __init__(self, base_url: str, user: str, password: str, *, timeout: float = 10.0,
                 verify: bool | str = True, server_timezone: str | tzinfo = DEFAULT_SERVER_TIMEZONE,
                 transport: httpx.BaseTransport | None = None):
        # Accept both "https://obs" and "https://obs/api/v0" as the configured URL.
        root = re.sub(r"/api/v0/?$", "", base_url.rstrip("/"))
        self._tz = ZoneInfo(server_timezone) if isinstance(server_timezone, str) else server_timezone
        self._http = make_client(root, timeout=timeout, verify=verify,
                                 auth=httpx.BasicAuth(user, password), transport=transport)

    @classmethod
    def from_settings(cls, settings) -> "ObserviumClient":
        missing = [name for name, value in (("OBSERVIUM_URL", settings.observium_url),
                                            ("OBSERVIUM_USER", settings.observium_user),
                                            ("OBSERVIUM_PASS", settings.observium_pass)) if not value]
        if missing:
            raise ConfigError([f"{name} is required to call Observium" for name in missing])
        return cls(settings.observium_url, settings.observium_user, settings.observium_pass,
                   timeout=settings.integration_timeout_seconds, verify=settings.ca_file or True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ObserviumClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- devices -----------------------------------------------------------------------------

    def list_devices(self, status: str | None = None, **filters: str) -> list[Device]:
        """Every device, or only the "down"/"up" ones, in one request, sorted by id.

        Extra `filters` are passed as Observium column filters (e.g. `location=…`, `os=…`).
        """
        params = {key: str(value) for key, value in filters.items()}
        if status is not None:
            if status not in ("up", "down"):
                raise Invalid(f"device status must be 'up' or 'down', got {status!r}")
            params["status"] = "1" if status == "up" else "0"
        body = self._get(f"{API_PREFIX}/devices/", params=params)
        rows = _collection(body, "devices")
        devices = [self._device(row) for row in rows]
        logger.debug("observium listed %d devices (status=%s)", len(devices), status)
        return sorted(devices, key=lambda d: d.id)

    def get_device(self, device: int | str) -> Device:
        """One device by numeric id or hostname; `Rejected` (404) when Observium does not know it."""
        body = self._get(f"{API_PREFIX}/devices/{_path_id(device)}/")
        row = body.get("device")
        if not isinstance(row, Mapping) or not row:
            raise Rejected(SYSTEM, f"device {device!r} not found", status_code=404)
        return self._device(row)

    # -- alerts ------------------------------------------------------------------------------

    def list_alerts(self, status: str = "failed", *, device_id: int | None = None,
                    entity_type: str | None = None) -> list[Alert]:
        """Alert-table rows in one status (failed, ok, delayed, suppressed or all), sorted by id."""
        if status not in ALERT_STATUSES:
            raise Invalid(f"alert status must be one of {', '.join(ALERT_STATUSES)}, got {status!r}")
        params: dict[str, str] = {"status": status}
        if device_id is not None:
            params["device_id"] = str(int(device_id))
        if entity_type:
            params["entity_type"] = entity_type
        body = self._get(f"{API_PREFIX}/alerts/", params=params)
        return sorted((_alert(row) for row in _collection(body, "alerts")), key=lambda a: a.id)

    # -- ports -------------------------------------------------------------------------------

    def get_device_ports(self, device: int | str) -> list[Port]:
        """The ports of one device (id or hostname); a hostname costs one extra lookup."""
        device_id = device if isinstance(device, int) or str(device).isdigit() else self.get_device(device).id
        body = self._get(f"{API_PREFIX}/ports/", params={"device_id": str(device_id)})
        return sorted((self._port(row) for row in _collection(body, "ports")),
                      key=lambda p: (p.if_index is None, p.if_index or 0, p.id))

    # -- sensors -----------------------------------------------------------------------------

    def get_device_sensors(self, device: int | str) -> list[Sensor]:
        """The sensors of one device (id or hostname), deleted ones left out, by class then description."""
        device_id = device if isinstance(device, int) or str(device).isdigit() else self.get_device(device).id
        body = self._get(f"{API_PREFIX}/sensors/", params={"device_id": str(device_id)})
        sensors = (self._sensor(row) for row in _collection(body, "sensors"))
        return sorted((s for s in sensors if not s.deleted), key=lambda s: (s.sensor_class, s.description or "", s.id))

    # -- plumbing ----------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        response = send(self._http, SYSTEM, "GET", path, params=dict(params or {}))
        try:
            body = response.json()
        except ValueError as exc:
            raise Rejected(SYSTEM, f"non-JSON answer to GET {path}") from exc
        if not isinstance(body, dict) or body.get("status") not in ("ok", None):
            message = body.get("message") if isinstance(body, dict) else None
            raise Rejected(SYSTEM, f"GET {path} failed: {message or 'unexpected answer'}")
        return body

    def _time(self, value: Any) -> datetime | None:
        """A MySQL "YYYY-MM-DD HH:MM:SS" in the server's zone, or unix seconds, as an aware datetime."""
        if value in (None, "", "0", 0, "0000-00-00 00:00:00"):
            return None
        text = str(value)
        if text.isdigit():
            return datetime.fromtimestamp(int(text), timezone.utc)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=self._tz)

    def _device(self, row: Mapping[str, Any]) -> Device:
        down = str(row.get("status", "1")) == "0"
        last_polled = self._time(row.get("last_polled"))
        location = _text(row.get("location"))
        site, client = derive_site_and_client(location)
        return Device(
            id=int(row["device_id"]), hostname=str(row.get("hostname") or ""),
            sysname=_text(row.get("sysName")), ip=_text(row.get("ip")),
            status="down" if down else "up",
            status_reason=_text(row.get("status_type")) or ("ok" if not down else None),
            location=location, site=site, client=client,
            os=_text(row.get("os_text")) or _text(row.get("os")), hardware=_text(row.get("hardware")),
            uptime_seconds=_int(row.get("uptime")), last_polled=last_polled,
            down_since=last_polled if down else None,
            ignored=_flag(row.get("ignore")), disabled=_flag(row.get("disabled")),
            device_type=_text(row.get("type")), description=_text(row.get("purpose")),
        )

    def _sensor(self, row: Mapping[str, Any]) -> Sensor:
        return Sensor(
            id=int(row["sensor_id"]), device_id=int(row["device_id"]), sensor_class=str(row.get("sensor_class") or ""),
            description=_text(row.get("sensor_descr")), value=_float(row.get("sensor_value")),
            unit=_text(row.get("sensor_unit")), event=str(row.get("sensor_event") or "ignore"),
            limit_low=_float(row.get("sensor_limit_low")), limit_high=_float(row.get("sensor_limit")),
            last_change=_unix(row.get("sensor_last_change")), ignored=_flag(row.get("sensor_ignore")),
            disabled=_flag(row.get("sensor_disable")), deleted=_flag(row.get("sensor_deleted")),
        )

    def _port(self, row: Mapping[str, Any]) -> Port:
        speed = _int(row.get("ifSpeed"))
        high_speed = _int(row.get("ifHighSpeed"))  # Mbit/s, used when ifSpeed saturates at 2^32-1
        if high_speed and (not speed or speed >= 4_294_967_295):
            speed = high_speed * 1_000_000
        return Port(
            id=int(row["port_id"]), device_id=int(row["device_id"]), if_index=_int(row.get("ifIndex")),
            name=_text(row.get("ifName")), description=_text(row.get("ifDescr")),
            alias=_text(row.get("ifAlias")), label=_text(row.get("port_label")),
            oper_status=_text(row.get("ifOperStatus")), admin_status=_text(row.get("ifAdminStatus")),
            speed_bps=speed, last_change=self._time(row.get("ifLastChange")),
            in_octets_rate=_int(row.get("ifInOctets_rate")), out_octets_rate=_int(row.get("ifOutOctets_rate")),
            in_errors_rate=_float(row.get("ifInErrors_rate")),
            ignored=_flag(row.get("ignore")), disabled=_flag(row.get("disabled")), deleted=_flag(row.get("deleted")),
        )


def derive_site_and_client(location: str | None) -> tuple[str | None, str | None]:
    """(site, client) from an Observium location written "<client> - <place>" (see module doc)."""
    if not location:
        return None, None
    site = " ".join(location.split())
    if not site or site.lower() in ("unknown", "n/a", "-"):
        return None, None
    client = site.split(_CLIENT_SEPARATOR, 1)[0].strip() or site
    return site, client


def _alert(row: Mapping[str, Any]) -> Alert:
    return Alert(
        id=int(row["alert_table_id"]), checker_id=_int(row.get("alert_test_id")),
        device_id=_int(row.get("device_id")), entity_type=str(row.get("entity_type") or ""),
        entity_id=_int(row.get("entity_id")),
        status=_ALERT_STATUS_NAMES.get(str(row.get("alert_status")), "unknown"),
        message=_text(row.get("last_message")), count=_int(row.get("count")) or 0,
        delay=_int(row.get("delay")) or 0, has_alerted=_flag(row.get("has_alerted")),
        last_changed=_unix(row.get("last_changed")), last_ok=_unix(row.get("last_ok")),
        last_failed=_unix(row.get("last_failed")), last_alerted=_unix(row.get("last_alerted")),
        metrics=_metrics(row.get("state")),
    )


def _metrics(state: Any) -> dict[str, str]:
    """The `metrics` object of an alert row's JSON `state` column, values as strings."""
    if isinstance(state, str) and state:
        try:
            state = json.loads(state)
        except ValueError:
            return {}
    metrics = state.get("metrics") if isinstance(state, Mapping) else None
    return {str(k): str(v) for k, v in metrics.items()} if isinstance(metrics, Mapping) else {}


def _collection(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """Rows of an id-keyed collection; PHP sends `[]` (a list) when it is empty."""
    value = body.get(key) or {}
    rows = value.values() if isinstance(value, Mapping) else value
    return [row for row in rows if isinstance(row, Mapping)]


def _path_id(device: int | str) -> str:
    text = str(device).strip()
    if not text:
        raise Invalid("a device id or hostname is required")
    return quote(text, safe="")


def _unix(value: Any) -> datetime | None:
    number = _int(value)
    return datetime.fromtimestamp(number, timezone.utc) if number else None





def _flag(value: Any) -> bool:
    return str(value).strip() not in ("", "0", "None", "false", "False")

