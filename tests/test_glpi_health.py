"""GLPI health probe and circuit breaker against the GLPI simulator and the SMTP sink (real sockets).

Probes are driven by calling the plain function, so a test controls how many run and when.
"""

import threading
import time

import httpx
import pytest
import redis
from psycopg_pool import ConnectionPool, PoolTimeout

from simulators import glpi as glpi_sim
from simulators.base import serve
from widip.errors import Unavailable
from widip.functions import db
from widip.functions.integrations import circuit, glpi_health, status as integration_status
from widip.functions.integrations.http_client import OUTCOME_LISTENERS, make_client, send
from widip.functions.integrations.clients import Clients


@pytest.fixture
def health_settings(integrated_settings):
    return integrated_settings.with_overrides(glpi_down_after_failures=2, glpi_slow_threshold_ms=2000,
                                              integration_timeout_seconds=2.0)


@pytest.fixture
def clients(health_settings, redis_client):
    c = Clients(health_settings, redis_client)
    yield c
    c.close()


def fault(glpi, **body):
    httpx.post(glpi.url.replace("/apirest.php", "") + "/_sim/fault", json=body, timeout=5).raise_for_status()


def probe(redis_client, pool, clients, settings):
    return glpi_health.probe_glpi(redis_client, pool, clients, settings)


def subjects(mail_sink):
    return [m["Subject"] for m in mail_sink.messages()]


def test_a_fast_glpi_is_ok_published_for_60_seconds_and_recorded(redis_client, pool, clients, health_settings,
                                                                  conn, glpi):
    result = probe(redis_client, pool, clients, health_settings)
    assert result.status == "ok" and result.error is None and result.latency_ms < 2000
    assert circuit.status_of(redis_client, "glpi") == "ok" and circuit.glpi_available(redis_client)
    assert 55 <= redis_client.ttl(circuit.GLPI_STATUS_KEY) <= 60
    row = conn.execute("SELECT * FROM glpi_health_history").fetchone()
    assert row["status"] == "ok" and row["latency_ms"] is not None and row["transition"] is None
    started = time.perf_counter()
    for _ in range(20):
        probe(redis_client, pool, clients, health_settings)
    print(f"\nGLPI probe (ping + Redis + history row): {(time.perf_counter() - started) * 50:.1f} ms each")


def test_a_failing_glpi_goes_degraded_then_down_and_six_probes_send_exactly_one_alert(
        redis_client, pool, clients, health_settings, conn, glpi, mail_sink):
    fault(glpi, status=503)
    statuses = [probe(redis_client, pool, clients, health_settings).status for _ in range(6)]
    # One failure is "partial errors"; GLPI_DOWN_AFTER_FAILURES=2 in a row is down.
    assert statuses == ["degraded"] + ["down"] * 5
    assert not circuit.glpi_available(redis_client)
    assert subjects(mail_sink) == ["[WIDIP] Alerte : GLPI indisponible"]
    body = mail_sink.messages()[0].get_content()
    assert "Échecs consécutifs du contrôle de santé : 2" in body and "server error 503" in body
    assert mail_sink.messages()[0]["To"] == "astreinte@widip.fr"
    assert 0 < redis_client.ttl(glpi_health.ALERT_SENT_KEY) <= 300
    audit = conn.execute("SELECT * FROM safeguard_audit WHERE actor = 'system:health'").fetchall()
    assert [(a["action"], a["tool_name"], a["level"]) for a in audit] == [("executed", "smtp_send_alert", "L2")]
    transitions = conn.execute("SELECT status, transition, alert FROM glpi_health_history "
                               "WHERE transition IS NOT NULL OR alert IS NOT NULL").fetchall()
    assert [(t["transition"], t["alert"]) for t in transitions] == [("down", "down")]

    # When the fault clears, one probe is enough: ok, recovered, one recovery mail
    fault(glpi, clear=True)
    recovered = probe(redis_client, pool, clients, health_settings)
    assert (recovered.status, recovered.recovered, recovered.alert) == ("ok", True, "recovery")
    for _ in range(3):
        again = probe(redis_client, pool, clients, health_settings)
        assert (again.status, again.recovered, again.alert) == ("ok", False, None)
    assert subjects(mail_sink) == ["[WIDIP] Alerte : GLPI indisponible",
                                   "[WIDIP] Rétablissement : GLPI de nouveau disponible"]
    assert conn.execute("SELECT count(*) AS n FROM safeguard_audit WHERE actor = 'system:health'").fetchone()["n"] == 2


