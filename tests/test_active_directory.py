"""ActiveDirectoryClient against the AD stand-in over real LDAPS (ldaptor + Twisted), with the demo domain."""

from __future__ import annotations

import re
import socket
import ssl
import time

import httpx
import jsonschema
import pytest
from ldap3 import NONE, Connection, Server, Tls

from simulators.active_directory import (DEMO_BASE_DN, DEMO_PASSWORDS, DEMO_SERVICE_PASSWORD, DEMO_SERVICE_USER,
                                         State, make_app, start_server)
from simulators.base import serve
from simulators.pwpush import DEMO_TOKEN
from simulators.pwpush import State as PushState
from simulators.pwpush import make_app as make_push_app
from simulators.tls import generate_tls_files
from widip.errors import Invalid, PolicyDenied, Rejected, Unavailable
from widip.functions.integrations.active_directory import SAM_ACCOUNT_PATTERN, ActiveDirectoryClient
from widip.functions.integrations.mysecret import MySecretClient
from widip.functions.integrations.passwords import ALPHABET, generate_password, meets_complexity
from widip.functions.integrations.secret_handles import SecretStore

JDUPONT_DN = "CN=Jean Dupont,OU=EHPAD Les Tilleuls,OU=Clients,DC=widip,DC=local"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return generate_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def directory():
    return State().seed_demo()


@pytest.fixture
def ad(directory, tls):
    handle = start_server(directory, tls=tls)
    yield handle
    handle.stop()


@pytest.fixture
def store(redis_client):
    return SecretStore(redis_client)


def make_client(ad, tls, store=None, **options) -> ActiveDirectoryClient:
    options.setdefault("timeout", 3.0)
    return ActiveDirectoryClient(ad.ldaps_url, DEMO_SERVICE_USER, DEMO_SERVICE_PASSWORD, DEMO_BASE_DN,
                                 ca_file=tls.ca_file, secret_store=store, **options)


@pytest.fixture
def client(ad, tls, store):
    ad_client = make_client(ad, tls, store)
    yield ad_client
    ad_client.close()


def bind_as(ad, tls, user: str, password: str) -> dict:
    """A user's own simple bind over LDAPS, as their workstation would do it; returns ldap3's result."""
    host, port = ad.ldaps_url.removeprefix("ldaps://").rsplit(":", 1)
    server = Server(host, port=int(port), use_ssl=True, get_info=NONE,
                    tls=Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=tls.ca_file))
    conn = Connection(server, user=user, password=password, receive_timeout=3)
    conn.bind()
    result = dict(conn.result)
    conn.unbind()
    return result


# -- reads ------------------------------------------------------------------------------------------

def test_check_user_reports_an_enabled_account_with_its_mail_and_groups(client):
    status = client.check_user("jdupont")
    assert status.exists and status.enabled and not status.locked
    assert status.mail == "jdupont@ehpad-tilleuls.fr"
    assert status.display_name == "Jean Dupont"
    assert set(status.groups) == {"GG_Soignants", "GG_VPN"}
    assert status.admin_count == 0 and status.dn == JDUPONT_DN
    assert status.pwd_last_set is not None and not status.must_change_password
    assert status.to_dict()["groups"] == list(status.groups)


def test_a_locked_account_is_seen_through_lockout_time_while_its_stored_flags_say_normal(client):
    status = client.check_user("mmartin")
    assert status.locked is True
    assert status.user_account_control == 512  # AD never stores the LOCKOUT bit


def test_an_unknown_account_is_reported_as_not_existing(client):
    status = client.check_user("nobody")
    assert status.exists is False and status.dn is None


def test_get_user_info_adds_department_title_and_telephone(client):
    info = client.get_user_info("jdupont")
    assert (info.department, info.title, info.telephone) == ("Soins", "Infirmier", "+33 4 78 00 11 22")
    assert info.to_dict()["mail"] == "jdupont@ehpad-tilleuls.fr"


