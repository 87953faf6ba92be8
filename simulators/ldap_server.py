"""LDAP and LDAPS listeners for the AD stand-in, built on ldaptor's BER codec and Twisted.

ldaptor decodes and encodes the protocol; the rules live in simulators/ad_directory.py. Tests call
`start_server(directory, tls=…)`, which runs the Twisted reactor once per process in a daemon thread
and adds listeners to it; `stop()` closes them. The demo runs the same thing from
`python -m simulators.active_directory`.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import dataclass

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap.ldapserver import BaseLDAPServer
from twisted.internet import protocol, reactor, ssl, task
from twisted.internet.threads import blockingCallFromThread

from simulators.ad_directory import UNWILLING, Directory, LdapError, MSG_UNWILLING
from simulators.ldap_filter import UnsupportedFilter, matches
from simulators.tls import TlsFiles, generate_tls_files

logger = logging.getLogger(__name__)

_reactor_lock = threading.Lock()
_reactor_thread: threading.Thread | None = None


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ADProtocol(BaseLDAPServer):
    """One client connection: bind state, TLS flag, and one handler per LDAP operation."""

    fail_LDAPBindRequest = pureldap.LDAPBindResponse
    fail_LDAPSearchRequest = pureldap.LDAPSearchResultDone
    fail_LDAPModifyRequest = pureldap.LDAPModifyResponse

    def __init__(self, directory: Directory, secure: bool):
        super().__init__()
        self.directory, self.secure = directory, secure
        self.bound: str | None = None

    def connectionMade(self):
        super().connectionMade()
        self.transport.setTcpNoDelay(True)

    def _answer(self, op: str, target: str, work):
        """Run `work()` after the configured fault delay; record the outcome (never values)."""
        fault = dict(self.directory.fault)

        def run():
            try:
                if fault.get("result_code") and op in fault.get("ops", [op]):
                    raise LdapError(int(fault["result_code"]), fault.get("message", "injected fault\x00"))
                response = work()
                code = 0
            except LdapError as exc:
                code = exc.code
                response = (exc.code, exc.message, exc.matched_dn)
            except UnsupportedFilter:
                code = UNWILLING
                response = (UNWILLING, MSG_UNWILLING, "")
            self.directory.record(op, target, code)
            return response

        delay = float(fault.get("delay_seconds") or 0)
        return task.deferLater(reactor, delay, run) if delay > 0 else run()

    def handle_LDAPBindRequest(self, request, controls, reply):
        if request.version != 3 or request.sasl:
            return pureldap.LDAPBindResponse(resultCode=7, errorMessage="00002027: authMethodNotSupported\x00")
        name, password = _text(request.dn), _text(request.auth or b"")

        def work():
            self.bound = None
            self.bound = self.directory.bind(name, password, self.secure)
            return None

        def respond(outcome):
            if outcome is None:
                return pureldap.LDAPBindResponse(resultCode=0)
            code, message, _ = outcome
            return pureldap.LDAPBindResponse(resultCode=code, errorMessage=message)

        return _then(self._answer("bind", name, work), respond)

    def handle_LDAPSearchRequest(self, request, controls, reply):
        base = _text(request.baseObject)
        attributes = [_text(a) for a in request.attributes]

        def work():
            return self.directory.search(self.bound, base, request.scope,
                                         lambda get, chain: matches(request.filter, get, chain), attributes)

        def respond(outcome):
            if isinstance(outcome, tuple):
                code, message, matched = outcome
                return pureldap.LDAPSearchResultDone(resultCode=code, errorMessage=message, matchedDN=matched)
            for dn, values in outcome:
                reply(pureldap.LDAPSearchResultEntry(objectName=dn, attributes=values))
            return pureldap.LDAPSearchResultDone(resultCode=0)

        return _then(self._answer("search", base, work), respond)

    def handle_LDAPModifyRequest(self, request, controls, reply):
        dn = _text(request.object)
        changes = []
        for item in request.modification:
            operation, partial = item.data
            name, values = partial.data
            changes.append((operation.value, _text(name.value), [v.value for v in values.data]))

        def respond(outcome):
            if outcome is None:
                return pureldap.LDAPModifyResponse(resultCode=0)
            code, message, matched = outcome
            return pureldap.LDAPModifyResponse(resultCode=code, errorMessage=message, matchedDN=matched)

        return _then(self._answer("modify", dn, lambda: self.directory.modify(self.bound, dn, changes, self.secure)),
                     respond)

    def handle_LDAPUnbindRequest(self, request, controls, reply):
        self.transport.loseConnection()

    def handle_LDAPAbandonRequest(self, request, controls, reply):
        return None

    # The stand-in does not create, delete, rename or compare objects.
    def handle_LDAPAddRequest(self, request, controls, reply):
        return pureldap.LDAPAddResponse(resultCode=UNWILLING, errorMessage=MSG_UNWILLING)

    def handle_LDAPDelRequest(self, request, controls, reply):
        return pureldap.LDAPDelResponse(resultCode=UNWILLING, errorMessage=MSG_UNWILLING)

    def handle_LDAPModifyDNRequest(self, request, controls, reply):
        return pureldap.LDAPModifyDNResponse(resultCode=UNWILLING, errorMessage=MSG_UNWILLING)

    def handle_LDAPCompareRequest(self, request, controls, reply):
        return pureldap.LDAPCompareResponse(resultCode=UNWILLING, errorMessage=MSG_UNWILLING)


def _then(result, callback):
    """Apply `callback` to a value or to a Deferred's result."""
    if hasattr(result, "addCallback"):
        return result.addCallback(callback)
    return callback(result)


