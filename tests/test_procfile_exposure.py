"""The Procfile's processes expose nothing beyond the machine by default: dramatiq's Prometheus
exporter listens on 127.0.0.1 (PROMETHEUS_BIND_HOST), and gunicorn opens no per-user control socket
that another instance of the same user would share."""

import time
from pathlib import Path


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                found.add(address)
    return found


def test_the_worker_metrics_listen_on_loopback_and_web_has_no_control_socket(stack, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    stack.env["HOME"] = str(home)
    port = int(stack.env["WORKER_PROM_PORT"])
    try:
        stack.start("web")
    except TimeoutError:  # a loaded machine imports slowly
        stack.wait_http("/health", timeout=180)
    stack.start("worker")
    deadline = time.monotonic() + 180
    while not listening_addresses(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert listening_addresses(port) == {"0100007F"}, stack.logs("worker")[-2000:]
    assert not (home / ".gunicorn").exists()
