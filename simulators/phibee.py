"""Local Phibee Telecom: access lines, asynchronous line tests and collective incidents, in memory.

Phibee has no public API (docs/integrations.md); this serves our Kosc-like *proposal* so that
`PhibeeClient` can be built and tested now: Bearer token, `GET /services/{ref}/status`,
`POST /services/{ref}/diagnostics` (202 + run id) then `GET /diagnostics/{run_id}` until
`completed`, `GET /incidents?site_ref=&status=`, errors as `{"error", "details", "apirequest_uuid"}`.
The demo lines belong to the sites of the Observium simulator's demo (same location strings).

Simulator endpoints (no auth):
    POST /_sim/seed                 {"demo": true} (default) or {"empty": true}
    POST /_sim/incidents            {"site": "...", "active": true|false, "title"?, "technologies"?}
                                    or {"area": "Vienne", "active": ...}; GET lists every incident
    POST /_sim/lines/{ref}          {"condition": "up|down|degraded|cpe_unreachable"}
    POST /_sim/config               {"test_duration_seconds": 0.5}
    GET|DELETE /_sim/calls          API request counts per route, /_sim/ excluded (DELETE resets)
    POST /_sim/fault                {"delay_seconds": 5} | {"status": 503} (+ optional "times": n); {} clears
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
import uuid
from datetime import datetime, timezone

import falcon

from simulators.base import CallsAndFaults, add_calls_and_faults, count_and_fault

DEFAULT_TOKEN = "phibee-api-token"
DEFAULT_TEST_DURATION_SECONDS = 2.0
CONDITIONS = ("up", "down", "degraded", "cpe_unreachable")
FIBRE = ("ftth", "fttb", "ftte")

#: (reference, site, area, technology, condition, device hostname in the Observium demo)
DEMO_LINES = (
    ("FTTH-LYON-00123", "EHPAD Les Tilleuls - Lyon", "Lyon", "ftth", "up", "rtr-tilleuls-lyon.widip.net"),
    ("ADSL-LYON-00124", "EHPAD Les Tilleuls - Lyon", "Lyon", "adsl2+", "degraded", "cpe-tilleuls-adsl.widip.net"),
    ("FTTH-VILLEURBANNE-00456", "Clinique du Parc - Villeurbanne", "Villeurbanne", "ftth", "up",
     "rtr-parc-villeurbanne.widip.net"),
    ("VDSL-VILLEURBANNE-00457", "Clinique du Parc - Villeurbanne", "Villeurbanne", "vdsl2", "cpe_unreachable", None),
    ("FTTH-VIENNE-00789", "EHPAD Saint-Joseph - Vienne", "Vienne", "ftth", "up", "cpe-stjoseph-ftth.widip.net"),
    ("ADSL-VIENNE-00790", "EHPAD Saint-Joseph - Vienne", "Vienne", "adsl2+", "up", "cpe-stjoseph-adsl.widip.net"),
)
#: Typical figures per technology: (down kbps, up kbps, attainable down kbps, SNR dB, attenuation dB).
_PROFILES = {"ftth": (1_000_000, 500_000, 1_000_000, None, None), "vdsl2": (52_000, 11_000, 68_000, 9.5, 14.2),
             "adsl2+": (11_500, 950, 14_000, 7.0, 31.5)}


def _iso(unix: float | None) -> str | None:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds") if unix else None


class State:
    """Lines by reference, incidents, test runs, plus call counts and an injectable fault."""

    def __init__(self, *, token: str = DEFAULT_TOKEN, test_duration_seconds: float = DEFAULT_TEST_DURATION_SECONDS):
        self.token = token
        self.test_duration_seconds = test_duration_seconds
        self.lock = threading.RLock()
        self.lines: dict[str, dict] = {}
        self.incidents: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.fault: dict = {}
        self._seq = itertools.count(1)

    def clear(self) -> None:
        with self.lock:
            for table in (self.lines, self.incidents, self.runs):
                table.clear()

    def seed_demo(self) -> "State":
        """Six lines of three client sites; Phibee's fibre outage in Vienne is under way (36 min)."""
        now = time.time()
        with self.lock:
            self.clear()
            for ref, site, area, tech, condition, device in DEMO_LINES:
                self.add_line(ref, site=site, area=area, technology=tech, condition=condition, device=device)
            self.set_incident(site="EHPAD Saint-Joseph - Vienne", area="Vienne", active=True, technologies=FIBRE,
                              title="Coupure fibre NRO Vienne Nord (travaux de voirie)", started=now - 36 * 60)
        return self

    def add_line(self, reference: str, *, site: str, area: str, technology: str, condition: str = "up",
                 device: str | None = None) -> dict:
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}")
        now = time.time()
        with self.lock:
            self.lines[reference] = {"service_ref": reference, "site_ref": site, "area": area,
                                     "technology": technology, "condition": condition, "device": device,
                                     "admin_status": "active", "last_change": now - 3 * 86400,
                                     "last_resync": now - 3 * 86400}
            return self.lines[reference]

    def set_condition(self, reference: str, condition: str) -> dict:
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}")
        with self.lock:
            line = self.lines[reference]
            if line["condition"] != condition:
                line.update(condition=condition, last_change=time.time())
                if condition != "down":
                    line["last_resync"] = time.time()
            return line

    def set_incident(self, *, site: str | None = None, area: str | None = None, active: bool = True,
                     title: str | None = None, technologies=None, started: float | None = None) -> dict | None:
        """Open (or clear) the collective incident of a site or an area; returns it."""
        with self.lock:
            current = next((i for i in self.incidents.values() if i["status"] == "open"
                            and i["site_ref"] == site and i["area"] == (area if site is None else i["area"])), None)
            if not active:
                if current:
                    current.update(status="cleared", cleared_at=time.time())
                    for line in self._lines_hit(current):
                        line["last_resync"] = line["last_change"] = time.time()
                return current
            if current:
                return current
            if site and not area:
                area = next((line["area"] for line in self.lines.values() if line["site_ref"] == site), None)
            started = time.time() if started is None else started
            ref = f"INC{datetime.fromtimestamp(started, timezone.utc):%y%m%d}_{next(self._seq):04d}"
            self.incidents[ref] = {"incident_ref": ref, "site_ref": site, "area": area, "status": "open",
                                   "title": title or "Incident collectif sur le réseau d'accès",
                                   "technologies": list(technologies or ()), "started_at": started,
                                   "estimated_end": started + 4 * 3600, "cleared_at": None}
            for line in self._lines_hit(self.incidents[ref]):
                line["last_change"] = started
            return self.incidents[ref]

    def _lines_hit(self, incident: dict) -> list[dict]:
        return [line for line in self.lines.values() if _covers(incident, line)]

    def incident_for(self, line: dict) -> dict | None:
        return next((i for i in self.incidents.values() if i["status"] == "open" and _covers(i, line)), None)

    # -- wire views ----------------------------------------------------------------------------

    def status_view(self, line: dict) -> dict:
        incident = self.incident_for(line)
        condition = "down" if incident else line["condition"]
        down, up, attainable, snr, attenuation = _PROFILES.get(line["technology"], _PROFILES["vdsl2"])
        fibre = line["technology"] in FIBRE
        synced = condition != "down"
        if condition == "degraded":
            down, attainable, snr = down // 3, attainable // 3, 2.1
        return {
            "service_ref": line["service_ref"], "site_ref": line["site_ref"], "area": line["area"],
            "technology": line["technology"], "admin_status": line["admin_status"],
            "oper_status": {"up": "up", "down": "down", "degraded": "degraded", "cpe_unreachable": "up"}[condition],
            "last_change": _iso(line["last_change"]), "last_resync": _iso(line["last_resync"]),
            "sync": {"status": "up" if synced else "down", "down_kbps": down if synced else 0,
                     "up_kbps": up if synced else 0, "attainable_down_kbps": attainable if synced else 0,
                     "snr_margin_db": snr if synced else None, "attenuation_db": attenuation if synced else None},
            "optical": {"rx_dbm": (-19.8 if synced else -40.0), "tx_dbm": 2.1} if fibre else None,
            "session": {"ppp_up": condition in ("up", "degraded"), "ip": "203.0.113.10" if synced else None},
            "operator_incident": {"active": incident is not None,
                                  "incident_ref": incident["incident_ref"] if incident else None},
        }

    def results(self, line: dict, tests) -> tuple[list[dict], dict | None]:
        """Per-unit results of a test run as the line is now, and the covering incident."""
        incident = self.incident_for(line)
        condition = "down" if incident else line["condition"]
        status = self.status_view(line)
        sync = status["sync"]
        outcome = {
            "derco": ("ko", f"Incident collectif en cours : {incident['title']} ({incident['incident_ref']})")
            if incident else ("ok", "Aucun incident collectif sur la zone"),
            "synchro": ("ko", "Ligne non synchronisée") if condition == "down"
            else ("ok", f"Ligne synchronisée à {sync['down_kbps']}/{sync['up_kbps']} kbit/s"),
            "technicalinfo": ("ko", "Aucune mesure, ligne coupée") if condition == "down"
            else ("ko", f"Marge de bruit faible ({sync['snr_margin_db']} dB)") if condition == "degraded"
            else ("ok", "Mesures dans les normes"),
            "cpemac": ("ko", "Adresse MAC de l'équipement client non vue sur la ligne")
            if condition in ("down", "cpe_unreachable") else ("ok", "Équipement client vu sur la ligne"),
        }
        rows = [{"unit": unit, "status": outcome[unit][0], "summary": outcome[unit][1]} if unit in outcome
                else {"unit": unit, "status": "error", "summary": "Unité de test inconnue"} for unit in tests]
        return rows, incident

    def run_view(self, run: dict) -> dict:
        elapsed = time.time() - run["started_at"]
        duration = run["duration"]
        view = {"run_id": run["run_id"], "service_ref": run["service_ref"], "technology": run["technology"],
                "tests": run["tests"], "started_at": _iso(run["started_at"]), "completed_at": None,
                "status": "pending" if elapsed < duration / 3 else "running", "results": [],
                "collective_outage": {"active": False, "incident_ref": None, "impacted_services": []}}
        line = self.lines.get(run["service_ref"])
        if line is None:  # the line was removed (reseeded) while the test ran
            view.update(status="error", results=[{"unit": "service", "status": "error", "summary": "Ligne inconnue"}])
        elif elapsed >= duration:
            if run.get("final") is None:  # results frozen at completion, like a real run
                with self.lock:
                    results, incident = self.results(line, run["tests"])
                    run["final"] = {"results": results, "completed_at": _iso(run["started_at"] + duration),
                                    "collective_outage": {
                                        "active": incident is not None,
                                        "incident_ref": incident["incident_ref"] if incident else None,
                                        "impacted_services": [x["service_ref"] for x in self._lines_hit(incident)]
                                        if incident else []}}
            view.update(status="completed", **run["final"])
        return view

    def incident_view(self, incident: dict) -> dict:
        return {"incident_ref": incident["incident_ref"], "site_ref": incident["site_ref"], "area": incident["area"],
                "status": incident["status"], "title": incident["title"],
                "started_at": _iso(incident["started_at"]), "estimated_end": _iso(incident["estimated_end"]),
                "cleared_at": _iso(incident["cleared_at"]),
                "impacted_services": [line["service_ref"] for line in self._lines_hit(incident)]}


