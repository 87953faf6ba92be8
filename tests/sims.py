"""Simulator fixtures shared by the suite: one server per session per system, reset for each test.

Stopping a simulator costs ~0.5 s, so servers live for the session; each test gets a freshly seeded
state and sees real HTTP/SMTP on real sockets.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from simulators import glpi as glpi_sim
from simulators import observium as observium_sim
from simulators import phibee as phibee_sim
from simulators.base import serve


@dataclass
class Sim:
    url: str
    state: object
    server: object


@pytest.fixture(scope="session")
def _glpi_server():
    state = glpi_sim.State()
    server = serve(glpi_sim.make_app(state))
    yield Sim(server.url + "/apirest.php", state, server)
    server.stop()


@pytest.fixture
def glpi(_glpi_server):
    """The GLPI simulator with the demo data (app token sim-app-token, user token sim-user-token)."""
    _glpi_server.state.reset()
    _glpi_server.state.seed_demo()
    return _glpi_server


@pytest.fixture(scope="session")
def _observium_server():
    state = observium_sim.State()
    server = serve(observium_sim.make_app(state))
    yield Sim(server.url, state, server)
    server.stop()


@pytest.fixture
def observium(_observium_server):
    _observium_server.state.seed_demo()
    return _observium_server


@pytest.fixture(scope="session")
def _phibee_server():
    state = phibee_sim.State(test_duration_seconds=0.2)
    server = serve(phibee_sim.make_app(state))
    yield Sim(server.url, state, server)
    server.stop()


@pytest.fixture
def phibee(_phibee_server):
    _phibee_server.state.seed_demo()
    return _phibee_server


@pytest.fixture
def mail_sink(tmp_path):
    from simulators.smtp import start_sink

    sink = start_sink(tmp_path / "mail")
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def _tls(tmp_path_factory):
    from simulators.tls import generate_tls_files

    return generate_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def active_directory(_tls):
    """The LDAPS AD stand-in with the demo directory (jdupont, mmartin locked, adm.widip privileged…)."""
    from simulators.active_directory import State as Directory
    from simulators.ldap_server import start_server

    directory = Directory().seed_demo()
    handle = start_server(directory, tls=_tls)
    yield Sim(handle.ldaps_url, directory, handle)
    handle.stop()


@pytest.fixture(scope="session")
def _pwpush_server():
    from simulators import pwpush

    state = pwpush.State().seed_demo()
    server = serve(pwpush.make_app(state))
    yield Sim(server.url, state, server)
    server.stop()


@pytest.fixture
def pwpush(_pwpush_server):
    _pwpush_server.state.pushes.clear()
    return _pwpush_server


@pytest.fixture
def integrated_settings(settings, glpi, observium, phibee, mail_sink):
    """Settings pointing every HTTP/SMTP integration at its simulator."""
    return settings.with_overrides(
        glpi_url=glpi.url, glpi_app_token="sim-app-token", glpi_user_token="sim-user-token",
        observium_url=observium.url, observium_user=observium_sim.DEFAULT_USER,
        observium_pass=observium_sim.DEFAULT_PASSWORD, phibee_api_url=phibee.url,
        phibee_api_token=phibee_sim.DEFAULT_TOKEN, smtp_host=mail_sink.host, smtp_port=mail_sink.port,
        smtp_use_tls="none", alert_mail_recipients=("astreinte@widip.fr",), integration_timeout_seconds=3.0)


@pytest.fixture
def directory_settings(integrated_settings, active_directory, pwpush, _tls):
    """integrated_settings plus the LDAPS AD stand-in and Password Pusher."""
    from simulators.active_directory import DEMO_BASE_DN, DEMO_SERVICE_PASSWORD, DEMO_SERVICE_USER
    from simulators.pwpush import DEMO_TOKEN

    return integrated_settings.with_overrides(
        ad_server=active_directory.url, ad_user=DEMO_SERVICE_USER, ad_password=DEMO_SERVICE_PASSWORD,
        ad_base_dn=DEMO_BASE_DN, ca_file=_tls.ca_file, mysecret_api_url=pwpush.url, mysecret_api_token=DEMO_TOKEN)


class ServedSim:
    """A simulator module's app served for one test module, with helpers for its /_sim/ endpoints."""

    def __init__(self, module, state):
        self.state = state
        self.server = serve(module.make_app(state))
        self.url = self.server.url

    def post(self, path: str, body: dict | None = None) -> dict:
        response = httpx.post(f"{self.url}{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def calls(self) -> dict:
        """{"total": n, "by_route": {...}} from /_sim/calls."""
        return httpx.get(f"{self.url}/_sim/calls", timeout=5).json()


@pytest.fixture
def ollama():
    """A private Ollama simulator for one test: (state, url); script replies with state.push([...])."""
    from simulators import ollama as ollama_sim

    state = ollama_sim.State().seed_demo()
    server = serve(ollama_sim.make_app(state))
    yield state, server.url
    state.release_hangs()
    server.stop()

