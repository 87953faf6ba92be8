"""Who may use widip: users (accreditation N0–N4), argon2id passwords, session and service tokens,
login throttling. Plain functions over an open connection; HTTP lives in widip/http/auth.py.

Tokens are opaque random strings stored only as sha256 digests, so a database dump yields nothing
usable. Session tokens start with `widu_`, service tokens with `wids_`: the prefix says which table
to look in, and a service token can never pass for a person. Nothing here logs a password or token.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from widip.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unauthorized
from widip.functions.callers import Caller
from widip.functions.db import Jsonb

logger = logging.getLogger(__name__)

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SCOPE_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,63}(:[a-z0-9_.-]{1,64}){0,3}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
#: Longest bearer value we bother hashing; real tokens are 48 characters.
MAX_TOKEN_LENGTH = 256
SESSION_PREFIX = "widu_"
SERVICE_PREFIX = "wids_"
DEMO_USERS = (("admin", "Admin Démo", 4), ("approver", "Approbateur Démo", 3), ("tech", "Technicien Démo", 1))
BAD_LOGIN = "invalid username or password"

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (64 MiB, t=3, p=4)
_dummy_hash: str | None = None


@dataclass(frozen=True)
class Throttle:
    """Failed logins allowed per (username, client address) and per client address, then backoff.

    Counting per pair means an attacker guessing from elsewhere never locks the real user out of their
    own address; after `max_failures` the pair waits `base_delay_seconds`, doubling at each further
    failure up to `window_seconds`. The per-address limit is much higher (a whole office behind one
    NAT) and backs off the same way. An N4 can clear either at once (`clear_failures`).
    """

    max_failures: int = 5
    window_seconds: int = 15 * 60
    max_failures_per_address: int = 50
    base_delay_seconds: int = 2


DEFAULT_THROTTLE = Throttle()


class Throttled(ServiceError):
    """Raised when too many logins failed recently for this username or address (HTTP 429)."""

    status = 429
    title = "Trop de tentatives"

    def __init__(self, retry_after_seconds: int):
        super().__init__(f"too many failed logins; retry in {retry_after_seconds} s",
                         retry_after_seconds=retry_after_seconds)
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    email: str | None
    accreditation_level: int
    active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict) -> "User":
        return cls(id=row["id"], username=row["username"], display_name=row["display_name"], email=row["email"],
                   accreditation_level=row["accreditation_level"], active=row["active"], created_at=row["created_at"])

    def to_dict(self) -> dict:
        return {"id": self.id, "username": self.username, "display_name": self.display_name, "email": self.email,
                "accreditation_level": self.accreditation_level, "accreditation": f"N{self.accreditation_level}",
                "active": self.active, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class Session:
    """A freshly issued session token; `token` is shown once and never stored."""

    token: str
    token_id: int
    user: User
    expires_at: datetime

    def to_dict(self) -> dict:
        return {"token": self.token, "token_type": "Bearer", "expires_at": self.expires_at.isoformat(),
                "user": self.user.to_dict()}


@dataclass(frozen=True)
class LoginResult:
    """Either a session or the error to answer with. Returned rather than raised so the caller can
    commit the recorded failure (a raise would roll it back and defeat throttling)."""

    session: Session | None = None
    error: ServiceError | None = None

    def session_or_raise(self) -> Session:
        if self.session is None:
            raise self.error or Unauthorized(BAD_LOGIN)
        return self.session


@dataclass(frozen=True)
class ServiceToken:
    id: int
    name: str
    scopes: tuple[str, ...]
    created_by: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: dict) -> "ServiceToken":
        return cls(id=row["id"], name=row["name"], scopes=tuple(row["scopes"]), created_by=row["created_by"],
                   created_at=row["created_at"], expires_at=row["expires_at"], revoked_at=row["revoked_at"],
                   last_used_at=row["last_used_at"])

    def to_dict(self) -> dict:
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes), "created_by": self.created_by,
                "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
                "revoked_at": iso(self.revoked_at), "last_used_at": iso(self.last_used_at)}


@dataclass(frozen=True)
class IssuedServiceToken:
    token: str
    info: ServiceToken

    def to_dict(self) -> dict:
        return {**self.info.to_dict(), "token": self.token}


@dataclass(frozen=True)
class Authenticated:
    """What a bearer token resolved to: the caller and the token row (for logout)."""

    caller: Caller
    token_id: int
    kind: str  # "session" | "service"


# --- passwords -------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if `password` matches; with no stored hash, still spend one verification so unknown
    users take as long as known ones."""
    global _dummy_hash
    if stored_hash is None:
        _dummy_hash = _dummy_hash or _hasher.hash(secrets.token_urlsafe(16))
        stored_hash, password = _dummy_hash, password + "\x00never"
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_policy(password: str, *, username: str = "") -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password: must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"password: must be at most {MAX_PASSWORD_LENGTH} characters")
    if username and username.lower() in password.lower():
        raise Invalid("password: must not contain the username")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- users -----------------------------------------------------------------------------------


