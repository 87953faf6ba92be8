"""Authentication for the web app: the `Authenticate` middleware and the `require_*` helpers.

The middleware only finds out who is calling (`req.context.caller`, a Caller or None); it never
rejects, so public endpoints stay public. Resources decide with `require_user`, `require_scope` or
`require_caller`, which raise widip.errors types mapped centrally to 401/403.

Browsers (the console) send the same session token in an HttpOnly, SameSite=Strict cookie instead
of a header; a cookie counts for a state-changing request only with the matching `X-CSRF-Token`
header, which only a page the console rendered knows. A bearer header always wins over a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import psycopg
import psycopg_pool

from widip.errors import Forbidden, Unauthorized, Unavailable
from widip.functions import db, identity
from widip.functions.access_matrix import AccessRights, access_for  # noqa: F401  (re-exported)
from widip.functions.callers import Caller
from widip.functions.identity import caller_for_user  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

__all__ = ["Authenticate", "bearer_token", "require_user", "require_scope", "require_caller",
           "caller_for_user", "access_for", "AccessRights", "SESSION_COOKIE", "CSRF_HEADER", "csrf_token"]

#: The console's cookie: a user session token (never a service token), HttpOnly and SameSite=Strict.
SESSION_COOKIE = "widip_session"
#: The header a cookie-authenticated POST/PUT/PATCH/DELETE must carry (see csrf_token).
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_token(req) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    header = req.get_header("Authorization") or ""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def csrf_token(session_token: str) -> str:
    """The anti-CSRF token of a session: derived from the secret cookie, so another site cannot know it."""
    return hashlib.sha256(b"widip-csrf:" + session_token.encode()).hexdigest()


def _cookie_token(req) -> str | None:
    """The session cookie's token when it may authenticate this request, else None (and why, in context)."""
    token = req.cookies.get(SESSION_COOKIE)
    if not token or not token.startswith(identity.SESSION_PREFIX):
        return None
    if req.method not in _SAFE_METHODS:
        sent = req.get_header(CSRF_HEADER) or ""
        if not hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
            req.context.csrf_rejected = True
            return None
    return token


class Authenticate:
    """Sets `req.context.caller` (and `auth_token_id`, `auth_kind`) from a session or service token.

    `ctx` is anything with a `.pool` (the app's AppContext). If the database cannot be reached the
    caller stays None and `auth_unavailable` is set, so protected endpoints answer 503 (retry)
    rather than a misleading 401, while public ones keep working.
    """

    def __init__(self, ctx):
        self._ctx = ctx

    def process_request(self, req, resp):
        req.context.caller = None
        req.context.auth_token_id = None
        req.context.auth_kind = None
        req.context.auth_unavailable = False
        req.context.csrf_rejected = False

    def process_resource(self, req, resp, resource, params):
        if resource is None:
            return
        token = bearer_token(req) or _cookie_token(req)
        if token is None:
            return
        try:
            with db.transaction(self._ctx.pool) as conn:
                found = identity.authenticate_token(conn, token)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            logger.warning("cannot check a bearer token, database unavailable: %s", type(exc).__name__)
            req.context.auth_unavailable = True
            return
        if found is not None:
            req.context.caller = found.caller
            req.context.auth_token_id = found.token_id
            req.context.auth_kind = found.kind

    def process_response(self, req, resp, resource, req_succeeded):
        if resp.status_code == 401 and not resp.get_header("WWW-Authenticate"):
            resp.set_header("WWW-Authenticate", 'Bearer realm="widip"')


def _caller(req) -> Caller | None:
    caller = getattr(req.context, "caller", None)
    if caller is None and getattr(req.context, "auth_unavailable", False):
        raise Unavailable("database", "cannot check credentials right now; retry shortly")
    if caller is None and getattr(req.context, "csrf_rejected", False):
        raise Forbidden(f"a session cookie needs the {CSRF_HEADER} header of the page it came from; reload the page")
    return caller


def require_user(req, min_level: int = 0) -> Caller:
    """A logged-in human with accreditation ≥ `min_level`: 401 otherwise, 403 when the level is too low."""
    caller = _caller(req)
    if caller is None or not caller.is_human:
        raise Unauthorized("a user session token is required (POST /auth/login)")
    if caller.accreditation < min_level:
        raise Forbidden(f"requires accreditation N{min_level} (you have N{caller.accreditation})")
    return caller


def require_scope(req, scope: str) -> Caller:
    """A service token holding `scope`: 401 without credentials, 403 with the wrong ones."""
    caller = _caller(req)
    if caller is None:
        raise Unauthorized(f"a service token with scope {scope!r} is required")
    if caller.kind != "service" or scope not in caller.scopes:
        raise Forbidden(f"requires a service token with scope {scope!r}")
    return caller


def require_caller(req, min_level: int = 0, scopes: tuple[str, ...] = ()) -> Caller:
    """Either a human with accreditation ≥ `min_level` or a service holding one of `scopes`."""
    caller = _caller(req)
    if caller is None:
        raise Unauthorized("a bearer token is required")
    if caller.is_human:
        if caller.accreditation < min_level:
            raise Forbidden(f"requires accreditation N{min_level} (you have N{caller.accreditation})")
        return caller
    if caller.kind == "service" and any(s in caller.scopes for s in scopes):
        return caller
    if scopes:
        raise Forbidden(f"requires a user session or a service token with scope {' or '.join(scopes)}")
    raise Forbidden("requires a user session")
