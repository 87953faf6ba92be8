"""Identity endpoints: login/logout, /me, user administration (N4), access matrix rows, service tokens."""

from __future__ import annotations

import falcon

from widip.errors import Invalid, NotFound
from widip.functions import access_matrix, db, identity
from widip.http.auth import require_user
from widip.http.client_address import client_address, parse_networks
from widip.http.errors import handle_service_error
from widip.http.openapi_doc import error, json_body, json_response
from widip.http.validation import BIGINT_MAX, query_bool, read_json

ADMIN = 4
_TEXT = "^[^\\u0000]*$"  # PostgreSQL text cannot hold NUL

# --- schemas ---------------------------------------------------------------------------------

USERNAME = {"type": "string", "pattern": identity.USERNAME_PATTERN.pattern, "maxLength": 64}
PASSWORD = {"type": "string", "minLength": identity.MIN_PASSWORD_LENGTH, "maxLength": identity.MAX_PASSWORD_LENGTH}
EMAIL = {"type": ["string", "null"], "maxLength": 254, "pattern": "^[^@\\s\\u0000]+@[^@\\s\\u0000]+$"}
DISPLAY_NAME = {"type": "string", "maxLength": 200, "pattern": _TEXT}
LEVEL = {"type": "integer", "minimum": 0, "maximum": 4}
ITEMS = {"type": "array", "maxItems": 500,
         "items": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\u0000;]*$"}}

LOGIN_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["username", "password"],
    "properties": {"username": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": _TEXT},
                   "password": {"type": "string", "minLength": 1, "maxLength": identity.MAX_PASSWORD_LENGTH}},
}
PASSWORD_CHANGE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["current_password", "new_password"],
    "properties": {"current_password": {"type": "string", "minLength": 1, "maxLength": identity.MAX_PASSWORD_LENGTH},
                   "new_password": PASSWORD},
}
USER_CREATE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["username", "password"],
    "properties": {"username": USERNAME, "password": PASSWORD, "display_name": DISPLAY_NAME, "email": EMAIL,
                   "accreditation_level": LEVEL, "active": {"type": "boolean"}},
}
USER_PATCH_SCHEMA = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {"display_name": DISPLAY_NAME, "email": EMAIL, "accreditation_level": LEVEL,
                   "active": {"type": "boolean"}, "password": PASSWORD},
}
ACCESS_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": list(access_matrix.FLAGS + access_matrix.LISTS),
    "properties": {**{f: {"type": "boolean"} for f in access_matrix.FLAGS}, **{f: ITEMS for f in access_matrix.LISTS}},
}
SERVICE_TOKEN_CREATE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["name", "scopes"],
    "properties": {"name": USERNAME,
                   "scopes": {"type": "array", "minItems": 1, "maxItems": 20,
                              "items": {"type": "string", "maxLength": 200,
                                        "pattern": identity.SCOPE_PATTERN.pattern}},
                   "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650}},
}
UNLOCK_SCHEMA = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {"username": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": _TEXT},
                   "address": {"type": "string", "minLength": 2, "maxLength": 64, "pattern": "^[0-9A-Fa-f:.]+$"}},
}
USER_SCHEMA = {
    "type": "object", "required": ["id", "username", "accreditation_level", "active"],
    "properties": {"id": {"type": "integer"}, "username": {"type": "string"}, "display_name": {"type": "string"},
                   "email": {"type": ["string", "null"]}, "accreditation_level": LEVEL,
                   "accreditation": {"type": "string"}, "active": {"type": "boolean"},
                   "created_at": {"type": "string"}},
}
SESSION_SCHEMA = {"type": "object", "required": ["token", "token_type", "expires_at", "user"],
                  "properties": {"token": {"type": "string"}, "token_type": {"const": "Bearer"},
                                 "expires_at": {"type": "string"}, "user": USER_SCHEMA}}
SERVICE_TOKEN_SCHEMA = {"type": "object", "required": ["id", "name", "scopes"],
                        "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                       "scopes": {"type": "array", "items": {"type": "string"}},
                                       "token": {"type": "string", "description": "only in the creation answer"}}}


