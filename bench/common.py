"""What every bench script shares: the figures convention, free ports, percentiles, the Procfile processes.

Convention (how `make bench` picks a script up — `bench/run.py` runs every bench/*.py but this file,
run.py and __init__.py):
  * A script is bounded (finishes by itself, within BENCH_TIMEOUT_S, default 20 min) and talks only to
    127.0.0.1. It prints what it likes for humans.
  * It reports its figures by calling `report([...])` once or more, with `Figure`s:
        report([Figure("webhook alerts/s at 16 connections", 1234.5, "alerts/s", ">=", 1000),
                Figure("alert storm: lost alerts", 0, "alerts", "<=", 0),
                Figure("RAG recall@5", 0.91, "ratio")])            # no target: informative
    `report` prints each as one line `BENCH-FIGURE {"figure", "value", "unit", "target", "met"}`;
    the runner collects those lines from stdout. `met` is computed from the target (None without one).
  * It exits 0 when it ran (targets missed included: that is what `met` says), non-zero when it could not.
The runner writes bench/results/latest.json and latest.md (the machine's description and the table),
and puts that table in README.md between the `bench:begin` / `bench:end` markers.
"""

from __future__ import annotations

import json
import operator
import os
import signal
import socket
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Prefix of the stdout lines `report` prints and `bench/run.py` collects.
FIGURE_PREFIX = "BENCH-FIGURE "
_OPS = {">=": (operator.ge, "≥"), "<=": (operator.le, "≤"), "==": (operator.eq, "=")}


class Figure:
    """One measured figure; `op` and `bound` make its target (e.g. ">=", 1000)."""

    def __init__(self, figure: str, value: float | int | None, unit: str, op: str | None = None,
                 bound: float | int | None = None):
        self.figure, self.value, self.unit, self.op, self.bound = figure, value, unit, op, bound

    def to_dict(self) -> dict:
        target = met = None
        if self.op is not None:
            compare, sign = _OPS[self.op]
            target = f"{sign} {self.bound:g} {self.unit}".strip()
            met = self.value is not None and bool(compare(self.value, self.bound))
        value = round(self.value, 3) if isinstance(self.value, float) else self.value
        return {"figure": self.figure, "value": value, "unit": self.unit, "target": target, "met": met}


def report(figures: list[Figure]) -> None:
    """Print each figure as one machine-readable line (see the convention above)."""
    for figure in figures:
        print(FIGURE_PREFIX + json.dumps(figure.to_dict(), ensure_ascii=False), flush=True)


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
