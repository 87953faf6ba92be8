"""The in-memory directory behind the AD stand-in, with the Active Directory rules our client relies on.

Behaviour follows what a real domain controller does (docs/integrations.md): binds fail with
`data 52e/775/533/773`, lockout after repeated bad passwords, `unicodePwd` writes only over TLS and
never readable back, only `0` written to `lockoutTime`, only `0`/`-1` to `pwdLastSet`, password policy
(`0000052D`), `memberOf` as a computed back-link, and an AdminSDHolder-like rule: the help-desk
service account cannot write to `adminCount=1` objects. Protocol framing lives in simulators/ldap_server.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

FILETIME_EPOCH_OFFSET = 11644473600  # seconds between 1601-01-01 and 1970-01-01
UAC_ACCOUNTDISABLE = 0x2
UAC_LOCKOUT = 0x10
UAC_NORMAL_ACCOUNT = 0x200
UAC_DONT_EXPIRE_PASSWORD = 0x10000
UAC_PASSWORD_EXPIRED = 0x800000

# Result codes and AD's diagnostic messages (they really end with a NUL).
SUCCESS, OPERATIONS_ERROR, STRONGER_AUTH_REQUIRED, CONSTRAINT_VIOLATION = 0, 1, 8, 19
NO_SUCH_OBJECT, INVALID_CREDENTIALS, INSUFFICIENT_ACCESS, UNWILLING = 32, 49, 50, 53
_BIND_ERROR = "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {}, v4563\x00"
MSG_BIND_REQUIRED = ("000004DC: LdapErr: DSID-0C090CF8, comment: In order to perform this operation a successful "
                     "bind must be completed on the connection., data 0, v4563\x00")
MSG_STRONGER_AUTH = ("00002028: LdapErr: DSID-0C090259, comment: The server requires binds to turn on integrity "
                     "checking if SSL\\TLS are not already active on the connection, data 0, v4563\x00")
MSG_UNWILLING = "0000001F: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0\n\x00"
MSG_CONSTRAINT = ("0000052D: AtrErr: DSID-03191083, #1:\n\t0: 0000052D: DSID-03191083, problem 1005 "
                  "(CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)\n\x00")
MSG_WRONG_OLD_PASSWORD = ("00000056: AtrErr: DSID-03190F80, #1:\n\t0: 00000056: DSID-03190F80, problem 1005 "
                          "(CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)\n\x00")
MSG_INSUFFICIENT = "00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0\n\x00"

#: Attributes AD computes or hides: never stored as plain values, never returned by "*".
_OPERATIONAL = {"msds-user-account-control-computed"}


class LdapError(Exception):
    """An LDAP result other than success, with AD's diagnostic message."""

    def __init__(self, code: int, message: str, matched_dn: str = ""):
        super().__init__(code, message)
        self.code, self.message, self.matched_dn = code, message, matched_dn


def norm_dn(dn: str) -> str:
    """Case- and spacing-insensitive DN key ("CN=A, DC=x" == "cn=a,dc=x")."""
    return ",".join(part.strip() for part in dn.split(",")).lower()


def to_filetime(epoch_seconds: float) -> int:
    return int((epoch_seconds + FILETIME_EPOCH_OFFSET) * 10_000_000)


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, 1000)


@dataclass
class Entry:
    """One directory object; attribute names keep their case, lookups ignore it."""

    dn: str
    attrs: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> list[str]:
        lowered = name.lower()
        for key, values in self.attrs.items():
            if key.lower() == lowered:
                return values
        return []

    def first(self, name: str, default: str = "") -> str:
        values = self.get(name)
        return values[0] if values else default

    def set(self, name: str, values: list[str]) -> None:
        for key in list(self.attrs):
            if key.lower() == name.lower():
                del self.attrs[key]
                name = key
        if values:
            self.attrs[name] = [str(v) for v in values]

    def is_user(self) -> bool:
        return "user" in (v.lower() for v in self.get("objectClass"))


@dataclass
class _Credential:
    salt: bytes
    digest: bytes


