"""The console's server side without a browser: the session cookie and its CSRF rule, the login and
logout forms, pages and widgets for each accreditation, and masked secrets on the SAFEGUARD desk."""

import re

from widip.http.auth import CSRF_HEADER, SESSION_COOKIE, csrf_token
from tests.browser import PASSWORD
from widip.console.widgets import WIDGETS


def login(app_client, username, password=PASSWORD, **headers):
    return app_client.simulate_post("/console/login", body=f"username={username}&password={password}",
                                    headers={"Content-Type": "application/x-www-form-urlencoded", **headers})


def cookie_of(result) -> str:
    return result.cookies[SESSION_COOKIE].value


def test_the_login_form_sets_an_httponly_strict_cookie_and_wrong_passwords_get_a_french_message(app_client, people):
    assert app_client.simulate_get("/").headers["Location"].endswith("/console/login")
    form = app_client.simulate_get("/console/login")
    assert form.status_code == 200 and 'lang="fr"' in form.text and "Se connecter" in form.text
    wrong = login(app_client, "tech", "nope")
    assert wrong.status_code == 401 and "Identifiant ou mot de passe incorrect" in wrong.text
    assert SESSION_COOKIE not in wrong.cookies
    good = login(app_client, "tech")
    assert good.status_code == 303 and good.headers["Location"].endswith("/console/chat")
    header = good.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    page = app_client.simulate_get("/console/chat", cookies={SESSION_COOKIE: cookie_of(good)})
    assert page.status_code == 200 and "N1 · technicien" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_a_login_form_posted_from_another_site_is_refused(app_client, people):
    forged = login(app_client, "tech", **{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403 and SESSION_COOKIE not in forged.cookies


def test_a_cookie_reads_the_api_but_changes_nothing_without_the_pages_csrf_token(app_client, people):
    cookies = {SESSION_COOKIE: people.tech.token}
    assert app_client.simulate_get("/me", cookies=cookies).json["user"]["username"] == "tech"
    body = {"title": "Écran noir", "content": "Le poste ne démarre plus."}
    refused = app_client.simulate_post("/tools/glpi_create_ticket", json=body, cookies=cookies)
    assert refused.status_code == 403 and CSRF_HEADER in refused.json["description"]
    wrong = app_client.simulate_post("/tools/glpi_create_ticket", json=body, cookies=cookies,
                                     headers={CSRF_HEADER: csrf_token(people.approver.token)})
    assert wrong.status_code == 403
    page = app_client.simulate_get("/console/safeguard", cookies=cookies).text
    token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)
    accepted = app_client.simulate_post("/tools/glpi_create_ticket", json=body, cookies=cookies,
                                        headers={CSRF_HEADER: token})
    assert accepted.status_code == 202, accepted.text
    # Bearer tokens keep working without any CSRF header
    assert app_client.simulate_get("/safeguard/requests", headers=people.tech.headers).status_code == 200


def test_logout_needs_the_pages_token_and_then_revokes_the_session(app_client, people):
    cookies = {SESSION_COOKIE: people.tech.token}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    forged = app_client.simulate_post("/console/logout", body="csrf=nope", cookies=cookies, headers=form)
    assert forged.status_code == 303 and app_client.simulate_get("/me", cookies=cookies).status_code == 200
    done = app_client.simulate_post("/console/logout", body=f"csrf={csrf_token(people.tech.token)}",
                                    cookies=cookies, headers=form)
    assert done.status_code == 303 and done.headers["Location"].endswith("/console/login")
    assert app_client.simulate_get("/me", cookies=cookies).status_code == 401
    assert app_client.simulate_get("/console/monitoring", cookies=cookies).headers["Location"].startswith(
        "/console/login?next=")


def test_widgets_need_a_session_and_render_for_each_accreditation(app_client, people):
    for name in WIDGETS:
        assert app_client.simulate_get(f"/console/fragments/{name}").status_code == 401
        for who in (people.tech, people.approver, people.admin):
            result = app_client.simulate_get(f"/console/fragments/{name}", cookies={SESSION_COOKIE: who.token})
            assert result.status_code == 200 or (name == "incident" and result.status_code == 404), result.text
            assert "Traceback" not in result.text
    unknown = app_client.simulate_get("/console/fragments/nope", cookies={SESSION_COOKIE: people.tech.token})
    assert unknown.status_code == 404


def test_the_desk_masks_secret_links_and_only_approvers_see_the_audit_and_decision_buttons(app_client, people):
    # Given a technician's ticket request whose text carries a one-time secret link
    body = {"title": "Accès VPN", "content": "Le lien https://pwpush.example/p/abc123XYZ ne marche pas"}
    assert app_client.simulate_post("/tools/glpi_create_ticket", json=body,
                                    headers=people.tech.headers).status_code == 202
    # Then the approver's desk shows the request with the link masked, and the decision forms
    desk = app_client.simulate_get("/console/fragments/requests", cookies={SESSION_COOKIE: people.approver.token}).text
    assert "Accès VPN" in desk and "abc123XYZ" not in desk and "lien secret masqué" in desk
    assert "Approuver" in desk and "Tech" in desk
    # And the technician sees their own request, who must decide, and no buttons
    own = app_client.simulate_get("/console/fragments/requests", cookies={SESSION_COOKIE: people.tech.token}).text
    assert "Accès VPN" in own and "Approuver" not in own and "approbateur" in own
    hidden = app_client.simulate_get("/console/fragments/audit", cookies={SESSION_COOKIE: people.tech.token}).text
    assert "Réservé aux approbateurs" in hidden
    audit = app_client.simulate_get("/console/fragments/audit?tool=glpi_create_ticket&outcome=proposed",
                                    cookies={SESSION_COOKIE: people.approver.token}).text
    assert "glpi_create_ticket" in audit
    none = app_client.simulate_get("/console/fragments/audit?tool=ad_unlock_account",
                                   cookies={SESSION_COOKIE: people.approver.token}).text
    assert "Aucune entrée" in none
    bad = app_client.simulate_get("/console/fragments/audit?since=hier",
                                  cookies={SESSION_COOKIE: people.approver.token})
    assert bad.status_code == 400 and "AAAA-MM-JJ" in bad.text


def test_the_supervision_page_says_what_is_wrong_in_french(app_client, people, redis_client):
    page = app_client.simulate_get("/console/monitoring", cookies={SESSION_COOKIE: people.tech.token})
    assert page.status_code == 200
    assert "Planificateur : aucun battement enregistré" in page.text  # no scheduler runs in this test
    assert "no scheduler tick" not in page.text


def test_a_deferred_l4_action_is_listed_with_its_schedule_and_refuse_forms_for_another_admin(app_client, people):
    asked = app_client.simulate_post("/tools/glpi_delete_ticket", json={"ticket_id": 1}, headers=people.admin.headers)
    assert asked.status_code in (200, 202), asked.text
    desk = app_client.simulate_get("/console/fragments/deferred", cookies={SESSION_COOKIE: people.admin2.token}).text
    assert "glpi_delete_ticket" in desk and "Planifier" in desk and "Refuser" in desk and "en attente" in desk
    approver = app_client.simulate_get("/console/fragments/deferred",
                                       cookies={SESSION_COOKIE: people.approver.token}).text
    assert "glpi_delete_ticket" in approver and "Planifier" not in approver


def test_an_observium_alert_shows_up_as_an_incident_with_its_diagnosis_ticket_and_timeline(
        integrated_settings, stub_broker, stub_worker, observium, phibee, glpi, mail_sink, people):
    from falcon.testing import TestClient

    from tests.conftest import drain
    from widip import deps as actor_deps
    from widip.http.app import build_context, create_app

    # Given Sentinel took one Observium alert all the way to a diagnosed GLPI ticket (rules provider)
    settings = integrated_settings.with_overrides(webhook_token="obs-secret", llm_provider="rules")
    api = TestClient(create_app(build_context(settings)))
    actor_deps.configure(settings)
    tracking = api.simulate_post("/webhook/widip-alertes", json=observium.state.webhook_body(301),
                                 headers={"Authorization": "obs-secret"}).json["tracking_id"]
    drain(stub_broker, stub_worker)
    ticket = api.simulate_get(f"/incidents/{tracking}", headers=people.tech.headers).json["ticket"]["id"]
    cookies = {SESSION_COOKIE: people.tech.token}
    # Then the incidents page lists it with a link to its GLPI ticket
    listed = api.simulate_get("/console/incidents?status=open", cookies=cookies).text
    assert f"/console/incidents/{tracking}" in listed and f"ticket.form.php?id={ticket}" in listed
    # And its page tells the story: diagnosis, ticket, timeline, alerts, mails
    story = api.simulate_get(f"/console/incidents/{tracking}", cookies=cookies)
    assert story.status_code == 200
    assert "critique" in story.text and f"n° {ticket}" in story.text and "Chronologie" in story.text
    assert "opened" in story.text and tracking in story.text and "smtp_send" in story.text
    # And the supervision page shows it among the recent incidents
    assert f"/console/incidents/{tracking}" in api.simulate_get("/console/monitoring", cookies=cookies).text
    missing = api.simulate_get("/console/incidents/ALT-nope", cookies=cookies)
    assert missing.status_code == 404 and "Introuvable" in missing.text
