"""Falcon resources of the console: login/logout, the pages, and the widget fragments they poll.

A page without a session redirects to the login form; a fragment answers 401 so the page's script
can say the session ended. Login and logout are plain HTML forms (they work without JavaScript);
the session cookie is the same opaque token the JSON API accepts as a bearer.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote

import falcon
from markupsafe import Markup

from widip.console import widgets
from widip.console.render import render
from widip.errors import NotFound, ServiceError, Unavailable
from widip.functions import db, identity
from widip.http.auth import SESSION_COOKIE, csrf_token

FORM_LIMIT = 16 * 1024
HOME = "/console/chat"
#: Strict enough for a page that only loads its own files: no inline script, no third party.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
NAV = (("chat", "/console/chat", "Chat WIBOT"), ("safeguard", "/console/safeguard", "SAFEGUARD"),
       ("monitoring", "/console/monitoring", "Supervision"), ("incidents", "/console/incidents", "Incidents"),
       ("maintenance", "/console/maintenance", "Maintenances"))


def _html(resp, body: str, status=falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.text = body
    resp.set_header("Cache-Control", "no-store")
    resp.set_header("Content-Security-Policy", CSP)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "same-origin")


def _form(req) -> dict[str, str]:
    """An application/x-www-form-urlencoded body as {name: first value} (bounded, never raises)."""
    raw = req.bounded_stream.read(FORM_LIMIT).decode("utf-8", "replace")
    return {k: v[0].replace("\x00", "") for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _safe_next(target: str | None) -> str:
    """Only a local console path: never an open redirect."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


def _same_origin(req) -> bool:
    """A browser form post from another site is refused (login CSRF); non-browser clients send neither header."""
    site = req.get_header("Sec-Fetch-Site")
    if site and site not in ("same-origin", "none"):
        return False
    origin = req.get_header("Origin")
    if not origin:
        return True
    return origin.split("://", 1)[-1] in {req.get_header("Host"), req.forwarded_host}


def fragment(ctx, caller, req, name: str) -> Markup:
    """One widget's HTML (what the page paints first and the browser re-fetches)."""
    return Markup(render(f"fragments/{name}.html", **widgets.WIDGETS[name](ctx, caller, req), caller=caller))


class _Base:
    def __init__(self, ctx):
        self._ctx = ctx

    def _caller(self, req):
        """The logged-in human, or None; a database outage is a 503 (retry), not a logout."""
        caller = getattr(req.context, "caller", None)
        if caller is None and getattr(req.context, "auth_unavailable", False):
            raise Unavailable("database", "cannot check the session right now; retry shortly")
        return caller if caller is not None and caller.is_human else None

    def _page(self, req, resp, template: str, active: str, **context) -> None:
        caller = self._caller(req)
        if caller is None:
            raise falcon.HTTPSeeOther(f"/console/login?next={quote(req.relative_uri, safe='')}")
        with db.transaction(self._ctx.pool) as conn:
            user = identity.get_user(conn, caller.user_id)
        token = req.cookies.get(SESSION_COOKIE) or ""
        _html(resp, render(template, user=user, caller=caller, csrf=csrf_token(token) if token else "",
                           nav=NAV, active=active, **context))


class Home(_Base):
    def on_get(self, req, resp):
        raise falcon.HTTPSeeOther(HOME if self._caller(req) else "/console/login")


