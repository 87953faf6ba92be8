"""Every simulator for the demo, in one process (`widip simulators`, started by `widip demo`).

Ports come from the URLs the launcher wrote (GLPI_URL, OBSERVIUM_URL, …) and the simulators accept
the launcher's random tokens, so the service talks to them exactly as it would to the real systems.
Seeded with the demo story: three EHPAD/clinic clients, their staff and devices, this morning's tickets.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from urllib.parse import urlparse

logger = logging.getLogger(__name__)


def _port(url: str) -> int:
    return urlparse(url).port


def start_all(env: dict[str, str]) -> list:
    """Start every simulator configured in `env`; return handles with .stop()."""
    from simulators import glpi, observium, phibee, pwpush
    from simulators.active_directory import State as Directory
    from simulators.base import serve
    from simulators.ldap_server import start_server
    from simulators.smtp import start_sink
    from simulators.tls import load_or_generate

    var_dir = Path(env.get("WIDIP_VAR_DIR", "var"))
    handles = []
    glpi_state = glpi.State(app_token=env["GLPI_APP_TOKEN"])
    glpi_state.seed_demo()
    glpi_state.user_tokens[env["GLPI_USER_TOKEN"]] = glpi_state.user_tokens["sim-user-token"]
    handles.append(serve(glpi.make_app(glpi_state), port=_port(env["GLPI_URL"])))
    observium_state = observium.State(user=env["OBSERVIUM_USER"], password=env["OBSERVIUM_PASS"]).seed_demo()
    handles.append(serve(observium.make_app(observium_state), port=_port(env["OBSERVIUM_URL"])))
    phibee_state = phibee.State(token=env["PHIBEE_API_TOKEN"]).seed_demo()
    handles.append(serve(phibee.make_app(phibee_state), port=_port(env["PHIBEE_API_URL"])))
    pushes = pwpush.State(base_url=env["MYSECRET_API_URL"]).seed_demo(token=env["MYSECRET_API_TOKEN"])
    handles.append(serve(pwpush.make_app(pushes), port=_port(env["MYSECRET_API_URL"])))
    handles.append(start_sink(env.get("WIDIP_MAILDIR") or var_dir / "mail", port=int(env["SMTP_PORT"])))
    directory = Directory().seed_demo(env["AD_USER"], env["AD_PASSWORD"])
    tls = load_or_generate(var_dir / "tls")
    ldaps_port = _port(env["AD_SERVER"].replace("ldaps://", "http://"))
    handles.append(start_server(directory, port=int(env.get("AD_LDAP_PORT", "3389")), ldaps_port=ldaps_port, tls=tls))
    logger.info("simulators up: GLPI %s, Observium %s, Phibee %s, Password Pusher %s, SMTP :%s, AD %s",
                env["GLPI_URL"], env["OBSERVIUM_URL"], env["PHIBEE_API_URL"], env["MYSECRET_API_URL"],
                env["SMTP_PORT"], env["AD_SERVER"])
    return handles


def run(env_file: str | None = None) -> int:
    env = dict(os.environ)
    handles = start_all(env)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("simulators ready", flush=True)
    stop.wait()
    for handle in handles:
        try:
            handle.stop()
        except Exception:  # noqa: BLE001 - stop the others
            logger.exception("could not stop a simulator")
    return 0
