"""Client for Phibee Telecom, the access operator of the client sites: line status, line tests, incidents.

Phibee publishes no API (docs/integrations.md); the wire contract here is our Kosc-like *proposal*,
kept behind a small transport (`HttpTransport`) so that the real contract, once Phibee gives it,
replaces only that class. The transport returns plain dicts in the normalised shapes documented on
`PhibeeTransport`; the client turns them into our dataclasses and, for line tests, into a verdict in
French that a technician (or the Sentinel model) can act on. It never opens operator tickets.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import quote

import httpx

from widip.errors import ConfigError, Invalid, Rejected
from widip.functions.coerce import as_float as _float, as_int as _int
from widip.functions.jsonable import json_safe as _json_safe
from widip.functions.integrations.http_client import make_client, send

logger = logging.getLogger(__name__)

SYSTEM = "phibee"
DEFAULT_TESTS = ("derco", "synchro", "technicalinfo", "cpemac")
DEFAULT_MAX_WAIT_SECONDS = 30.0
FIBRE_TECHNOLOGIES = ("ftth", "fttb", "ftte")
RESPONSIBLE_OPERATOR, RESPONSIBLE_CLIENT = "opérateur", "client"
RESPONSIBLE_NONE, RESPONSIBLE_UNKNOWN = "aucune", "indéterminée"


@dataclass(frozen=True)
class LineStatus:
    """Live state of one access line; `sync_status` is "up", "down" or "unknown"."""

    reference: str
    site: str | None
    technology: str | None
    admin_status: str | None
    oper_status: str
    sync_status: str
    down_kbps: int | None
    up_kbps: int | None
    attainable_down_kbps: int | None
    snr_margin_db: float | None
    attenuation_db: float | None
    optical_rx_dbm: float | None
    session_up: bool | None
    last_change: datetime | None
    last_resync: datetime | None
    operator_incident: bool
    incident_ref: str | None

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


@dataclass(frozen=True)
class LineTestStep:
    """One unit of a line test: `status` is "ok", "ko" or "error"."""

    unit: str
    status: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LineTest:
    """Outcome of a line test; `completed` is False when `max_wait` ran out before the operator answered."""

    run_id: str
    reference: str
    status: str
    completed: bool
    verdict: str
    responsibility: str
    steps: tuple[LineTestStep, ...]
    collective_outage: bool
    incident_ref: str | None
    started_at: datetime | None
    completed_at: datetime | None
    waited_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


@dataclass(frozen=True)
class Incident:
    """A collective operator incident (outage, works) affecting a site or a whole area."""

    reference: str
    site: str | None
    area: str | None
    status: str
    title: str
    started_at: datetime | None
    estimated_end: datetime | None
    impacted_services: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


class PhibeeTransport(Protocol):
    """The wire, reduced to four calls returning normalised dicts.

    - `line_status(ref)` → {"service_ref", "site_ref", "technology", "admin_status", "oper_status",
      "last_change", "last_resync", "sync": {"status", "down_kbps", "up_kbps", "attainable_down_kbps",
      "snr_margin_db", "attenuation_db"}, "optical": {"rx_dbm"}, "session": {"ppp_up"},
      "operator_incident": {"active", "incident_ref"}}
    - `start_test(ref, tests)` → {"run_id", "status"}
    - `test_run(run_id)` → {"run_id", "service_ref", "technology", "status": pending|running|completed|error,
      "started_at", "completed_at", "results": [{"unit", "status", "summary"}],
      "collective_outage": {"active", "incident_ref"}}
    - `incidents(site, status)` → [{"incident_ref", "site_ref", "area", "status", "title", "started_at",
      "estimated_end", "impacted_services"}]
    """

    def line_status(self, reference: str) -> dict: ...
    def start_test(self, reference: str, tests: Iterable[str]) -> dict: ...
    def test_run(self, run_id: str) -> dict: ...
    def incidents(self, site: str, status: str) -> list[dict]: ...
    def close(self) -> None: ...


class HttpTransport:
    """Our proposed REST contract (Bearer token, Kosc-style errors); see PhibeeTransport for shapes."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, verify: bool | str = True,
                 transport: httpx.BaseTransport | None = None):
        self._http = make_client(base_url, timeout=timeout, verify=verify, transport=transport,
                                 headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def line_status(self, reference: str) -> dict:
        return self._json("GET", f"/services/{_ref(reference)}/status")

    def start_test(self, reference: str, tests: Iterable[str]) -> dict:
        return self._json("POST", f"/services/{_ref(reference)}/diagnostics", json={"tests": list(tests)})

    def test_run(self, run_id: str) -> dict:
        return self._json("GET", f"/diagnostics/{_ref(run_id)}")

    def incidents(self, site: str, status: str) -> list[dict]:
        body = self._json("GET", "/incidents", params={"site_ref": site, "status": status})
        return [row for row in body.get("incidents") or [] if isinstance(row, Mapping)]

    def close(self) -> None:
        self._http.close()

    def _json(self, method: str, path: str, **kwargs) -> dict:
        response = send(self._http, SYSTEM, method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise Rejected(SYSTEM, f"non-JSON answer to {method} {path}") from exc
        if not isinstance(body, dict):
            raise Rejected(SYSTEM, f"unexpected answer to {method} {path}")
        return body


class PhibeeClient:
    """Line status, line tests and incidents of Phibee access lines, identified by service reference."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, verify: bool | str = True,
                 poll_interval: float = 1.0, transport: PhibeeTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self._wire = transport or HttpTransport(base_url, token, timeout=timeout, verify=verify)
        self._poll_interval = poll_interval
        self._sleep, self._clock = sleep, clock

    @classmethod
    def from_settings(cls, settings) -> "PhibeeClient":
        missing = [name for name, value in (("PHIBEE_API_URL", settings.phibee_api_url),
                                            ("PHIBEE_API_TOKEN", settings.phibee_api_token)) if not value]
        if missing:
            raise ConfigError([f"{name} is required to call Phibee" for name in missing])
        return cls(settings.phibee_api_url, settings.phibee_api_token,
                   timeout=settings.integration_timeout_seconds, verify=settings.ca_file or True)

    def close(self) -> None:
        self._wire.close()

    def __enter__(self) -> "PhibeeClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get_line_status(self, reference: str) -> LineStatus:
        """Sync state, rates, line quality, last resync and whether an operator incident covers the line."""
        return _line_status(self._wire.line_status(_required(reference)))

    def run_line_test(self, reference: str, *, max_wait: float = DEFAULT_MAX_WAIT_SECONDS,
                      tests: Iterable[str] = DEFAULT_TESTS) -> LineTest:
        """Start an operator line test and poll it until done or `max_wait` seconds have passed.

        The result carries a French verdict ("Ligne OK", "Coupure fibre côté opérateur",
        "Équipement client injoignable"…) and who should act. When the operator has not finished in
        time, the result has `completed=False` and says so rather than raising: the caller decides.
        """
        started = self._clock()
        run = self._wire.start_test(_required(reference), tuple(tests))
        run_id = str(run.get("run_id") or "")
        if not run_id:
            raise Rejected(SYSTEM, "line test started without a run id")
        logger.info("phibee line test %s started for %s", run_id, reference)
        while run.get("status") not in ("completed", "error"):
            remaining = max_wait - (self._clock() - started)
            if remaining <= 0:
                break
            self._sleep(min(self._poll_interval, remaining))
            run = self._wire.test_run(run_id)
        result = _line_test(run, reference, waited=self._clock() - started)
        logger.info("phibee line test %s for %s: %s (%s)", run_id, reference, result.status, result.verdict)
        return result

    def list_site_incidents(self, site: str, *, status: str = "open") -> list[Incident]:
        """Operator incidents affecting a site (its site reference, as in Observium's location) or an area."""
        if status not in ("open", "cleared", "all"):
            raise Invalid(f"incident status must be open, cleared or all, got {status!r}")
        rows = self._wire.incidents(_required(site), status)
        return sorted((_incident(row) for row in rows), key=lambda i: i.reference)


# -- interpretation ----------------------------------------------------------------------------


def line_verdict(technology: str | None, steps: Iterable[LineTestStep],
                 collective_outage: bool) -> tuple[str, str]:
    """(verdict in French, responsibility) from the test units; order matters: widest cause first."""
    by_unit = {step.unit: step.status for step in steps}
    fibre = (technology or "").lower() in FIBRE_TECHNOLOGIES
    if collective_outage or by_unit.get("derco") == "ko":
        return ("Coupure fibre côté opérateur" if fibre else "Incident collectif opérateur"), RESPONSIBLE_OPERATOR
    if by_unit.get("synchro") == "ko":
        return ("Perte du signal optique, ligne non synchronisée" if fibre
                else "Ligne non synchronisée"), RESPONSIBLE_OPERATOR
    if by_unit.get("cpemac") == "ko":
        return "Équipement client injoignable", RESPONSIBLE_CLIENT
    if by_unit.get("technicalinfo") == "ko":
        return "Ligne dégradée (débit ou marge de bruit insuffisants)", RESPONSIBLE_OPERATOR
    if "error" in by_unit.values() or not by_unit:
        return "Test incomplet, résultat indéterminé", RESPONSIBLE_UNKNOWN
    return "Ligne OK", RESPONSIBLE_NONE


def _line_test(run: Mapping[str, Any], reference: str, *, waited: float) -> LineTest:
    status = str(run.get("status") or "unknown")
    steps = tuple(LineTestStep(unit=str(r.get("unit", "")), status=str(r.get("status", "error")),
                           summary=str(r.get("summary") or "")) for r in run.get("results") or [])
    outage = run.get("collective_outage") or {}
    collective = bool(outage.get("active")) if isinstance(outage, Mapping) else bool(outage)
    if status == "completed":
        verdict, responsible = line_verdict(run.get("technology"), steps, collective)
    elif status == "error":
        verdict, responsible = "Test impossible côté opérateur", RESPONSIBLE_UNKNOWN
    else:
        verdict = f"Test toujours en cours après {waited:.0f} s, résultat non disponible"
        responsible = RESPONSIBLE_UNKNOWN
    return LineTest(
        run_id=str(run.get("run_id", "")), reference=str(run.get("service_ref") or reference), status=status,
        completed=status == "completed", verdict=verdict, responsibility=responsible, steps=steps,
        collective_outage=collective,
        incident_ref=(outage.get("incident_ref") if isinstance(outage, Mapping) else None) or None,
        started_at=_time(run.get("started_at")), completed_at=_time(run.get("completed_at")),
        waited_seconds=round(waited, 3),
    )


def _line_status(body: Mapping[str, Any]) -> LineStatus:
    sync = _mapping(body.get("sync"))
    incident = _mapping(body.get("operator_incident"))
    session = _mapping(body.get("session"))
    return LineStatus(
        reference=str(body.get("service_ref", "")), site=body.get("site_ref"), technology=body.get("technology"),
        admin_status=body.get("admin_status"), oper_status=str(body.get("oper_status") or "unknown"),
        sync_status=str(sync.get("status") or "unknown"), down_kbps=_int(sync.get("down_kbps")),
        up_kbps=_int(sync.get("up_kbps")), attainable_down_kbps=_int(sync.get("attainable_down_kbps")),
        snr_margin_db=_float(sync.get("snr_margin_db")), attenuation_db=_float(sync.get("attenuation_db")),
        optical_rx_dbm=_float(_mapping(body.get("optical")).get("rx_dbm")),
        session_up=session.get("ppp_up") if isinstance(session.get("ppp_up"), bool) else None,
        last_change=_time(body.get("last_change")), last_resync=_time(body.get("last_resync")),
        operator_incident=bool(incident.get("active")), incident_ref=incident.get("incident_ref") or None,
    )


def _incident(row: Mapping[str, Any]) -> Incident:
    return Incident(
        reference=str(row.get("incident_ref", "")), site=row.get("site_ref"), area=row.get("area"),
        status=str(row.get("status") or "unknown"), title=str(row.get("title") or ""),
        started_at=_time(row.get("started_at")), estimated_end=_time(row.get("estimated_end")),
        impacted_services=tuple(str(s) for s in row.get("impacted_services") or ()),
    )


def _required(value: str) -> str:
    text = str(value or "").strip()
    if not text:
        raise Invalid("a Phibee reference is required")
    return text


def _ref(value: str) -> str:
    return quote(str(value), safe="")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None