def test_a_requester_email_maps_to_the_directory_account(client):
    assert client.find_user_by_mail("mmartin@clinique-parc.fr").username == "mmartin"
    assert client.find_user_by_mail("JDUPONT@ehpad-tilleuls.fr").username == "jdupont"
    assert client.find_user_by_mail("inconnu@ehpad-tilleuls.fr") is None


@pytest.mark.parametrize("username", ["*", "jdupont)(cn=*", "jd*", "a,b", "", "x" * 21, "admin\\00", "j dupont"])
def test_usernames_with_ldap_metacharacters_are_refused_before_any_ldap_request(client, directory, username):
    with pytest.raises(Invalid):
        client.check_user(username)
    with pytest.raises(Invalid):
        client.reset_password(username)
    assert directory.calls == []


def test_the_exported_username_pattern_works_in_a_json_schema():
    schema = {"type": "object", "properties": {"username": {"type": "string", "pattern": SAM_ACCOUNT_PATTERN}}}
    jsonschema.validate({"username": "j.dupont-2"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"username": "jdupont)(|(cn=*"}, schema)


# -- writes -----------------------------------------------------------------------------------------

def test_a_reset_over_ldaps_delivers_a_working_password_through_mysecret_and_forces_a_change(
        ad, tls, client, directory, store):
    push_state = PushState().seed_demo()
    pwpush = serve(make_push_app(push_state))
    mysecret = MySecretClient(pwpush.url, DEMO_TOKEN, timeout=3, secret_store=store)
    try:
        result = client.reset_password("jdupont")
        assert result.must_change_at_logon and result.secret_handle.startswith("sh_")
        assert [w["attributes"] for w in directory.writes] == [["unicodePwd", "pwdLastSet"]]
        status = client.check_user("jdupont")
        assert status.must_change_password and status.pwd_last_set is None
        assert directory.user("jdupont").first("pwdLastSet") == "0"

        link = mysecret.create_secret(secret_handle=result.secret_handle)
        assert re.fullmatch(re.escape(pwpush.url) + r"/p/[a-z0-9_-]+", link.secret_url)
        password = httpx.get(f"{pwpush.url}/_sim/pushes/{link.url_token}").json()["payload"]
        assert meets_complexity(password, avoid=("jdupont", "Jean", "Dupont"))
    finally:
        mysecret.close()
        pwpush.stop()

    # The DC accepts the new password (773 = right password, must change it) and refuses the old one.
    assert "data 773" in bind_as(ad, tls, "jdupont@widip.local", password)["message"]
    assert "data 52e" in bind_as(ad, tls, "jdupont@widip.local", DEMO_PASSWORDS["jdupont"])["message"]
    # The user changes it at logon (old + new), after which a normal bind succeeds.
    host, port = ad.ldaps_url.removeprefix("ldaps://").rsplit(":", 1)
    server = Server(host, port=int(port), use_ssl=True, get_info=NONE,
                    tls=Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=tls.ca_file))
    with Connection(server, user=DEMO_SERVICE_USER, password=DEMO_SERVICE_PASSWORD, auto_bind=True) as service:
        assert service.extend.microsoft.modify_password(JDUPONT_DN, "Mon-Nouveau-Mdp-2026", old_password=password)
    assert bind_as(ad, tls, JDUPONT_DN, "Mon-Nouveau-Mdp-2026")["result"] == 0
    assert not client.check_user("jdupont").must_change_password


def test_unlock_clears_lockout_time_and_the_user_can_log_in_again(ad, tls, client, directory):
    assert "data 775" in bind_as(ad, tls, "mmartin@widip.local", DEMO_PASSWORDS["mmartin"])["message"]
    result = client.unlock_account("mmartin")
    assert (result.was_locked, result.unlocked) == (True, True)
    assert directory.user("mmartin").first("lockoutTime") == "0"
    assert client.check_user("mmartin").locked is False
    assert bind_as(ad, tls, "mmartin@widip.local", DEMO_PASSWORDS["mmartin"])["result"] == 0


