"""Authentication over HTTP: login, /me, logout, throttling, admin endpoints, service tokens, 4xx answers."""

import falcon
import pytest
from falcon.testing import TestClient

from widip.functions import db, identity
from widip.http import users as users_module
from widip.http.auth import Authenticate, require_caller, require_scope
from widip.http.openapi_doc import build_document

ADMIN_PW, TECH_PW = "root of all trust", "fixes printers daily"


class ScopeProbe:
    def on_get(self, req, resp):
        resp.media = require_scope(req, "webhook:observium").to_dict()


class CallerProbe:
    def on_get(self, req, resp):
        resp.media = require_caller(req, min_level=3, scopes=("frontend",)).to_dict()


def _own_app(settings, deps=None):
    """The identity resources behind Authenticate, for when app.py does not wire the middleware yet."""
    from widip import deps as actor_deps
    from widip.http import health
    from widip.http.app import AppContext
    from widip.http.errors import register_error_handlers
    from widip.http.middleware import RequestId

    ctx = AppContext(settings=settings, deps=deps or actor_deps.configure(settings))
    app = falcon.App(middleware=[RequestId(), Authenticate(ctx)])
    register_error_handlers(app)
    users_module.register(app, ctx)
    health.register(app, ctx)
    return app


@pytest.fixture
def client(settings):
    from widip.http.app import build_context, create_app

    app = create_app(build_context(settings))
    if not any(isinstance(m, Authenticate) for m in getattr(app, "_unprepared_middleware", ())):
        app = _own_app(settings)
    app.add_route("/_probe/scope", ScopeProbe())
    app.add_route("/_probe/caller", CallerProbe())
    return TestClient(app)


@pytest.fixture
def people(conn):
    admin = identity.create_user(conn, username="admin", password=ADMIN_PW, accreditation_level=4)
    tech = identity.create_user(conn, username="tech", password=TECH_PW, accreditation_level=1)
    return {"admin": admin, "tech": tech}


def _login(client, username, password, ip="127.0.0.1"):
    return client.simulate_post("/auth/login", json={"username": username, "password": password}, remote_addr=ip)


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def _token(client, username, password):
    result = _login(client, username, password)
    assert result.status_code == 200, result.text
    return result.json["token"]


def test_a_logged_in_user_sees_themselves_and_their_access_on_me(client, people):
    result = _login(client, "tech", TECH_PW)
    assert result.json["token_type"] == "Bearer" and result.headers["Cache-Control"] == "no-store"
    me = client.simulate_get("/me", headers=_auth(result.json["token"]))
    assert me.status_code == 200
    assert me.json["user"]["username"] == "tech" and me.json["user"]["accreditation"] == "N1"
    assert me.json["access"]["acces_glpi"] is False and me.json["caller"]["kind"] == "human"