def _id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}


def _op(summary: str, op_id: str, responses: dict, *, body: dict | None = None, params=(), public=False) -> dict:
    op = {"summary": summary, "operationId": op_id, "responses": responses}
    if body is not None:
        op["requestBody"] = json_body(body)
    if params:
        op["parameters"] = list(params)
    if not public:
        op["security"] = [{"bearer": []}]
        responses.setdefault("401", error("missing, expired or revoked bearer token"))
    return op


_403 = error("the caller lacks the required accreditation (N4)")
_400 = error("invalid body or parameter; the description says what is wrong")
_404_USER = error("no such user")
_PAGING = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
           {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1000000}}]

OPENAPI_PATHS = {
    "/auth/login": {"post": _op(
        "Log in with username and password; returns an opaque bearer token", "login",
        {"200": json_response("session token (shown once)", SESSION_SCHEMA), "400": _400,
         "401": error("invalid username or password"),
         "429": error("too many failed attempts; see Retry-After")}, body=LOGIN_SCHEMA, public=True)},
    "/auth/unlock": {"post": _op(
        "Clear failed logins for a username and/or client address (N4, audited)", "unlockLogin",
        {"200": json_response("cleared", {"type": "object", "required": ["cleared"],
                                          "properties": {"cleared": {"type": "integer"}}}),
         "400": _400, "403": _403}, body=UNLOCK_SCHEMA)},
    "/auth/logout": {"post": _op("Revoke the bearer token used for this request", "logout",
                                 {"204": {"description": "revoked"}})},
    "/me": {"get": _op("The logged-in user, their accreditation and access-matrix rights", "getMe",
                       {"200": json_response("user and access", {"type": "object", "required": ["user", "access"]})})},
    "/me/password": {"post": _op(
        "Change one's own password (other sessions are revoked)", "changeMyPassword",
        {"204": {"description": "changed"}, "400": _400, "403": error("current password is wrong")},
        body=PASSWORD_CHANGE_SCHEMA)},
    "/users": {
        "get": _op("List users (N4)", "listUsers",
                   {"200": json_response("users", {"type": "object", "required": ["users"]}), "400": _400,
                    "403": _403}, params=_PAGING),
        "post": _op("Create a user (N4)", "createUser",
                    {"201": json_response("created", USER_SCHEMA), "400": _400, "403": _403,
                     "409": error("username taken")}, body=USER_CREATE_SCHEMA),
    },
    "/users/{user_id}": {
        "get": _op("One user (N4, or oneself)", "getUser",
                   {"200": json_response("user", USER_SCHEMA), "400": _400, "403": _403, "404": _404_USER},
                   params=[_id("user_id")]),
        "patch": _op("Change a user's profile, level, active flag or password (N4); disabling revokes sessions",
                     "updateUser",
                     {"200": json_response("user", USER_SCHEMA), "400": _400, "403": _403, "404": _404_USER,
                      "409": error("would leave no active N4 administrator")},
                     body=USER_PATCH_SCHEMA, params=[_id("user_id")]),
    },
    "/users/{user_id}/access": {
        "get": _op("A user's access-matrix rights (N4, or oneself)", "getUserAccess",
                   {"200": json_response("rights", ACCESS_SCHEMA), "400": _400, "403": _403, "404": _404_USER},
                   params=[_id("user_id")]),
        "put": _op("Replace a user's access-matrix rights (N4)", "setUserAccess",
                   {"200": json_response("rights", ACCESS_SCHEMA), "400": _400, "403": _403, "404": _404_USER},
                   body=ACCESS_SCHEMA, params=[_id("user_id")]),
    },
    "/service-tokens": {
        "get": _op("List service tokens (N4; never the token values)", "listServiceTokens",
                   {"200": json_response("tokens", {"type": "object", "required": ["service_tokens"]}),
                    "400": _400, "403": _403},
                   params=[{"name": "include_revoked", "in": "query", "schema": {"type": "boolean"}}]),
        "post": _op("Create a scoped token for a machine client (N4); the token is shown once", "createServiceToken",
                    {"201": json_response("created", SERVICE_TOKEN_SCHEMA), "400": _400, "403": _403,
                     "409": error("a live token with this name exists")}, body=SERVICE_TOKEN_CREATE_SCHEMA),
    },
    "/service-tokens/{token_id}": {"delete": _op(
        "Revoke a service token (N4)", "revokeServiceToken",
        {"200": json_response("revoked", SERVICE_TOKEN_SCHEMA), "400": _400, "403": _403,
         "404": error("no such token")}, params=[_id("token_id")])},
}


