"""The SMTP client against the aiosmtpd sink over real sockets, plus the French templates."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from simulators.smtp import start_silent_server, start_sink
from simulators.tls import generate_tls_files
from widip.config import Settings
from widip.errors import Invalid, PolicyDenied, Rejected, Unavailable
from widip.functions.integrations import mail_templates
from widip.functions.integrations.http_client import OUTCOME_LISTENERS
from widip.functions.integrations.mail import MailClient

PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return generate_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def sink(tmp_path):
    running = start_sink(tmp_path / "mail")
    yield running
    running.stop()


@pytest.fixture
def tls_sink(tmp_path, tls_files):
    running = start_sink(tmp_path / "mail", tls_cert=tls_files.cert_file, tls_key=tls_files.key_file,
                         require_starttls=True, auth_users={"wibot@widip.fr": PASSWORD})
    yield running
    running.stop()


def plain_client(sink, **overrides) -> MailClient:
    options = dict(tls_mode="none", from_email="wibot@widip.fr", from_name="WIBOT Sentinel",
                   allowed_recipients=("astreinte@prestataire.fr",), internal_domains=("widip.fr",), timeout=5)
    options.update(overrides)
    return MailClient(sink.host, sink.port, **options)


def tls_client(sink, tls_files, password=PASSWORD, **overrides) -> MailClient:
    options = dict(tls_mode="starttls", user="wibot@widip.fr", password=password, ca_file=tls_files.ca_file)
    return plain_client(sink, **{**options, **overrides})


# -- delivery ------------------------------------------------------------------------------------


def test_a_plain_mail_lands_in_the_maildir_with_headers_and_accents_intact(sink):
    body = "Bonjour,\nL'équipement « RTR-Ehpad-Lilas » ne répond plus — vérifiez l'alimentation.\n"
    sent = plain_client(sink).send_email("Support@WIDIP.fr", "Équipement injoignable à Lyon", body)

    [message] = sink.messages()
    assert message["From"].addresses[0].display_name == "WIBOT Sentinel"
    assert message["From"].addresses[0].addr_spec == "wibot@widip.fr"
    assert message["To"] == "support@widip.fr"
    assert message["Subject"] == "Équipement injoignable à Lyon"
    assert message.get_content() == body
    assert message["Message-ID"] == sent.message_id
    assert sent.recipients == ("support@widip.fr",)
    assert sent.to_dict()["recipients"] == ["support@widip.fr"]


def test_starttls_with_auth_against_a_self_signed_relay_works_when_the_ca_is_given(tls_sink, tls_files):
    client = tls_client(tls_sink, tls_files)

    check = client.test_connection()
    client.send_email("tech@widip.fr", "Test STARTTLS", "Message chiffré.")

    assert (check.connected, check.tls, check.authenticated, check.error) == (True, True, True, None)
    assert "WIDIP SMTP sink" in check.banner
    assert PASSWORD not in str(check.to_dict())
    assert [m["Subject"] for m in tls_sink.messages()] == ["Test STARTTLS"]


def test_a_wrong_password_is_rejected_without_leaking_the_password(tls_sink, tls_files):
    client = tls_client(tls_sink, tls_files, password="wrong-password")

    with pytest.raises(Rejected) as caught:
        client.send_email("tech@widip.fr", "Test", "Corps")

    assert caught.value.status_code == 535 and caught.value.code == "auth_failed"
    assert "wrong-password" not in str(caught.value) and "wrong-password" not in repr(client)
    check = client.test_connection()
    assert (check.connected, check.authenticated) == (True, False) and "535" in check.error
    assert tls_sink.count() == 0


def test_an_untrusted_certificate_is_rejected(tls_sink, tls_files):
    client = tls_client(tls_sink, tls_files, ca_file=None)

    with pytest.raises(Rejected, match="certificate"):
        client.send_email("tech@widip.fr", "Test", "Corps")


def test_implicit_tls_mode_talks_tls_from_the_first_byte(tmp_path, tls_files):
    sink = start_sink(tmp_path / "mail", tls_cert=tls_files.cert_file, tls_key=tls_files.key_file,
                      implicit_tls=True)
    try:
        client = plain_client(sink, tls_mode="tls", ca_file=tls_files.ca_file)
        assert client.test_connection().tls is True
        client.send_email("tech@widip.fr", "Implicite", "TLS")
        assert sink.count() == 1
    finally:
        sink.stop()


def test_concurrent_sends_from_five_threads_all_arrive(sink):
    client = plain_client(sink)
    errors: list[Exception] = []

    def send(n: int) -> None:
        try:
            client.send_email("tech@widip.fr", f"Message {n}", f"Corps {n}")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)

    assert errors == []
    assert sorted(m["Subject"] for m in sink.messages()) == [f"Message {n}" for n in range(5)]


def test_sending_from_code_that_already_runs_an_event_loop_still_works(sink):
    async def inside_a_loop():
        return plain_client(sink).send_email("tech@widip.fr", "Depuis une boucle", "ok")

    assert asyncio.run(inside_a_loop()).recipients == ("tech@widip.fr",)
    assert sink.count() == 1


# -- recipient allowlist and header injection ----------------------------------------------------------


def test_an_external_recipient_is_refused_before_anything_is_sent(sink):
    client = plain_client(sink)

    with pytest.raises(PolicyDenied, match="attaquant@evil.example"):
        client.send_email(["tech@widip.fr", "attaquant@evil.example"], "Export", "Données")

    assert sink.count() == 0


def test_the_verified_requester_may_receive_mail_but_no_one_else_outside(sink):
    client = plain_client(sink)

    client.send_email("Marie.Durand@ehpad-les-lilas.fr", "Votre demande", "Bonjour",
                      verified_requester="marie.durand@ehpad-les-lilas.fr")
    with pytest.raises(PolicyDenied, match="directeur@ehpad-les-lilas.fr"):
        client.send_email("directeur@ehpad-les-lilas.fr", "Votre demande", "Bonjour",
                          verified_requester="marie.durand@ehpad-les-lilas.fr")

    assert [m["To"] for m in sink.messages()] == ["marie.durand@ehpad-les-lilas.fr"]


def test_an_address_listed_in_alert_recipients_is_allowed_even_off_domain(sink):
    plain_client(sink).send_email("astreinte@prestataire.fr", "Astreinte", "Bonjour")
    assert sink.count() == 1


@pytest.mark.parametrize("to, subject", [
    ("tech@widip.fr", "Alerte\r\nBcc: victime@evil.example"),
    ("tech@widip.fr", "Alerte\nX-Injected: 1"),
    ("tech@widip.fr\r\nBcc: victime@evil.example", "Alerte"),
    ("Tech <tech@widip.fr>, victime@evil.example", "Alerte"),
])
def test_header_injection_through_subject_or_address_is_refused(sink, to, subject):
    with pytest.raises(Invalid):
        plain_client(sink).send_email(to, subject, "Corps")
    assert sink.count() == 0


def test_html_mail_escapes_model_content_so_tags_and_links_are_inert(sink):
    payload = 'Voir <img src="http://evil.example/x.png"><script>alert(1)</script>'
    plain_client(sink).send_email("tech@widip.fr", "Rapport", payload, html=True)

    [message] = sink.messages()
    html_part = message.get_body(("html",)).get_content()
    assert "<script>" not in html_part and "<img" not in html_part
    assert "&lt;script&gt;" in html_part
    assert message.get_body(("plain",)).get_content().strip() == payload


# -- idempotency -------------------------------------------------------------------------------------


def test_a_fixed_message_id_from_an_action_id_is_used_as_the_message_id(sink):
    client = plain_client(sink)

    first = client.send_email("tech@widip.fr", "Alerte", "Corps", message_id="action-7f3a")
    client.send_email("tech@widip.fr", "Alerte", "Corps", message_id="<action-7f3a@widip.fr>")

    assert first.message_id == "<action-7f3a@widip.fr>"
    assert [m["Message-ID"] for m in sink.messages()] == ["<action-7f3a@widip.fr>"] * 2
    with pytest.raises(Invalid):
        client.send_email("tech@widip.fr", "Alerte", "Corps", message_id="a>\r\nBcc: x@evil.example")


# -- alerts ------------------------------------------------------------------------------------------


def test_send_alert_mails_the_french_device_down_alert_to_the_alert_recipients(sink):
    client = plain_client(sink, allowed_recipients=("support@widip.fr", "tech@widip.fr"))

    sent = client.send_alert("RTR-EHPAD-LILAS", 25, {"Client": "EHPAD Les Lilas", "IP": "10.12.0.1"},
                             message_id="alert-42")

    [message] = sink.messages()
    assert message["Subject"] == "[WIDIP] Alerte : équipement RTR-EHPAD-LILAS injoignable depuis 25 min"
    assert message["X-Envelope-To"] == "support@widip.fr, tech@widip.fr"
    body = message.get_content()
    assert "injoignable depuis 25 minutes" in body and "- Client : EHPAD Les Lilas" in body
    assert sent.message_id == "<alert-42@widip.fr>"


def test_send_alert_to_an_external_address_or_with_no_recipient_is_refused(sink):
    with pytest.raises(PolicyDenied):
        plain_client(sink).send_alert("RTR-1", 30, "", to=["someone@gmail.com"])
    with pytest.raises(Invalid):
        plain_client(sink, allowed_recipients=()).send_alert("RTR-1", 30, "")
    assert sink.count() == 0


# -- failures ----------------------------------------------------------------------------------------


def test_a_relay_that_accepts_tcp_but_never_answers_is_unavailable_within_the_timeout():
    silent = start_silent_server()
    try:
        client = MailClient(silent.host, silent.port, tls_mode="none", from_email="wibot@widip.fr",
                            from_name="WIBOT", internal_domains=("widip.fr",), timeout=1.0)
        started = time.monotonic()
        with pytest.raises(Unavailable):
            client.send_email("tech@widip.fr", "Alerte", "Corps")
        assert time.monotonic() - started < 2.0
    finally:
        silent.stop()


def test_nothing_listening_is_unavailable_and_listeners_hear_about_it():
    silent = start_silent_server()
    port = silent.port
    silent.stop()  # the port is now closed: connection refused
    heard = []
    listener = lambda system, ok, elapsed, error: heard.append((system, ok))  # noqa: E731
    OUTCOME_LISTENERS.append(listener)
    try:
        client = MailClient("127.0.0.1", port, tls_mode="none", from_email="wibot@widip.fr",
                            from_name="WIBOT", internal_domains=("widip.fr",), timeout=2.0)
        with pytest.raises(Unavailable, match="cannot connect"):
            client.send_email("tech@widip.fr", "Alerte", "Corps")
        assert client.test_connection().connected is False
    finally:
        OUTCOME_LISTENERS.remove(listener)
    assert heard == [("smtp", False), ("smtp", False)]


def test_a_permanent_5xx_reply_is_rejected_and_a_transient_4xx_is_unavailable(sink):
    client = plain_client(sink)

    sink.set_fault("554 5.7.1 Message refused")
    with pytest.raises(Rejected) as caught:
        client.send_email("tech@widip.fr", "Alerte", "Corps")
    assert caught.value.status_code == 554
    sink.set_fault("451 4.3.0 Try again later")
    with pytest.raises(Unavailable):
        client.send_email("tech@widip.fr", "Alerte", "Corps")
    sink.set_fault(None)
    client.send_email("tech@widip.fr", "Alerte", "Corps")
    assert sink.count() == 1


def test_from_settings_uses_the_smtp_settings_and_alert_recipients(sink):
    settings = Settings(database_url="postgresql://unused", redis_url="redis://unused",
                        smtp_host=sink.host, smtp_port=sink.port, smtp_use_tls="none",
                        smtp_from_email="wibot@widip.fr", smtp_from_name="WIBOT Sentinel",
                        alert_mail_recipients=("support@widip.fr",), integration_timeout_seconds=3.0)

    MailClient.from_settings(settings).send_alert("SW-CLINIQUE-02", 21, "Port uplink down")

    [message] = sink.messages()
    assert message["To"] == "support@widip.fr" and "WIBOT Sentinel" in message["From"]


# -- templates ---------------------------------------------------------------------------------------


def test_one_line_template_fields_cannot_carry_a_header_into_the_subject():
    subject, _ = mail_templates.device_down_alert("RTR-1\r\nBcc: x@evil.example", 20)
    assert "\n" not in subject and "\r" not in subject


def test_glpi_down_and_recovery_templates_are_french():
    down_subject, down_body = mail_templates.glpi_down_alert(failures=2, last_error="timeout après 10 s")
    up_subject, up_body = mail_templates.glpi_recovery_alert(down_minutes=12)

    assert down_subject == "[WIDIP] Alerte : GLPI indisponible"
    assert "Échecs consécutifs du contrôle de santé : 2" in down_body and "rejouées" in down_body
    assert up_subject == "[WIDIP] Rétablissement : GLPI de nouveau disponible"
    assert "environ 12 minutes" in up_body