def test_a_wrong_password_and_an_unknown_user_get_the_same_401(client, people):
    wrong = _login(client, "tech", "not the password")
    unknown = _login(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json and "invalid username or password" in wrong.json["description"]
    assert "Traceback" not in wrong.text


def test_me_without_or_with_a_bad_token_is_401_with_a_bearer_challenge(client, people):
    for headers in ({}, _auth("widu_forged"), {"Authorization": "Basic dGVjaDp4"}):
        result = client.simulate_get("/me", headers=headers)
        assert result.status_code == 401 and result.headers["WWW-Authenticate"].startswith("Bearer")


def test_repeated_failures_get_a_429_with_retry_after(client, people):
    for _ in range(5):
        assert _login(client, "tech", "guess number x").status_code == 401
    result = _login(client, "tech", TECH_PW)
    assert result.status_code == 429
    assert 1 <= int(result.headers["Retry-After"]) <= 900
    assert "too many failed logins" in result.json["description"]


def test_logout_revokes_the_token(client, people):
    token = _token(client, "tech", TECH_PW)
    assert client.simulate_post("/auth/logout", headers=_auth(token)).status_code == 204
    assert client.simulate_get("/me", headers=_auth(token)).status_code == 401


def test_an_expired_token_is_refused(client, people, conn):
    token = _token(client, "tech", TECH_PW)
    conn.execute("UPDATE auth_tokens SET expires_at = now() - interval '1 second'")
    assert client.simulate_get("/me", headers=_auth(token)).status_code == 401


def test_the_token_expires_after_the_configured_hours(client, people, conn):
    result = _login(client, "tech", TECH_PW)
    hours = conn.execute("SELECT extract(epoch FROM expires_at - created_at) / 3600 AS h FROM auth_tokens").fetchone()
    assert round(float(hours["h"])) == 12 and result.json["expires_at"]


def test_a_technician_cannot_create_users_but_an_administrator_can(client, people):
    body = {"username": "nurse.admin", "password": "a long enough secret", "display_name": "Marie",
            "email": "marie@widip.fr", "accreditation_level": 2}
    tech = client.simulate_post("/users", json=body, headers=_auth(_token(client, "tech", TECH_PW)))
    assert tech.status_code == 403 and "requires accreditation N4" in tech.json["description"]
    admin_token = _token(client, "admin", ADMIN_PW)
    created = client.simulate_post("/users", json=body, headers=_auth(admin_token))
    assert created.status_code == 201 and created.headers["Location"] == f"/users/{created.json['id']}"
    assert created.json["accreditation_level"] == 2
    assert client.simulate_post("/users", json=body, headers=_auth(admin_token)).status_code == 409
    assert _login(client, "nurse.admin", "a long enough secret").status_code == 200
    listed = client.simulate_get("/users", headers=_auth(admin_token)).json["users"]
    assert [u["username"] for u in listed] == ["admin", "tech", "nurse.admin"]


def test_a_disabled_user_cannot_log_in_and_their_tokens_stop_working(client, people):
    tech_token = _token(client, "tech", TECH_PW)
    admin = _auth(_token(client, "admin", ADMIN_PW))
    result = client.simulate_patch(f"/users/{people['tech'].id}", json={"active": False}, headers=admin)
    assert result.status_code == 200 and result.json["active"] is False
    assert client.simulate_get("/me", headers=_auth(tech_token)).status_code == 401
    assert _login(client, "tech", TECH_PW).status_code == 401


def test_an_administrator_sets_a_level_and_it_applies_to_live_tokens(client, people):
    tech_token = _token(client, "tech", TECH_PW)
    admin = _auth(_token(client, "admin", ADMIN_PW))
    client.simulate_patch(f"/users/{people['tech'].id}", json={"accreditation_level": 3}, headers=admin)
    assert client.simulate_get("/me", headers=_auth(tech_token)).json["user"]["accreditation_level"] == 3
    assert client.simulate_get("/_probe/caller", headers=_auth(tech_token)).status_code == 200
    self_demote = client.simulate_patch(f"/users/{people['admin'].id}", json={"accreditation_level": 1}, headers=admin)
    assert self_demote.status_code == 409


def test_an_administrator_edits_access_rights_and_users_see_only_their_own(client, people):
    tech = _auth(_token(client, "tech", TECH_PW))
    admin = _auth(_token(client, "admin", ADMIN_PW))
    rights = {"acces_glpi": True, "acces_base_docs": True, "acces_contrats": False, "acces_confidential": False,
              "clients_autorises": ["EHPAD Les Tilleuls"], "categories_tickets": ["Mot de passe"]}
    path = f"/users/{people['tech'].id}/access"
    assert client.simulate_put(path, json=rights, headers=tech).status_code == 403
    assert client.simulate_put(path, json=rights, headers=admin).json == rights
    assert client.simulate_get("/me", headers=tech).json["access"] == rights
    assert client.simulate_get(path, headers=tech).json == rights
    assert client.simulate_get(f"/users/{people['admin'].id}/access", headers=tech).status_code == 403
    assert client.simulate_get(f"/users/{people['admin'].id}", headers=tech).status_code == 403


def test_a_service_token_passes_require_scope_but_is_not_a_user(client, people):
    admin = _auth(_token(client, "admin", ADMIN_PW))
    created = client.simulate_post("/service-tokens", json={"name": "observium", "scopes": ["webhook:observium"]},
                                   headers=admin)
    assert created.status_code == 201
    service = _auth(created.json["token"])
    probe = client.simulate_get("/_probe/scope", headers=service)
    assert probe.status_code == 200 and probe.json["kind"] == "service" and probe.json["username"] == "observium"
    assert client.simulate_get("/me", headers=service).status_code == 401
    assert client.simulate_get("/users", headers=service).status_code == 401
    assert _login(client, "observium", created.json["token"]).status_code == 401
    listed = client.simulate_get("/service-tokens", headers=admin).json["service_tokens"]
    assert [t["name"] for t in listed] == ["observium"] and "token" not in listed[0]
    # When the token is revoked
    assert client.simulate_delete(f"/service-tokens/{created.json['id']}", headers=admin).json["revoked_at"]
    assert client.simulate_get("/_probe/scope", headers=service).status_code == 401


def test_scopes_and_levels_are_checked_by_the_helpers(client, people):
    admin = _auth(_token(client, "admin", ADMIN_PW))
    frontend = client.simulate_post("/service-tokens", json={"name": "frontend", "scopes": ["frontend"]},
                                    headers=admin).json["token"]
    assert client.simulate_get("/_probe/scope", headers=_auth(frontend)).status_code == 403
    assert client.simulate_get("/_probe/scope").status_code == 401
    assert client.simulate_get("/_probe/scope", headers=admin).status_code == 403
    assert client.simulate_get("/_probe/caller", headers=_auth(frontend)).json["kind"] == "service"
    assert client.simulate_get("/_probe/caller", headers=admin).json["kind"] == "human"
    tech = client.simulate_get("/_probe/caller", headers=_auth(_token(client, "tech", TECH_PW)))
    assert tech.status_code == 403 and "requires accreditation N3" in tech.json["description"]


def test_public_endpoints_stay_public_whatever_the_authorization_header(client):
    for header in ("Bearer garbage", "Bearer widu_forged", "Bearer wids_forged", "Basic x", "Bearer "):
        assert client.simulate_get("/health", headers={"Authorization": header}).status_code == 200


def test_with_the_database_down_protected_endpoints_say_503_and_public_ones_still_answer(settings):
    import redis
    from psycopg_pool import ConnectionPool

    from widip.deps import Deps

    url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    pool = ConnectionPool(url, open=False, timeout=0.5, reconnect_timeout=0.5)
    deps = Deps(settings=settings, pool=pool, redis=redis.Redis.from_url(settings.redis_url))
    client = TestClient(_own_app(settings.with_overrides(database_url=url), deps))
    try:
        assert client.simulate_get("/health", headers=_auth("widu_x")).status_code == 200
        result = client.simulate_get("/me", headers=_auth("widu_x"))
        assert result.status_code == 503 and "cannot check credentials" in result.json["description"]
        assert result.headers["Retry-After"]
    finally:
        pool.close(timeout=0.5)


def test_a_password_change_through_me(client, people):
    token = _token(client, "tech", TECH_PW)
    body = {"current_password": TECH_PW, "new_password": "brand new passphrase"}
    assert client.simulate_post("/me/password", json=body, headers=_auth(token)).status_code == 204
    assert _login(client, "tech", "brand new passphrase").status_code == 200


@pytest.mark.parametrize("path, body, expected", [
    ("/auth/login", "{nope", "not valid JSON"),
    ("/auth/login", '{"username": "tech"}', "password"),
    ("/auth/login", '{"username": "te\\u0000ch", "password": "x"}', "username"),
    ("/users", '{"username": "new", "password": "short"}', "password"),
    ("/users", '{"username": "Bad Name", "password": "long enough pass"}', "username"),
    ("/users", '{"username": "new", "password": "long enough pass", "display_name": "a\\u0000b"}', "display_name"),
    ("/users", '{"username": "new", "password": "long enough pass", "accreditation_level": 9}', "accreditation"),
    ("/users", '{"username": "new", "password": "long enough pass", "email": "no-at-sign"}', "email"),
    ("/service-tokens", '{"name": "x", "scopes": []}', "scopes"),
    ("/service-tokens", '{"name": "x", "scopes": ["frontend"], "expires_in_days": 0}', "expires_in_days"),
])
def test_bad_bodies_get_a_400_saying_what_is_wrong(client, people, path, body, expected):
    headers = {"Content-Type": "application/json", **_auth(_token(client, "admin", ADMIN_PW))}
    result = client.simulate_post(path, body=body, headers=headers)
    assert result.status_code == 400, result.text
    assert expected in result.json["description"]


@pytest.mark.parametrize("path, status", [
    ("/users/abc", 400), ("/users/0", 404), ("/users/99999", 404), ("/users/99999999999999999999999", 404),
    ("/users/99999/access", 404), ("/users/-1", 400),
])
def test_odd_user_ids_get_a_4xx_never_a_500(client, people, path, status):
    result = client.simulate_get(path, headers=_auth(_token(client, "admin", ADMIN_PW)))
    assert result.status_code == status and result.json["description"]


def test_paging_parameters_are_validated(client, people):
    admin = _auth(_token(client, "admin", ADMIN_PW))
    assert client.simulate_get("/users", params={"limit": "0"}, headers=admin).status_code == 400
    assert client.simulate_get("/users", params={"limit": "1"}, headers=admin).json["users"][0]["username"] == "admin"


def test_the_openapi_document_describes_every_identity_route(client):
    doc = build_document([users_module])
    for path in ("/auth/login", "/auth/logout", "/me", "/me/password", "/users", "/users/{user_id}",
                 "/users/{user_id}/access", "/service-tokens", "/service-tokens/{token_id}"):
        assert path in doc["paths"]
        for method, op in doc["paths"][path].items():
            assert op["responses"] and (path == "/auth/login" or "401" in op["responses"])
    assert doc["paths"]["/auth/login"]["post"]["responses"]["429"]


def test_tokens_never_reach_the_logs(client, people, caplog):
    caplog.set_level("DEBUG")
    token = _token(client, "tech", TECH_PW)
    client.simulate_get("/me", headers=_auth(token))
    _login(client, "tech", "wrong password here")
    assert token not in caplog.text and TECH_PW not in caplog.text and "wrong password here" not in caplog.text


def test_database_rows_hold_no_raw_token(client, people, settings):
    token = _token(client, "tech", TECH_PW)
    with db.connect(settings.database_url) as conn:
        dump = str(conn.execute("SELECT * FROM auth_tokens").fetchall())
    assert token not in dump
