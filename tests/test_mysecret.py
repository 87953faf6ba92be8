"""MySecretClient against the Password Pusher simulator, and the SecretStore handles it redeems."""

from __future__ import annotations

import time

import httpx
import pytest

from simulators.base import serve
from simulators.pwpush import DEMO_TOKEN, State, make_app
from widip.errors import Conflict, Invalid, NotFound, Rejected, Unavailable
from widip.functions.integrations.mysecret import MySecretClient
from widip.functions.integrations.secret_handles import SecretStore


@pytest.fixture(scope="module")
def shared():
    """One simulator for the module (stopping a server costs 0.5 s); its state is reset per test."""
    state = State().seed_demo()
    server = serve(make_app(state))
    yield state, server
    server.stop()


@pytest.fixture
def pushes(shared):
    state, _ = shared
    state.pushes.clear()
    state.calls.clear()
    state.fault, state.offset_seconds = {}, 0.0
    return state


@pytest.fixture
def pwpush(shared, pushes):
    return shared[1]


@pytest.fixture
def store(redis_client):
    return SecretStore(redis_client)


@pytest.fixture
def mysecret(pwpush, store):
    client = MySecretClient(pwpush.url, DEMO_TOKEN, timeout=2.0, secret_store=store)
    yield client
    client.close()


def sim(pwpush, path: str):
    return httpx.get(pwpush.url + path).json()


# -- links ------------------------------------------------------------------------------------------

def test_a_payload_becomes_a_plain_one_time_link_valid_one_day(mysecret, pwpush):
    link = mysecret.create_secret(payload="Ceci est un secret")
    assert link.secret_url == f"{pwpush.url}/p/{link.url_token}"
    assert (link.expires_in_days, link.expire_views) == (1, 1)
    push = sim(pwpush, f"/_sim/pushes/{link.url_token}")
    assert push["payload"] == "Ceci est un secret" and push["retrieval_step"] is False
    assert push["owner"] == "support@widip.fr"  # the Bearer token was accepted
    assert link.to_dict() == {"secret_url": link.secret_url, "url_token": link.url_token,
                              "expires_in_days": 1, "expire_views": 1}


def test_the_link_shows_the_secret_once_then_says_it_expired(mysecret, pwpush):
    link = mysecret.create_secret(payload="Vu une fois")
    first = httpx.get(link.secret_url + ".json").json()
    assert first["payload"] == "Vu une fois" and first["expired"] is False
    second = httpx.get(link.secret_url + ".json").json()
    assert second["payload"] is None and second["expired"] is True
    assert "expiré" in httpx.get(link.secret_url).text


def test_the_recipient_page_shows_the_secret_escaped(mysecret):
    link = mysecret.create_secret(payload="<b>&</b>")
    page = httpx.get(link.secret_url).text
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in page


def test_a_link_expires_after_its_days_even_unviewed(mysecret, pwpush):
    link = mysecret.create_secret(payload="deux jours", expire_days=2, expire_views=3)
    httpx.post(f"{pwpush.url}/_sim/clock", json={"advance_seconds": 2 * 86400 + 1})
    seen = httpx.get(link.secret_url + ".json").json()
    assert seen["expired"] is True and seen["payload"] is None


def test_expire_secret_revokes_a_link_before_anyone_reads_it(mysecret, pwpush):
    link = mysecret.create_secret(payload="à révoquer")
    assert mysecret.expire_secret(link.url_token) is True
    assert sim(pwpush, f"/_sim/pushes/{link.url_token}")["payload"] is None


def test_a_handle_is_redeemed_into_the_push_and_cannot_be_used_twice(mysecret, pwpush, store):
    handle = store.put("Mot-De-Passe-Temporaire-42")
    link = mysecret.create_secret(secret_handle=handle)
    assert sim(pwpush, f"/_sim/pushes/{link.url_token}")["payload"] == "Mot-De-Passe-Temporaire-42"
    with pytest.raises(Conflict):
        mysecret.create_secret(secret_handle=handle)
    assert len(sim(pwpush, "/_sim/pushes")) == 1


