"""The console in a real browser for operations: keyboard-only login and approval, GLPI going down and
coming back on the supervision page, maintenance windows created and removed, every page free of
console errors (real gunicorn + dramatiq, the GLPI simulator on its own port, headless Chromium)."""

import time

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from simulators import glpi as glpi_sim
from simulators.base import serve
from tests.browser import PASSWORD, Browser
from tests.stack import free_port, poll
from tests.test_metrics import send_probes

pytestmark = pytest.mark.e2e


@pytest.fixture
def glpi_server():
    """A GLPI simulator this test may stop and restart on the same port."""
    state = glpi_sim.State()
    state.seed_demo()
    port = free_port()
    handle = {"server": serve(glpi_sim.make_app(state), port=port), "state": state, "port": port}
    yield handle
    if handle["server"] is not None:
        handle["server"].stop()


@pytest.fixture
def browser(stack):
    opened = Browser(stack.url)
    yield opened
    opened.quit()


def keys(browser, *sequence):
    ActionChains(browser.driver).send_keys(*sequence).perform()


def tab_to(browser, matches, limit: int = 80):
    """Press Tab until the focused element satisfies `matches`; fail if it never does."""
    for _ in range(limit):
        keys(browser, Keys.TAB)
        active = browser.driver.switch_to.active_element
        if matches(active):
            return active
    raise AssertionError("never reached the element with the keyboard")


def glpi_status(browser):
    return browser.find("#glpi-status").get_attribute("data-status")


def test_keyboard_approval_glpi_outage_and_every_page_in_a_real_browser(stack, people, glpi_server, mail_sink,
                                                                        redis_url, browser):
    env = {"GLPI_URL": f"http://127.0.0.1:{glpi_server['port']}/apirest.php", "GLPI_APP_TOKEN": "sim-app-token",
           "GLPI_USER_TOKEN": "sim-user-token", "SMTP_HOST": mail_sink.host, "SMTP_PORT": str(mail_sink.port),
           "SMTP_USE_TLS": "none", "ALERT_MAIL_RECIPIENTS": "astreinte@widip.fr", "INTEGRATION_TIMEOUT_SECONDS": "2",
           "GLPI_DOWN_AFTER_FAILURES": "2"}
    stack.start("web", "worker", **env)
    asked = httpx.post(stack.url + "/tools/glpi_create_ticket", headers=people.tech.headers, timeout=10,
                       json={"title": "Écran noir", "content": "Le poste de l'accueil ne démarre plus."})
    assert asked.status_code == 202, asked.text

    # Keyboard only: log in (the username field has the focus), reach the desk, approve
    browser.open("/console/login")
    keys(browser, "approver", Keys.TAB, PASSWORD, Keys.ENTER)
    browser.wait(lambda d: "/console/chat" in d.current_url)
    tab_to(browser, lambda e: e.text == "SAFEGUARD")
    keys(browser, Keys.ENTER)
    browser.wait(lambda d: "/console/safeguard" in d.current_url)
    browser.find(".card.request", "Écran noir")
    tab_to(browser, lambda e: e.tag_name == "input" and e.get_attribute("name") == "comment")
    keys(browser, "vu", Keys.TAB)
    assert browser.driver.switch_to.active_element.text == "Approuver"
    keys(browser, Keys.ENTER)
    browser.find("#toast", "approuvée")
    browser.find("#w-requests .empty", "Aucune demande en attente")
    poll(lambda: httpx.get(f"{stack.url}/tools/calls/{asked.json()['call_id']}", headers=people.tech.headers).json(),
         lambda call: call["status"] == "done", timeout=60)  # the approved ticket was created in GLPI
    browser.shot("safeguard-desk-after-keyboard-approval")

    # Supervision: GLPI answers, then its simulator stops: "hors service" within 90 s, then back to OK
    browser.open("/console/monitoring")
    send_probes(redis_url, 1)
    browser.wait(lambda d: glpi_status(browser) == "ok", timeout=30)
    browser.shot("monitoring-glpi-ok")
    glpi_server["server"].stop()
    glpi_server["server"] = None
    stopped = time.monotonic()
    while glpi_status(browser) != "down":
        assert time.monotonic() - stopped < 90, "the supervision page did not show GLPI down within 90 s"
        send_probes(redis_url, 1)  # the scheduler's 30 s probe, sooner
        time.sleep(3)
    assert "hors service" in browser.find("#glpi-status").text
    assert "glpi" in browser.find(".problems").text  # listed among the things to act on
    browser.shot("monitoring-glpi-down")
    glpi_server["server"] = serve(glpi_sim.make_app(glpi_server["state"]), port=glpi_server["port"])
    restarted = time.monotonic()
    while glpi_status(browser) != "ok":
        assert time.monotonic() - restarted < 90, "the supervision page did not show GLPI back within 90 s"
        send_probes(redis_url, 1)
        time.sleep(3)
    assert browser.find(".chart")  # the server-drawn history

    # Maintenance windows: create one from the form, see it listed, remove it
    browser.open("/console/maintenance")
    browser.find("#w-windows .empty", "Aucune fenêtre")
    browser.find("select[name=scope]").send_keys("site")
    browser.find("input[name=value]").send_keys("EHPAD Les Tilleuls - Lyon")
    browser.find("input[name=reason]").send_keys("travaux électriques")
    browser.find("form[data-api] button.primary").click()
    card = browser.find("#w-windows .card", "EHPAD Les Tilleuls")
    assert "travaux électriques" in card.text
    browser.shot("maintenance-window-created")
    card.find_element("css selector", "summary").click()
    browser.driver.execute_script("window.confirm = () => true")
    card.find_element("css selector", "button.reject").click()
    browser.find("#w-windows .empty", "Aucune fenêtre")

    # Every other page renders, in French, with its empty states
    browser.open("/console/incidents")
    browser.find("#w-incidents .empty", "Aucun incident")
    browser.shot("incidents-list-empty")
    browser.open("/console/safeguard?tool=glpi_create_ticket")
    browser.find("#w-audit table", "approved")
    browser.shot("safeguard-desk-audit-filtered")
    browser.open("/console/chat")
    browser.find("#chat-empty")
    # And no page logged a console error
    assert browser.console_errors() == []

    # Logging out ends the session: pages send back to the login form
    tab_to(browser, lambda e: e.text == "Se déconnecter")
    keys(browser, Keys.ENTER)
    browser.wait(lambda d: "/console/login" in d.current_url)
    browser.open("/console/safeguard")
    browser.wait(lambda d: "/console/login" in d.current_url)

    # An administrator changes a tool's level for one persona, with a reason
    browser.login("admin")
    browser.open("/console/safeguard")
    form = browser.find("#w-levels form[data-api]")
    Select(form.find_element("css selector", "select[name=tool]")).select_by_visible_text("glpi_create_ticket")
    Select(form.find_element("css selector", "select[name=persona]")).select_by_visible_text("wibot")
    Select(form.find_element("css selector", "select[name=level]")).select_by_visible_text("L2")
    form.find_element("css selector", "input[name=reason]").send_keys("essai depuis la console")
    form.find_element("css selector", "button").click()
    browser.find("#toast", "Niveau modifié")
    row = browser.find("#w-levels tr", "glpi_create_ticket")
    assert [c.text for c in row.find_elements("css selector", "td")][-1] == "L2"  # the wibot column
    browser.driver.execute_script("arguments[0].scrollIntoView()", row)
    browser.shot("safeguard-levels-admin")
    assert browser.console_errors() == []
