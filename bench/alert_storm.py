"""Alert storm on real parts: 1,000 Observium alerts in 10 s over 100 devices in 5 sites; prints figures.

Starts embedded PostgreSQL + Valkey, the Observium, GLPI and Phibee simulators and an SMTP sink in this
process, and the Procfile's `web` and `worker` processes (the worker's 2 processes × 4 threads process
alerts concurrently; the rules provider diagnoses, on `llm-remote`). The storm is what a site-wide
outage looks like from Observium: each device's first ALERT, then reminders. Afterwards it waits for
the pipeline to settle and prints: accepted (2xx successful), lost (accepted but not stored or never
processed — must be 0), incidents, diagnoses (agent sessions) and tickets (targets ≤ 5 each: one per
site), and how long the pipeline took to settle.

Run: .venv/bin/python bench/alert_storm.py [--alerts 1000] [--seconds 10] [--devices 100] [--sites 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, report  # noqa: E402
from bench.webhook import TOKEN, Fleet, start_servers, wait_http  # noqa: E402


def storm(url: str, bodies: list[dict], seconds: float, concurrency: int = 24) -> tuple[int, list[str]]:
    """Send body i at start + i × seconds/len(bodies); return (accepted, tracking ids)."""
    import httpx

    accepted, trackings, lock = [0], [], threading.Lock()
    start = time.monotonic() + 0.5
    step = seconds / len(bodies)
    next_index = [0]

    def worker():
        with httpx.Client(base_url=url, timeout=30, headers={"Authorization": TOKEN}) as client:
            while True:
                with lock:
                    index = next_index[0]
                    next_index[0] += 1
                if index >= len(bodies):
                    return
                delay = start + index * step - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    reply = client.post("/webhook/widip-alertes", json=bodies[index])
                    ok = reply.status_code == 200 and reply.json().get("status") == "successful"
                except httpx.HTTPError:
                    ok = False
                if ok:
                    with lock:
                        accepted[0] += 1
                        trackings.append(reply.json()["tracking_id"])

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return accepted[0], trackings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--sites", type=int, default=5)
    parser.add_argument("--settle-timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    print("starting embedded PostgreSQL + Valkey, simulators, web and worker…", flush=True)
    servers, workdir, env, url = start_servers("widip-bench-storm-")
    from simulators import glpi as glpi_sim
    from simulators import observium as observium_sim
    from simulators import phibee as phibee_sim
    from simulators.base import serve
    from simulators.smtp import start_sink
    from widip.functions import db

    observium = observium_sim.State()
    per_site = max(1, args.devices // args.sites)
    rows = []
    for n in range(args.devices):
        site = n // per_site % args.sites
        rows.append(observium.add_device({
            "device_id": str(20_000 + n), "hostname": f"sw-{n:03d}.ehpad-{site}.widip.net", "type": "network",
            "os": "procurve", "os_text": "HPE ProCurve", "hardware": "Aruba 2530", "purpose": "Commutateur d'étage",
            "location": f"EHPAD Tempête {site} - Site {site}", "ip": f"10.200.{site}.{n % 250 + 1}"}))
    glpi = glpi_sim.State()
    glpi.seed_demo()
    sims = [serve(observium_sim.make_app(observium)), serve(glpi_sim.make_app(glpi)),
            serve(phibee_sim.make_app(phibee_sim.State().seed_demo()))]
    sink = start_sink(workdir / "var" / "mail")
    env.update({"OBSERVIUM_URL": sims[0].url, "OBSERVIUM_USER": observium_sim.DEFAULT_USER,
                "OBSERVIUM_PASS": observium_sim.DEFAULT_PASSWORD, "GLPI_URL": sims[1].url + "/apirest.php",
                "GLPI_APP_TOKEN": "sim-app-token", "GLPI_USER_TOKEN": "sim-user-token", "PHIBEE_API_URL": sims[2].url,
                "PHIBEE_API_TOKEN": phibee_sim.DEFAULT_TOKEN, "SMTP_HOST": sink.host, "SMTP_PORT": str(sink.port),
                "SMTP_USE_TLS": "none", "ALERT_MAIL_RECIPIENTS": "astreinte@widip.fr", "LLM_PROVIDER": "rules",
                "INTEGRATION_TIMEOUT_SECONDS": "5"})
    fleet = Fleet(env, workdir)
    try:
        fleet.start("web")
        fleet.start("worker")
        wait_http(url)
        time.sleep(3)  # let the worker boot
        now = time.time()
        bodies = []
        for i in range(args.alerts):
            row = rows[i % len(rows)]
            observium.set_down(int(row["device_id"]), since_seconds=120)
            body = observium_sim.webhook_body(observium.devices[int(row["device_id"])],
                                              "ALERT" if i < len(rows) else "ALERT REMINDER",
                                              alert_id=600_000 + i % len(rows), since=now - 120, now=now)
            body["ALERT_UNIXTIME"] = f"{int(now)}.{i:06d}"
            bodies.append(body)
        began = time.monotonic()
        accepted, trackings = storm(url, bodies, args.seconds)
        sent_in = time.monotonic() - began
        print(f"\nsent {len(bodies)} alerts in {sent_in:.1f} s: {accepted} accepted", flush=True)
        settled, counts = _settle(servers.database_url, glpi, args.settle_timeout, accepted)
        with db.connect(servers.database_url) as conn:
            stored = {r["tracking_id"]: r["status"] for r in conn.execute(
                "SELECT tracking_id, status FROM alerts WHERE tracking_id = ANY(%s)", (trackings,))}
            outcomes = {r["outcome"]: r["count"] for r in conn.execute(
                "SELECT outcome, count(*) AS count FROM alerts GROUP BY 1 ORDER BY 2 DESC")}
        lost = sum(1 for t in trackings if stored.get(t) in (None, "received"))
        print(f"accepted: {accepted}")
        print(f"lost: {lost}")
        print(f"incidents: {counts['incidents']}  diagnoses: {counts['diagnoses']}  tickets: {counts['tickets']}  "
              f"team mails: {sink.count()}")
        print(f"alert outcomes: {json.dumps(outcomes, ensure_ascii=False)}")
        print(f"pipeline settled {settled:.1f} s after the last alert was accepted" if settled else
              f"pipeline NOT settled within {args.settle_timeout:.0f} s: {counts}")
        ok = lost == 0 and accepted == len(bodies) and counts["diagnoses"] <= args.sites and \
            counts["tickets"] <= args.sites
        print("targets met (lost 0, diagnoses ≤ sites, tickets ≤ sites)" if ok else "TARGETS MISSED")
        report([Figure("alert storm: accepted", accepted, f"of {len(bodies)}", ">=", len(bodies)),
                Figure("alert storm: lost", lost, "alerts", "<=", 0),
                Figure("alert storm: incidents", counts["incidents"], f"({args.sites} sites)", "<=", args.sites),
                Figure("alert storm: diagnoses", counts["diagnoses"], "sessions", "<=", args.sites),
                Figure("alert storm: tickets", counts["tickets"], "tickets", "<=", args.sites),
                Figure("alert storm: pipeline settled after the last alert", settled, "s")])
        return 0
    finally:
        fleet.stop()
        for sim in sims:
            sim.stop()
        sink.stop()
        servers.stop()


def _settle(database_url: str, glpi, timeout: float, accepted: int) -> tuple[float | None, dict]:
    from widip.functions import db

    began = time.monotonic()
    counts: dict = {}
    while time.monotonic() - began < timeout:
        with db.connect(database_url) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM alerts WHERE status = 'received') AS waiting, "
                "(SELECT count(*) FROM incidents) AS incidents, "
                "(SELECT count(*) FROM incidents WHERE notified_at IS NULL) AS unnotified, "
                "(SELECT count(*) FROM agent_sessions WHERE persona = 'sentinel') AS diagnoses").fetchone()
        tickets = sum(1 for t in list(glpi.items["Ticket"].values()) if t["name"].startswith("[Sentinel]"))
        counts = {**row, "tickets": tickets}
        if row["waiting"] == 0 and row["unnotified"] == 0 and row["incidents"] and tickets >= row["incidents"]:
            return time.monotonic() - began, counts
        time.sleep(0.5)
    return None, counts


if __name__ == "__main__":
    raise SystemExit(main())
