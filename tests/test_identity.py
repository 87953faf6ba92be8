"""Identity functions: users, argon2 passwords, hashed tokens, throttling, service tokens, access matrix."""

import hashlib

import pytest

from widip.errors import Conflict, Forbidden, Invalid, Unauthorized
from widip.functions import access_matrix, identity
from widip.functions.access_matrix import AccessRights
from widip.functions.identity import Throttle, Throttled

PASSWORD = "correct horse battery"
CSV_HEADER = "username,acces_glpi,acces_base_docs,acces_contrats,acces_confidential,clients_autorises,categories_tickets\n"


def _user(conn, name="alice", level=1, password=PASSWORD):
    return identity.create_user(conn, username=name, password=password, display_name=name.title(),
                                accreditation_level=level)


def _login(conn, name="alice", password=PASSWORD, ip="10.0.0.1", throttle=identity.DEFAULT_THROTTLE):
    return identity.login(conn, name, password, ip=ip, ttl_hours=12, throttle=throttle)


def test_passwords_are_stored_as_argon2id_and_only_the_right_one_verifies(conn):
    user = _user(conn)
    stored = conn.execute("SELECT password_hash FROM users WHERE id = %s", (user.id,)).fetchone()["password_hash"]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert identity.verify_password(stored, PASSWORD)
    assert not identity.verify_password(stored, PASSWORD + "!")
    assert not identity.verify_password(None, PASSWORD)


@pytest.mark.parametrize("name, password, message", [
    ("bob", "short", "at least 12"),
    ("bob", "bob-is-my-password", "must not contain the username"),
    ("Bad Name!", PASSWORD, "username"),
])
def test_creating_a_user_with_a_weak_password_or_bad_name_is_refused(conn, name, password, message):
    with pytest.raises(Invalid, match=message):
        identity.create_user(conn, username=name, password=password)


def test_a_username_is_taken_once_whatever_its_case(conn):
    _user(conn, "alice")
    with pytest.raises(Conflict, match="already taken"):
        _user(conn, "ALICE")


def test_login_issues_a_token_that_is_stored_only_as_its_sha256(conn):
    _user(conn)
    session = _login(conn).session_or_raise()
    assert session.token.startswith("widu_") and session.user.username == "alice"
    dump = str(conn.execute("SELECT * FROM auth_tokens").fetchall())
    assert session.token not in dump
    assert hashlib.sha256(session.token.encode()).hexdigest() in dump
    found = identity.authenticate_token(conn, session.token)
    assert found.caller.is_human and found.caller.username == "alice" and found.caller.accreditation == 1


def test_unknown_user_wrong_password_and_disabled_user_get_the_same_answer(conn):
    user = _user(conn)
    _user(conn, "admin", level=4)
    identity.update_user(conn, user.id, actor="test", active=False)
    errors = [_login(conn, *args).error for args in (("nobody", PASSWORD), ("admin", "wrong password!"),
                                                     ("alice", PASSWORD))]
    assert all(isinstance(e, Unauthorized) for e in errors)
    assert {e.message for e in errors} == {"invalid username or password"}


def test_guesses_from_elsewhere_never_lock_the_right_user_out_of_their_own_address(conn):
    _user(conn)
    for i in range(30):
        assert _login(conn, password="wrong", ip=f"10.0.1.{i % 3}").error is not None
    assert _login(conn, ip="10.0.2.1").session is not None


def test_failures_from_one_address_on_one_username_back_off_exponentially(conn):
    _user(conn)
    for _ in range(5):
        assert isinstance(_login(conn, password="wrong").error, Unauthorized)
    blocked = _login(conn)
    assert isinstance(blocked.error, Throttled) and 1 <= blocked.error.retry_after_seconds <= 2
    # Once the delay passed, one more wrong guess doubles it
    conn.execute("UPDATE login_attempts SET attempted_at = attempted_at - interval '3 seconds'")
    assert isinstance(_login(conn, password="wrong").error, Unauthorized)
    assert 3 <= _login(conn).error.retry_after_seconds <= 4
    for _ in range(10):
        conn.execute("UPDATE login_attempts SET attempted_at = attempted_at - interval '20 minutes' "
                     "WHERE attempted_at > now() - interval '14 minutes'")
        _login(conn, password="wrong")
    assert _login(conn).session is not None  # failures older than the 15-minute window stop counting


def test_an_n4_unlock_clears_failures_at_once_and_is_audited(conn):
    _user(conn)
    for _ in range(8):
        _login(conn, password="wrong")
    assert isinstance(_login(conn).error, Throttled)
    assert identity.clear_failures(conn, username="alice", actor="human:admin") == 5  # throttled tries are not counted
    assert _login(conn).session is not None
    audit = conn.execute("SELECT action FROM identity_audit WHERE action = 'login.unlock'").fetchall()
    assert len(audit) == 1


def test_a_success_resets_the_username_counter(conn):
    _user(conn)
    for _ in range(4):
        _login(conn, password="wrong")
    assert _login(conn).session is not None
    for _ in range(4):
        _login(conn, password="wrong", ip="10.9.9.9")
    assert _login(conn, ip="10.9.9.8").session is not None