def _covers(incident: dict, line: dict) -> bool:
    """Does this incident hit this line: same site (or same area for an area-wide one) and technology."""
    if incident["site_ref"]:
        place = incident["site_ref"] == line["site_ref"]
    else:
        place = (incident["area"] or "").lower() == (line["area"] or "").lower()
    return place and (not incident["technologies"] or line["technology"] in incident["technologies"])


def _concerns(incident: dict, query: str, areas: set[str]) -> bool:
    """A query names a site (site incidents + area-wide ones of its area) or an area (all of it)."""
    area = (incident["area"] or "").lower()
    if incident["site_ref"] == query or area == query.lower():
        return True
    return incident["site_ref"] is None and area in areas


# -- HTTP --------------------------------------------------------------------------------------


def _error(resp, status: int, message: str, details=None) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.media = {"error": message, "details": details, "apirequest_uuid": str(uuid.uuid4())}
    resp.complete = True


class _Gate:
    """For every API call (not /_sim/): counts it, applies the injected fault, checks the Bearer token."""

    def __init__(self, state: State):
        self._state = state

    def process_resource(self, req, resp, resource, params):
        state = self._state
        if req.path.startswith("/_sim/"):
            return
        status = count_and_fault(state, req)
        if status:
            _error(resp, status, "simulated fault")
            return
        scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != state.token:
            _error(resp, 401, "invalid or missing API token")