def test_unlocking_an_account_that_is_not_locked_writes_nothing(client, directory):
    result = client.unlock_account("jdupont")
    assert (result.was_locked, result.unlocked) == (False, False)
    assert directory.writes == []


def test_disable_sets_the_accountdisable_bit(client, directory):
    result = client.disable_account("agarcia")
    assert result.was_enabled and result.disabled
    assert int(directory.user("agarcia").first("userAccountControl")) & 0x2
    assert client.check_user("agarcia").enabled is False


@pytest.mark.parametrize("username, reason", [
    ("adm.widip", "privileged (adminCount=1)"),
    ("it.parc", "protected group Domain Admins"),
    ("n3.tech", "protected group (nested)"),
    ("sleroy", "disabled"),
    ("Administrator", "denylist"),
    ("svc-backup", "service account"),
    ("ghost", "does not exist"),
])
def test_risky_accounts_are_refused_in_code_before_any_ldap_write(client, directory, username, reason):
    for operation in (client.reset_password, client.unlock_account):
        with pytest.raises(PolicyDenied) as refused:
            operation(username)
        assert reason in refused.value.message
    assert directory.writes == []
    assert all(call["op"] != "modify" for call in directory.calls)


def test_the_denylist_accepts_patterns_from_settings(ad, tls, store, directory):
    client = make_client(ad, tls, store, denylist=("jdup*",))
    with pytest.raises(PolicyDenied, match="denylist"):
        client.reset_password("jdupont")
    assert directory.writes == []


def test_the_directory_itself_refuses_privileged_writes_when_the_app_policy_is_switched_off(ad, tls, store, directory):
    # Second layer (AdminSDHolder): even a misconfigured client cannot touch a protected account.
    client = make_client(ad, tls, store, protected_groups=(), denylist=(), service_ous=())
    with pytest.raises(Rejected) as refused:
        client.reset_password("it.parc")
    assert refused.value.code == "insufficientAccessRights"
    assert directory.writes == []


def test_a_failed_reset_leaves_no_redeemable_password_behind(client, directory, redis_client):
    directory.fault = {"result_code": 52, "ops": ["modify"]}
    with pytest.raises(Unavailable):
        client.reset_password("jdupont")
    live = [k for k in redis_client.scan_iter("widip:secret:*") if b":used:" not in k]
    assert live == []


# -- transport --------------------------------------------------------------------------------------

def test_plain_ldap_without_tls_is_refused_by_the_domain_controller(ad, store):
    client = ActiveDirectoryClient(ad.ldap_url, DEMO_SERVICE_USER, DEMO_SERVICE_PASSWORD, DEMO_BASE_DN, timeout=3)
    with pytest.raises(Rejected, match="strongerAuthRequired"):
        client.check_user("jdupont")


def test_a_certificate_from_another_ca_is_not_trusted(ad, tmp_path):
    other = generate_tls_files(tmp_path / "other")
    client = ActiveDirectoryClient(ad.ldaps_url, DEMO_SERVICE_USER, DEMO_SERVICE_PASSWORD, DEMO_BASE_DN,
                                   ca_file=other.ca_file, timeout=3)
    with pytest.raises(Unavailable, match="(?i)certificate"):
        client.check_user("jdupont")


def test_a_certificate_for_another_host_name_is_not_trusted(directory, tmp_path):
    foreign = generate_tls_files(tmp_path / "foreign", hostnames=("dc1.other.example",))
    handle = start_server(directory, port=None, tls=foreign)
    try:
        client = ActiveDirectoryClient(handle.ldaps_url, DEMO_SERVICE_USER, DEMO_SERVICE_PASSWORD, DEMO_BASE_DN,
                                       ca_file=foreign.ca_file, timeout=3)
        with pytest.raises(Unavailable):
            client.check_user("jdupont")
    finally:
        handle.stop()
    assert directory.calls == []  # nothing was sent over the untrusted channel


