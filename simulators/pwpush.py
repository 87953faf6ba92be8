"""Password Pusher ("MySecret") simulator: the JSON API of docs/integrations.md, plus the page a user opens.

Pushes expire by views (the last allowed view still returns the payload, then the push expires and
its payload is erased) or by days (`/_sim/clock` moves time forward). Tokens: `Authorization: Bearer`
or `X-User-Email` + `X-User-Token`; a bad token gets a bare 401. Tests read payloads back through
`/_sim/pushes` without consuming a view.
"""

from __future__ import annotations

import html
import secrets
import threading
import time

import falcon

DEMO_TOKEN = "demo-mysecret-token"
DEMO_OWNER = "support@widip.fr"
MAX_PAYLOAD_BYTES = 1024 * 1024
DAYS_DEFAULT, DAYS_RANGE = 7, (1, 90)
VIEWS_DEFAULT, VIEWS_RANGE = 5, (1, 100)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def _flag(value, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "on", "yes")


def _bounded(value, default: int, bounds: tuple[int, int]) -> int:
    """Out-of-range or unparsable values silently become the default, as Password Pusher does."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if bounds[0] <= number <= bounds[1] else default


class State:
    """Pushes, API tokens, a movable clock, the call log and injected faults."""

    def __init__(self, *, allow_anonymous: bool = True, base_url: str | None = None):
        self.pushes: dict[str, dict] = {}
        self.tokens: dict[str, str] = {}
        self.allow_anonymous = allow_anonymous
        self.base_url = base_url
        self.offset_seconds = 0.0
        self.calls: list[dict] = []
        self.fault: dict = {}
        self.lock = threading.RLock()

    def now(self) -> float:
        return time.time() + self.offset_seconds

    def seed_demo(self, token: str | None = None) -> "State":
        """Accept the demo API token (and `token`, e.g. the launcher's MYSECRET_API_TOKEN)."""
        self.tokens[DEMO_TOKEN] = DEMO_OWNER
        if token:
            self.tokens[token] = DEMO_OWNER
        return self

    # -- push life cycle ---------------------------------------------------------------------------
    def create(self, fields: dict, owner: str | None) -> dict:
        token = secrets.token_urlsafe(secrets.choice(range(8, 15))).lower()
        push = {
            "url_token": token, "payload": fields["payload"], "owner": owner,
            "expire_after_days": _bounded(fields.get("expire_after_days"), DAYS_DEFAULT, DAYS_RANGE),
            "expire_after_views": _bounded(fields.get("expire_after_views"), VIEWS_DEFAULT, VIEWS_RANGE),
            "deletable_by_viewer": _flag(fields.get("deletable_by_viewer"), True),
            "retrieval_step": _flag(fields.get("retrieval_step"), True),
            "passphrase": fields.get("passphrase") or None, "name": fields.get("name"), "note": fields.get("note"),
            "kind": fields.get("kind") or "text", "created_at": self.now(), "updated_at": self.now(),
            "expired": False, "expired_on": None, "deleted": False, "views": [],
        }
        self.pushes[token] = push
        return push

    def refresh(self, push: dict) -> dict:
        """Expire a push whose days or views are used up (Password Pusher checks on every access)."""
        if not push["expired"]:
            days = (self.now() - push["created_at"]) / 86400
            if days >= push["expire_after_days"] or len(self._views(push)) >= push["expire_after_views"]:
                self.expire(push)
        return push

    def expire(self, push: dict, deleted: bool = False) -> None:
        if not push["expired"]:
            push.update(expired=True, expired_on=self.now(), payload=None, updated_at=self.now())
        push["deleted"] = push["deleted"] or deleted

    @staticmethod
    def _views(push: dict) -> list[dict]:
        return [v for v in push["views"] if v["kind"] == "view"]

    def public(self, push: dict, base: str, with_payload: bool = False) -> dict:
        url = f"{self.base_url or base}/p/{push['url_token']}"
        days_used = int((self.now() - push["created_at"]) // 86400)
        body = {
            "url_token": push["url_token"],
            "html_url": url + ("/r" if push["retrieval_step"] else ""), "json_url": url + ".json",
            "expire_after_days": push["expire_after_days"], "expire_after_views": push["expire_after_views"],
            "days_remaining": max(0, push["expire_after_days"] - days_used),
            "views_remaining": max(0, push["expire_after_views"] - len(self._views(push))),
            "expired": push["expired"], "expired_on": _iso(push["expired_on"]),
            "deletable_by_viewer": push["deletable_by_viewer"], "retrieval_step": push["retrieval_step"],
            "passphrase": None, "deleted": push["deleted"], "created_at": _iso(push["created_at"]),
            "updated_at": _iso(push["updated_at"]), "name": push["name"], "note": push["note"],
        }
        if with_payload:
            body.update(payload=push["payload"], files=[])
        return body

    def view(self, push: dict, req) -> dict:
        """Count one view and return the payload as it was before the view (the last view still sees it)."""
        self.refresh(push)
        if push["expired"]:
            return push | {"payload": None}
        push["views"].append({"ip": req.remote_addr, "user_agent": req.user_agent or "", "referrer": req.referer or "",
                              "created_at": _iso(self.now()), "kind": "view"})
        snapshot = dict(push)
        if len(self._views(push)) >= push["expire_after_views"]:
            self.expire(push)
        return snapshot


def _owner(state: State, req) -> str | None:
    """The API user from Bearer or X-User-Email/X-User-Token; a bad token ends the request with a bare 401."""
    authorization = req.get_header("Authorization") or ""
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else req.get_header("X-User-Token")
    if not token:
        return None
    owner = state.tokens.get(token)
    email = req.get_header("X-User-Email")
    if owner is None or (email and email.lower() != owner.lower()):
        raise falcon.HTTPStatus(falcon.HTTP_401)
    return owner


def _base(req) -> str:
    return req.prefix


class _Pushes:
    """POST /p.json (root key "password") and POST /api/v2/pushes.json (root key "push")."""

    def __init__(self, state: State, root: str):
        self._state, self._root = state, root

    def on_post(self, req, resp):
        owner = _owner(self._state, req)
        if owner is None and not self._state.allow_anonymous:
            raise falcon.HTTPStatus(falcon.HTTP_401)
        body = req.get_media(default_when_empty={}) or {}
        fields = body.get(self._root) if isinstance(body, dict) else None
        if not isinstance(fields, dict) or not fields:
            resp.status = falcon.HTTP_400
            resp.media = {"error": f"param is missing or the value is empty: {self._root}"}
            return
        payload = fields.get("payload")
        if not isinstance(payload, str) or not payload.strip():
            resp.status, resp.media = falcon.HTTP_422, {"payload": ["Payload is required."]}
            return
        if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            resp.status, resp.media = falcon.HTTP_422, {"payload": ["The payload is too large."]}
            return
        with self._state.lock:
            push = self._state.create(fields, owner)
            resp.status, resp.media = falcon.HTTP_201, self._state.public(push, _base(req))


class _Push:
    """GET (a view) and DELETE (expire now) of one push, JSON."""

    def __init__(self, state: State):
        self._state = state

    def on_get(self, req, resp, token):
        _owner(self._state, req)
        with self._state.lock:
            push = self._state.pushes.get(token)
            if push is None:
                resp.status, resp.media = falcon.HTTP_404, {"error": "not-found"}
                return
            if push["passphrase"] and req.get_param("passphrase") != push["passphrase"] and not push["expired"]:
                message = "That passphrase is incorrect."
                resp.status = falcon.HTTP_401
                resp.media = {"error": message, "message": message, "status": "unauthorized"}
                return
            seen = self._state.view(push, req)
            resp.media = self._state.public(seen, _base(req), with_payload=True)

    def on_get_preview(self, req, resp, token):
        with self._state.lock:
            push = self._state.pushes.get(token)
            if push is None:
                resp.status, resp.media = falcon.HTTP_404, {"error": "not-found"}
                return
            resp.media = {"url": self._state.public(push, _base(req))["html_url"]}

    def on_delete(self, req, resp, token):
        owner = _owner(self._state, req)
        with self._state.lock:
            push = self._state.pushes.get(token)
            if push is None:
                resp.status, resp.media = falcon.HTTP_404, {"error": "not-found"}
                return
            if not push["deletable_by_viewer"] and (owner is None or owner != push["owner"]):
                resp.status, resp.media = falcon.HTTP_401, {"error": "That push is not deletable by viewers."}
                return
            self._state.expire(push, deleted=True)
            resp.media = self._state.public(push, _base(req), with_payload=True)


class _Page:
    """The page the recipient opens: shows the secret once (French), like Password Pusher's own view."""

    def __init__(self, state: State):
        self._state = state

    def on_get(self, req, resp, token):
        with self._state.lock:
            push = self._state.pushes.get(token)
            seen = self._state.view(push, req) if push else None
        resp.content_type = falcon.MEDIA_HTML
        if seen is None or seen["payload"] is None:
            resp.status = falcon.HTTP_404 if seen is None else falcon.HTTP_200
            resp.text = "<html><body><h1>Ce lien a expiré.</h1><p>Demandez un nouveau lien au support WIDIP.</p></body></html>"
            return
        resp.text = ("<html><body><h1>Votre secret</h1><pre id='payload'>" + html.escape(seen["payload"]) +
                     "</pre><p>Ce lien ne fonctionnera plus après cette consultation.</p></body></html>")

    def on_get_step(self, req, resp, token):
        resp.content_type = falcon.MEDIA_HTML
        resp.text = f"<html><body><a href='/p/{html.escape(token)}'>Afficher le secret</a></body></html>"


class _SimPushes:
    def __init__(self, state: State):
        self._state = state

    def on_get(self, req, resp):
        with self._state.lock:
            resp.media = [self._sim_view(p) for p in self._state.pushes.values()]

    def on_get_one(self, req, resp, token):
        with self._state.lock:
            push = self._state.pushes.get(token)
            if push is None:
                raise falcon.HTTPNotFound()
            resp.media = self._sim_view(push)

    def _sim_view(self, push: dict) -> dict:
        self._state.refresh(push)
        return {k: v for k, v in push.items() if k not in ("created_at", "updated_at", "expired_on")} | {
            "view_count": len(State._views(push)), "created_at": _iso(push["created_at"])}


class _SimControl:
    def __init__(self, state: State):
        self._state = state

    def on_get_calls(self, req, resp):
        resp.media = list(self._state.calls)

    def on_delete_calls(self, req, resp):
        self._state.calls.clear()
        resp.status = falcon.HTTP_204

    def on_post_fault(self, req, resp):
        """{"delay_seconds": 5} or {"status": 503}: applies to every non-/_sim request."""
        self._state.fault = dict(req.get_media() or {})
        resp.media = self._state.fault

    def on_delete_fault(self, req, resp):
        self._state.fault = {}
        resp.status = falcon.HTTP_204

    def on_post_clock(self, req, resp):
        self._state.offset_seconds += float((req.get_media() or {}).get("advance_seconds", 0))
        resp.media = {"offset_seconds": self._state.offset_seconds}

    def on_post_tokens(self, req, resp):
        body = req.get_media() or {}
        self._state.tokens[str(body["token"])] = str(body.get("email") or DEMO_OWNER)
        resp.status = falcon.HTTP_204


class _Observe:
    """Faults and the call log (method, path, status, authenticated: never bodies, they hold secrets)."""

    def __init__(self, state: State):
        self._state = state

    def process_request(self, req, resp):
        if req.path.startswith("/_sim"):
            return
        fault = dict(self._state.fault)
        if fault.get("delay_seconds"):
            time.sleep(float(fault["delay_seconds"]))
        if fault.get("status"):
            raise falcon.HTTPError(falcon.code_to_http_status(int(fault["status"])))

    def process_response(self, req, resp, resource, req_succeeded):
        if not req.path.startswith("/_sim"):
            self._state.calls.append({
                "method": req.method, "path": req.path, "status": resp.status_code,
                "authenticated": bool(req.get_header("Authorization") or req.get_header("X-User-Token")),
            })


def make_app(state: State | None = None) -> falcon.App:
    state = state if state is not None else State().seed_demo()
    app = falcon.App(middleware=[_Observe(state)])
    app.add_route("/p.json", _Pushes(state, "password"))
    app.add_route("/api/v2/pushes.json", _Pushes(state, "push"))
    push = _Push(state)
    app.add_route("/p/{token}.json", push)
    app.add_route("/p/{token}/preview.json", push, suffix="preview")
    app.add_route("/api/v2/pushes/{token}.json", push)
    app.add_route("/api/v2/version.json", _Version())
    page = _Page(state)
    app.add_route("/p/{token}", page)
    app.add_route("/p/{token}/r", page, suffix="step")
    sim = _SimPushes(state)
    app.add_route("/_sim/pushes", sim)
    app.add_route("/_sim/pushes/{token}", sim, suffix="one")
    control = _SimControl(state)
    app.add_route("/_sim/calls", control, suffix="calls")
    app.add_route("/_sim/fault", control, suffix="fault")
    app.add_route("/_sim/clock", control, suffix="clock")
    app.add_route("/_sim/tokens", control, suffix="tokens")
    return app


class _Version:
    def on_get(self, req, resp):
        resp.media = {"application_version": "1.60.0", "api_version": "2.0", "edition": "oss"}


def main(argv: list[str] | None = None) -> None:
    import os

    from simulators.base import option, run

    run("Password Pusher simulator", 8104, lambda args: make_app(State().seed_demo(args.token)), "{url}", argv,
        option("--token", default=os.environ.get("MYSECRET_API_TOKEN")))


if __name__ == "__main__":  # pragma: no cover
    main()