class Login(_Base):
    def on_get(self, req, resp):
        if self._caller(req) is not None:
            raise falcon.HTTPSeeOther(_safe_next(req.get_param("next")))
        _html(resp, render("login.html", next=_safe_next(req.get_param("next")), error="", username=""))

    def on_post(self, req, resp):
        form = _form(req)
        target = _safe_next(form.get("next"))
        if not _same_origin(req):
            _html(resp, render("login.html", next=target, error="Requête refusée : formulaire d'un autre site.",
                               username=""), falcon.HTTP_403)
            return
        username, password = form.get("username", "")[:128], form.get("password", "")[:identity.MAX_PASSWORD_LENGTH]
        if not username or not password:
            _html(resp, render("login.html", next=target, error="Saisissez votre identifiant et votre mot de passe.",
                               username=username), falcon.HTTP_400)
            return
        with db.transaction(self._ctx.pool) as conn:
            result = identity.login(conn, username, password, ip=req.remote_addr or "unknown",
                                    ttl_hours=self._ctx.settings.auth_token_ttl_hours)
        if result.session is None:
            throttled = isinstance(result.error, identity.Throttled)
            message = ("Trop de tentatives : réessayez dans quelques minutes." if throttled
                       else "Identifiant ou mot de passe incorrect.")
            _html(resp, render("login.html", next=target, error=message, username=username),
                  falcon.HTTP_429 if throttled else falcon.HTTP_401)
            return
        resp.set_cookie(SESSION_COOKIE, result.session.token, max_age=self._ctx.settings.auth_token_ttl_hours * 3600,
                        path="/", secure=req.forwarded_scheme == "https", http_only=True, same_site="Strict")
        raise falcon.HTTPSeeOther(target)


class Logout(_Base):
    def on_post(self, req, resp):
        token = req.cookies.get(SESSION_COOKIE) or ""
        form = _form(req)
        if token and form.get("csrf") == csrf_token(token):
            with db.transaction(self._ctx.pool) as conn:
                found = identity.authenticate_token(conn, token)
                if found is not None:
                    identity.revoke_session(conn, found.token_id)
        elif token:
            raise falcon.HTTPSeeOther(HOME)  # a forged logout changes nothing
        resp.unset_cookie(SESSION_COOKIE, path="/")
        raise falcon.HTTPSeeOther("/console/login")


class Chat(_Base):
    def on_get(self, req, resp, conversation_id=None):
        caller = self._caller(req)
        turns = widgets.conversation_turns(self._ctx, caller, conversation_id) if caller and conversation_id else []
        # A session opened from the SAFEGUARD desk is no conversation of the reader's: a message sent
        # from that page starts a new conversation.
        current = conversation_id if turns and not turns[0].get("session_only") else ""
        if caller is not None:
            req.params["current"] = current
        self._page(req, resp, "chat.html", "chat", turns=turns, current=current,
                   approvers=widgets.approvers(self._ctx) if caller else [],
                   conversations_html=fragment(self._ctx, caller, req, "conversations") if caller else "")


class Section(_Base):
    """A page made of widgets: each is rendered once here, then refreshed by the browser."""

    def __init__(self, ctx, template: str, active: str, names: tuple[str, ...]):
        super().__init__(ctx)
        self._template, self._active, self._names = template, active, names

    def on_get(self, req, resp, tracking_id=None):
        caller = self._caller(req)
        if caller is not None and tracking_id is not None:
            req.params["id"] = tracking_id
        try:
            html = {n: fragment(self._ctx, caller, req, n) for n in self._names} if caller else {}
        except NotFound as exc:
            self._page(req, resp, "missing.html", self._active, message=exc.message)
            resp.status = falcon.HTTP_404
            return
        self._page(req, resp, self._template, self._active, html=html, query=req.query_string or "",
                   tracking_id=tracking_id or "",
                   request_args={k: (req.get_param(k) or "")[:100] for k in ("tool", "user", "outcome", "since",
                                                                            "status")})


class Fragment(_Base):
    def on_get(self, req, resp, name):
        if name not in widgets.WIDGETS:
            raise NotFound(f"no console widget {name[:40]!r}")
        caller = self._caller(req)
        if caller is None:
            _html(resp, '<p class="empty">Session expirée : <a href="/console/login">reconnectez-vous</a>.</p>',
                  falcon.HTTP_401)
            return
        try:
            _html(resp, fragment(self._ctx, caller, req, name))
        except ServiceError as exc:
            _html(resp, render("fragments/error.html", message=exc.message),
                  falcon.code_to_http_status(exc.status))