class _Services:
    def __init__(self, state: State):
        self._state = state

    def _line(self, resp, ref: str) -> dict | None:
        line = self._state.lines.get(ref)
        if line is None:
            _error(resp, 404, "service not found", {"service_ref": ref})
        return line

    def on_get_status(self, req, resp, ref):
        with self._state.lock:
            line = self._line(resp, ref)
            if line is not None:
                resp.media = self._state.status_view(line)

    def on_post_diagnostics(self, req, resp, ref):
        body = req.get_media(default_when_empty={}) or {}
        tests = body.get("tests") or ["derco", "synchro", "technicalinfo", "cpemac"]
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            _error(resp, 400, "tests must be a list of unit names")
            return
        with self._state.lock:
            line = self._line(resp, ref)
            if line is None:
                return
            started = time.time()
            run_id = f"D{datetime.fromtimestamp(started, timezone.utc):%y%m%d}_{next(self._state._seq):03d}"
            self._state.runs[run_id] = {"run_id": run_id, "service_ref": ref, "technology": line["technology"],
                                        "tests": tests, "started_at": started,
                                        "duration": self._state.test_duration_seconds}
        resp.status = falcon.HTTP_202
        resp.media = {"run_id": run_id, "status": "pending"}

    def on_get_run(self, req, resp, run_id):
        run = self._state.runs.get(run_id)
        if run is None:
            _error(resp, 404, "diagnostic run not found", {"run_id": run_id})
        else:
            resp.media = self._state.run_view(run)

    def on_get_incidents(self, req, resp):
        site = req.get_param("site_ref") or ""
        status = req.get_param("status") or "open"
        with self._state.lock:
            areas = {line["area"].lower() for line in self._state.lines.values() if line["site_ref"] == site}
            rows = [self._state.incident_view(i) for _, i in sorted(self._state.incidents.items())
                    if (status == "all" or i["status"] == status)
                    and _concerns(i, site, areas)]
        resp.media = {"count": len(rows), "incidents": rows}