def test_a_stopped_glpi_is_down_and_restarting_it_on_the_same_port_gives_ok_and_one_recovery_mail(
        redis_client, pool, health_settings, mail_sink):
    state = glpi_sim.State()
    state.seed_demo()
    server = serve(glpi_sim.make_app(state))
    port = server.port
    settings = health_settings.with_overrides(glpi_url=server.url + "/apirest.php")
    clients = Clients(settings, redis_client)
    try:
        assert probe(redis_client, pool, clients, settings).status == "ok"
        server.stop()  # connection refused from now on
        results = [probe(redis_client, pool, clients, settings) for _ in range(4)]
        assert [r.status for r in results] == ["degraded", "down", "down", "down"]
        assert "cannot connect" in results[-1].error
        assert mail_sink.count() == 1
        server = serve(glpi_sim.make_app(state), port=port)
        back = probe(redis_client, pool, clients, settings)
        assert (back.status, back.recovered, back.alert) == ("ok", True, "recovery")
        assert mail_sink.count() == 2
    finally:
        clients.close()
        server.stop()


def test_a_slow_glpi_is_degraded_but_still_available(redis_client, pool, clients, health_settings, glpi, mail_sink):
    slow = health_settings.with_overrides(glpi_slow_threshold_ms=150)
    probe(redis_client, pool, clients, slow)  # session opened while fast
    fault(glpi, delay_seconds=0.3)
    result = probe(redis_client, pool, clients, slow)
    assert result.status == "degraded" and result.latency_ms >= 300 and result.error is None
    assert circuit.glpi_available(redis_client) and not circuit.is_healthy(redis_client, "glpi")
    assert mail_sink.count() == 0


def test_without_a_fresh_probe_the_status_is_unknown_and_pipelines_treat_it_as_degraded(
        redis_client, pool, clients, health_settings, glpi):
    probe(redis_client, pool, clients, health_settings)
    assert circuit.status_of(redis_client, "glpi") == "ok"
    redis_client.pexpire(circuit.GLPI_STATUS_KEY, 1)  # the 60 s TTL runs out
    time.sleep(0.01)
    assert circuit.status_of(redis_client, "glpi") == "unknown"
    assert circuit.effective_status(redis_client, "glpi") == "degraded"
    assert circuit.glpi_available(redis_client) and not circuit.is_healthy(redis_client, "glpi")


def test_concurrent_probes_of_a_down_glpi_still_send_one_alert(redis_client, pool, health_settings, glpi, mail_sink):
    fault(glpi, status=503)
    barrier, errors = threading.Barrier(4), []

    def run():
        c = Clients(health_settings, redis.Redis.from_url(health_settings.redis_url))
        try:
            barrier.wait()
            for _ in range(3):
                glpi_health.probe_glpi(c.redis, pool, c, health_settings)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert circuit.status_of(redis_client, "glpi") == "down"
    assert mail_sink.count() == 1


def test_a_down_alert_that_could_not_be_sent_is_sent_by_the_next_probe(redis_client, pool, clients, health_settings,
                                                                        glpi, mail_sink):
    fault(glpi, status=503)
    unsent = health_settings.with_overrides(smtp_host="127.0.0.1", smtp_port=1)  # nothing listens there
    no_mail = Clients(unsent, redis_client)
    try:
        results = [probe(redis_client, pool, no_mail, unsent) for _ in range(2)]
    finally:
        no_mail.close()
    assert results[-1].status == "down" and results[-1].alert is None
    assert redis_client.get(glpi_health.ALERT_SENT_KEY) is None
    assert probe(redis_client, pool, clients, health_settings).alert == "down"
    assert mail_sink.count() == 1


