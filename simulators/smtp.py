"""SMTP sink for tests and the demo: a real aiosmtpd server that files every message in a Maildir.

It is not a relay: nothing leaves the machine. It speaks real ESMTP (STARTTLS with a given
certificate, or implicit TLS; AUTH PLAIN/LOGIN against a user table), so the service's client cannot
tell it from a production relay. Tests read what "was sent" with `messages()`, and make the server
answer badly with `set_fault("451 4.3.0 Try again later")`. `start_silent_server()` is the other
failure: a port that accepts TCP connections but never says a word (a hung relay).

Demo: `python -m simulators.smtp --maildir var/mail --port 2525`, then read var/mail with any
Maildir-aware client (mutt -f var/mail) or `ls var/mail/new`.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import signal
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Mapping

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
SERVER_NAME = "smtp.sim.widip.local"


class _DropLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4 warns about its own deprecated attribute on every successful AUTH; it is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataWarning())


class SinkHandler:
    """aiosmtpd handler: stores each accepted message in the Maildir, unless a fault reply is set."""

    def __init__(self, maildir_path: str | Path):
        # Maildir(create=True) only builds cur/new/tmp when the directory itself is missing.
        for sub in ("cur", "new", "tmp"):
            (Path(maildir_path) / sub).mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(str(maildir_path), create=False)
        self.fault: str | None = None
        self.accepted = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self.fault:
            return self.fault
        # Envelope headers let tests see Bcc-style recipients that are not in the To: header.
        prefix = (f"X-Envelope-From: {envelope.mail_from}\r\n"
                  f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n").encode("utf-8")
        content = (prefix + envelope.original_content).replace(b"\r\n", b"\n")
        with self._lock:
            key = self.maildir.add(content)
            self.accepted += 1
        logger.info("sink stored message %s from %s to %d recipient(s)", key, envelope.mail_from,
                    len(envelope.rcpt_tos))
        return "250 2.0.0 Message accepted for delivery"


def _authenticator(users: Mapping[str, str]):
    """AUTH PLAIN/LOGIN checked against `users` (login → password)."""
    def authenticate(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            if login in users and users[login] == auth_data.password.decode("utf-8", "replace"):
                return AuthResult(success=True, auth_data=login)
            logger.info("sink refused AUTH %s for %r", mechanism, login)
        return AuthResult(success=False, handled=False)
    return authenticate


class _Controller(Controller):
    """aiosmtpd's Controller, able to listen on port 0 (it needs the real port for its start probe)."""

    def _trigger_server(self):
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SmtpSink:
    """A running sink: `host`/`port` to connect to, `messages()` to read what arrived, `stop()`."""

    host: str
    port: int
    maildir_path: Path
    handler: SinkHandler
    controller: _Controller = field(repr=False)

    def messages(self) -> list[EmailMessage]:
        """Every stored message, oldest first, parsed with the modern email policy."""
        with self.handler._lock:
            entries = [(m.get_date(), key, bytes(m)) for key, m in self.handler.maildir.iteritems()]
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        return [email.message_from_bytes(raw, policy=email.policy.default) for _, _, raw in entries]

    def count(self) -> int:
        with self.handler._lock:
            return len(self.handler.maildir)

    def set_fault(self, reply: str | None) -> None:
        """Answer DATA with `reply` (e.g. "554 5.7.1 Refused" or "451 4.3.0 Busy"); None restores 250."""
        self.handler.fault = reply

    def stop(self) -> None:
        self.controller.stop()


def start_sink(maildir_path: str | Path, *, host: str = DEFAULT_HOST, port: int = 0,
               tls_cert: str | Path | None = None, tls_key: str | Path | None = None,
               require_starttls: bool = False, implicit_tls: bool = False,
               auth_users: Mapping[str, str] | None = None) -> SmtpSink:
    """Start the sink in a background thread; port 0 picks a free port.

    With `tls_cert`/`tls_key` the server offers STARTTLS (or speaks TLS from the first byte with
    `implicit_tls`). With `auth_users`, AUTH is required before MAIL; it is only offered after TLS
    when TLS is configured (as real relays do), and in clear text otherwise (demo convenience).
    """
    tls_context = None
    if tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(str(tls_cert), str(tls_key) if tls_key else None)
    handler = SinkHandler(maildir_path)
    options: dict = {"server_hostname": SERVER_NAME, "ident": "WIDIP SMTP sink"}
    if tls_context is not None and implicit_tls:
        options["ssl_context"] = tls_context
    elif tls_context is not None:
        options.update(tls_context=tls_context, require_starttls=require_starttls)
    if auth_users:
        options.update(authenticator=_authenticator(dict(auth_users)), auth_required=True,
                       auth_require_tls=tls_context is not None)
    controller = _Controller(handler, hostname=host, port=port, **options)
    controller.start()
    logger.info("SMTP sink listening on %s:%s (maildir %s)", host, controller.port, maildir_path)
    return SmtpSink(host, controller.port, Path(maildir_path), handler, controller)


@dataclass
class SilentServer:
    """A listening socket that completes TCP handshakes and never answers (a hung SMTP relay)."""

    host: str
    port: int
    sock: socket.socket = field(repr=False)

    def stop(self) -> None:
        self.sock.close()


def start_silent_server(host: str = DEFAULT_HOST) -> SilentServer:
    """The kernel accepts connections into the backlog; nobody ever reads or writes them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(64)
    return SilentServer(host, sock.getsockname()[1], sock)


def main(argv: list[str] | None = None) -> None:
    """Run the sink in the foreground until SIGINT/SIGTERM (used by `make demo`)."""
    from simulators.base import option, parse_args

    args = parse_args("WIDIP SMTP sink (writes a Maildir)", 2525, argv,
                      option("--maildir", default="var/mail"), option("--tls-cert"), option("--tls-key"),
                      option("--require-starttls", action="store_true"), option("--implicit-tls", action="store_true"),
                      option("--auth", action="append", default=[], metavar="USER:PASSWORD",
                             help="accept this login (repeatable); AUTH becomes mandatory"), host=DEFAULT_HOST)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO
    users = dict(item.split(":", 1) for item in args.auth)
    sink = start_sink(args.maildir, host=args.host, port=args.port, tls_cert=args.tls_cert,
                      tls_key=args.tls_key, require_starttls=args.require_starttls,
                      implicit_tls=args.implicit_tls, auth_users=users or None)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"SMTP sink on {sink.host}:{sink.port}, writing to {Path(args.maildir).resolve()}", flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
