"""`widip up` on a clean machine: embedded PostgreSQL + Valkey, migrations, every Procfile process,
/ready within 60 s, and Ctrl-C (SIGINT to the terminal's process group) leaves no process behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.stack import free_port, poll

pytestmark = pytest.mark.e2e


def alive(pgid: int) -> list[int]:
    """Processes still in the process group (what a terminal's Ctrl-C reaches)."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True).stdout.split("\n")
    return [int(p) for p, g, s in (line.split() for line in out if line.strip()) if int(g) == pgid and "Z" not in s]


def using(directory: Path) -> list[int]:
    """Processes whose command line names the deployment's directory (PostgreSQL runs detached)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout.split("\n")
    return [int(line.split(None, 1)[0]) for line in out if str(directory) in line and "pytest" not in line]


def test_widip_up_starts_everything_reports_ready_and_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "WIDIP_BROKER")}
    env.update(WIDIP_VAR_DIR=str(tmp_path / "var"), WIDIP_BIND=f"127.0.0.1:{port}", WEB_WORKERS="1",
               WORKER_PROCESSES="1", WORKER_PROM_PORT=str(free_port()), LLM_PROM_PORT=str(free_port()),
               WIDIP_MCP_PORT=str(free_port()), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    log = open(tmp_path / "up.log", "wb")
    up = subprocess.Popen([str(Path(sys.executable).parent / "widip"), "up"], env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = time.monotonic()
        ready = poll(lambda: _ready(port), lambda r: r is not None and r.status_code == 200, timeout=60, interval=0.5)
        assert set(ready.json()["components"]) == {"postgres", "redis", "broker", "scheduler"}
        assert time.monotonic() - started < 60
        demo_env = (tmp_path / "var" / "demo.env").read_text()
        assert "DATABASE_URL=" in demo_env and "REDIS_URL=" in demo_env
    finally:
        os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        up.wait(60)
    leftovers = poll(lambda: alive(up.pid) + using(tmp_path), lambda pids: not pids, timeout=30, interval=0.5)
    assert leftovers == []
    assert not _ready(port)


def _ready(port: int):
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
    except httpx.TransportError:
        return None
