"""Login throttling cannot be turned against legitimate users (HTTP): failures count per (username,
client address), a trusted reverse proxy's X-Forwarded-For names the client, anyone else's is ignored,
and an N4 clears a lock at once."""

import pytest
from falcon.testing import TestClient

from widip.functions import identity
from widip.http.app import build_context, create_app

PASSWORD = "the right horse battery"


@pytest.fixture
def admin(conn):
    user = identity.create_user(conn, username="chef", password=PASSWORD, accreditation_level=4)
    return {"Authorization": f"Bearer {identity.issue_session(conn, user.id, ttl_hours=1).token}"}


def login(client, password, forwarded=None, name="chef"):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.simulate_post("/auth/login", json={"username": name, "password": password}, headers=headers)


def test_behind_a_trusted_proxy_an_attacker_locks_only_their_own_address(settings, admin):
    client = TestClient(create_app(build_context(settings.with_overrides(trusted_proxies=("127.0.0.0/8",)))))
    for _ in range(6):
        assert login(client, "guess", forwarded="203.0.113.66").status_code in (401, 429)
    assert login(client, PASSWORD, forwarded="203.0.113.66").status_code == 429
    assert login(client, PASSWORD, forwarded="198.51.100.7").status_code == 200
    # Fifty failures on random names from the attacker's address do not lock the office out either
    for i in range(60):
        login(client, "guess", forwarded="203.0.113.66", name=f"user{i}")
    assert login(client, PASSWORD, forwarded="198.51.100.8").status_code == 200


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(settings, admin):
    client = TestClient(create_app(build_context(settings)))  # no trusted proxies: the header cannot choose it
    for i in range(5):
        assert login(client, "guess", forwarded=f"198.51.100.{i}").status_code == 401
    assert login(client, PASSWORD, forwarded="198.51.100.200").status_code == 429


def test_an_n4_unlocks_a_username_over_http(settings, admin, conn):
    client = TestClient(create_app(build_context(settings)))
    for _ in range(5):
        login(client, "guess")
    assert login(client, PASSWORD).status_code == 429
    other = identity.create_user(conn, username="n3", password=PASSWORD, accreditation_level=3)
    n3 = {"Authorization": f"Bearer {identity.issue_session(conn, other.id, ttl_hours=1).token}"}
    assert client.simulate_post("/auth/unlock", json={"username": "chef"}, headers=n3).status_code == 403
    assert client.simulate_post("/auth/unlock", json={}, headers=admin).status_code == 400
    cleared = client.simulate_post("/auth/unlock", json={"username": "chef"}, headers=admin)
    assert cleared.status_code == 200 and cleared.json["cleared"] == 5
    assert login(client, PASSWORD).status_code == 200
