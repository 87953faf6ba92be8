"""Sentinel evaluation on the scenario set (tests/data/sentinel_scenarios.json): prints figures.

Each scenario is a sequence of Observium deliveries (single devices, site power cuts, operator outages
over many sites, client-wide events, sensors and UPS, maintenance, flapping, malformed bodies) with the
incidents, tickets and responsibility a technician expects. The pipeline runs on real parts: embedded
PostgreSQL + Valkey, the Phibee, GLPI and Observium simulators over HTTP, the rules provider, every
read and write through SAFEGUARD; the controllable clock replays each sequence's timing instantly. As
in production, an incident is diagnosed and its ticket written once the correlation hold has passed;
later devices are announced by one batched follow-up.

Prints: scenarios passed, responsibility accuracy, diagnoses per incident, schema-valid diagnoses.

Run: .venv/bin/python bench/sentinel_eval.py [--only NAME] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, report  # noqa: E402

DATA = ROOT / "tests" / "data" / "sentinel_scenarios.json"
HOLD = timedelta(seconds=30)  # actors.sentinel.CORRELATION_HOLD_MS default
_TABLES = ("incident_calls", "incident_events", "incident_members", "incident_logs", "device_down_episodes",
           "maintenance_windows", "alerts", "incidents")


@dataclass
class Outcome:
    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    expected: int = 0          # incidents with an expected responsibility
    right: int = 0             # of which the responsibility matched
    incidents: int = 0
    diagnoses: int = 0
    schema_valid: int = 0
    diagnoses_list: list[dict] = field(default_factory=list)


@dataclass
class Report:
    outcomes: list[Outcome]

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def accuracy(self) -> float:
        expected = sum(o.expected for o in self.outcomes)
        return sum(o.right for o in self.outcomes) / expected if expected else 1.0

    @property
    def diagnoses_per_incident(self) -> float:
        incidents = sum(o.incidents for o in self.outcomes)
        return sum(o.diagnoses for o in self.outcomes) / incidents if incidents else 0.0

    @property
    def schema_valid(self) -> tuple[int, int]:
        return sum(o.schema_valid for o in self.outcomes), sum(o.diagnoses for o in self.outcomes)

    @property
    def unknown(self) -> int:
        return sum(1 for o in self.outcomes for d in o.diagnoses_list if d["responsibility"] == "INCONNU")

    def lines(self) -> list[str]:
        valid, total = self.schema_valid
        return [f"scenarios passed         {self.passed}/{len(self.outcomes)}",
                f"responsibility accuracy  {self.accuracy:.1%} "
                f"({sum(o.right for o in self.outcomes)}/{sum(o.expected for o in self.outcomes)} incidents)",
                f"diagnoses per incident   {self.diagnoses_per_incident:.2f}",
                f"schema-valid diagnoses   {valid}/{total}",
                f"INCONNU diagnoses        {self.unknown}/{total}"]


def load() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def prepare(pool, phibee_state, glpi_state, data: dict) -> dict[str, dict]:
    """Load the scenario estate once: inventory, GLPI entities; returns the inventory rows by hostname."""
    from widip.functions.db import transaction
    from widip.functions.sentinel import inventory

    with transaction(pool) as conn:
        inventory.import_csv(conn, DATA.parent / data["inventory"], source="eval")
    known = {e["id"] for e in glpi_state.items.get("Entity", {}).values()}
    glpi_state.seed({"entities": [e for e in data["glpi_entities"] if e["id"] not in known]})
    rows = inventory.parse_csv((DATA.parent / data["inventory"]).read_text(encoding="utf-8"))
    return {r["hostname"]: r for r in rows}


def evaluate(env, phibee_state, glpi_state, observium_state=None, *, only: str | None = None,
             verbose: bool = False) -> Report:
    """Run every scenario (or `only`) on `env` (pool, redis, clients, settings, policy, ttl).

    Observium knows the estate only in scenarios that describe it (`observium`: sensors, ports down);
    elsewhere it is empty, as a deployment whose Observium API is unreachable."""
    data = load()
    estate = prepare(env.pool, phibee_state, glpi_state, data)
    outcomes = []
    for scenario in data["scenarios"]:
        if only and scenario["name"] != only:
            continue
        outcome = run_scenario(env, phibee_state, glpi_state, data, estate, scenario, observium_state)
        outcomes.append(outcome)
        if verbose:
            print(("PASS " if outcome.passed else "FAIL ") + scenario["name"] + "".join(
                f"\n     - {p}" for p in outcome.problems), flush=True)
    return Report(outcomes)


def run_scenario(env, phibee_state, glpi_state, data: dict, estate: dict, scenario: dict,
                 observium_state=None) -> Outcome:
    from widip.errors import Invalid
    from widip.functions import clock
    from widip.functions.db import transaction
    from widip.functions.sentinel import alerts, maintenance, pipeline

    _reset(env, phibee_state, glpi_state, data, estate, scenario)
    if observium_state is not None:
        _observium(observium_state, estate, scenario)
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    rejected, last_body = 0, {}
    with transaction(env.pool) as conn:
        for window in scenario.get("maintenance", []):
            maintenance.create(conn, {**window, "starts_at": (t0 - timedelta(hours=1)).isoformat()}, actor="eval")
    try:
        for event in scenario["events"]:
            at = t0 + timedelta(seconds=event["t"])
            clock.set_now(at)
            _settle(env, at)
            body = last_body.get(event["host"]) if event.get("resend") else _body(event, estate, at)
            last_body[event["host"]] = body
            try:
                with transaction(env.pool) as conn:
                    alert_id, _ = alerts.accept(conn, alerts.validate(body), now=at)
            except Invalid:
                rejected += 1
                continue
            if alert_id is not None:
                pipeline.process(env.pool, env.redis, env.clients, alert_id, now=at)
        end = t0 + timedelta(seconds=scenario["events"][-1]["t"]) + HOLD
        clock.set_now(end)
        _settle(env, end)
        later = end + timedelta(minutes=5)
        clock.set_now(later)
        _settle(env, later, sync=True)
    finally:
        clock.set_now(None)
    return _check(env, glpi_state, scenario, rejected)


def _settle(env, at: datetime, *, sync: bool = False) -> None:
    """What the actors would have done by `at`: diagnose and notify incidents older than the hold; sync."""
    from widip.functions.db import transaction
    from widip.functions.llm.rules import RulesProvider
    from widip.functions.sentinel import diagnosis, notifier

    with transaction(env.pool) as conn:
        due = [r["id"] for r in conn.execute("SELECT id FROM incidents WHERE notified_at IS NULL AND opened_at <= %s "
                                             "ORDER BY id", (at - HOLD,)).fetchall()]
        notified = [r["id"] for r in conn.execute("SELECT id FROM incidents WHERE notified_at IS NOT NULL "
                                                  "ORDER BY id").fetchall()]
    for incident_id in due:
        diagnosis.diagnose(env.pool, env.redis, env.clients, RulesProvider(), incident_id, policy=env.policy,
                           llm_timeout=5.0, now=at)
        notifier.notify(env.pool, env.redis, env.clients, env.settings, incident_id, policy=env.policy,
                        now=at)
    for incident_id in notified if sync else []:
        notifier.sync(env.pool, incident_id, policy=env.policy, now=at)


def _check(env, glpi_state, scenario: dict, rejected: int) -> Outcome:
    from widip.errors import Invalid
    from widip.functions.db import transaction
    from widip.functions.sentinel import diagnosis

    expect = scenario["expect"]
    out = Outcome(scenario["name"], True)
    with transaction(env.pool) as conn:
        rows = conn.execute(
            "SELECT i.*, (SELECT count(*) FROM incident_members m WHERE m.incident_id = i.id) AS devices, "
            "(SELECT coalesce(sum(occurrences), 0) FROM incident_members m WHERE m.incident_id = i.id) AS occurrences, "
            "(SELECT count(*) FROM agent_sessions s WHERE (s.context->>'incident_id')::bigint = i.id) AS sessions, "
            "(SELECT count(*) FROM incident_calls c WHERE c.incident_id = i.id AND c.purpose = 'followup:additions') "
            "AS additions FROM incidents i ORDER BY i.opened_at, i.id").fetchall()
        filtered = conn.execute("SELECT count(*) AS n FROM alerts WHERE status = 'filtered'").fetchone()["n"]
    tickets = [t for t in glpi_state.items.get("Ticket", {}).values()
               if str(t.get("name", "")).startswith("[Sentinel]") and t.get("status") != 6]
    out.incidents = len(rows)
    for row in rows:
        if row["diagnosis"] is not None:
            out.diagnoses += max(1, row["sessions"])
            out.diagnoses_list.append(row["diagnosis"])
            try:
                diagnosis.validate(row["diagnosis"])
                out.schema_valid += 1
            except Invalid:
                out.problems.append(f"incident {row['tracking_id']}: diagnosis not schema-valid")
    wanted = expect.get("incidents", [])
    if len(rows) != len(wanted):
        out.problems.append(f"{len(rows)} incident(s), expected {len(wanted)}")
    for index, want in enumerate(wanted):
        out.expected += 1
        if index >= len(rows):
            continue
        row, got = rows[index], (rows[index]["diagnosis"] or {})
        if got.get("responsibility") == want["responsibility"]:
            out.right += 1
        else:
            out.problems.append(f"incident {index + 1}: {got.get('responsibility')} ({got.get('rule')}), expected "
                                f"{want['responsibility']} — {got.get('summary', '')[:160]}")
        for key, actual in (("devices", row["devices"]), ("entity", row["glpi_entity_id"]), ("rule", got.get("rule")),
                            ("status", row["status"]), ("kind", row["kind"]), ("occurrences", row["occurrences"])):
            if key in want and want[key] != actual:
                out.problems.append(f"incident {index + 1}: {key} {actual!r}, expected {want[key]!r}")
        if row["ticket_id"]:
            ticket = glpi_state.items["Ticket"].get(int(row["ticket_id"])) or {}
            if "entity" in want and want["entity"] is not None and ticket.get("entities_id") != want["entity"]:
                out.problems.append(f"incident {index + 1}: ticket in entity {ticket.get('entities_id')}, "
                                    f"expected {want['entity']}")
    additions = sum(r["additions"] for r in rows)
    for key, actual in (("tickets", len(tickets)), ("filtered", filtered), ("rejected", rejected),
                        ("additions_followups", additions)):
        if key in expect and expect[key] != actual:
            out.problems.append(f"{key} {actual}, expected {expect[key]}")
    out.passed = not out.problems
    return out


def _body(event: dict, estate: dict, at: datetime) -> dict:
    from simulators import observium as observium_sim

    if "raw" in event:
        return dict(event["raw"])
    row = estate.get(event["host"]) or {}
    device_id = str(event.get("device_id") or row.get("device_id"))
    location = event.get("location") or (row["site"] + (f" / {row['sub_location']}" if row.get("sub_location") else ""))
    recovering = event["state"] == "RECOVER"
    device = {"device_id": device_id, "hostname": event["host"], "sysName": event["host"].split(".")[0],
              "status": "1" if recovering else "0", "status_type": event.get("status_type", "ping"),
              "type": "network", "os": "iosxe", "hardware": "-", "location": location,
              "purpose": event.get("purpose") or (row.get("role") or "équipement").capitalize()}
    entity = event.get("entity")
    body = observium_sim.webhook_body(device, event["state"], alert_id=700_000 + int(device_id) * 10 + bool(entity),
                                      since=at.timestamp() - 120, now=at.timestamp())
    if entity:
        body.update(ENTITY_TYPE=entity["type"], ENTITY_NAME=entity["name"], ENTITY_ID="1",
                    CONDITIONS=f"{entity['condition']} (1)", TITLE=f"{event['state']}: [{event['host']}] "
                    f"[{entity['type']}] {entity['name']}")
    if event.get("big_conditions"):
        body["CONDITIONS"] = ("device_status equals 0 " * (event["big_conditions"] // 23 + 1))[:event["big_conditions"]]
    for name in event.get("drop", []):
        body.pop(name, None)
    return body


def _reset(env, phibee_state, glpi_state, data: dict, estate: dict, scenario: dict) -> None:
    from widip.functions.db import transaction

    with transaction(env.pool) as conn:
        conn.execute("TRUNCATE " + ", ".join(_TABLES))
    for pattern in ("phibee_diag_*", "widip:sentinel:*"):
        keys = list(env.redis.scan_iter(match=pattern, count=500))
        if keys:
            env.redis.delete(*keys)
    setup = scenario.get("phibee", {})
    phibee_state.clear()
    for row in estate.values():
        if row.get("operator") == "phibee" and row.get("service_ref"):
            phibee_state.add_line(row["service_ref"], site=row["site"], area=data["phibee_areas"].get(row["site"], "-"),
                                  technology=row.get("technology") or "ftth",
                                  condition=setup.get("lines", {}).get(row["service_ref"], "up"))
    for ref, condition in setup.get("lines", {}).items():  # lines known only from an alert's description
        if ref not in phibee_state.lines:
            phibee_state.add_line(ref, site="-", area="-", technology="ftth", condition=condition)
    for incident in setup.get("incidents", []):
        phibee_state.set_incident(site=incident.get("site"), area=incident.get("area"), title=incident.get("title"))
    with glpi_state.lock:
        for ticket in glpi_state.items.get("Ticket", {}).values():
            ticket["status"] = 6  # earlier scenarios' tickets are closed: not open, not counted
        glpi_state.items["Change"].clear()
    glpi_state.seed({"tickets": [{**t, "requester": "widip-api"} for t in scenario.get("glpi_tickets", [])],
                     "changes": scenario.get("glpi_changes", [])})


def _observium(state, estate: dict, scenario: dict) -> None:
    """The scenario's Observium: every inventoried device with its ports, the alerting ones down, the
    sensors it lists, the ports it says went down (matched on name or alias)."""
    state.clear()
    setup = scenario.get("observium")
    if setup is None:
        return
    for row in estate.values():
        role = row.get("role") or "other"
        purpose = f"CPE {row.get('operator')} {row.get('service_ref')}" if role == "access" else role.capitalize()
        device = state.add_device({"device_id": row["device_id"], "hostname": row["hostname"], "ip": "10.99.0.1",
                                   "type": "firewall" if role == "firewall" else "network", "os": "iosxe",
                                   "location": row["site"], "purpose": purpose})
        state.add_ports(device)
    for event in scenario["events"]:
        row = estate.get(event.get("host") or "")
        if row and event["state"] == "ALERT":
            state.set_down(int(row["device_id"]), status_type=event.get("status_type", "ping"), since_seconds=120)
    for hostname, sensors in setup.get("sensors", {}).items():
        for sensor in sensors:
            state.add_sensor(int(estate[hostname]["device_id"]), **sensor)
    for hostname, wanted in setup.get("ports_down", {}).items():
        device_id = estate[hostname]["device_id"]
        for port_id, port in list(state.ports.items()):
            if port["device_id"] == device_id and any(w in (port["ifName"], port["ifAlias"]) for w in wanted):
                state.set_port(port_id, ifOperStatus="down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="run one scenario by name")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    from types import SimpleNamespace

    import redis as redis_lib

    from bench.webhook import start_servers
    from simulators import glpi as glpi_sim
    from simulators import observium as observium_sim
    from simulators import phibee as phibee_sim
    from simulators.base import serve
    from widip.config import Settings
    from widip.functions.integrations.clients import Clients
    from widip.functions import db
    from widip.functions.safeguard.policy import policy_for

    print("starting embedded PostgreSQL + Valkey and the simulators…", flush=True)
    servers, workdir, env_vars, _ = start_servers("widip-bench-sentinel-")
    glpi, phibee, observium = glpi_sim.State(), phibee_sim.State(), observium_sim.State()
    glpi.seed_demo()
    sims = [serve(glpi_sim.make_app(glpi)), serve(phibee_sim.make_app(phibee)), serve(observium_sim.make_app(observium))]
    settings = Settings.from_env({**env_vars, "GLPI_URL": sims[0].url + "/apirest.php", "GLPI_APP_TOKEN": "sim-app-token",
                                  "GLPI_USER_TOKEN": "sim-user-token", "PHIBEE_API_URL": sims[1].url,
                                  "PHIBEE_API_TOKEN": phibee_sim.DEFAULT_TOKEN, "OBSERVIUM_URL": sims[2].url,
                                  "OBSERVIUM_USER": observium_sim.DEFAULT_USER,
                                  "OBSERVIUM_PASS": observium_sim.DEFAULT_PASSWORD, "LLM_PROVIDER": "rules",
                                  "INTEGRATION_TIMEOUT_SECONDS": "3"})
    redis = redis_lib.Redis.from_url(settings.redis_url)
    pool = db.make_pool(settings.database_url, max_size=8)
    clients = Clients(settings, redis)
    try:
        env = SimpleNamespace(settings=settings, pool=pool, redis=redis, clients=clients,
                              policy=policy_for(settings))
        result = evaluate(env, phibee, glpi, observium, only=args.only, verbose=args.verbose)
        print("\n" + "\n".join(result.lines()), flush=True)
        for outcome in result.outcomes:
            if not outcome.passed:
                print(f"  FAIL {outcome.name}: " + "; ".join(outcome.problems), flush=True)
        valid, total = result.schema_valid
        count = len(result.outcomes)
        report([Figure("Sentinel eval: scenarios passed", result.passed, f"of {count}", ">=", count),
                Figure("Sentinel eval: responsibility accuracy (rules provider)", 100 * result.accuracy, "%", ">=", 90),
                Figure("Sentinel eval: diagnoses per incident", result.diagnoses_per_incident, "", "<=", 1),
                Figure("Sentinel eval: schema-valid diagnoses", valid, f"of {total}", ">=", total),
                Figure("Sentinel eval: INCONNU diagnoses", result.unknown, f"of {total}")])
    finally:
        clients.close()
        pool.close()
        for sim in sims:
            sim.stop()
        servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
