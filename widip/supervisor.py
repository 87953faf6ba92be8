"""Supervision of the Procfile processes behind `widip up`, inside the launcher (no supervisor child each).

Each process runs in its own process group, so stopping or restarting it reaches its children and a
terminal's Ctrl-C reaches only the launcher, which then stops everything in order. Output is relayed
line by line, prefixed with the process's name. A process that exits while the stack runs is logged
and restarted after a backoff (1 s, doubling up to 60 s; back to 1 s once it has run for a minute).
Only SIGINT or SIGTERM stop the stack: SIGTERM to every group, SIGKILL to what is left after
`kill_wait` seconds, or at once on a second Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

#: First restart delay, its ceiling, and how long a process must run for the delay to reset.
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
STABLE_AFTER_S = 60.0
#: How often the loop looks at its children.
TICK_S = 0.2
#: Environment variable naming a process (and all its children) after its Procfile entry.
PROCESS_ENV = "WIDIP_PROCESS"


@dataclass
class Child:
    """One Procfile entry and the process group currently running it."""

    name: str
    command: str
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = MIN_BACKOFF_S
    restart_at: float | None = None
    orphans: list[int] = field(default_factory=list)  # groups of dead leaders, stopped with the rest


def group_alive(pgid: int) -> bool:
    """True while a non-zombie process of group `pgid` exists."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp …
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def shell_command(command: str) -> str:
    """`exec` a simple command, so the group leader is the process itself and no `sh` stays around."""
    return command if any(op in command for op in (";", "&", "|", "\n")) else f"exec {command}"


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Supervisor:
    """Runs `commands` (name → shell command) until SIGINT/SIGTERM, restarting any that dies."""

    def __init__(self, commands: dict[str, str], *, env: dict[str, str], cwd: str, kill_wait: float,
                 output=None):
        self.children = [Child(name, command) for name, command in commands.items()]
        self.env, self.cwd, self.kill_wait = env, cwd, kill_wait
        self.output = output or sys.stdout
        self._width = max((len(name) for name in commands), default=0)
        self._write_lock = threading.Lock()
        self._stop_signals = 0
        self._wake = threading.Event()

    def run(self, on_started=None) -> int:
        """Start everything, supervise until a stop signal, stop everything; returns 0."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                self._start(child)
            if on_started is not None:
                on_started()
            while not self._stop_signals:
                self._supervise()
                self._wake.wait(TICK_S)
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _on_signal(self, signum, frame) -> None:
        self._stop_signals += 1
        self._wake.set()
        if self._stop_signals > 1:  # a second Ctrl-C: no more waiting
            for pgid in self._groups():
                signal_group(pgid, signal.SIGKILL)

    def _start(self, child: Child) -> None:
        env = {**self.env, PROCESS_ENV: child.name}
        child.process = subprocess.Popen(shell_command(child.command), shell=True, cwd=self.cwd, env=env, start_new_session=True,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        child.started_at, child.restart_at = time.monotonic(), None
        threading.Thread(target=self._relay, args=(child.name, child.process.stdout), daemon=True).start()
        if child.restarts:
            logger.warning("%s restarted (pid %d, restart #%d)", child.name, child.process.pid, child.restarts)

    def _relay(self, name: str, stream) -> None:
        prefix = f"{name:<{self._width}} | ".encode()
        out = getattr(self.output, "buffer", None)
        for line in iter(stream.readline, b""):
            with self._write_lock:
                if out is not None:
                    out.write(prefix + line)
                    out.flush()
                else:
                    self.output.write((prefix + line).decode(errors="replace"))
                    self.output.flush()
        stream.close()

    def _supervise(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                self._on_exit(child, now)
            elif child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._start(child)

    def _on_exit(self, child: Child, now: float) -> None:
        code, pid, ran = child.process.returncode, child.process.pid, now - child.started_at
        signal_group(pid, signal.SIGTERM)  # children a dead leader left behind
        child.orphans.append(pid)
        child.process = None
        if ran >= STABLE_AFTER_S:
            child.backoff = MIN_BACKOFF_S
        delay, child.backoff = child.backoff, min(child.backoff * 2, MAX_BACKOFF_S)
        child.restart_at = now + delay
        how = f"signal {-code}" if code < 0 else f"code {code}"
        logger.error("%s (pid %d) exited with %s after %.0f s; restarting in %.0f s", child.name, pid, how, ran, delay)

    def _groups(self) -> list[int]:
        groups = []
        for child in self.children:
            groups += child.orphans
            if child.process is not None:
                groups.append(child.process.pid)
        return groups

    def _stop_all(self) -> None:
        logger.warning("stopping: SIGTERM to %s", ", ".join(c.name for c in self.children if c.process))
        for pgid in self._groups():
            signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_wait
        while time.monotonic() < deadline and self._stop_signals < 2:
            for child in self.children:
                if child.process is not None:
                    child.process.poll()
            if not any(group_alive(pgid) for pgid in self._groups()):
                return
            time.sleep(TICK_S)
        left = [pgid for pgid in self._groups() if group_alive(pgid)]
        if left:
            logger.warning("killing process groups %s", left)
        for pgid in left:
            signal_group(pgid, signal.SIGKILL)
        for child in self.children:
            if child.process is not None:
                child.process.wait()