@pytest.mark.parametrize("arguments", [
    {}, {"payload": "x", "secret_handle": "sh_" + "a" * 32},
    {"payload": "x", "expire_days": 0}, {"payload": "x", "expire_days": 91},
    {"payload": "x", "expire_views": 101}, {"payload": "x", "expire_views": True}, {"payload": "   "},
])
def test_bad_arguments_are_refused_before_calling_password_pusher(mysecret, pwpush, arguments):
    with pytest.raises(Invalid):
        mysecret.create_secret(**arguments)
    assert sim(pwpush, "/_sim/calls") == []


def test_an_unknown_api_token_is_rejected_with_401(pwpush):
    client = MySecretClient(pwpush.url, "not-a-token", timeout=2.0)
    with pytest.raises(Rejected) as refused:
        client.create_secret(payload="x")
    assert refused.value.status_code == 401 and "not-a-token" not in str(refused.value)


def test_a_failing_server_keeps_the_handle_redeemable_for_a_retry(mysecret, pwpush, store):
    handle = store.put("Retry-Me-Later-2026!")
    httpx.post(f"{pwpush.url}/_sim/fault", json={"status": 503})
    with pytest.raises(Unavailable):
        mysecret.create_secret(secret_handle=handle)
    httpx.delete(f"{pwpush.url}/_sim/fault")
    link = mysecret.create_secret(secret_handle=handle)
    assert sim(pwpush, f"/_sim/pushes/{link.url_token}")["payload"] == "Retry-Me-Later-2026!"


def test_a_slow_server_gives_unavailable_within_the_timeout(pwpush):
    client = MySecretClient(pwpush.url, DEMO_TOKEN, timeout=0.5)
    httpx.post(f"{pwpush.url}/_sim/fault", json={"delay_seconds": 2})
    started = time.monotonic()
    with pytest.raises(Unavailable):
        client.create_secret(payload="lent")
    assert time.monotonic() - started < 1.5
    httpx.delete(f"{pwpush.url}/_sim/fault")


def test_from_settings_uses_the_configured_url_and_token(settings, pwpush, store):
    client = MySecretClient.from_settings(
        settings.with_overrides(mysecret_api_url=pwpush.url, mysecret_api_token=DEMO_TOKEN), store)
    assert client.create_secret(payload="configuré").secret_url.startswith(pwpush.url + "/p/")
    assert DEMO_TOKEN not in repr(client)


# -- secret handles ---------------------------------------------------------------------------------

def test_a_handle_redeems_once_then_reports_it_was_used(store):
    handle = store.put("Une-Seule-Fois-99")
    assert store.exists(handle)
    assert store.redeem(handle) == "Une-Seule-Fois-99"
    with pytest.raises(Conflict):
        store.redeem(handle)
    assert not store.exists(handle)


def test_unknown_or_malformed_handles_are_not_found(store):
    with pytest.raises(NotFound):
        store.redeem("sh_" + "A" * 32)
    with pytest.raises(NotFound):
        store.redeem("../../etc/passwd")


def test_a_handle_expires_after_its_ttl(redis_client):
    short = SecretStore(redis_client, ttl_seconds=1)
    handle = short.put("Expire-Vite-11")
    time.sleep(1.2)
    with pytest.raises(NotFound):
        short.redeem(handle)


def test_handles_cannot_outlive_fifteen_minutes(redis_client):
    with pytest.raises(ValueError):
        SecretStore(redis_client, ttl_seconds=3600)
    assert list(redis_client.scan_iter("*")) == []
    handle = SecretStore(redis_client).put("Quinze-Minutes-15")
    ttls = [redis_client.ttl(key) for key in redis_client.scan_iter("widip:secret:*")]
    assert ttls and all(0 < ttl <= 900 for ttl in ttls) and handle.startswith("sh_")


def test_secrets_are_encrypted_at_rest_and_keys_do_not_reveal_the_handle(store, redis_client):
    handle = store.put("Chiffre-Au-Repos-77")
    keys = list(redis_client.scan_iter("*"))
    assert keys and all(handle.encode() not in key for key in keys)
    assert all(b"Chiffre-Au-Repos-77" not in (redis_client.get(key) or b"") for key in keys)
    assert "Chiffre" not in repr(store)
