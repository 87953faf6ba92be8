"""Memory of the whole stack as `make demo` runs it: RSS and PSS per process, idle and under an alert storm.

Starts `widip demo` (embedded PostgreSQL + Valkey, the simulators, every Procfile process under the
launcher) on free ports in a temporary directory, waits for /ready and one minute of periodic ticks,
then reads /proc for every process: the launcher, each Procfile process and its children (tagged
WIDIP_PROCESS by the launcher), PostgreSQL (postmaster and backends) and Valkey. Then it sends an
alert storm (1,000 alerts in 10 s over the demo's Observium devices) and samples every second until
the pipeline has settled, keeping each process's peak and the stack's peak total.

RSS counts shared pages (libraries, pages a forked child still shares with its parent) in every process
that maps them; PSS divides them among those processes, so the stack's PSS total is what it costs the
machine. Targets (issue "Footprint and speed"), simulators excluded: each process ≤ 70 MB RSS idle;
stack ≤ 500 MB idle and ≤ 700 MB under the storm (PSS totals; RSS totals shown too).

Run: .venv/bin/python bench/footprint.py [--idle-seconds 65] [--alerts 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, free_port, report  # noqa: E402

BIN = Path(sys.executable).parent
MB = 1024 * 1024
STACK_ORDER = ("launcher", "web", "worker", "llm", "scheduler", "mcp")


def read_proc(pid: int) -> dict | None:
    """pid's parent, name tag, command, RSS and PSS (bytes); None once it is gone."""
    base = Path(f"/proc/{pid}")
    try:
        stat = (base / "stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] in ("Z", "X"):
            return None
        env = (base / "environ").read_bytes().split(b"\0")
        tag = next((e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"WIDIP_PROCESS=")), None)
        rss = int(next(l for l in (base / "status").read_text().splitlines() if l.startswith("VmRSS")).split()[1])
        pss = int(next(l for l in (base / "smaps_rollup").read_text().splitlines() if l.startswith("Pss:")).split()[1])
        cmd = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, StopIteration, ValueError):
        return None
    return {"pid": pid, "ppid": int(fields[1]), "tag": tag, "cmd": cmd, "rss": rss * 1024, "pss": pss * 1024}


def snapshot(launcher: int, var_dir: Path) -> dict[str, list[dict]]:
    """Processes by group: launcher, each Procfile name, simulators, postgresql, valkey."""
    procs = [p for p in (read_proc(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()) if p]
    by_pid = {p["pid"]: p for p in procs}

    def descends(p) -> bool:
        while p is not None:
            if p["pid"] == launcher:
                return True
            p = by_pid.get(p["ppid"])
        return False

    groups: dict[str, list[dict]] = {}
    for p in procs:
        if p["pid"] == launcher:
            name = "launcher"
        elif "valkey-server" in p["cmd"] and descends(p):
            name = "valkey"
        elif "postgres" in p["cmd"] and (str(var_dir) in p["cmd"] or (p["ppid"] in by_pid and
                                                                     str(var_dir) in by_pid[p["ppid"]]["cmd"])):
            name = "postgresql"
        elif p["tag"] and descends(p):
            name = p["tag"]
        else:
            continue
        groups.setdefault(name, []).append(p)
    return groups


def totals(groups: dict[str, list[dict]]) -> tuple[int, int]:
    """(RSS, PSS) of the stack: the launcher and the Procfile processes, no simulators or servers."""
    stack = [p for name, ps in groups.items() if name not in ("simulators", "postgresql", "valkey") for p in ps]
    return sum(p["rss"] for p in stack), sum(p["pss"] for p in stack)


def free_offset() -> int:
    """An offset that moves every demo port (8101…, 2525, 3389, 6636) onto free ones."""
    import socket

    from widip.launcher import DEMO_PORTS

    for _ in range(50):
        offset = random.randrange(20000, 40000, 10)
        try:
            for port in DEMO_PORTS.values():
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + offset))
            return offset
        except OSError:
            continue
    raise RuntimeError("no free port range for the demo")


