"""Real processes for end-to-end tests: gunicorn web, dramatiq workers, the llm worker, the scheduler.

They run exactly the Procfile's commands (read from the Procfile) with this test's database and
Redis, so an end-to-end test exercises the deployment ops will run, on the Redis broker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from widip.config import PROJECT_ROOT
from widip.launcher import procfile_entries

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """Starts Procfile processes on demand; `stop()` terminates every process group it started."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.port = free_port()
        self.env = {**os.environ, **env, "WIDIP_BIND": f"127.0.0.1:{self.port}", "WIDIP_BROKER": "redis",
                    "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "WEB_WORKERS": "1",
                    "WORKER_PROCESSES": "1", "WORKER_PROM_PORT": str(free_port()),
                    "LLM_PROM_PORT": str(free_port())}
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, *names: str, **overrides: str) -> "Stack":
        commands = procfile_entries(PROJECT_ROOT / "Procfile")
        for name in names:
            log = open(self.log_dir / f"{name}.log", "ab")
            self.processes[name] = subprocess.Popen(
                commands[name], shell=True, cwd=PROJECT_ROOT, env={**self.env, **overrides},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if "web" in names:
            self.wait_http("/health")
        return self

    def wait_http(self, path: str, timeout: float = 30.0) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return httpx.get(self.url + path, timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        raise TimeoutError(f"web did not answer {path} within {timeout} s; see {self.log_dir}/web.log")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        os.killpg(self.processes[name].pid, sig)
        self.processes.pop(name).wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()

    def logs(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")


def poll(fetch, until, timeout: float = 20.0, interval: float = 0.1):
    """Call `fetch()` until `until(value)` is true; return the value or raise with the last one."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if until(value):
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last value: {value!r}")