class Directory:
    """The data plus AD's rules; thread-safe (the reactor thread writes, tests and /_sim read)."""

    #: Members of these groups are covered by AdminSDHolder: delegated rights do not reach them.
    protected_groups = ("Domain Admins", "Enterprise Admins", "Schema Admins", "Administrators",
                        "Account Operators", "Backup Operators", "Server Operators", "Print Operators")

    def __init__(self, base_dn: str = "DC=widip,DC=local", *, domain: str = "widip.local", netbios: str = "WIDIP",
                 require_secure_bind: bool = True, lockout_threshold: int = 5, lockout_minutes: int = 30,
                 min_password_length: int = 7, clock=time.time):
        self.base_dn, self.domain, self.netbios = base_dn, domain, netbios
        self.require_secure_bind = require_secure_bind
        self.lockout_threshold, self.lockout_minutes = lockout_threshold, lockout_minutes
        self.min_password_length = min_password_length
        self.clock = clock
        self.entries: dict[str, Entry] = {}
        self.operators: set[str] = set()  # DNs holding the delegated reset/unlock right
        self.writes: list[dict] = []  # every applied modify: dn, attribute names, who (never values)
        self.calls: list[dict] = []
        self.fault: dict = {}
        self.lock = threading.RLock()
        self._credentials: dict[str, _Credential] = {}
        self.add(base_dn, {"objectClass": ["top", "domain", "domainDNS"], "dc": [base_dn.split(",")[0][3:]]})

    # -- seeding ---------------------------------------------------------------------------------------
    def add(self, dn: str, attrs: dict) -> Entry:
        entry = Entry(dn, {k: [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])] for k, v in attrs.items()})
        with self.lock:
            self.entries[norm_dn(dn)] = entry
        return entry

    def add_ou(self, name: str, parent: str | None = None) -> str:
        dn = f"OU={name},{parent or self.base_dn}"
        self.add(dn, {"objectClass": ["top", "organizationalUnit"], "ou": name})
        return dn

    def add_group(self, name: str, parent: str | None = None, members=()) -> str:
        dn = f"CN={name},{parent or 'CN=Users,' + self.base_dn}"
        self.add(dn, {"objectClass": ["top", "group"], "cn": name, "sAMAccountName": name,
                      "member": list(members)})
        return dn

    def add_user(self, sam: str, display_name: str, parent: str, *, password: str | None = None,
                 mail: str | None = None, enabled: bool = True, locked: bool = False, admin_count: bool = False,
                 groups=(), operator: bool = False, pwd_last_set: int | None = None, **extra) -> str:
        """Create a user under `parent` (CN is the display name, as in real AD) and return its DN."""
        dn = f"CN={display_name},{parent}"
        now = self.clock()
        uac = UAC_NORMAL_ACCOUNT | (0 if enabled else UAC_ACCOUNTDISABLE)
        attrs = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "objectCategory": f"CN=Person,CN=Schema,CN=Configuration,{self.base_dn}",
            "cn": display_name, "displayName": display_name, "name": display_name,
            "sAMAccountName": sam, "userPrincipalName": f"{sam}@{self.domain}",
            "userAccountControl": uac, "lockoutTime": to_filetime(now - 300) if locked else 0,
            "badPwdCount": self.lockout_threshold if locked else 0,
            "pwdLastSet": to_filetime(now - 86400 * 20) if pwd_last_set is None else pwd_last_set,
            "whenCreated": time.strftime("%Y%m%d%H%M%S.0Z", time.gmtime(now - 86400 * 400)),
        }
        if mail:
            attrs["mail"] = mail
        if admin_count:
            attrs["adminCount"] = 1
        attrs.update({k: v for k, v in extra.items() if v is not None})
        self.add(dn, attrs)
        if password is not None:
            self._store_password(dn, password)
        for group_dn in groups:
            self.entry(group_dn).get("member").append(dn)
        if operator:
            self.operators.add(norm_dn(dn))
        return dn

    # -- lookups ---------------------------------------------------------------------------------------
    def entry(self, dn: str) -> Entry:
        found = self.entries.get(norm_dn(dn))
        if found is None:
            raise LdapError(NO_SUCH_OBJECT, "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT), data 0, "
                            f"best match of:\n\t'{self.base_dn}'\n\x00", self.base_dn)
        return found

    def find_user(self, name: str) -> Entry | None:
        """Resolve a bind name: DN, UPN (user@domain) or DOMAIN\\user."""
        if "=" in name:
            found = self.entries.get(norm_dn(name))
            return found if found is not None and found.is_user() else None
        attribute, value = ("userPrincipalName", name) if "@" in name else ("sAMAccountName", name.split("\\")[-1])
        for candidate in self.entries.values():
            if candidate.is_user() and candidate.first(attribute).lower() == value.lower():
                return candidate
        return None

    def user(self, sam: str) -> Entry:
        found = self.find_user(sam)
        if found is None:
            raise KeyError(sam)
        return found

    def groups_of(self, dn: str, transitive: bool = False) -> list[str]:
        """DNs of groups listing `dn` as a member (AD's memberOf back-link); optionally nested ones too."""
        found: list[str] = []
        frontier = [norm_dn(dn)]
        while frontier:
            current = frontier.pop()
            for entry in self.entries.values():
                if current in (norm_dn(m) for m in entry.get("member")) and entry.dn not in found:
                    found.append(entry.dn)
                    if transitive:
                        frontier.append(norm_dn(entry.dn))
        return found

    def is_locked(self, entry: Entry) -> bool:
        lockout = int(entry.first("lockoutTime", "0") or 0)
        return lockout > 0 and to_filetime(self.clock()) < lockout + self.lockout_minutes * 60 * 10_000_000

    def computed_uac(self, entry: Entry) -> int:
        value = 0
        if self.is_locked(entry):
            value |= UAC_LOCKOUT
        if entry.first("pwdLastSet", "1") == "0":
            value |= UAC_PASSWORD_EXPIRED
        return value

    def password_matches(self, dn: str, password: str) -> bool:
        credential = self._credentials.get(norm_dn(dn))
        return credential is not None and _hash(password, credential.salt) == credential.digest

    # -- passwords -------------------------------------------------------------------------------------
    def _store_password(self, dn: str, password: str) -> None:
        salt = os.urandom(16)
        self._credentials[norm_dn(dn)] = _Credential(salt, _hash(password, salt))

    def _check_policy(self, entry: Entry, password: str) -> None:
        classes = sum((any(c.islower() for c in password), any(c.isupper() for c in password),
                       any(c.isdigit() for c in password), any(not c.isalnum() for c in password)))
        sam = entry.first("sAMAccountName").lower()
        credential = self._credentials.get(norm_dn(entry.dn))
        reused = credential is not None and _hash(password, credential.salt) == credential.digest
        if (len(password) < self.min_password_length or classes < 3 or (len(sam) >= 3 and sam in password.lower())
                or reused):
            raise LdapError(CONSTRAINT_VIOLATION, MSG_CONSTRAINT)

    # -- operations ------------------------------------------------------------------------------------
    def record(self, op: str, target: str, code: int) -> None:
        with self.lock:
            self.calls.append({"op": op, "target": target, "result": code, "at": self.clock()})

    def bind(self, name: str, password: str, secure: bool) -> str | None:
        """Check a simple bind; return the bound DN (None when anonymous) or raise LdapError like AD."""
        if not name and not password:
            return None
        if self.require_secure_bind and not secure:
            raise LdapError(STRONGER_AUTH_REQUIRED, MSG_STRONGER_AUTH)
        with self.lock:
            entry = self.find_user(name) if name else None
            if entry is None or not password:
                raise LdapError(INVALID_CREDENTIALS, _BIND_ERROR.format("52e"))
            if self.is_locked(entry):
                raise LdapError(INVALID_CREDENTIALS, _BIND_ERROR.format("775"))
            if not self.password_matches(entry.dn, password):
                bad = int(entry.first("badPwdCount", "0")) + 1
                entry.set("badPwdCount", [str(bad)])
                if bad >= self.lockout_threshold:
                    entry.set("lockoutTime", [str(to_filetime(self.clock()))])
                raise LdapError(INVALID_CREDENTIALS, _BIND_ERROR.format("52e"))
            if int(entry.first("userAccountControl", "0")) & UAC_ACCOUNTDISABLE:
                raise LdapError(INVALID_CREDENTIALS, _BIND_ERROR.format("533"))
            if entry.first("pwdLastSet") == "0":
                raise LdapError(INVALID_CREDENTIALS, _BIND_ERROR.format("773"))
            entry.set("badPwdCount", ["0"])
            entry.set("lockoutTime", ["0"])  # an elapsed lockout is cleared by the next good logon
            entry.set("lastLogonTimestamp", [str(to_filetime(self.clock()))])
            return entry.dn

    def search(self, bound: str | None, base: str, scope: int, predicate, attributes: list[str]):
        """[(dn, [(attribute, values)])] for entries under `base` accepted by predicate(getter, chain)."""
        if base == "" and scope == 0:
            return [("", self._select_values(self._root_dse(), attributes))]
        if bound is None:
            raise LdapError(OPERATIONS_ERROR, MSG_BIND_REQUIRED)
        with self.lock:
            key = norm_dn(self.entry(base).dn)
            results = []
            for entry_key, entry in self.entries.items():
                if _in_scope(entry_key, key, scope) and predicate(self._getter(entry), self._chain(entry)):
                    results.append((entry.dn, self._select(entry, attributes)))
            return results

    def _root_dse(self) -> dict[str, list[str]]:
        return {
            "namingContexts": [self.base_dn], "defaultNamingContext": [self.base_dn],
            "rootDomainNamingContext": [self.base_dn], "supportedLDAPVersion": ["3", "2"],
            "supportedControl": ["1.2.840.113556.1.4.319", "1.2.840.113556.1.4.417"],
            "supportedSASLMechanisms": ["GSSAPI", "GSS-SPNEGO", "EXTERNAL", "DIGEST-MD5"],
            "dnsHostName": [f"dc1.{self.domain}"], "domainFunctionality": ["7"], "isGlobalCatalogReady": ["TRUE"],
        }

    def _getter(self, entry: Entry):
        def get(name: str) -> list[str]:
            lowered = name.lower()
            if lowered == "distinguishedname":
                return [entry.dn]
            if lowered == "memberof":
                return self.groups_of(entry.dn)
            if lowered == "objectcategory":  # AD accepts the short name (objectCategory=person) in filters
                return entry.get(name) + [v.split(",")[0][3:] for v in entry.get(name)]
            if lowered == "msds-user-account-control-computed":
                return [str(self.computed_uac(entry))] if entry.is_user() else []
            return entry.get(name)
        return get

    def _chain(self, entry: Entry):
        def chain(attribute: str, dn: str) -> bool:
            if attribute.lower() == "memberof":
                return norm_dn(dn) in {norm_dn(g) for g in self.groups_of(entry.dn, transitive=True)}
            return norm_dn(dn) in {norm_dn(v) for v in entry.get(attribute)}
        return chain

    def _select(self, entry: Entry, attributes: list[str]) -> list[tuple[str, list[str]]]:
        get = self._getter(entry)
        values = dict(entry.attrs)
        values["distinguishedName"] = [entry.dn]
        member_of = get("memberOf")
        if member_of:
            values["memberOf"] = member_of
        for name in attributes:
            if name.lower() in _OPERATIONAL and get(name):
                values[name] = get(name)
        return self._select_values(values, attributes)

    @staticmethod
    def _select_values(values: dict[str, list[str]], attributes: list[str]) -> list[tuple[str, list[str]]]:
        wanted = {a.lower() for a in attributes}
        if wanted == {"1.1"}:
            return []
        every = not wanted or "*" in wanted
        return [(name, list(vals)) for name, vals in values.items()
                if vals and (name.lower() in wanted or (every and name.lower() not in _OPERATIONAL))]

    def modify(self, bound: str | None, dn: str, changes: list[tuple[int, str, list[bytes]]], secure: bool) -> None:
        """Apply a modify request atomically (validate everything, then write) or raise LdapError."""
        if bound is None:
            raise LdapError(OPERATIONS_ERROR, MSG_BIND_REQUIRED)
        with self.lock:
            entry = self.entry(dn)
            passwords = [c for c in changes if c[1].lower() == "unicodepwd"]
            others = [c for c in changes if c[1].lower() != "unicodepwd"]
            user_change = bool(passwords) and sorted(op for op, _, _ in passwords) == [0, 1]
            if others or not user_change:
                self._check_right(bound, entry)
            steps = [self._plan_password(entry, passwords, secure, user_change)] if passwords else []
            steps += [self._plan_attribute(entry, op, name, values) for op, name, values in others]
            for step in steps:
                step()
            self.writes.append({"dn": entry.dn, "attributes": [name for _, name, _ in changes], "by": bound,
                                "at": self.clock()})
            logger.debug("ad stand-in: %s modified %s (%s)", bound, entry.dn, ", ".join(n for _, n, _ in changes))

    def _check_right(self, bound: str, entry: Entry) -> None:
        protected = {g.lower() for g in self.protected_groups}
        groups = {self.entry(g).first("cn").lower() for g in self.groups_of(entry.dn, transitive=True)}
        if (norm_dn(bound) not in self.operators or entry.first("adminCount") == "1" or groups & protected):
            raise LdapError(INSUFFICIENT_ACCESS, MSG_INSUFFICIENT)

    def _plan_password(self, entry: Entry, changes, secure: bool, user_change: bool):
        if not secure:
            raise LdapError(UNWILLING, MSG_UNWILLING)
        by_op = {op: values for op, _, values in changes}
        if user_change:
            old, new = _decode_password(by_op[1]), _decode_password(by_op[0])
            if not self.password_matches(entry.dn, old):
                raise LdapError(CONSTRAINT_VIOLATION, MSG_WRONG_OLD_PASSWORD)
        elif list(by_op) == [2]:
            new = _decode_password(by_op[2])
        else:
            raise LdapError(UNWILLING, MSG_UNWILLING)
        self._check_policy(entry, new)

        def apply():
            self._store_password(entry.dn, new)
            entry.set("pwdLastSet", [str(to_filetime(self.clock()))])
        return apply

    def _plan_attribute(self, entry: Entry, op: int, name: str, raw: list[bytes]):
        values = [v.decode("utf-8") for v in raw]
        lowered = name.lower()
        if lowered == "lockouttime":
            if op != 2 or values != ["0"]:
                raise LdapError(UNWILLING, MSG_UNWILLING)
            return lambda: (entry.set("lockoutTime", ["0"]), entry.set("badPwdCount", ["0"]))
        if lowered == "pwdlastset":
            if op != 2 or values not in (["0"], ["-1"]):
                raise LdapError(UNWILLING, MSG_UNWILLING)
            stamp = "0" if values == ["0"] else str(to_filetime(self.clock()))
            return lambda: entry.set("pwdLastSet", [stamp])
        if lowered == "useraccountcontrol":
            if op != 2 or len(values) != 1 or not values[0].isdigit():
                raise LdapError(UNWILLING, MSG_UNWILLING)
            return lambda: entry.set("userAccountControl", values)
        if lowered in ("distinguishedname", "memberof", "objectclass", "samaccountname", "admincount",
                       "objectcategory", "msds-user-account-control-computed", "badpwdcount"):
            raise LdapError(UNWILLING, MSG_UNWILLING)
        if op == 0:
            return lambda: entry.set(name, entry.get(name) + values)
        if op == 1:
            return lambda: entry.set(name, [v for v in entry.get(name) if values and v not in values])
        return lambda: entry.set(name, values)


def _in_scope(key: str, base: str, scope: int) -> bool:
    """baseObject (0), singleLevel (1) or wholeSubtree (2) on normalised DNs."""
    if key == base:
        return scope != 1
    if not key.endswith("," + base):
        return False
    return scope == 2 or key.count(",") == base.count(",") + 1


def _decode_password(values: list[bytes]) -> str:
    """unicodePwd values are the password in double quotes, UTF-16-LE encoded."""
    if len(values) != 1:
        raise LdapError(UNWILLING, MSG_UNWILLING)
    try:
        text = values[0].decode("utf-16-le")
    except UnicodeDecodeError:
        raise LdapError(CONSTRAINT_VIOLATION, MSG_CONSTRAINT) from None
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        raise LdapError(CONSTRAINT_VIOLATION, MSG_CONSTRAINT)
    return text[1:-1]