def normalize_username(username: str) -> str:
    name = (username or "").strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise Invalid("username: 1–64 characters among a-z 0-9 . _ -, starting with a letter or digit")
    return name


def create_user(conn, *, username: str, password: str | None, display_name: str = "", email: str | None = None,
                accreditation_level: int = 0, active: bool = True, actor: str = "system",
                enforce_policy: bool = True) -> User:
    """Create a user; Conflict if the username is taken. `enforce_policy=False` is for demo users only."""
    name = normalize_username(username)
    if accreditation_level not in range(5):
        raise Invalid("accreditation_level: must be 0..4")
    if password is not None and enforce_policy:
        check_password_policy(password, username=name)
    row = conn.execute(
        "INSERT INTO users (username, display_name, email, accreditation_level, active, password_hash)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING RETURNING *",
        (name, display_name or "", email, accreditation_level, active,
         hash_password(password) if password is not None else None)).fetchone()
    if row is None:
        raise Conflict(f"username {name!r} is already taken")
    user = User.from_row(row)
    record_audit(conn, actor, "user.create", f"user:{name}", {"accreditation_level": accreditation_level})
    logger.info("user %s created (id=%s, N%s) by %s", name, user.id, accreditation_level, actor)
    return user


def get_user(conn, user_id: int) -> User:
    row = conn.execute("SELECT * FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id}")
    return User.from_row(row)


def find_user(conn, username: str) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE username = %s", ((username or "").strip().lower(),)).fetchone()
    return User.from_row(row) if row else None


def list_users(conn, *, limit: int = 100, offset: int = 0) -> list[User]:
    rows = conn.execute("SELECT * FROM users ORDER BY id LIMIT %s OFFSET %s", (limit, offset)).fetchall()
    return [User.from_row(r) for r in rows]


_UNSET = object()


def update_user(conn, user_id: int, *, actor: str, display_name=_UNSET, email=_UNSET,
                accreditation_level: int | None = None, active: bool | None = None,
                password: str | None = None) -> User:
    """Change a user's profile, level, active flag or password. Disabling or setting a password
    revokes their sessions; the last active N4 administrator can be neither demoted nor disabled."""
    user = get_user(conn, user_id)
    if accreditation_level is not None and accreditation_level not in range(5):
        raise Invalid("accreditation_level: must be 0..4")
    if password is not None:
        check_password_policy(password, username=user.username)
    new_level = user.accreditation_level if accreditation_level is None else accreditation_level
    new_active = user.active if active is None else active
    if user.active and user.accreditation_level == 4 and not (new_active and new_level == 4):
        _keep_one_admin(conn, user.id)
    changes = {}
    if display_name is not _UNSET:
        changes["display_name"] = display_name or ""
    if email is not _UNSET:
        changes["email"] = email
    if accreditation_level is not None:
        changes["accreditation_level"] = accreditation_level
    if active is not None:
        changes["active"] = active
    sets = [f"{column} = %s" for column in changes]
    values = list(changes.values())
    if password is not None:
        sets.append("password_hash = %s")
        values.append(hash_password(password))
    if active is not None:
        sets.append("disabled_at = CASE WHEN %s THEN NULL ELSE coalesce(disabled_at, now()) END")
        values.append(active)
    if sets:
        row = conn.execute(f"UPDATE users SET {', '.join(sets)}, updated_at = now() WHERE id = %s RETURNING *",
                           (*values, user_id)).fetchone()
        user = User.from_row(row)
    if active is False or password is not None:
        revoke_user_tokens(conn, user_id)
    audit = {k: v for k, v in changes.items() if k in ("accreditation_level", "active")}
    record_audit(conn, actor, "user.update", f"user:{user.username}",
                 {**audit, "fields": sorted(changes) + (["password"] if password is not None else [])})
    logger.info("user %s updated by %s: %s", user.username, actor, sorted(changes))
    return user