def test_a_wrong_service_password_is_rejected_without_echoing_it(ad, tls):
    client = ActiveDirectoryClient(ad.ldaps_url, DEMO_SERVICE_USER, "Wrong-Service-Pw-1", DEMO_BASE_DN,
                                   ca_file=tls.ca_file, timeout=3)
    with pytest.raises(Rejected) as refused:
        client.check_user("jdupont")
    assert "invalidCredentials" in str(refused.value) and "Wrong-Service-Pw-1" not in str(refused.value)
    assert "Wrong-Service-Pw-1" not in repr(client)


def test_a_port_that_accepts_but_never_answers_gives_unavailable_within_the_timeout(tls):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
    try:
        client = ActiveDirectoryClient(f"ldaps://127.0.0.1:{silent.getsockname()[1]}", DEMO_SERVICE_USER,
                                       DEMO_SERVICE_PASSWORD, DEMO_BASE_DN, ca_file=tls.ca_file, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(Unavailable):
            client.check_user("jdupont")
        assert time.monotonic() - started < 2.0
    finally:
        silent.close()


def test_a_slow_domain_controller_gives_unavailable_within_the_timeout(ad, tls, directory):
    client = make_client(ad, tls, timeout=1.0)
    client.check_user("jdupont")  # bound and pooled
    directory.fault = {"delay_seconds": 3}
    started = time.monotonic()
    with pytest.raises(Unavailable):
        client.check_user("jdupont")
    assert time.monotonic() - started < 2.0
    directory.fault = {}
    assert client.check_user("jdupont").exists  # a fresh connection works again


def test_a_stopped_domain_controller_is_unavailable(ad, tls):
    client = make_client(ad, tls)
    ad.stop()
    with pytest.raises(Unavailable):
        client.check_user("jdupont")


def test_from_settings_accepts_an_ldaps_url_and_the_shared_ca_file(ad, tls, settings, store):
    configured = settings.with_overrides(ad_server=ad.ldaps_url, ad_user=DEMO_SERVICE_USER,
                                         ad_password=DEMO_SERVICE_PASSWORD, ad_base_dn=DEMO_BASE_DN,
                                         ca_file=tls.ca_file)
    client = ActiveDirectoryClient.from_settings(configured, store)
    assert client.check_user("jdupont").exists
    assert DEMO_SERVICE_PASSWORD not in repr(client)
    assert ActiveDirectoryClient("dc1.widip.local", "u", "p", DEMO_BASE_DN).url == "ldaps://dc1.widip.local:636"


def test_the_control_app_shows_users_and_can_lock_one_again(directory):
    control = serve(make_app(directory))
    try:
        user = httpx.post(f"{control.url}/_sim/users/jdupont/lock").json()
        assert user["locked"] is True
        assert httpx.get(f"{control.url}/_sim/users/mmartin").json()["lockoutTime"] > 0
    finally:
        control.stop()


# -- password generation ----------------------------------------------------------------------------

def test_generated_passwords_are_long_complex_unambiguous_and_never_repeat():
    passwords = {generate_password(avoid=("jdupont",)) for _ in range(300)}
    assert len(passwords) == 300
    for password in passwords:
        assert len(password) >= 16 and meets_complexity(password, avoid=("jdupont",))
        assert not set(password) & set("0O1lI|'\"\\` ")
        assert set(password) <= set(ALPHABET)
    with pytest.raises(ValueError):
        generate_password(12)


def test_the_demo_domain_accepts_the_launcher_service_account_given_as_a_dn(tls):
    service_dn, service_password = "CN=svc-widip,OU=Services,DC=widip,DC=local", "Random-Launcher-Token-1"
    directory = State().seed_demo(service_dn, service_password)
    handle = start_server(directory, port=None, tls=tls)
    try:
        client = ActiveDirectoryClient(handle.ldaps_url, service_dn, service_password, DEMO_BASE_DN,
                                       ca_file=tls.ca_file, timeout=3)
        assert client.unlock_account("mmartin").unlocked
        with pytest.raises(PolicyDenied, match="service account"):
            client.unlock_account("svc-widip")
    finally:
        handle.stop()
