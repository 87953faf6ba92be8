"""What every bench script shares: free ports, percentiles, and the Procfile processes it runs."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], pct: int) -> float:
    """The pct-th percentile (inclusive method); the value itself for a single sample."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[pct - 1]


class Fleet:
    """Procfile processes started with the bench's servers; all stopped on exit."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        from widip.launcher import procfile_entries

        self.commands = procfile_entries(ROOT / "Procfile")
        self.env, self.log_dir = env, log_dir
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, **extra: str) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")
        self.processes.append(subprocess.Popen(self.commands[name], shell=True, cwd=ROOT, env={**self.env, **extra},
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def stop(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