def _keep_one_admin(conn, user_id: int) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('widip:admins'))")
    others = conn.execute("SELECT count(*) AS n FROM users WHERE active AND accreditation_level = 4 AND id <> %s",
                          (user_id,)).fetchone()["n"]
    if others == 0:
        raise Conflict("at least one active N4 administrator must remain")


def change_own_password(conn, user_id: int, current: str, new: str, *, keep_token_id: int | None = None) -> None:
    """A user changes their own password; their other sessions are revoked."""
    row = conn.execute("SELECT username, password_hash FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None or not verify_password(row["password_hash"], current):
        raise Forbidden("the current password is wrong")
    check_password_policy(new, username=row["username"])
    conn.execute("UPDATE users SET password_hash = %s, updated_at = now() WHERE id = %s", (hash_password(new), user_id))
    revoke_user_tokens(conn, user_id, except_token_id=keep_token_id)
    record_audit(conn, f"human:{row['username']}", "user.password", f"user:{row['username']}", {})


def caller_for_user(conn, user_id: int) -> Caller:
    """The Caller for a user, for work done on their behalf (WIBOT). Refuses disabled users."""
    user = get_user(conn, user_id)
    if not user.active:
        raise Forbidden(f"user {user.username} is disabled")
    return Caller(kind="human", username=user.username, accreditation=user.accreditation_level, user_id=user.id)


def ensure_demo_users(conn, settings) -> list[User]:
    """Create `admin` (N4), `approver` (N3) and `tech` (N1) with password `<name>-demo`, only in the
    demo environment; existing accounts are left as they are."""
    if settings.env != "demo":
        raise Forbidden(f"demo users are only created when WIDIP_ENV=demo (env is {settings.env!r})")
    users = []
    for name, display, level in DEMO_USERS:
        user = find_user(conn, name)
        if user is None:
            user = create_user(conn, username=name, password=f"{name}-demo", display_name=display,
                               email=f"{name}@widip.fr", accreditation_level=level, actor="demo",
                               enforce_policy=False)
        users.append(user)
    return users


# --- sessions and login ----------------------------------------------------------------------


def login(conn, username: str, password: str, *, ip: str, ttl_hours: int,
          throttle: Throttle = DEFAULT_THROTTLE) -> LoginResult:
    """Check a username and password and issue a session, or say why not (throttled / bad login).
    Unknown, disabled and password-less users get the same answer and the same work as a wrong
    password."""
    name = (username or "").replace("\x00", "").strip().lower()[:128]
    ip = (ip or "unknown").replace("\x00", "")[:64]
    # Serialise attempts on one username so parallel guesses cannot outrun the counter.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("widip:login:" + name,))
    wait = throttle_delay(conn, name, ip, throttle)
    if wait:
        logger.warning("login throttled for a username or address (ip=%s, retry in %s s)", ip, wait)
        return LoginResult(error=Throttled(wait))
    row = conn.execute("SELECT * FROM users WHERE username = %s", (name,)).fetchone()
    ok = verify_password(row["password_hash"] if row else None, password or "")
    conn.execute("INSERT INTO login_attempts (username, ip, succeeded) VALUES (%s, %s, %s)",
                 (name, ip, bool(ok and row["active"])))
    if not (ok and row["active"]):
        if row is None:
            logger.info("login failed for an unknown username (ip=%s)", ip)
        else:
            logger.info("login failed for %s (ip=%s, active=%s)", name, ip, row["active"])
        return LoginResult(error=Unauthorized(BAD_LOGIN))
    if _hasher.check_needs_rehash(row["password_hash"]):
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (hash_password(password), row["id"]))
    session = issue_session(conn, row["id"], ttl_hours=ttl_hours, ip=ip)
    logger.info("user %s logged in (token id %s, ip=%s)", name, session.token_id, ip)
    return LoginResult(session=session)