def _path_id(value: str, name: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise Invalid(f"{name} must be a positive integer, got {value[:32]!r}")
    number = int(value)
    if number < 1 or number > BIGINT_MAX:
        raise NotFound(f"no item with {name} {value[:32]}")
    return number


def _actor(caller) -> str:
    return caller.label


def _self_or_admin(req, user_id: str) -> int:
    """The path's user id, readable by that user or an N4 administrator."""
    caller = require_user(req)
    uid = _path_id(user_id, "user_id")
    if caller.user_id != uid:
        require_user(req, ADMIN)
    return uid


class _Resource:
    def __init__(self, ctx):
        self._ctx = ctx

    def _tx(self):
        return db.transaction(self._ctx.pool)


class Login(_Resource):
    def __init__(self, ctx):
        super().__init__(ctx)
        self._proxies = parse_networks(ctx.settings.trusted_proxies)

    def on_post(self, req, resp):
        body = read_json(req, LOGIN_SCHEMA)
        ip = client_address(req.remote_addr, req.get_header("X-Forwarded-For"), self._proxies)
        with self._tx() as conn:
            result = identity.login(conn, body["username"], body["password"], ip=ip,
                                    ttl_hours=self._ctx.settings.auth_token_ttl_hours)
        # Outside the transaction: a failed attempt is committed before we answer 401/429.
        resp.media = result.session_or_raise().to_dict()
        resp.set_header("Cache-Control", "no-store")


class Unlock(_Resource):
    def on_post(self, req, resp):
        caller = require_user(req, ADMIN)
        body = read_json(req, UNLOCK_SCHEMA)
        with self._tx() as conn:
            cleared = identity.clear_failures(conn, username=body.get("username"), ip=body.get("address"),
                                              actor=_actor(caller))
        resp.media = {"cleared": cleared, "next": "these failed logins no longer count: login may be retried now"}


class Logout(_Resource):
    def on_post(self, req, resp):
        require_user(req)
        with self._tx() as conn:
            identity.revoke_session(conn, req.context.auth_token_id)
        resp.status = falcon.HTTP_204


class Me(_Resource):
    def on_get(self, req, resp):
        caller = require_user(req)
        with self._tx() as conn:
            user = identity.get_user(conn, caller.user_id)
            rights = access_matrix.access_for(conn, caller.user_id)
        resp.media = {"user": user.to_dict(), "access": rights.to_dict(), "caller": caller.to_dict()}


class MyPassword(_Resource):
    def on_post(self, req, resp):
        caller = require_user(req)
        body = read_json(req, PASSWORD_CHANGE_SCHEMA)
        with self._tx() as conn:
            identity.change_own_password(conn, caller.user_id, body["current_password"], body["new_password"],
                                         keep_token_id=req.context.auth_token_id)
        resp.status = falcon.HTTP_204


class Users(_Resource):
    def on_get(self, req, resp):
        require_user(req, ADMIN)
        limit = req.get_param_as_int("limit", min_value=1, max_value=500, default=100)
        offset = req.get_param_as_int("offset", min_value=0, max_value=1000000, default=0)
        with self._tx() as conn:
            users = identity.list_users(conn, limit=limit, offset=offset)
        resp.media = {"users": [u.to_dict() for u in users]}

    def on_post(self, req, resp):
        caller = require_user(req, ADMIN)
        body = read_json(req, USER_CREATE_SCHEMA)
        with self._tx() as conn:
            user = identity.create_user(
                conn, username=body["username"], password=body["password"],
                display_name=body.get("display_name", ""), email=body.get("email"),
                accreditation_level=body.get("accreditation_level", 0), active=body.get("active", True),
                actor=_actor(caller))
        resp.status = falcon.HTTP_201
        resp.location = f"/users/{user.id}"
        resp.media = user.to_dict()


class UserItem(_Resource):
    def on_get(self, req, resp, user_id):
        uid = _self_or_admin(req, user_id)
        with self._tx() as conn:
            resp.media = identity.get_user(conn, uid).to_dict()

    def on_patch(self, req, resp, user_id):
        caller = require_user(req, ADMIN)
        uid = _path_id(user_id, "user_id")
        body = read_json(req, USER_PATCH_SCHEMA)
        with self._tx() as conn:
            user = identity.update_user(conn, uid, actor=_actor(caller), **body)
        resp.media = user.to_dict()


class UserAccess(_Resource):
    def on_get(self, req, resp, user_id):
        uid = _self_or_admin(req, user_id)
        with self._tx() as conn:
            resp.media = access_matrix.access_for(conn, uid).to_dict()

    def on_put(self, req, resp, user_id):
        caller = require_user(req, ADMIN)
        uid = _path_id(user_id, "user_id")
        rights = access_matrix.AccessRights.from_dict(read_json(req, ACCESS_SCHEMA))
        with self._tx() as conn:
            resp.media = access_matrix.set_access(conn, uid, rights, actor=_actor(caller)).to_dict()


class ServiceTokens(_Resource):
    def on_get(self, req, resp):
        require_user(req, ADMIN)
        include_revoked = query_bool(req, "include_revoked", default=False)
        with self._tx() as conn:
            tokens = identity.list_service_tokens(conn, include_revoked=include_revoked)
        resp.media = {"service_tokens": [t.to_dict() for t in tokens]}

    def on_post(self, req, resp):
        caller = require_user(req, ADMIN)
        body = read_json(req, SERVICE_TOKEN_CREATE_SCHEMA)
        with self._tx() as conn:
            issued = identity.create_service_token(conn, name=body["name"], scopes=body["scopes"],
                                                   actor=_actor(caller), created_by=caller.user_id,
                                                   expires_in_days=body.get("expires_in_days"))
        resp.status = falcon.HTTP_201
        resp.location = f"/service-tokens/{issued.info.id}"
        resp.set_header("Cache-Control", "no-store")
        resp.media = issued.to_dict()


class ServiceTokenItem(_Resource):
    def on_delete(self, req, resp, token_id):
        caller = require_user(req, ADMIN)
        tid = _path_id(token_id, "token_id")
        with self._tx() as conn:
            resp.media = identity.revoke_service_token(conn, tid, actor=_actor(caller)).to_dict()


def handle_throttled(req, resp, error: identity.Throttled, params):
    handle_service_error(req, resp, error, params)
    resp.set_header("Retry-After", str(error.retry_after_seconds))


def register(app, ctx):
    # NOTE: more specific than the ServiceError handler, so it adds Retry-After to the 429.
    app.add_error_handler(identity.Throttled, handle_throttled)
    app.add_route("/auth/login", Login(ctx))
    app.add_route("/auth/logout", Logout(ctx))
    app.add_route("/auth/unlock", Unlock(ctx))
    app.add_route("/me", Me(ctx))
    app.add_route("/me/password", MyPassword(ctx))
    app.add_route("/users", Users(ctx))
    app.add_route("/users/{user_id}", UserItem(ctx))
    app.add_route("/users/{user_id}/access", UserAccess(ctx))
    app.add_route("/service-tokens", ServiceTokens(ctx))
    app.add_route("/service-tokens/{token_id}", ServiceTokenItem(ctx))