class _Sim(CallsAndFaults):
    def __init__(self, state: State):
        self._state = state

    def on_post_seed(self, req, resp):
        body = req.get_media(default_when_empty={}) or {}
        if body.get("empty"):
            self._state.clear()
        else:
            self._state.seed_demo()
        resp.media = {"lines": len(self._state.lines), "incidents": len(self._state.incidents)}

    def on_get_incidents(self, req, resp):
        with self._state.lock:
            resp.media = {"incidents": [self._state.incident_view(i) for i in self._state.incidents.values()]}

    def on_post_incidents(self, req, resp):
        body = req.get_media()
        if not body.get("site") and not body.get("area"):
            raise falcon.HTTPBadRequest(description="site or area is required")
        incident = self._state.set_incident(site=body.get("site"), area=body.get("area"),
                                            active=bool(body.get("active", True)), title=body.get("title"),
                                            technologies=body.get("technologies"))
        resp.media = {"incident": self._state.incident_view(incident) if incident else None}

    def on_post_line(self, req, resp, ref):
        if ref not in self._state.lines:
            raise falcon.HTTPNotFound()
        try:
            line = self._state.set_condition(ref, req.get_media().get("condition", "up"))
        except ValueError as exc:
            raise falcon.HTTPBadRequest(description=str(exc)) from exc
        resp.media = self._state.status_view(line)

    def on_post_config(self, req, resp):
        body = req.get_media()
        if "test_duration_seconds" in body:
            self._state.test_duration_seconds = float(body["test_duration_seconds"])
        resp.media = {"test_duration_seconds": self._state.test_duration_seconds}


def make_app(state: State | None = None) -> falcon.App:
    """The proposed Phibee API plus /_sim/; a demo-seeded state when none is given."""
    state = state or State().seed_demo()
    app = falcon.App(middleware=[_Gate(state)])
    app.req_options.strip_url_path_trailing_slash = True
    services, sim = _Services(state), _Sim(state)
    app.add_route("/services/{ref}/status", services, suffix="status")
    app.add_route("/services/{ref}/diagnostics", services, suffix="diagnostics")
    app.add_route("/diagnostics/{run_id}", services, suffix="run")
    app.add_route("/incidents", services, suffix="incidents")
    app.add_route("/_sim/seed", sim, suffix="seed")
    app.add_route("/_sim/incidents", sim, suffix="incidents")
    app.add_route("/_sim/lines/{ref}", sim, suffix="line")
    app.add_route("/_sim/config", sim, suffix="config")
    add_calls_and_faults(app, sim)
    return app


def main(argv: list[str] | None = None) -> None:
    """`python -m simulators.phibee --port 8103`: the demo story until interrupted."""
    from simulators.base import option, run

    run("Local Phibee Telecom simulator (proposed API)", 8103,
        lambda args: make_app(State(token=args.token, test_duration_seconds=args.test_duration).seed_demo()),
        "Phibee simulator: {url}", argv,
        option("--token", default=DEFAULT_TOKEN),
        option("--test-duration", type=float, default=DEFAULT_TEST_DURATION_SECONDS))


if __name__ == "__main__":
    main()