def wait_ready(url: str, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise TimeoutError("the demo stack was not ready in time (see demo.log)")


def storm_bodies(values: dict[str, str], count: int) -> list[dict]:
    """`count` webhook bodies over the demo's Observium devices: each one's ALERT, then reminders."""
    import httpx

    from simulators import observium as observium_sim

    devices = httpx.get(values["OBSERVIUM_URL"] + "/api/v0/devices",
                        auth=(values["OBSERVIUM_USER"], values["OBSERVIUM_PASS"]), timeout=10).json()["devices"]
    rows = list(devices.values()) if isinstance(devices, dict) else list(devices)
    now = time.time()
    bodies = []
    for i in range(count):
        row = rows[i % len(rows)]
        body = observium_sim.webhook_body(row, "ALERT" if i < len(rows) else "ALERT REMINDER",
                                          since=now - 120, now=now)
        body["ALERT_UNIXTIME"] = f"{int(now)}.{i:06d}"
        bodies.append(body)
    return bodies


def describe(groups: dict[str, list[dict]]) -> list[str]:
    lines = []
    for name in (*STACK_ORDER, *sorted(set(groups) - set(STACK_ORDER))):
        ps = groups.get(name, [])
        if ps:
            each = ", ".join(f"{p['rss'] / MB:.0f}" for p in sorted(ps, key=lambda p: p["pid"]))
            lines.append(f"  {name:<11} {len(ps)} process(es): RSS {each} MB; PSS total "
                         f"{sum(p['pss'] for p in ps) / MB:.0f} MB")
    return lines


def main(argv: list[str] | None = None) -> int:
    from bench.alert_storm import storm
    from widip.launcher import read_env_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=65, help="wait after /ready before measuring idle")
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--settle-seconds", type=float, default=90, help="sampling after the storm, at most")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="widip-bench-footprint-"))
    base.chmod(0o755)  # the embedded PostgreSQL runs as its own user
    var_dir, port = base / "var", free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "WIDIP_BROKER")}
    env.update(WIDIP_VAR_DIR=str(var_dir), WIDIP_BIND=f"127.0.0.1:{port}", WIDIP_DEMO_PORT_OFFSET=str(free_offset()),
               WORKER_PROM_PORT=str(free_port()), LLM_PROM_PORT=str(free_port()), LOG_LEVEL="WARNING",
               PATH=f"{BIN}:{env.get('PATH', '')}")
    url = f"http://127.0.0.1:{port}"
    print(f"starting `widip demo` under {base}…", flush=True)
    log = open(base / "demo.log", "wb")
    began = time.monotonic()
    demo = subprocess.Popen([str(BIN / "widip"), "demo"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    figures = []
    try:
        wait_ready(url, 180)
        print(f"ready in {time.monotonic() - began:.0f} s; idle for {args.idle_seconds:.0f} s…", flush=True)
        time.sleep(args.idle_seconds)
        idle = snapshot(demo.pid, var_dir)
        idle_rss, idle_pss = totals(idle)
        print("\nidle:", *describe(idle), sep="\n")
        print(f"  stack (launcher + Procfile processes): RSS {idle_rss / MB:.0f} MB, PSS {idle_pss / MB:.0f} MB")

        values = read_env_file(var_dir / "demo.env")
        bodies = storm_bodies(values, args.alerts)
        peaks: dict[int, dict] = {}
        peak_rss = peak_pss = 0
        sampling = [True]

        def sample():
            nonlocal peak_rss, peak_pss
            while sampling[0]:
                groups = snapshot(demo.pid, var_dir)
                for name, ps in groups.items():
                    for p in ps:
                        if p["rss"] > peaks.get(p["pid"], {"rss": 0})["rss"]:
                            peaks[p["pid"]] = {**p, "group": name}
                rss, pss = totals(groups)
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
                time.sleep(1)

        import threading

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        import bench.alert_storm as alert_storm
        import bench.webhook as webhook

        webhook.TOKEN = alert_storm.TOKEN = values["WEBHOOK_TOKEN"]
        accepted, _ = storm(url, bodies, args.seconds)
        from widip.functions import db

        deadline = time.monotonic() + args.settle_seconds
        waiting = None
        while time.monotonic() < deadline:
            with db.connect(values["DATABASE_URL"]) as conn:
                waiting = conn.execute("SELECT count(*) AS n FROM alerts WHERE status = 'received'").fetchone()["n"]
            if waiting == 0:
                break
            time.sleep(2)
        time.sleep(3)
        sampling[0] = False
        sampler.join()
        print(f"\nalert storm: {accepted}/{len(bodies)} accepted in {args.seconds:.0f} s; "
              f"{waiting} still waiting when sampling stopped")
        load_groups: dict[str, list[dict]] = {}
        for p in peaks.values():
            load_groups.setdefault(p["group"], []).append(p)
        print("peak per process under the storm:", *describe(load_groups), sep="\n")
        print(f"  stack peak: RSS {peak_rss / MB:.0f} MB, PSS {peak_pss / MB:.0f} MB")

        for name in STACK_ORDER:
            if idle.get(name):
                figures.append(Figure(f"idle RSS, largest {name} process", max(p["rss"] for p in idle[name]) / MB,
                                      "MB", "<=", 70))
        figures += [Figure("idle stack total (PSS)", idle_pss / MB, "MB", "<=", 500),
                    Figure("idle stack total (RSS, shared pages counted in each process)", idle_rss / MB, "MB"),
                    Figure("alert storm stack peak (PSS)", peak_pss / MB, "MB", "<=", 700),
                    Figure("alert storm stack peak (RSS)", peak_rss / MB, "MB")]
        for name in ("postgresql", "valkey", "simulators"):
            if idle.get(name):
                figures.append(Figure(f"idle {name} (PSS, not in the stack total)",
                                      sum(p["pss"] for p in idle[name]) / MB, "MB"))
        report(figures)
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
