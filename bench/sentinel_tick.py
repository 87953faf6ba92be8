"""Benchmark of the Sentinel tick (the 5-minute Observium poll) over a large fleet; prints figures and exits.

Starts embedded PostgreSQL + Valkey and the Observium simulator with N generated devices, all down
(since 5 to 60 min), then runs the tick in this process the way the `run_sentinel_tick` actor does:
  1. reconcile: every down device enters the tracker, no alert mail due (threshold 24 h);
  2. with requests: threshold 30 min, so about half become due — one L3 alert-mail request each
     (incident-level dedup applies to devices of one incident; these are all unrelated);
  3. recovery: every device back up, every tracker entry and pending request closed.
The tick must finish well within its 5-minute interval: target ≤ 60 s for each step at 5,000.

Run: .venv/bin/python bench/sentinel_tick.py [--devices 5000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, report  # noqa: E402
from bench.webhook import start_servers  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=5000)
    args = parser.parse_args(argv)
    print(f"starting embedded PostgreSQL + Valkey and the Observium simulator with {args.devices} devices down…",
          flush=True)
    servers, workdir, env, _url = start_servers("widip-bench-tick-")
    from simulators import observium as observium_sim
    from simulators.base import serve

    observium = observium_sim.State().seed_synthetic(args.devices, down=args.devices)
    sim = serve(observium_sim.make_app(observium))
    try:
        os.environ.update({**env, "OBSERVIUM_URL": sim.url, "OBSERVIUM_USER": observium_sim.DEFAULT_USER,
                           "OBSERVIUM_PASS": observium_sim.DEFAULT_PASSWORD})
        import redis

        from widip.config import Settings
        from widip.functions import db
        from widip.functions.integrations.clients import Clients
        from widip.functions.safeguard.policy import policy_for
        from widip.functions.sentinel import tracker

        settings = Settings.from_env()
        pool = db.make_pool(settings.database_url)
        client = redis.Redis.from_url(settings.redis_url)
        clients = Clients(settings, client)
        policy = policy_for(settings)

        def timed_tick(**overrides) -> tuple[dict, float]:
            started = time.monotonic()
            outcome = tracker.tick(pool, client, clients, settings.with_overrides(**overrides), policy=policy)
            return outcome, time.monotonic() - started

        first, reconcile = timed_tick(alert_mail_threshold_minutes=24 * 60)
        second, with_requests = timed_tick(alert_mail_threshold_minutes=30)
        observium.seed_synthetic(args.devices, down=0)
        third, recovery = timed_tick()
        print(f"\n{args.devices} devices down: reconcile {reconcile:.2f} s ({first['down']} tracked); "
              f"with {second['alert_mails_requested']} L3 alert-mail requests {with_requests:.2f} s; "
              f"all back up {recovery:.2f} s ({third['recovered']} recovered)")
        ok = first["down"] == args.devices and third["recovered"] == args.devices
        report([Figure(f"Sentinel tick, {args.devices} devices down: reconcile", reconcile, "s", "<=", 60),
                Figure(f"Sentinel tick, {args.devices} devices down: with {second['alert_mails_requested']} "
                       "alert-mail requests", with_requests, "s", "<=", 60),
                Figure(f"Sentinel tick, {args.devices} devices: all back up", recovery, "s", "<=", 60),
                Figure("Sentinel tick: devices tracked then recovered", int(ok) * args.devices,
                       f"of {args.devices}", ">=", args.devices)])
        clients.close()
        pool.close()
    finally:
        sim.stop()
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
