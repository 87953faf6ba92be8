"""Benchmark of Observium's webhook (`POST /webhook/widip-alertes`) on real parts; prints figures and exits.

Starts embedded PostgreSQL + Valkey (migrated and seeded), and the Procfile's `web` process (gunicorn).
No worker runs: the webhook's own work is measured — authenticate, validate, persist the body, enqueue
the processing message, answer `{"status": "successful"}`. Each request carries a distinct alert, so
every one is a new INSERT and a new message. For concurrency 1, 16 and 64 it prints accepted
alerts/s and latency p50/p99.

Run: .venv/bin/python bench/webhook.py [--requests 2000] [--web-workers 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Fleet, free_port, percentile  # noqa: E402
BIN = Path(sys.executable).parent
TOKEN = "bench-webhook-token"





def start_servers(prefix: str):
    """Embedded PostgreSQL + Valkey, migrated and seeded; returns (servers, workdir, base env)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    prom = workdir / "prom"
    prom.mkdir()
    os.environ.update({"dramatiq_prom_db": str(prom), "PROMETHEUS_MULTIPROC_DIR": str(prom)})
    from widip import embedded
    from widip.functions import db, seeding

    servers = embedded.start(workdir / "var", persist=False, database="widip_bench")
    db.migrate(servers.database_url, ROOT / "sql")
    with db.connect(servers.database_url) as conn:
        seeding.seed(conn, ROOT / "policy")
        conn.commit()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": servers.database_url, "REDIS_URL": servers.redis_url, "WIDIP_ENV": "test",
           "WIDIP_VAR_DIR": str(workdir / "var"), "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "WIDIP_BIND": f"127.0.0.1:{port}", "WEBHOOK_TOKEN": TOKEN, "LOG_LEVEL": "WARNING",
           "WORKER_PROM_PORT": str(free_port()), "LLM_PROM_PORT": str(free_port()), "WIDIP_BROKER": "redis"}
    return servers, workdir, env, f"http://127.0.0.1:{port}"


def wait_http(url: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/health", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError("web did not start (see web.log)")


def alert_body(seq: int, device: int, *, location: str, state: str = "ALERT") -> dict:
    """An Observium webhook-json body; `seq` makes the notification time unique (a new alert)."""
    from simulators import observium as observium_sim

    row = {"device_id": str(device), "hostname": f"sw-{device}.bench.widip.net", "sysName": f"sw{device}",
           "status": "0", "status_type": "ping", "type": "network", "os": "procurve", "hardware": "Aruba 2530",
           "location": location, "purpose": "Commutateur", "last_polled": ""}
    body = observium_sim.webhook_body(row, state, alert_id=500_000 + device, since=time.time() - 300)
    body["ALERT_UNIXTIME"] = f"{time.time():.0f}.{seq:07d}"
    return body


def run_load(url: str, bodies: list[dict], concurrency: int) -> tuple[list[float], int, float]:
    """POST every body with `concurrency` threads; (latencies s, accepted, wall time s)."""
    import httpx

    latencies: list[float] = []
    accepted = [0]
    lock = threading.Lock()
    queue = list(reversed(bodies))

    def worker():
        with httpx.Client(base_url=url, timeout=30, headers={"Authorization": TOKEN}) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                started = time.perf_counter()
                reply = client.post("/webhook/widip-alertes", json=body)
                elapsed = time.perf_counter() - started
                ok = reply.status_code == 200 and reply.json().get("status") == "successful"
                with lock:
                    latencies.append(elapsed)
                    accepted[0] += ok

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, accepted[0], time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level")
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args(argv)
    print("starting embedded PostgreSQL + Valkey and a web process…", flush=True)
    servers, workdir, env, url = start_servers("widip-bench-webhook-")
    fleet = Fleet(env, workdir)
    try:
        fleet.start("web", WEB_WORKERS=str(args.web_workers))
        wait_http(url)
        run_load(url, [alert_body(i, i % 50, location="Bench - Warm") for i in range(100)], 4)  # warm-up
        seq = 1000
        print(f"\nPOST /webhook/widip-alertes, {args.requests} distinct alerts per level, "
              f"{args.web_workers} gunicorn workers (persist + enqueue + answer):")
        for concurrency in (1, 16, 64):
            bodies = [alert_body(seq + i, i % 100, location=f"Bench {i % 5} - Site") for i in range(args.requests)]
            seq += args.requests
            latencies, accepted, wall = run_load(url, bodies, concurrency)
            print(f"  concurrency {concurrency:>2}: {accepted / wall:7.0f} accepted alerts/s, "
                  f"p50 {1000 * statistics.median(latencies):6.1f} ms, p99 {1000 * percentile(latencies, 99):6.1f} ms "
                  f"({accepted}/{len(bodies)} accepted)")
        import redis

        queued = redis.Redis.from_url(servers.redis_url).llen("dramatiq:default")
        print(f"  processing messages waiting in the broker: {queued} (no worker in this benchmark)")
    finally:
        fleet.stop()
        servers.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
