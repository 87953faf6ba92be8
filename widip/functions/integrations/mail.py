"""SMTP client: sends plain-text French mail to allowlisted recipients only.

The mail tool is the service's only egress channel a model can reach, so this module enforces the
"lethal trifecta" rule (docs/architecture.md) in code, before any connection is opened:
a recipient must be on an internal domain, listed in ALERT_MAIL_RECIPIENTS, or be the *verified*
GLPI requester handed in by the caller (never an address read from ticket text). Headers are built
by `email.message.EmailMessage` from checked single-line values; bodies are plain text and are
HTML-escaped when sent as HTML. SMTP has no idempotency, so callers pass a `message_id` derived from
their action id (§E) and record the send themselves; this module does not deduplicate.

aiosmtplib is asynchronous and our stack is threads: every operation runs its own short event loop
(`asyncio.run`) on a fresh connection, which is safe from any number of threads at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import logging
import re
import socket
import ssl
import time
from dataclasses import asdict, dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Iterable, Mapping

import aiosmtplib

from widip.errors import IntegrationError, Invalid, PolicyDenied, Rejected, Unavailable
from widip.functions.integrations import mail_templates
from widip.functions.integrations.http_client import notify_outcome

logger = logging.getLogger(__name__)

SYSTEM = "smtp"
TLS_MODES = ("starttls", "tls", "none")
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_RECIPIENTS = 20
MAX_SUBJECT_CHARS = 250

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_ID_TOKEN = re.compile(r"^[A-Za-z0-9._:+=-]{1,200}$")
_FULL_MESSAGE_ID = re.compile(r"^<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~:-]{1,200}@[A-Za-z0-9.-]{1,200}>$")


@dataclass(frozen=True)
class SentMail:
    """A message the server accepted (250 after DATA); `refused` lists recipients it turned down."""

    message_id: str
    recipients: tuple[str, ...]
    subject: str
    refused: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {**asdict(self), "recipients": list(self.recipients), "refused": list(self.refused)}


@dataclass(frozen=True)
class ConnectionCheck:
    """Outcome of `test_connection`; `error` is a safe message when something failed."""

    host: str
    port: int
    tls_mode: str
    connected: bool
    tls: bool
    authenticated: bool
    banner: str
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class MailClient:
    """One SMTP relay, its sender identity and the recipient allowlist."""

    def __init__(self, host: str, port: int, *, user: str | None = None, password: str | None = None,
                 tls_mode: str = "starttls", from_email: str, from_name: str, ca_file: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS, allowed_recipients: Iterable[str] = (),
                 internal_domains: Iterable[str] = ()):
        if tls_mode not in TLS_MODES:
            raise ValueError(f"tls_mode must be one of {', '.join(TLS_MODES)}, got {tls_mode!r}")
        self.host, self.port, self.tls_mode = host, int(port), tls_mode
        self.timeout = float(timeout)
        self.from_email = _address(from_email)
        self.from_name = _single_line(from_name, "from_name")
        self._user, self._password = user, password
        self._ca_file = ca_file
        self._allowed = frozenset(_address(a) for a in allowed_recipients)
        self._internal_domains = frozenset(d.strip().lower() for d in internal_domains if d.strip())
        self._alert_recipients = tuple(_address(a) for a in allowed_recipients)
        self._local_hostname = socket.gethostname() or "localhost"

    @classmethod
    def from_settings(cls, settings) -> "MailClient":
        """Build from SMTP_* settings; the alert recipients double as the explicit allowlist."""
        if not settings.smtp_host:
            raise Invalid("SMTP_HOST is not configured")
        return cls(settings.smtp_host, settings.smtp_port, user=settings.smtp_user,
                   password=settings.smtp_password, tls_mode=settings.smtp_use_tls,
                   from_email=settings.smtp_from_email, from_name=settings.smtp_from_name,
                   ca_file=settings.ca_file, timeout=settings.integration_timeout_seconds,
                   allowed_recipients=settings.alert_mail_recipients,
                   internal_domains=settings.mail_internal_domains)

    def __repr__(self) -> str:
        return f"MailClient({self.host}:{self.port}, tls_mode={self.tls_mode}, user={self._user!r})"

    # -- operations ---------------------------------------------------------------------------------

    def test_connection(self) -> ConnectionCheck:
        """Connect, negotiate TLS, log in when a user is set, then QUIT; failures come back in `error`."""
        state = {"banner": "", "tls": False, "connected": False}

        async def probe():
            smtp = self._smtp(login=False)
            greeting = await smtp.connect()
            state.update(connected=True, banner=greeting.message.splitlines()[0] if greeting.message else "",
                         tls=smtp.get_transport_info("sslcontext") is not None)
            if self._user:
                await smtp.login(self._user, self._password or "")
            await smtp.quit()

        try:
            self._call("test_connection", probe)
        except IntegrationError as exc:
            return ConnectionCheck(self.host, self.port, self.tls_mode, state["connected"], state["tls"],
                                   False, state["banner"], error=exc.message)
        return ConnectionCheck(self.host, self.port, self.tls_mode, True, state["tls"], bool(self._user),
                               state["banner"])

    def send_email(self, to: str | Iterable[str], subject: str, body: str, *,
                   verified_requester: str | None = None, message_id: str | None = None,
                   html: bool = False) -> SentMail:
        """Send one message; every recipient is checked against the allowlist before connecting.

        `verified_requester` is the requester's address as resolved by the caller from GLPI, never a
        value taken from ticket or model text. `message_id` (a bare action id or a full `<id@domain>`)
        fixes the Message-ID so a resend after an unknown outcome can be recognised downstream.
        Raises Invalid (malformed input), PolicyDenied (recipient not allowed), Unavailable, Rejected.
        """
        recipients = self.check_recipients(to, verified_requester=verified_requester)
        subject = _single_line(subject, "subject")
        if len(subject) > MAX_SUBJECT_CHARS:
            raise Invalid(f"subject longer than {MAX_SUBJECT_CHARS} characters")
        message = self._build(recipients, subject, str(body), _message_id(message_id, self.from_email), html)

        async def deliver():
            async with self._smtp(login=True) as smtp:
                return await smtp.send_message(message, sender=self.from_email, recipients=list(recipients))

        refused_map, _ = self._call("send_email", deliver)
        refused = tuple(sorted(refused_map))
        sent = SentMail(message["Message-ID"], tuple(r for r in recipients if r not in refused), subject, refused)
        logger.info("mail sent message_id=%s recipients=%d refused=%d", sent.message_id,
                    len(sent.recipients), len(refused))
        return sent

    def send_alert(self, device: str, duration_minutes: int, details: str | Mapping[str, object] | None = None,
                   *, to: str | Iterable[str] | None = None, message_id: str | None = None) -> SentMail:
        """Send the French device-down alert to ALERT_MAIL_RECIPIENTS (or to given internal recipients)."""
        recipients = to if to is not None else self._alert_recipients
        if not recipients:
            raise Invalid("no alert recipient: ALERT_MAIL_RECIPIENTS is empty")
        subject, body = mail_templates.device_down_alert(device, duration_minutes, details)
        return self.send_email(recipients, subject, body, message_id=message_id)

    def check_recipients(self, to: str | Iterable[str], *, verified_requester: str | None = None) -> tuple[str, ...]:
        """Normalised, de-duplicated recipients; PolicyDenied names the first one not allowed."""
        items = [to] if isinstance(to, str) else list(to)
        if not items:
            raise Invalid("no recipient")
        requester = _address(verified_requester) if verified_requester else None
        recipients: list[str] = []
        for item in items:
            address = _address(item)
            if address in recipients:
                continue
            domain = address.rsplit("@", 1)[1]
            if not (domain in self._internal_domains or address in self._allowed or address == requester):
                logger.warning("mail refused: recipient %s is not allowed", address)
                raise PolicyDenied(f"destinataire non autorisé : {address}", recipient=address)
            recipients.append(address)
        if len(recipients) > MAX_RECIPIENTS:
            raise Invalid(f"more than {MAX_RECIPIENTS} recipients")
        return tuple(recipients)

    # -- internals ----------------------------------------------------------------------------------

    def _build(self, recipients: tuple[str, ...], subject: str, body: str, message_id: str,
               as_html: bool) -> EmailMessage:
        message = EmailMessage()
        message["From"] = Address(self.from_name, addr_spec=self.from_email)
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = message_id
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body, charset="utf-8", cte="quoted-printable")
        if as_html:
            # NOTE: the body may come from a model; it is escaped, so no tag, link or image survives.
            escaped = html.escape(body).replace("\n", "<br>\n")
            message.add_alternative(f"<html><body><p>{escaped}</p></body></html>\n", subtype="html",
                                    charset="utf-8", cte="quoted-printable")
        return message

    def _smtp(self, *, login: bool) -> aiosmtplib.SMTP:
        tls_context = None
        if self.tls_mode != "none":
            tls_context = ssl.create_default_context(cafile=self._ca_file)
        return aiosmtplib.SMTP(
            hostname=self.host, port=self.port, timeout=self.timeout, local_hostname=self._local_hostname,
            use_tls=self.tls_mode == "tls", start_tls=self.tls_mode == "starttls", tls_context=tls_context,
            username=self._user if login else None, password=self._password if login else None,
        )

    def _call(self, operation: str, make_coroutine):
        """Run one SMTP exchange under an overall deadline; map failures; notify outcome listeners."""
        started = time.perf_counter()

        async def bounded():
            async with asyncio.timeout(self.timeout):
                return await make_coroutine()

        try:
            result = _run(bounded())
        except Exception as exc:  # noqa: BLE001 - every failure is translated, none is swallowed
            error = _translate(exc, time.perf_counter() - started)
            _notify(started, error)
            logger.warning("smtp %s to %s:%s failed: %s", operation, self.host, self.port, error.message)
            raise error from exc
        _notify(started, None)
        return result


def _run(coroutine):
    """Run a coroutine to completion from synchronous code, even inside a thread that has a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _translate(exc: BaseException, elapsed: float) -> IntegrationError:
    """aiosmtplib/socket errors → Unavailable (retry later) or Rejected (will not get better)."""
    if isinstance(exc, IntegrationError):
        return exc
    if _caused_by(exc, ssl.SSLCertVerificationError):
        return Rejected(SYSTEM, "TLS certificate verification failed")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = " ".join(str(exc.message).split())[:200]
        code = "auth_failed" if isinstance(exc, aiosmtplib.SMTPAuthenticationError) else None
        if exc.code >= 500:
            return Rejected(SYSTEM, f"{exc.code} {text}", status_code=exc.code, code=code)
        # A 4xx reply is the relay refusing this time: the message was not accepted.
        return Unavailable(SYSTEM, f"{exc.code} {text}", status_code=exc.code, code=code, maybe_applied=False)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError)):
        return Unavailable(SYSTEM, f"timed out after {elapsed:.1f} s")
    if isinstance(exc, (aiosmtplib.SMTPConnectError, ConnectionRefusedError)):
        return Unavailable(SYSTEM, f"cannot connect ({type(exc).__name__})", maybe_applied=False)
    if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, OSError)):
        return Unavailable(SYSTEM, f"connection lost ({type(exc).__name__})")
    if isinstance(exc, aiosmtplib.SMTPException):
        # STARTTLS or AUTH not offered by the server: a configuration mismatch, not a passing outage.
        return Rejected(SYSTEM, " ".join(str(exc).split())[:200])
    raise exc


