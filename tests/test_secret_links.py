"""A one-time secret link exists in clear only in the mail that carries it and in Password Pusher, and
once in its owner's own chat view: never in tool results, mail arguments, agent events, transcripts,
audit rows or Redis, and no approver (N3+) sees it, whatever endpoint they read."""

import pytest
from falcon.testing import TestClient

from tests.conftest import drain
from tests.test_password_secrecy import dump_database, dump_redis
from widip import deps as actor_deps
from widip.functions import db, identity
from widip.functions.assist import cycle as assist
from widip.messaging.relay import flush_outbox
from widip.http.app import build_context, create_app


def push_tokens(pwpush) -> list[str]:
    return list(pwpush.state.pushes)


@pytest.fixture
def api(directory_settings, stub_broker, people):
    settings = directory_settings.with_overrides(llm_provider="rules")
    actor_deps.configure(settings)
    return TestClient(create_app(build_context(settings)))


def everything_stored(settings, redis_client) -> str:
    with db.connect(settings.database_url) as conn:
        return dump_database(conn) + dump_redis(redis_client).decode("latin-1")


def test_a_wibot_reset_shows_the_link_once_to_its_owner_and_never_to_an_approver(
        api, directory_settings, stub_broker, stub_worker, people, active_directory, pwpush, redis_client):
    started = api.simulate_post("/agent/sessions", json={"message": "Peux-tu réinitialiser le mot de passe de jdupont ?"},
                                headers=people.tech.headers)
    sid = started.json["session_id"]
    drain(stub_broker, stub_worker)
    waiting = api.simulate_get(f"/agent/sessions/{sid}/events", headers=people.tech.headers).json["events"][-1]
    api.simulate_post(f"/safeguard/requests/{waiting['request_id']}/approve", json={}, headers=people.approver.headers)
    drain(stub_broker, stub_worker)
    [token] = push_tokens(pwpush)
    # Stored nowhere in clear: database (tool results, mail args, events, transcript, audit) and Redis
    assert token not in everything_stored(directory_settings, redis_client)
    # An approver (N3) reading the session, its events or the tool call sees only the masked form
    for reader in (people.approver, people.admin):
        seen = api.simulate_get(f"/agent/sessions/{sid}/events", headers=reader.headers).text
        seen += api.simulate_get(f"/agent/sessions/{sid}", headers=reader.headers).text
        with db.connect(directory_settings.database_url) as conn:
            call_ids = [str(r["id"]) for r in conn.execute("SELECT id FROM tool_calls")]
        seen += "".join(api.simulate_get(f"/tools/calls/{c}", headers=reader.headers).text for c in call_ids)
        assert token not in seen and "••••" in seen
    # The owner's chat shows it once, in the answer message; a second look is masked
    first = api.simulate_get(f"/agent/sessions/{sid}/events", headers=people.tech.headers).json["events"]
    messages = " ".join(e.get("message", "") for e in first)
    assert f"/p/{token}" in messages
    assert token not in str([{k: v for k, v in e.items() if k != "message"} for e in first])
    again = api.simulate_get(f"/agent/sessions/{sid}/events", headers=people.tech.headers).text
    assert token not in again


def test_assist_mails_the_link_to_the_requester_and_stores_only_a_reference(
        directory_settings, stub_broker, stub_worker, people, glpi, active_directory, pwpush, mail_sink, redis_client):
    # The real cycle: ticket 1 is jdupont's forgotten password (the reset is the only push)
    world = actor_deps.configure(directory_settings.with_overrides(llm_provider="rules"))
    assist.run_cycle(world.pool, world.redis, world.clients, assist.options_for(world.settings))
    flush_outbox()
    drain(stub_broker, stub_worker, rounds=100)
    [token] = push_tokens(pwpush)
    mails = [m for m in mail_sink.messages() if "jdupont@ehpad-tilleuls.fr" in m["To"]]
    assert len(mails) == 1 and f"/p/{token}" in mails[0].get_content()
    stored = everything_stored(directory_settings, redis_client)
    assert token not in stored and "sl_" in stored  # the mail's arguments carry the reference only


def test_an_approver_cannot_mail_someone_elses_link_to_themselves(
        api, directory_settings, stub_broker, stub_worker, people, active_directory, pwpush, mail_sink):
    # Given a link created for jdupont (the tool result, as an approver would read it)
    created = api.simulate_post("/tools/mysecret_create_secret", json={"payload": "Motdepasse-Temp-42!"},
                                headers=people.admin.headers)
    drain(stub_broker, stub_worker)
    result = api.simulate_get(created.headers["location"], headers=people.admin.headers).json["result"]
    assert "••••" in result["secret_url"] and result["secret_ref"].startswith("sl_")
    # When an admin mails the reference to their own internal address
    sent = api.simulate_post("/tools/smtp_send_email", headers=people.admin.headers,
                             json={"to": ["admin@widip.fr"], "subject": "lien", "body": f"voici {result['secret_ref']}"})
    drain(stub_broker, stub_worker)
    call = api.simulate_get(sent.headers["location"], headers=people.admin.headers).json
    # Then the mail is refused and nothing left with the link
    assert call["status"] == "failed" and "demandeur vérifié" in call["error"]
    [token] = push_tokens(pwpush)
    assert not any(token in m.get_content() for m in mail_sink.messages())


def test_a_reference_is_not_a_link_without_the_store(redis_client):
    from widip.functions.integrations.secret_links import SecretLinkStore, for_reader

    store = SecretLinkStore(redis_client)
    ref = store.put("https://pwpush.widip.fr/p/abcdef123")
    assert b"abcdef123" not in dump_redis(redis_client)
    assert for_reader(store, {"message": ref, "result": ref}, owner=False) == \
        {"message": "[lien secret ••••]", "result": "[lien secret ••••]"}
    assert for_reader(store, {"message": ref}, owner=True) == {"message": "https://pwpush.widip.fr/p/abcdef123"}
    assert for_reader(store, {"message": ref}, owner=True) == {"message": "[lien secret ••••]"}