def test_many_failures_from_one_address_throttle_that_address_only(conn):
    _user(conn)
    for i in range(identity.DEFAULT_THROTTLE.max_failures_per_address):
        _login(conn, name=f"a{i}", ip="192.0.2.66")
    assert isinstance(_login(conn, ip="192.0.2.66").error, Throttled)
    assert _login(conn, ip="192.0.2.67").session is not None


def test_a_few_typos_behind_a_shared_proxy_address_do_not_lock_everyone_out(conn):
    _user(conn)
    for name in ("a1", "a2", "a3", "a4", "a5", "a6"):
        _login(conn, name=name, password="typo", ip="10.0.0.254")
    assert _login(conn, ip="10.0.0.254").session is not None


def test_throttle_limits_are_configurable(conn):
    _user(conn)
    strict = Throttle(max_failures=2, window_seconds=60)
    _login(conn, password="x", throttle=strict)
    _login(conn, password="x", throttle=strict)
    assert _login(conn, throttle=strict).error.retry_after_seconds <= 60


def test_expired_and_revoked_tokens_are_refused(conn):
    _user(conn)
    expired = _login(conn).session_or_raise()
    conn.execute("UPDATE auth_tokens SET expires_at = now() - interval '1 second' WHERE id = %s", (expired.token_id,))
    assert identity.authenticate_token(conn, expired.token) is None
    revoked = _login(conn).session_or_raise()
    assert identity.revoke_session(conn, revoked.token_id)
    assert identity.authenticate_token(conn, revoked.token) is None
    assert identity.authenticate_token(conn, "widu_made-up") is None
    assert identity.authenticate_token(conn, "x" * 10_000) is None


def test_disabling_a_user_ends_their_sessions_and_a_level_change_applies_at_once(conn):
    _user(conn, "admin", level=4)
    user = _user(conn)
    token = _login(conn).session_or_raise().token
    identity.update_user(conn, user.id, actor="test", accreditation_level=3)
    assert identity.authenticate_token(conn, token).caller.accreditation == 3
    identity.update_user(conn, user.id, actor="test", active=False)
    assert identity.authenticate_token(conn, token) is None
    # Re-enabling does not resurrect the old token.
    identity.update_user(conn, user.id, actor="test", active=True)
    assert identity.authenticate_token(conn, token) is None
    actions = [r["action"] for r in conn.execute("SELECT action FROM identity_audit ORDER BY id")]
    assert actions.count("user.update") == 3


def test_the_last_active_administrator_can_be_neither_demoted_nor_disabled(conn):
    admin = _user(conn, "admin", level=4)
    with pytest.raises(Conflict, match="N4"):
        identity.update_user(conn, admin.id, actor="test", accreditation_level=3)
    with pytest.raises(Conflict):
        identity.update_user(conn, admin.id, actor="test", active=False)
    _user(conn, "admin2", level=4)
    assert identity.update_user(conn, admin.id, actor="test", accreditation_level=3).accreditation_level == 3


def test_changing_ones_password_keeps_this_session_and_ends_the_others(conn):
    user = _user(conn)
    keep, other = _login(conn).session_or_raise(), _login(conn).session_or_raise()
    with pytest.raises(Forbidden):
        identity.change_own_password(conn, user.id, "not it", "another long passphrase")
    identity.change_own_password(conn, user.id, PASSWORD, "another long passphrase", keep_token_id=keep.token_id)
    assert identity.authenticate_token(conn, keep.token) is not None
    assert identity.authenticate_token(conn, other.token) is None
    assert _login(conn, password="another long passphrase").session is not None


def test_a_service_token_is_a_scoped_service_caller_and_never_a_user(conn):
    issued = identity.create_service_token(conn, name="observium", scopes=["webhook:observium"], actor="test")
    assert issued.token.startswith("wids_")
    assert issued.token not in str(conn.execute("SELECT * FROM service_tokens").fetchall())
    found = identity.authenticate_token(conn, issued.token)
    assert found.kind == "service" and not found.caller.is_human
    assert found.caller.scopes == ("webhook:observium",) and found.caller.label == "service:observium"
    assert isinstance(_login(conn, name="observium", password=issued.token).error, Unauthorized)
    with pytest.raises(Conflict):
        identity.create_service_token(conn, name="observium", scopes=["frontend"], actor="test")
    identity.revoke_service_token(conn, issued.info.id, actor="test")
    assert identity.authenticate_token(conn, issued.token) is None
    # Once revoked, the name can be reused.
    identity.create_service_token(conn, name="observium", scopes=["webhook:observium"], actor="test")


@pytest.mark.parametrize("scopes", [[], ["Bad Scope"], ["webhook:"]])
def test_service_tokens_need_well_formed_scopes(conn, scopes):
    with pytest.raises(Invalid, match="scopes"):
        identity.create_service_token(conn, name="frontend", scopes=scopes, actor="test")