# --- the generic circuit: every integration's status from its recent calls ------------------------

@pytest.fixture
def restore_listener():
    """Put back whatever listener this process had (widip.wiring.register_handlers installs one)."""
    previous, installed = integration_status._source, integration_status.listener in OUTCOME_LISTENERS
    yield
    integration_status.uninstall()
    if installed:
        integration_status.install(previous)


@pytest.fixture
def listener(redis_client, restore_listener):
    integration_status.install(redis_client)


def test_three_failed_calls_in_a_row_make_a_system_down_and_a_success_brings_it_back(redis_client, listener):
    dead = make_client("http://127.0.0.1:1", timeout=1)
    for _ in range(3):
        with pytest.raises(Unavailable):
            send(dead, "phibee", "GET", "/lines")
    assert circuit.status_of(redis_client, "phibee") == "down" and not circuit.is_available(redis_client, "phibee")
    info = integration_status.details(redis_client, "phibee")
    assert info["window_failures"] == 3 and "cannot connect" in info["last_error"]
    integration_status.record_outcome(redis_client, "phibee", True, 0.01)
    # Back, but 3 failures out of 4 recent calls: degraded, not ok
    assert circuit.status_of(redis_client, "phibee") == "degraded" and circuit.is_available(redis_client, "phibee")
    for _ in range(16):
        integration_status.record_outcome(redis_client, "phibee", True, 0.01)
    assert circuit.status_of(redis_client, "phibee") == "ok"
    assert integration_status.details(redis_client, "phibee")["window_size"] == 20
    assert 0 < redis_client.ttl(circuit.status_key("phibee")) <= integration_status.DOWN_HOLD_SECONDS


def test_a_rejected_call_means_the_system_answered_and_no_secret_reaches_the_status(redis_client, listener, glpi):
    client = make_client(glpi.url + "/", timeout=2, headers={"App-Token": "sim-app-token"})
    with pytest.raises(Exception):
        send(client, "glpi", "GET", "initSession", headers={"Authorization": "user_token not-the-secret-token"})
    info = integration_status.details(redis_client, "glpi")
    assert info["calls_ok"] == 1 and info["calls_error"] == 0  # a 4xx: GLPI is up
    for _ in range(3):
        integration_status.record_outcome(redis_client, "mysecret", False, 0.1,
                                          Unavailable("mysecret", "server error 502"))
    text = str(integration_status.details(redis_client, "mysecret"))
    assert "server error 502" in text and "not-the-secret-token" not in text


def test_the_listener_never_raises_and_stays_cheap_when_redis_is_unreachable(restore_listener):
    dead_redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5)
    integration_status.install(dead_redis)
    # The first call pays for the refused connection (and redis-py's own retries)...
    integration_status.listener("observium", False, 0.2, Unavailable("observium", "timed out"))
    started = time.perf_counter()
    for _ in range(50):
        integration_status.listener("observium", False, 0.2, Unavailable("observium", "timed out"))
    assert time.perf_counter() - started < 0.1  # ...the next ones skip Redis for a while


def test_integration_status_costs_one_redis_round_trip(redis_client):
    started = time.perf_counter()
    for _ in range(200):
        integration_status.record_outcome(redis_client, "observium", True, 0.05)
    per_call_ms = (time.perf_counter() - started) * 1000 / 200
    print(f"\nintegration status record: {per_call_ms:.3f} ms per call")
    assert per_call_ms < 5


# --- crash windows: a probe stopped by its time limit (Dramatiq's TimeLimitExceeded) around the mail ----------

class _MailThenTimeLimit:
    """The clients of a probe whose time limit strikes around the SMTP exchange (before or just after it)."""

    def __init__(self, clients, *, after_sending: bool):
        self._clients, self._after = clients, after_sending

    def __getattr__(self, name):
        return getattr(self._clients, name)

    @property
    def mail(self):
        return self

    def send_email(self, *args, **kwargs):
        from dramatiq.middleware.time_limit import TimeLimitExceeded

        if self._after:
            self._clients.mail.send_email(*args, **kwargs)
        raise TimeLimitExceeded()