def _caused_by(exc: BaseException, kind: type) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _notify(started: float, error: IntegrationError | None) -> None:
    notify_outcome(SYSTEM, started, error)


def _single_line(value: str, what: str) -> str:
    if value is None or "\r" in value or "\n" in value:
        raise Invalid(f"{what} must be a single line (CR/LF refused)")
    return value.strip()


def _address(value: str) -> str:
    """A bare, lower-cased addr-spec; anything with CR/LF, a display name or a second address is Invalid."""
    if not isinstance(value, str):
        raise Invalid("an e-mail address must be a string")
    text = value.strip()
    if "\r" in text or "\n" in text or not _ADDRESS.match(text):
        raise Invalid(f"invalid e-mail address: {' '.join(text.split())[:100]!r}")
    return text.lower()


def _message_id(value: str | None, from_email: str) -> str:
    """The given id as `<token@sender-domain>` (or verbatim when already `<…@…>`), else a fresh one."""
    domain = from_email.rsplit("@", 1)[1]
    if value is None:
        return make_msgid(domain=domain)
    value = value.strip()
    if _FULL_MESSAGE_ID.match(value):
        return value
    if not _ID_TOKEN.match(value):
        raise Invalid("message_id must be a simple token (letters, digits, . _ : + = -) or <id@domain>")
    return f"<{value}@{domain}>"
