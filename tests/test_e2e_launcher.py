"""`widip up` on a clean machine: embedded PostgreSQL + Valkey, migrations, every Procfile process,
/ready within 60 s; a worker killed with SIGKILL is restarted while the rest keeps serving; and Ctrl-C
(SIGINT to the terminal's process group) leaves no process behind.

The two tests share one deployment (starting it costs ~20 s); the second one stops it.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.stack import free_port, poll
from widip.launcher import read_env_file
from widip.supervisor import PROCESS_ENV

pytestmark = pytest.mark.e2e


def alive(pgid: int) -> list[int]:
    """Processes still in the process group (what a terminal's Ctrl-C reaches)."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True).stdout.split("\n")
    return [int(p) for p, g, s in (line.split() for line in out if line.strip()) if int(g) == pgid and "Z" not in s]


def using(directory: Path) -> list[int]:
    """Processes whose command line names the deployment's directory (PostgreSQL runs detached)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout.split("\n")
    return [int(line.split(None, 1)[0]) for line in out if str(directory) in line and "pytest" not in line]


def named(name: str) -> list[int]:
    """Live processes started for Procfile entry `name` (the launcher tags each one's environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"{PROCESS_ENV}={name}".encode() in (entry / "environ").read_bytes().split(b"\0") \
                    and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry.name))
        except OSError:
            continue
    return sorted(found)


def threads(pid: int) -> int:
    try:
        return int(next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("Threads:")).split()[1])
    except (OSError, StopIteration):
        return 0


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    # Not under pytest's basetemp (0700): the embedded PostgreSQL runs as its own user and must reach it.
    base = Path(tempfile.mkdtemp(prefix="widip-up-"))
    base.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "WIDIP_BROKER")}
    env.update(WIDIP_VAR_DIR=str(base / "var"), WIDIP_BIND=f"127.0.0.1:{port}", WEB_WORKERS="1",
               WORKER_PROCESSES="1", WORKER_PROM_PORT=str(free_port()), LLM_PROM_PORT=str(free_port()),
               WIDIP_MCP_PORT=str(free_port()), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    log = open(base / "up.log", "wb")
    up = subprocess.Popen([str(Path(sys.executable).parent / "widip"), "up"], env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    info = {"up": up, "port": port, "dir": base, "log": base / "up.log", "started": time.monotonic()}
    yield info
    if up.poll() is None:
        os.killpg(up.pid, signal.SIGKILL)
        for pid in named("web") + named("worker") + named("llm") + named("scheduler"):
            os.kill(pid, signal.SIGKILL)
    shutil.copy(base / "up.log", tmp_path_factory.mktemp("up") / "up.log")  # kept for a failure's post-mortem
    shutil.rmtree(base, ignore_errors=True)


def test_widip_up_reports_ready_and_restarts_a_killed_worker_while_web_keeps_serving(deployment):
    port = deployment["port"]
    ready = poll(lambda: _ready(port), lambda r: r is not None and r.status_code == 200, timeout=60, interval=0.5)
    assert set(ready.json()["components"]) == {"postgres", "redis", "broker", "scheduler"}
    assert time.monotonic() - deployment["started"] < 60
    values = read_env_file(deployment["dir"] / "var" / "demo.env")
    assert values["DATABASE_URL"] and values["REDIS_URL"]

    def worker_child():
        """(worker pids, the child running the consumer and worker threads) once that child is up; the
        metrics exposition fork has one or two threads. On a loaded machine /ready can come first."""
        pids = named("worker")
        leader = min(pids, default=None)  # the group leader (dramatiq's main process) is the oldest pid here
        return pids, next((pid for pid in pids if pid != leader and threads(pid) > 4), None)

    worker_before, child = poll(worker_child, lambda found: found[1] is not None, timeout=30, interval=0.2)
    web_before, leader = named("web"), min(worker_before)
    answers, stop = [], threading.Event()

    def keep_asking():
        while not stop.is_set():
            try:
                answers.append(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code)
            except httpx.TransportError as exc:
                answers.append(type(exc).__name__)
            time.sleep(0.1)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        os.kill(child, signal.SIGKILL)
        restarted = poll(lambda: named("worker"), lambda pids: len(pids) >= 2 and not set(pids) & set(worker_before),
                         timeout=60, interval=0.5)
        time.sleep(2)  # and a little after the restart
    finally:
        stop.set()
        asker.join()
    assert len(answers) >= 5 and set(answers) == {200}, answers  # web answered throughout
    assert named("web") == web_before
    log = deployment["log"].read_text()
    assert f"worker (pid {leader}) exited" in log and "worker restarted" in log

    # The new worker consumes: a heartbeat sent as the scheduler sends it is recorded.
    from dramatiq.brokers.redis import RedisBroker

    from widip.functions import heartbeat, job_table
    from widip.ticks import declare

    client = redis.Redis.from_url(values["REDIS_URL"])
    client.delete(heartbeat.LAST_TICK_KEY)
    (beat,) = declare(RedisBroker(client=client, middleware=[]),
                      {job_table.SCHEDULER_HEARTBEAT.name: job_table.SCHEDULER_HEARTBEAT.cron})
    beat.send()
    assert poll(lambda: client.get(heartbeat.LAST_TICK_KEY), lambda v: v is not None, timeout=30)
    assert set(named("worker")) >= set(restarted)


def test_ctrl_c_stops_every_process_and_leaves_nothing_behind(deployment):
    up, port = deployment["up"], deployment["port"]
    poll(lambda: _ready(port), lambda r: r is not None and r.status_code == 200, timeout=60, interval=0.5)
    started = {name: named(name) for name in ("web", "worker", "llm", "scheduler")}
    assert all(started.values()), started
    os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    assert up.wait(60) == 0
    leftovers = poll(lambda: alive(up.pid) + using(deployment["dir"]) + [p for n in started for p in named(n)],
                     lambda pids: not pids, timeout=30, interval=0.5)
    assert leftovers == []
    assert not _ready(port)
    valkey = redis.Redis.from_url(read_env_file(deployment["dir"] / "var" / "demo.env")["REDIS_URL"])
    with pytest.raises(redis.ConnectionError):  # Valkey runs in its own session: stopped by the launcher, last
        valkey.ping()


def _ready(port: int):
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
    except httpx.TransportError:
        return None