class _Factory(protocol.ServerFactory):
    def __init__(self, directory: Directory, secure: bool):
        self.directory, self.secure = directory, secure

    def buildProtocol(self, addr):
        proto = ADProtocol(self.directory, self.secure)
        proto.factory = self
        return proto


@dataclass
class LdapServerHandle:
    """Running listeners: `ldap_url` (plain), `ldaps_url` (TLS, trust `tls.ca_file`)."""

    directory: Directory
    ldap_url: str
    ldaps_url: str | None
    tls: TlsFiles | None
    _ports: list

    def stop(self) -> None:
        for port in self._ports:
            blockingCallFromThread(reactor, port.stopListening)
        self._ports = []


def _ensure_reactor() -> None:
    """Start the (single, not restartable) Twisted reactor in a daemon thread if nobody runs it yet."""
    global _reactor_thread
    with _reactor_lock:
        if _reactor_thread is not None or reactor.running:
            return
        started = threading.Event()
        reactor.callWhenRunning(started.set)
        _reactor_thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                                           name="ldap-reactor", daemon=True)
        _reactor_thread.start()
        if not started.wait(10):
            raise RuntimeError("twisted reactor did not start")


def _context_factory(tls: TlsFiles):
    with open(tls.cert_file, "rb") as cert, open(tls.key_file, "rb") as key:
        return ssl.PrivateCertificate.loadPEM(cert.read() + b"\n" + key.read()).options()


def listen(directory: Directory, *, host: str = "127.0.0.1", port: int | None = 0, ldaps_port: int | None = 0,
           tls: TlsFiles | None = None) -> LdapServerHandle:
    """Add listeners to a reactor that is running (or about to run) in the calling thread."""
    ports = []
    ldap_url = ldaps_url = None
    if port is not None:
        listener = reactor.listenTCP(port, _Factory(directory, secure=False), interface=host)
        ports.append(listener)
        ldap_url = f"ldap://{host}:{listener.getHost().port}"
    if ldaps_port is not None:
        tls = tls or generate_tls_files(tempfile.mkdtemp(prefix="widip-ldaps-"))
        listener = reactor.listenSSL(ldaps_port, _Factory(directory, secure=True), _context_factory(tls),
                                     interface=host)
        ports.append(listener)
        ldaps_url = f"ldaps://{host}:{listener.getHost().port}"
    return LdapServerHandle(directory, ldap_url or "", ldaps_url, tls, ports)


def start_server(directory: Directory, *, host: str = "127.0.0.1", port: int | None = 0,
                 ldaps_port: int | None = 0, tls: TlsFiles | None = None) -> LdapServerHandle:
    """Serve `directory` over LDAP and LDAPS from a background reactor thread; port 0 picks a free one."""
    _ensure_reactor()
    return blockingCallFromThread(reactor, listen, directory, host=host, port=port, ldaps_port=ldaps_port, tls=tls)