def _outage_with_its_alert(redis_client, pool, clients, settings, glpi, mail_sink):
    fault(glpi, status=503)
    for _ in range(2):
        probe(redis_client, pool, clients, settings)
    assert mail_sink.count() == 1
    fault(glpi, clear=True)


def test_a_probe_stopped_before_the_recovery_mail_leaves_it_owed_and_the_next_probe_sends_it_once(
        redis_client, pool, clients, health_settings, glpi, mail_sink):
    from dramatiq.middleware.time_limit import TimeLimitExceeded

    _outage_with_its_alert(redis_client, pool, clients, health_settings, glpi, mail_sink)
    with pytest.raises(TimeLimitExceeded):
        probe(redis_client, pool, _MailThenTimeLimit(clients, after_sending=False), health_settings)
    assert mail_sink.count() == 1
    assert redis_client.exists(glpi_health.ALERTED_KEY) and not redis_client.exists(glpi_health.RECOVERY_CLAIM_KEY)
    resumed = probe(redis_client, pool, clients, health_settings)
    assert (resumed.status, resumed.alert) == ("ok", "recovery")
    for _ in range(2):
        assert probe(redis_client, pool, clients, health_settings).alert is None
    assert subjects(mail_sink) == ["[WIDIP] Alerte : GLPI indisponible",
                                   "[WIDIP] Rétablissement : GLPI de nouveau disponible"]


def test_a_recovery_mail_another_probe_is_sending_is_not_sent_twice(redis_client, pool, clients, health_settings,
                                                                    glpi, mail_sink):
    _outage_with_its_alert(redis_client, pool, clients, health_settings, glpi, mail_sink)
    redis_client.set(glpi_health.RECOVERY_CLAIM_KEY, "busy", ex=60)  # a concurrent probe is in the SMTP exchange
    assert probe(redis_client, pool, clients, health_settings).alert is None
    assert mail_sink.count() == 1 and redis_client.exists(glpi_health.ALERTED_KEY)
    redis_client.delete(glpi_health.RECOVERY_CLAIM_KEY)  # ...and was killed: its claim ran out
    assert probe(redis_client, pool, clients, health_settings).alert == "recovery"
    assert mail_sink.count() == 2


def test_a_recovery_mail_resent_after_a_stop_just_past_smtp_keeps_its_message_id(redis_client, pool, clients,
                                                                                  health_settings, glpi, mail_sink):
    from dramatiq.middleware.time_limit import TimeLimitExceeded

    _outage_with_its_alert(redis_client, pool, clients, health_settings, glpi, mail_sink)
    with pytest.raises(TimeLimitExceeded):
        probe(redis_client, pool, _MailThenTimeLimit(clients, after_sending=True), health_settings)
    assert probe(redis_client, pool, clients, health_settings).alert == "recovery"  # at least once...
    assert probe(redis_client, pool, clients, health_settings).alert is None
    recovery = [m for m in mail_sink.messages() if m["Subject"].startswith("[WIDIP] Rétablissement")]
    assert len(recovery) == 2 and recovery[0]["Message-ID"] == recovery[1]["Message-ID"]  # ...one message


def test_a_down_alert_accepted_by_smtp_is_not_sent_again_when_the_probe_then_fails(redis_client, pool, clients,
                                                                                   health_settings, glpi, mail_sink):
    fault(glpi, status=503)
    assert probe(redis_client, pool, clients, health_settings).status == "degraded"
    # The audit row after the mail cannot be written (no such database): the probe fails past SMTP
    broken = ConnectionPool(health_settings.database_url + " dbname=widip_gone", open=False, timeout=1,
                            reconnect_timeout=1)
    try:
        with pytest.raises(PoolTimeout):
            probe(redis_client, broken, clients, health_settings)
    finally:
        broken.close()
    assert mail_sink.count() == 1
    redis_client.delete(glpi_health.ALERT_SENT_KEY)  # the 5-minute hold is over: only the alerted flag is left
    for _ in range(3):
        assert probe(redis_client, pool, clients, health_settings).alert is None
    assert mail_sink.count() == 1
