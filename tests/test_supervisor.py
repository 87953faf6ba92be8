"""The launcher's supervisor on its own: output relayed with the process's name, a dying process restarted
with a growing delay and each exit logged, SIGTERM stopping everything with exit code 0."""

import os
import signal
import subprocess
import sys
import time

from widip.config import PROJECT_ROOT

RUN = """
import logging, sys
from widip.logs import configure_logging
from widip.supervisor import Supervisor
configure_logging("INFO")
sys.exit(Supervisor({"flaky": "echo started; exit 3", "steady": "echo up $$; exec sleep 60"},
                    env={"PATH": "/usr/bin:/bin"}, cwd=".", kill_wait=5).run())
"""


def test_a_dying_process_is_restarted_with_backoff_and_sigterm_stops_everything():
    supervisor = subprocess.Popen([sys.executable, "-c", RUN], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
    time.sleep(5)  # exits at ~0 s, restarted after 1 s, exits, restarted after 2 s, exits (next in 4 s)
    supervisor.send_signal(signal.SIGTERM)
    out, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0, out
    assert out.count("flaky  | started") == 3, out
    assert out.count("steady | up") == 1, out  # the steady one was not touched by its neighbour's restarts
    delays = [line.rsplit("restarting in ", 1)[1] for line in out.splitlines() if "restarting in" in line]
    assert delays == ["1 s", "2 s", "4 s"], out
    assert "flaky (pid" in out and "exited with code 3" in out
    assert "flaky restarted" in out
    steady = int(out.split("steady | up ", 1)[1].split()[0])
    time.sleep(0.5)
    assert not os.path.exists(f"/proc/{steady}") or open(f"/proc/{steady}/stat").read().split()[2] == "Z"
