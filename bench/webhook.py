"""Benchmark of Observium's webhook (`POST /webhook/widip-alertes`) on real parts; prints figures and exits.

Starts embedded PostgreSQL + Valkey (migrated and seeded), and the Procfile's `web` process (gunicorn).
No worker runs: the webhook's own work is measured — authenticate, validate, persist the body, enqueue
the processing message, answer `{"status": "successful"}`. Each request carries a distinct alert, so
every one is a new INSERT and a new message. For 1, 16 and 64 connections it reports accepted alerts/s
and latency p50/p99, and checks that every accepted alert is in PostgreSQL (persist-first).

The load comes from wrk (Debian package; `make bench` installs it) in its own process, whose CPU use is
reported, so the client is not the bottleneck; without wrk, a Python client (threads) does it and the
figures say so.

Run: .venv/bin/python bench/webhook.py [--seconds 10] [--web-workers 2]
"""

from __future__ import annotations

import argparse
import os
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


WRK_SCRIPT = """
local counter, run = 0, "0"
local threads = 0  -- `tid` is set per thread by setup(): a global, not a local
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) run = args[1] or "0" end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%(token)s"
local template = [[%(template)s]]
function request()
  counter = counter + 1
  local body = string.gsub(template, "__SEQ__", string.format("%%s%%02d%%07d", run, tid, counter))
  body = string.gsub(body, "__DEV__", tostring(counter %% 100))
  return wrk.format(nil, "/webhook/widip-alertes", nil, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK-RESULT {"requests": %%d, "duration_us": %%d, "non2xx": %%d, "socket_errors": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_script(workdir: Path) -> Path:
    """wrk's Lua script: each request a distinct alert (run, thread and counter in ALERT_UNIXTIME)."""
    import json

    body = alert_body(0, 0, location="Bench 1 - Site")
    body["ALERT_UNIXTIME"], body["DEVICE_ID"] = "__SEQ__", "__DEV__"
    path = workdir / "webhook.lua"
    path.write_text(WRK_SCRIPT % {"token": TOKEN, "template": json.dumps(body)})
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: float, run: int) -> dict:
    """One wrk run; its summary plus the CPU share wrk itself used (of one core)."""
    import json
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    threads = min(connections, 2)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:.0f}s", "--latency",
                          "-s", str(script), url, "--", str(run)], capture_output=True, text=True,
                         timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((l for l in out.stdout.splitlines() if l.startswith("WRK-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    result = json.loads(line[len("WRK-RESULT "):])
    wall = result["duration_us"] / 1e6
    result.update(wall=wall, accepted=result["requests"] - result["non2xx"],
                  client_cpu=(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall)
    return result


def server_cpu_seconds(workdir: Path, web_pgid: int, redis_port: int) -> dict[str, float]:
    """CPU seconds used so far by the web process group, this bench's PostgreSQL and its Valkey."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"web": 0.0, "postgresql": 0.0, "valkey": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = stat[stat.rindex(")") + 2:].split()
            parent_cmd = Path(f"/proc/{fields[1]}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if int(fields[2]) == web_pgid:
            used["web"] += cpu
        elif "postgres" in cmd and (str(workdir) in cmd or str(workdir) in parent_cmd):
            used["postgresql"] += cpu
        elif "valkey-server" in cmd and f":{redis_port}" in cmd:
            used["valkey"] += cpu
    return used


def count_alerts(database_url: str) -> int:
    from widip.functions import db

    with db.connect(database_url) as conn:
        return conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"]


def main(argv: list[str] | None = None) -> int:
    import shutil

    from bench.common import Figure, report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="load duration per level (wrk)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per level (Python client)")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=None, help="gunicorn threads per worker (Procfile default)")
    parser.add_argument("--connections", type=int, nargs="*", default=[1, 16, 64])
    args = parser.parse_args(argv)
    use_wrk = shutil.which("wrk") is not None
    print("starting embedded PostgreSQL + Valkey and a web process…", flush=True)
    servers, workdir, env, url = start_servers("widip-bench-webhook-")
    fleet = Fleet(env, workdir)
    figures = []
    try:
        threads = {"WEB_THREADS": str(args.web_threads)} if args.web_threads else {}
        fleet.start("web", WEB_WORKERS=str(args.web_workers), **threads)
        wait_http(url)
        run_load(url, [alert_body(i, i % 50, location="Bench - Warm") for i in range(200)], 4)  # warm-up
        client = "wrk (its own process)" if use_wrk else "Python threads (the client may be the bottleneck)"
        print(f"\nPOST /webhook/widip-alertes, distinct alerts, {args.web_workers} gunicorn workers "
              f"(persist + enqueue + answer), load from {client}:")
        script = wrk_script(workdir) if use_wrk else None
        seq = 1000
        for run, concurrency in enumerate(args.connections, start=1):
            stored_before = count_alerts(servers.database_url)
            cpu_before = server_cpu_seconds(workdir, fleet.processes[0].pid, int(servers.redis_url.rsplit(":", 1)[1]))
            if use_wrk:
                r = run_wrk(url, script, concurrency, args.seconds, run)
                rate, p50, p99 = r["accepted"] / r["wall"], r["p50_us"] / 1000, r["p99_us"] / 1000
                accepted, sent = r["accepted"], r["requests"]
                extra = f", wrk used {100 * r['client_cpu']:.0f} % of a core, {r['socket_errors']} socket errors"
            else:
                bodies = [alert_body(seq + i, i % 100, location=f"Bench {i % 5} - Site") for i in range(args.requests)]
                seq += args.requests
                latencies, accepted, wall = run_load(url, bodies, concurrency)
                rate, sent = accepted / wall, len(bodies)
                p50, p99 = 1000 * statistics.median(latencies), 1000 * percentile(latencies, 99)
                extra = ""
            stored = count_alerts(servers.database_url) - stored_before
            cpu_after = server_cpu_seconds(workdir, fleet.processes[0].pid, int(servers.redis_url.rsplit(":", 1)[1]))
            per_alert = {k: 1000 * (cpu_after[k] - cpu_before[k]) / max(1, accepted) for k in cpu_after}
            extra += ("; server CPU per alert: " + ", ".join(f"{k} {v:.2f} ms" for k, v in per_alert.items()))
            print(f"  {concurrency:>2} connections: {rate:7.0f} accepted alerts/s, p50 {p50:6.1f} ms, "
                  f"p99 {p99:6.1f} ms ({accepted}/{sent} accepted, {stored} stored{extra})", flush=True)
            target = concurrency == 16
            figures += [Figure(f"webhook alerts/s, {concurrency} connections", rate, "alerts/s",
                               *((">=", 1000) if target else ())),
                        Figure(f"webhook p50, {concurrency} connections", p50, "ms"),
                        Figure(f"webhook p99, {concurrency} connections", p99, "ms", *(("<=", 30) if target else ())),
                        Figure(f"webhook accepted but not stored, {concurrency} connections",
                               max(0, accepted - stored), "alerts", "<=", 0),
                        Figure(f"webhook server CPU per alert (web + PostgreSQL + Valkey), {concurrency} connections",
                               sum(per_alert.values()), "ms")]
        import redis

        queued = redis.Redis.from_url(servers.redis_url).llen("dramatiq:default")
        print(f"  processing messages waiting in the broker: {queued} (no worker in this benchmark)")
        report(figures)
    finally:
        fleet.stop()
        servers.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