def throttle_delay(conn, username: str, ip: str, throttle: Throttle = DEFAULT_THROTTLE) -> int:
    """Seconds to wait before the next attempt for this (username, address) or address (0: go ahead)."""
    waits = []
    for where, since_success, allowed in (("username = %(name)s AND ip = %(ip)s", True, throttle.max_failures),
                                          ("ip = %(ip)s", False, throttle.max_failures_per_address)):
        reset = (f" AND attempted_at > coalesce((SELECT max(attempted_at) FROM login_attempts WHERE {where}"
                 " AND succeeded), '-infinity')") if since_success else ""
        row = conn.execute(
            f"SELECT count(*) AS n, extract(epoch FROM now() - max(attempted_at)) AS ago FROM login_attempts"
            f" WHERE {where} AND NOT succeeded AND cleared_at IS NULL"
            f" AND attempted_at > now() - make_interval(secs => %(window)s){reset}",
            {"name": username, "ip": ip, "window": throttle.window_seconds}).fetchone()
        if row["n"] >= allowed:
            delay = min(throttle.base_delay_seconds * 2 ** min(row["n"] - allowed, 20), throttle.window_seconds)
            left = delay - float(row["ago"])
            if left > 0:
                waits.append(max(1, int(left + 0.999)))
    return max(waits, default=0)


def clear_failures(conn, *, username: str | None = None, ip: str | None = None, actor: str) -> int:
    """An N4's unlock: failed attempts for this username and/or address stop counting (they stay on
    record, marked cleared). Returns how many were cleared."""
    if not username and not ip:
        raise Invalid("give a username, an address or both")
    clauses = [c for c, v in (("username = %(name)s", username), ("ip = %(ip)s", ip)) if v]
    cleared = conn.execute(
        "UPDATE login_attempts SET cleared_at = now() WHERE NOT succeeded AND cleared_at IS NULL AND "
        + " AND ".join(clauses), {"name": (username or "").strip().lower(), "ip": ip}).rowcount
    record_audit(conn, actor, "login.unlock", f"user:{username}" if username else f"ip:{ip}",
                 {"username": username, "ip": ip, "cleared": cleared})
    logger.info("login failures cleared by %s (username=%s, ip=%s): %d", actor, username, ip, cleared)
    return cleared


def issue_session(conn, user_id: int, *, ttl_hours: int, ip: str | None = None) -> Session:
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        "INSERT INTO auth_tokens (token_hash, user_id, expires_at, created_ip)"
        " VALUES (%s, %s, now() + make_interval(hours => %s), %s) RETURNING id, expires_at",
        (_digest(token), user_id, ttl_hours, ip)).fetchone()
    return Session(token=token, token_id=row["id"], user=get_user(conn, user_id), expires_at=row["expires_at"])


def revoke_session(conn, token_id: int) -> bool:
    """Log out: revoke one session token. False if it was already revoked."""
    row = conn.execute("UPDATE auth_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id",
                       (token_id,)).fetchone()
    return row is not None


def revoke_user_tokens(conn, user_id: int, *, except_token_id: int | None = None) -> int:
    cur = conn.execute("UPDATE auth_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL"
                       " AND id IS DISTINCT FROM %s", (user_id, except_token_id))
    return cur.rowcount


def could_be_token(token: str) -> bool:
    """Whether `token` has the shape of a widip token, so garbage is refused without a database query."""
    return bool(token) and len(token) <= MAX_TOKEN_LENGTH and token.startswith((SESSION_PREFIX, SERVICE_PREFIX))


