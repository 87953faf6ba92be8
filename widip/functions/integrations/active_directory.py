"""Active Directory client (ldap3 over LDAPS): look up, unlock, reset and disable user accounts.

The seed drove AD through SSH + PowerShell; this speaks LDAP directly to the domain controller over
TLS, validating its certificate with `WIDIP_CA_FILE`. Writes are guarded *in code* before any LDAP
write: unknown, disabled, denylisted, service and privileged accounts (adminCount=1, members of
protected groups, nested ones included) are refused with `PolicyDenied`, whatever the caller or the
model asked. A reset's password goes straight into the `SecretStore`; callers only ever see a handle.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import math
import re
import ssl
import threading
import time
from dataclasses import dataclass, fields

from ldap3 import BASE, MODIFY_REPLACE, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException, LDAPResponseTimeoutError, LDAPSocketOpenError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from widip.errors import ConfigError, Conflict, Invalid, PolicyDenied, Rejected, Unavailable
from widip.functions.integrations.ad_names import EMAIL_PATTERN, SAM_ACCOUNT_PATTERN
from widip.functions.integrations.http_client import notify_outcome
from widip.functions.integrations.passwords import DEFAULT_LENGTH, generate_password
from widip.functions.jsonable import json_safe

logger = logging.getLogger(__name__)

SYSTEM = "active_directory"
_SAM_RE, _EMAIL_RE = re.compile(SAM_ACCOUNT_PATTERN), re.compile(EMAIL_PATTERN)

DEFAULT_PROTECTED_GROUPS = ("Domain Admins", "Enterprise Admins", "Schema Admins", "Administrators",
                            "Account Operators", "Backup Operators", "Server Operators", "Print Operators",
                            "Protected Users")
DEFAULT_DENYLIST = ("administrator", "admin", "krbtgt", "guest")
DEFAULT_SERVICE_OUS = ("Service Accounts", "Services", "Comptes de service")
UAC_ACCOUNTDISABLE, UAC_LOCKOUT = 0x2, 0x10
IN_CHAIN = "1.2.840.113556.1.4.1941"
_USER_FILTER = "(&(objectCategory=person)(objectClass=user){})"
_STATUS_ATTRS = ["sAMAccountName", "distinguishedName", "userPrincipalName", "displayName", "mail", "memberOf",
                 "userAccountControl", "lockoutTime", "pwdLastSet", "adminCount", "msDS-User-Account-Control-Computed"]
_INFO_ATTRS = _STATUS_ATTRS + ["department", "title", "telephoneNumber", "description"]
_RETRYABLE_CODES = {51, 52, 80}  # busy, unavailable, other


class _Record:
    def to_dict(self) -> dict:
        return json_safe({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class UserStatus(_Record):
    """What the help desk needs to decide: does the account exist, is it usable, is it privileged."""

    username: str
    exists: bool
    enabled: bool = False
    locked: bool = False
    mail: str | None = None
    display_name: str | None = None
    groups: tuple[str, ...] = ()
    admin_count: int = 0
    pwd_last_set: dt.datetime | None = None
    must_change_password: bool = False
    user_account_control: int = 0
    dn: str | None = None


@dataclass(frozen=True)
class UserInfo(UserStatus):
    """UserStatus plus the descriptive attributes shown to a technician."""

    department: str | None = None
    title: str | None = None
    telephone: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class UnlockResult(_Record):
    username: str
    dn: str
    was_locked: bool
    unlocked: bool


@dataclass(frozen=True)
class ResetResult(_Record):
    """A done reset. The password is *not* here: `secret_handle` redeems it once, within `handle_ttl_seconds`."""

    username: str
    secret_handle: str
    must_change_at_logon: bool = True
    handle_ttl_seconds: int = 0
    #: True when the account was locked and the same write cleared the lockout.
    unlocked: bool = False


@dataclass(frozen=True)
class DisableResult(_Record):
    username: str
    dn: str
    was_enabled: bool
    disabled: bool


def _filetime(raw: str | None) -> dt.datetime | None:
    """AD FILETIME (100 ns since 1601) → aware datetime; 0/absent/never → None."""
    try:
        value = int(raw or 0)
    except ValueError:
        return None
    if value <= 0 or value >= 0x7FFFFFFFFFFFFFFF:
        return None
    return dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=value // 10)


def _int(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _cn(dn: str) -> str:
    try:
        return parse_dn(dn)[0][1]
    except (LDAPException, IndexError):
        return dn


def _parse_server(server: str, use_ssl: bool) -> tuple[str, int, bool]:
    """"ldaps://dc:636", "ldap://dc", "dc:636" or "dc" → (host, port, use_ssl)."""
    match = re.match(r"^(?:(ldaps?)://)?([^:/]+|\[[^\]]+\])(?::(\d+))?/?$", server.strip())
    if not match:
        raise ConfigError([f"AD_SERVER is not a host or ldap(s) URL: {server!r}"])
    scheme, host, port = match.groups()
    secure = use_ssl if scheme is None else scheme == "ldaps"
    return host.strip("[]"), int(port) if port else (636 if secure else 389), secure


def _notify(ok: bool, started: float, error: Exception | None) -> None:
    notify_outcome(SYSTEM, started, error, ok=ok)


def _timed_out(exc: Exception) -> bool:
    return isinstance(exc, (LDAPResponseTimeoutError, TimeoutError)) or "timed out" in str(exc).lower()


def validate_username(username: str) -> str:
    """The sAMAccountName if it is well-formed; otherwise Invalid (this also blocks LDAP injection)."""
    if not isinstance(username, str) or not _SAM_RE.match(username):
        raise Invalid("invalid username: expected a sAMAccountName (letters, digits, . _ -, at most 20)")
    return username


class ActiveDirectoryClient:
    """One service account, one TLS connection reused under a lock (TLS set-up costs ~25 ms per bind)."""

    def __init__(self, server: str, user: str, password: str, base_dn: str, *, use_ssl: bool = True,
                 ca_file: str | None = None, timeout: float = 10.0,
                 protected_groups: tuple[str, ...] = DEFAULT_PROTECTED_GROUPS,
                 denylist: tuple[str, ...] = DEFAULT_DENYLIST, service_ous: tuple[str, ...] = DEFAULT_SERVICE_OUS,
                 secret_store=None, password_length: int = DEFAULT_LENGTH):
        host, port, secure = _parse_server(server, use_ssl)
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file) if secure else None
        self._server = Server(host, port=port, use_ssl=secure, tls=tls, get_info=NONE, connect_timeout=timeout)
        self._user, self._password, self.base_dn = user, password, base_dn
        self.timeout = timeout
        self.protected_groups = tuple(g.lower() for g in protected_groups)
        self.denylist = tuple(d.lower() for d in denylist)
        self.service_ous = tuple(o.lower() for o in service_ous)
        self._store = secret_store
        self._password_length = password_length
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._protected_dns: list[str] | None = None
        self.url = f"{'ldaps' if secure else 'ldap'}://{host}:{port}"

    def __repr__(self) -> str:
        return f"ActiveDirectoryClient({self.url!r}, user={self._user!r}, base_dn={self.base_dn!r})"

    @classmethod
    def from_settings(cls, settings, secret_store=None) -> "ActiveDirectoryClient":
        missing = [name for name, value in (("AD_SERVER", settings.ad_server), ("AD_USER", settings.ad_user),
                                            ("AD_PASSWORD", settings.ad_password), ("AD_BASE_DN", settings.ad_base_dn))
                   if not value]
        if missing:
            raise ConfigError([f"{name} is required for Active Directory" for name in missing])
        if settings.env == "production" and settings.ad_server.lower().startswith("ldap://"):
            raise ConfigError(["AD_SERVER must be ldaps:// in production: a plain bind sends AD_PASSWORD in clear"])
        return cls(settings.ad_server, settings.ad_user, settings.ad_password, settings.ad_base_dn,
                   ca_file=settings.ca_file, timeout=settings.integration_timeout_seconds,
                   protected_groups=settings.ad_protected_groups, denylist=settings.ad_denylist,
                   secret_store=secret_store)

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- transport ---------------------------------------------------------------------------------
    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.unbind()
            except LDAPException:
                pass
        self._conn = None

    def _connection(self) -> Connection:
        if self._conn is not None and self._conn.bound and not self._conn.closed:
            return self._conn
        conn = Connection(self._server, user=self._user, password=self._password, authentication=SIMPLE,
                          receive_timeout=max(1, math.ceil(self.timeout)),  # ldap3 packs it as an integer
                          raise_exceptions=False, auto_referrals=False)
        if not conn.bind():
            result = dict(conn.result or {})
            conn.unbind()
            raise self._result_error("service account bind", result)
        self._conn = conn
        return conn

    def _call(self, what: str, work, *, retry_stale: bool = True):
        """Run work(connection) under the lock; map ldap3 failures to Unavailable; notify listeners."""
        started = time.perf_counter()
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                try:
                    result = work(self._connection())
                except (LDAPCommunicationError, LDAPResponseTimeoutError, OSError) as exc:
                    self._drop()
                    if reused and retry_stale and attempt == 1 and not _timed_out(exc):
                        continue  # a pooled connection the DC closed meanwhile: one fresh try
                    detail = str(exc)[:160] if isinstance(exc, LDAPSocketOpenError) else type(exc).__name__
                    error = Unavailable(SYSTEM, f"{what}: {detail} ({time.perf_counter() - started:.1f} s)",
                                        maybe_applied=not isinstance(exc, LDAPSocketOpenError))
                    _notify(False, started, error)
                    logger.warning("%s call failed: %s", SYSTEM, error)
                    raise error from None
                except (Rejected, Unavailable) as error:
                    if isinstance(error, Unavailable):
                        self._drop()
                    _notify(isinstance(error, Rejected), started, error)
                    logger.warning("%s call failed: %s", SYSTEM, error)
                    raise
                _notify(True, started, None)
                return result

    @staticmethod
    def _result_error(what: str, result: dict):
        code = result.get("result")
        description = result.get("description") or "error"
        message = (result.get("message") or "").replace("\x00", "").strip()[:120]
        text = f"{what} failed: {description} ({code})" + (f" {message}" if message else "")
        if code in _RETRYABLE_CODES or code is None:  # the DC answered and refused: nothing applied
            return Unavailable(SYSTEM, text, code=description, maybe_applied=False)
        return Rejected(SYSTEM, text, code=description)

    def _search(self, conn: Connection, base: str, query: str, attributes, scope=SUBTREE) -> list[dict]:
        conn.search(base, query, scope, attributes=attributes)
        code = (conn.result or {}).get("result")
        if code == 32 and scope == BASE:
            return []
        if code not in (0, None):
            raise self._result_error("search", conn.result)
        entries = []
        for item in conn.response or []:
            if item.get("type") != "searchResEntry":
                continue  # AD adds searchResRef referrals when searching from the domain root
            raw = item.get("raw_attributes") or {}
            entries.append({k.lower(): [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                                        for v in values] for k, values in raw.items()} | {"__dn__": [item["dn"]]})
        return entries

    def _modify(self, conn: Connection, dn: str, changes: dict, what: str) -> None:
        try:
            conn.modify(dn, changes)
            result = dict(conn.result or {})
        finally:
            conn.request = None  # ldap3 keeps the last request (with its values) on the connection
        if result.get("result") != 0:
            raise self._result_error(what, result)

    # -- reads ------------------------------------------------------------------------------------
    def _status(self, username: str, entry: dict | None, cls=UserStatus) -> UserStatus:
        if entry is None:
            return cls(username=username, exists=False)
        first = lambda name: (entry.get(name.lower()) or [None])[0]  # noqa: E731
        uac = _int(first("userAccountControl"))
        computed = _int(first("msDS-User-Account-Control-Computed"))
        pwd_raw = first("pwdLastSet")
        values = dict(
            username=first("sAMAccountName") or username, exists=True, enabled=not uac & UAC_ACCOUNTDISABLE,
            # The DC computes whether a lockout still holds (an expired one leaves lockoutTime set).
            locked=bool(computed & UAC_LOCKOUT) if first("msDS-User-Account-Control-Computed") is not None
            else _int(first("lockoutTime")) > 0,
            mail=first("mail"), display_name=first("displayName"),
            groups=tuple(_cn(g) for g in entry.get("memberof", [])), admin_count=_int(first("adminCount")),
            pwd_last_set=_filetime(pwd_raw), must_change_password=pwd_raw == "0", user_account_control=uac,
            dn=entry["__dn__"][0],
        )
        if cls is UserInfo:
            values.update(department=first("department"), title=first("title"),
                          telephone=first("telephoneNumber"), description=first("description"))
        return cls(**values)

    def _lookup(self, clause: str, attributes) -> list[dict]:
        query = _USER_FILTER.format(clause)
        return self._call("user lookup", lambda conn: self._search(conn, self.base_dn, query, attributes))

    def check_user(self, username: str) -> UserStatus:
        """Existence, enabled/locked state, mail, groups and privilege markers of one account."""
        sam = validate_username(username)
        found = self._lookup(f"(sAMAccountName={escape_filter_chars(sam)})", _STATUS_ATTRS)
        logger.debug("AD check_user %s: %s", sam, "found" if found else "not found")
        return self._status(sam, found[0] if found else None)

    def get_user_info(self, username: str) -> UserInfo:
        """check_user plus department, title, telephone and description."""
        sam = validate_username(username)
        found = self._lookup(f"(sAMAccountName={escape_filter_chars(sam)})", _INFO_ATTRS)
        return self._status(sam, found[0] if found else None, UserInfo)

    def find_user_by_mail(self, email: str) -> UserStatus | None:
        """The account whose mail (or smtp proxy address) is `email`; None if none; Conflict if several."""
        if not isinstance(email, str) or len(email) > 254 or not _EMAIL_RE.match(email):
            raise Invalid("invalid e-mail address")
        value = escape_filter_chars(email)
        found = self._lookup(f"(|(mail={value})(proxyAddresses=smtp:{value}))", _STATUS_ATTRS)
        if len(found) > 1:
            raise Conflict("several directory accounts use this e-mail address", count=len(found))
        return self._status(found[0]["samaccountname"][0], found[0]) if found else None

    # -- policy -----------------------------------------------------------------------------------
    def _nested_protected(self, dn: str) -> bool:
        """True when `dn` reaches a protected group through nested groups (AD's in-chain matching rule)."""
        def work(conn):
            if self._protected_dns is None:
                names = "".join(f"(cn={escape_filter_chars(g)})" for g in self.protected_groups)
                groups = self._search(conn, self.base_dn, f"(&(objectClass=group)(|{names}))", ["cn"])
                self._protected_dns = [g["__dn__"][0] for g in groups]
            if not self._protected_dns:
                return False
            chain = "".join(f"(memberOf:{IN_CHAIN}:={escape_filter_chars(g)})" for g in self._protected_dns)
            return bool(self._search(conn, dn, f"(|{chain})", ["1.1"], scope=BASE))
        return bool(self.protected_groups) and self._call("protected group check", work)

    def _refusal(self, status: UserStatus, *, allow_disabled: bool = False) -> str | None:
        """Why this account must not be touched by automation, or None."""
        if not status.exists:
            return "account does not exist"
        name = status.username.lower()
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.denylist):
            return "account is on the denylist"
        if status.admin_count:
            return "account is privileged (adminCount=1)"
        direct = [g for g in status.groups if g.lower() in self.protected_groups]
        if direct:
            return f"account is a member of protected group {direct[0]}"
        ous = {value.lower() for kind, value, _ in parse_dn(status.dn or "") if kind.upper() == "OU"}
        if ous & set(self.service_ous):
            return "account is a service account"
        if not status.enabled and not allow_disabled:
            return "account is disabled"
        if self._nested_protected(status.dn):
            return "account is a member of a protected group (nested)"
        return None

    def _guard(self, username: str, action: str, *, allow_disabled: bool = False) -> UserStatus:
        status = self.check_user(username)
        reason = self._refusal(status, allow_disabled=allow_disabled)
        if reason:
            logger.info("AD %s refused for %s: %s", action, status.username, reason)
            raise PolicyDenied(f"{action} refused for {status.username}: {reason}", username=status.username,
                               reason=reason, action=action)
        return status

    # -- writes -----------------------------------------------------------------------------------
    def unlock_account(self, username: str) -> UnlockResult:
        """Clear lockoutTime (the only value AD accepts there is 0). No write when not locked."""
        status = self._guard(username, "account unlock")
        if not status.locked:
            return UnlockResult(status.username, status.dn, was_locked=False, unlocked=False)
        self._call("unlock", lambda conn: self._modify(
            conn, status.dn, {"lockoutTime": [(MODIFY_REPLACE, ["0"])]}, "unlock"), retry_stale=False)
        logger.info("AD account unlocked: %s", status.username)
        return UnlockResult(status.username, status.dn, was_locked=True, unlocked=True)

    def reset_password(self, username: str) -> ResetResult:
        """Set a new random password that must be changed at next logon; return a handle to it, never it.

        A locked account is unlocked by the same modify (AD accepts unicodePwd + pwdLastSet + lockoutTime=0
        together): a user who forgot the password of a locked account must not stay locked out.
        """
        if self._store is None:
            raise ConfigError(["reset_password needs a SecretStore (Redis) to hold the new password"])
        status = self._guard(username, "password reset")
        avoid = (status.username, *(status.display_name or "").replace("-", " ").split())
        password = generate_password(self._password_length, avoid=avoid)
        handle = self._store.put(password)  # stored first: a done reset must never lose its password
        changes = {"unicodePwd": [(MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])],
                   "pwdLastSet": [(MODIFY_REPLACE, ["0"])]}
        if status.locked:
            changes["lockoutTime"] = [(MODIFY_REPLACE, ["0"])]
        del password
        try:
            self._call("password reset", lambda conn: self._modify(conn, status.dn, changes, "password reset"),
                       retry_stale=False)
        except Exception:
            changes.clear()
            self._discard(handle)
            raise
        changes.clear()
        logger.info("AD password reset for %s (must change at next logon)", status.username)
        return ResetResult(status.username, handle, must_change_at_logon=True,
                           handle_ttl_seconds=self._store.ttl_seconds, unlocked=status.locked)

    def _discard(self, handle: str) -> None:
        try:
            self._store.redeem(handle)
        except Exception:  # noqa: BLE001 - it expires anyway; the reset failure is what matters
            logger.debug("could not discard an unused secret handle")

    def disable_account(self, username: str) -> DisableResult:
        """Set ACCOUNTDISABLE (human-only tool). Already disabled → no write."""
        status = self._guard(username, "account disable", allow_disabled=True)
        if not status.enabled:
            return DisableResult(status.username, status.dn, was_enabled=False, disabled=True)
        value = str(status.user_account_control | UAC_ACCOUNTDISABLE)
        self._call("disable", lambda conn: self._modify(
            conn, status.dn, {"userAccountControl": [(MODIFY_REPLACE, [value])]}, "disable"), retry_stale=False)
        logger.info("AD account disabled: %s", status.username)
        return DisableResult(status.username, status.dn, was_enabled=True, disabled=True)


__all__ = ["ActiveDirectoryClient", "UserStatus", "UserInfo", "UnlockResult", "ResetResult", "DisableResult",
           "SAM_ACCOUNT_PATTERN", "EMAIL_PATTERN", "validate_username"]