def test_caller_for_user_acts_for_active_users_only(conn):
    _user(conn, "admin", level=4)
    user = _user(conn, level=2)
    caller = identity.caller_for_user(conn, user.id)
    assert (caller.kind, caller.username, caller.accreditation, caller.user_id) == ("human", "alice", 2, user.id)
    identity.update_user(conn, user.id, actor="test", active=False)
    with pytest.raises(Forbidden, match="disabled"):
        identity.caller_for_user(conn, user.id)


def test_demo_users_exist_only_in_the_demo_environment(conn, settings):
    with pytest.raises(Forbidden, match="WIDIP_ENV=demo"):
        identity.ensure_demo_users(conn, settings)
    assert identity.find_user(conn, "admin") is None
    demo = settings.with_overrides(env="demo")
    users = identity.ensure_demo_users(conn, demo)
    assert [(u.username, u.accreditation_level) for u in users] == [("admin", 4), ("approver", 3), ("tech", 1)]
    assert [u.id for u in identity.ensure_demo_users(conn, demo)] == [u.id for u in users]
    assert _login(conn, "tech", "tech-demo").session is not None


# --- access matrix ---------------------------------------------------------------------------


def _matrix(conn):
    return {r["username"]: AccessRights.from_row(r) for r in conn.execute("SELECT * FROM access_matrix")}


def test_importing_the_access_matrix_twice_gives_the_same_rows_and_reflects_edits(conn, tmp_path):
    _user(conn, "tech")
    path = tmp_path / "access_matrix.csv"
    path.write_text(CSV_HEADER + "tech,true,oui,false,non,EHPAD Les Tilleuls;Clinique du Parc,Mot de passe\n"
                    "ghost,1,0,0,0,,\n", encoding="utf-8")
    first = access_matrix.import_access_matrix(conn, path)
    assert (first.inserted, first.unknown_users) == (2, ("ghost",))
    rows = _matrix(conn)
    second = access_matrix.import_access_matrix(conn, path)
    assert (second.inserted, second.updated, second.unchanged, second.deleted) == (0, 0, 2, 0)
    assert _matrix(conn) == rows
    assert rows["tech"].clients_autorises == ("EHPAD Les Tilleuls", "Clinique du Parc")
    # When ops edit the CSV (tech loses GLPI, ghost leaves)
    path.write_text(CSV_HEADER + "tech,false,true,false,false,Clinique du Parc,*\n", encoding="utf-8")
    third = access_matrix.import_access_matrix(conn, path)
    assert (third.updated, third.deleted) == (1, 1)
    tech = _matrix(conn)["tech"]
    assert not tech.acces_glpi and tech.allows_category("Imprimante") and not tech.allows_client("EHPAD Les Tilleuls")
    assert set(_matrix(conn)) == {"tech"}


def test_an_admin_edit_survives_reimporting_an_unchanged_csv_but_not_a_changed_line(conn, tmp_path):
    tech = _user(conn, "tech")
    path = tmp_path / "m.csv"
    path.write_text(CSV_HEADER + "tech,true,true,false,false,EHPAD Les Tilleuls,\n", encoding="utf-8")
    access_matrix.import_access_matrix(conn, path)
    edited = AccessRights(acces_glpi=True, acces_contrats=True, clients_autorises=("EHPAD Saint-Joseph",))
    access_matrix.set_access(conn, tech.id, edited, actor="human:admin")
    access_matrix.import_access_matrix(conn, path)
    assert access_matrix.access_for(conn, tech.id) == edited
    path.write_text(CSV_HEADER + "tech,true,false,false,false,EHPAD Les Tilleuls,\n", encoding="utf-8")
    access_matrix.import_access_matrix(conn, path)
    assert access_matrix.access_for(conn, tech.id).clients_autorises == ("EHPAD Les Tilleuls",)


def test_users_without_a_matrix_row_get_no_access(conn):
    user = _user(conn)
    rights = access_matrix.access_for(conn, user.id)
    assert rights == AccessRights() and not rights.allows_client("EHPAD Les Tilleuls")
    assert rights.to_dict()["clients_autorises"] == []


@pytest.mark.parametrize("body, message", [
    ("username,acces_glpi\nx,true\n", "missing column"),
    (CSV_HEADER + "tech,maybe,true,false,false,,\n", "line 2, column acces_glpi"),
    (CSV_HEADER + "tech,true,true,false,false,,\ntech,true,true,false,false,,\n", "line 3: tech appears twice"),
    (CSV_HEADER + "Not A Login,true,true,false,false,,\n", "line 2"),
])
def test_a_malformed_csv_is_refused_naming_the_line(conn, tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(Invalid, match=message):
        access_matrix.import_access_matrix(conn, path)
    assert _matrix(conn) == {}


def test_the_shipped_matrix_covers_the_demo_users_and_accepts_the_seed_column_name(conn, settings):
    report = access_matrix.import_access_matrix(conn, access_matrix.default_path(settings))
    assert {"admin", "approver", "tech"} <= set(_matrix(conn))
    assert _matrix(conn)["admin"].allows_client("Any client") and report.inserted >= 3
    seed_style = access_matrix.parse_csv(CSV_HEADER.replace("username", "user_id") + "tech,1,1,0,0,A;B,\n")
    assert seed_style["tech"].clients_autorises == ("A", "B")