def authenticate_token(conn, token: str) -> Authenticated | None:
    """Resolve a bearer token to a caller, or None if unknown, expired, revoked or the user is disabled."""
    if not could_be_token(token):
        return None
    if token.startswith(SESSION_PREFIX):
        row = conn.execute(
            "SELECT t.id AS token_id, t.last_used_at, u.id, u.username, u.accreditation_level"
            " FROM auth_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = %s"
            " AND t.revoked_at IS NULL AND t.expires_at > now() AND u.active", (_digest(token),)).fetchone()
        if row is None:
            return None
        _touch(conn, "auth_tokens", row)
        caller = Caller(kind="human", username=row["username"], accreditation=row["accreditation_level"],
                        user_id=row["id"])
        return Authenticated(caller=caller, token_id=row["token_id"], kind="session")
    if token.startswith(SERVICE_PREFIX):
        row = conn.execute(
            "SELECT id AS token_id, name, scopes, last_used_at FROM service_tokens WHERE token_hash = %s"
            " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())", (_digest(token),)).fetchone()
        if row is None:
            return None
        _touch(conn, "service_tokens", row)
        caller = Caller(kind="service", username=row["name"], scopes=tuple(row["scopes"]))
        return Authenticated(caller=caller, token_id=row["token_id"], kind="service")
    return None


def _touch(conn, table: str, row: dict) -> None:
    """Record use at most once a minute, so authentication is not a write per request."""
    conn.execute(f"UPDATE {table} SET last_used_at = now() WHERE id = %s"
                 " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", (row["token_id"],))


# --- service tokens --------------------------------------------------------------------------


def create_service_token(conn, *, name: str, scopes, actor: str, created_by: int | None = None,
                         expires_in_days: int | None = None) -> IssuedServiceToken:
    """A new scoped token for a machine client (e.g. scopes ["webhook:observium"]); shown once."""
    name = (name or "").strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise Invalid("name: 1–64 characters among a-z 0-9 . _ -")
    scopes = tuple(dict.fromkeys(s.strip() if isinstance(s, str) else s for s in scopes or ()))
    if not scopes or any(not isinstance(s, str) or not SCOPE_PATTERN.fullmatch(s) for s in scopes):
        raise Invalid("scopes: one or more scopes like 'frontend' or 'webhook:observium'")
    token = SERVICE_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        "INSERT INTO service_tokens (name, token_hash, scopes, created_by, expires_at)"
        " VALUES (%s, %s, %s, %s, CASE WHEN %s::int IS NULL THEN NULL ELSE now() + make_interval(days => %s::int) END)"
        " ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING RETURNING *",
        (name, _digest(token), list(scopes), created_by, expires_in_days, expires_in_days)).fetchone()
    if row is None:
        raise Conflict(f"a live service token named {name!r} exists; revoke it first")
    record_audit(conn, actor, "service_token.create", f"service:{name}", {"scopes": list(scopes)})
    logger.info("service token %s (id %s, scopes %s) created by %s", name, row["id"], scopes, actor)
    return IssuedServiceToken(token=token, info=ServiceToken.from_row(row))


def list_service_tokens(conn, *, include_revoked: bool = False) -> list[ServiceToken]:
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    return [ServiceToken.from_row(r) for r in conn.execute(f"SELECT * FROM service_tokens {where} ORDER BY id")]


def revoke_service_token(conn, token_id: int, *, actor: str) -> ServiceToken:
    """Revoke a service token (idempotent); NotFound if there is no such token."""
    row = conn.execute("UPDATE service_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING *",
                       (token_id,)).fetchone()
    if row is None:
        raise NotFound(f"no service token with id {token_id}")
    record_audit(conn, actor, "service_token.revoke", f"service:{row['name']}", {"id": token_id})
    logger.info("service token %s (id %s) revoked by %s", row["name"], token_id, actor)
    return ServiceToken.from_row(row)


# --- housekeeping ----------------------------------------------------------------------------


def record_audit(conn, actor: str, action: str, target: str, details: dict | None = None) -> None:
    conn.execute("INSERT INTO identity_audit (actor, action, target, details) VALUES (%s, %s, %s, %s)",
                 (actor, action, target, Jsonb(details or {})))


def purge_expired(conn, *, keep_days: int = 7) -> dict:
    """Delete long-dead session tokens and old login attempts (for a periodic sweeper)."""
    tokens = conn.execute("DELETE FROM auth_tokens WHERE coalesce(revoked_at, expires_at)"
                          " < now() - make_interval(days => %s)", (keep_days,)).rowcount
    attempts = conn.execute("DELETE FROM login_attempts WHERE attempted_at < now() - make_interval(days => %s)",
                            (keep_days,)).rowcount
    return {"tokens": tokens, "login_attempts": attempts}
