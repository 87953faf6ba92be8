"""The console in a real browser: a technician chats with WIBOT, an approver decides from the desk or
inline from the chat banner, and the technician's chat goes on without a reload.

Real processes (gunicorn web, dramatiq worker and llm on the Redis broker), the rules provider, the
GLPI simulator, and Debian's headless Chromium — one profile per person.
"""

import pytest

from tests.browser import Browser
from tests.test_metrics import integration_env

pytestmark = pytest.mark.e2e
PRINTER = "Crée un ticket pour l'imprimante en panne au 2e étage"
FOLLOW_UP = "Où en est ce ticket ?"
BADGE = "Crée un ticket pour le lecteur de badges du hall qui ne répond plus"


@pytest.fixture
def browsers(stack):
    opened = []

    def open_browser(**size):
        browser = Browser(stack.url, **size)
        opened.append(browser)
        return browser
    yield open_browser
    for browser in opened:
        browser.quit()


@pytest.fixture
def chat_stack(stack, people, glpi, mail_sink):
    stack.start("web", "worker", "llm", LLM_PROVIDER="rules", **integration_env(glpi, mail_sink))
    return stack


def user_messages(browser, conversation):
    """The user messages of one conversation, read through the JSON API with the browser's session."""
    data = browser.driver.execute_script(
        "return fetch(arguments[0], {headers: {Accept: 'application/json'}}).then((r) => r.json())",
        f"/conversations/{conversation}/messages")
    return [m["content"] for m in data["messages"] if m["role"] == "user"]


def ask(browser, message):
    box = browser.find("#message")
    box.send_keys(message)
    box.send_keys("\n")  # Enter sends
    return browser.find(".banner.safeguard", "Validation requise", timeout=30)


def test_a_tech_waits_for_approvals_from_the_desk_and_inline_and_sees_a_rejection_without_reloading(
        chat_stack, browsers, glpi):
    # Given the technician and the approver, each in their own browser
    tech, approver = browsers(), browsers()
    tech.login("tech")
    assert "Tech" in tech.find("[data-testid=user]").text and "N1" in tech.find("[data-testid=accreditation]").text
    # When the technician asks for something that needs an L3 tool
    banner = ask(tech, PRINTER)
    # Then the pending step names the tool and who must decide, without any approve button for them
    assert "glpi_create_ticket" in banner.text and "approbateur" in banner.text
    assert not tech.driver.find_elements("css selector", ".banner.safeguard button.approve")
    assert "Outil appelé" in tech.find(".step.tool_call").text
    tech.shot("chat-tech-waiting-approval")
    # When the approver approves it from the SAFEGUARD desk
    approver.login("approver")
    approver.open("/console/safeguard")
    card = approver.find(".card.request", "glpi_create_ticket")
    assert "Imprimante" in card.text or "imprimante" in card.text  # the arguments are shown
    approver.shot("safeguard-desk-pending-request")
    tickets_before = glpi.state.calls.get("POST Ticket", 0)
    card.find_element("css selector", "input[name=comment]").send_keys("ok pour moi")
    card.find_element("css selector", "button.approve").click()
    approver.find("#toast", "approuvée")
    approver.find("#w-requests .empty", "Aucune demande en attente")
    # Then, without reloading, the technician's chat shows the approval and WIBOT's final answer
    tech.find(".step.resumed", "Approuvé", timeout=40)
    answer = tech.find(".bubble.bot", timeout=40)
    assert answer.text
    assert glpi.state.calls.get("POST Ticket", 0) == tickets_before + 1
    assert "Décision" in tech.find(".banner.safeguard.closed").text
    tech.shot("chat-tech-after-approval")
    # And the conversation is listed
    assert PRINTER[:30] in tech.find("#w-conversations").text

    # When the technician follows up in the same conversation
    conversation = tech.driver.current_url.rsplit("/", 1)[1]
    box = tech.find("#message")
    box.send_keys(FOLLOW_UP)
    box.send_keys("\n")
    tech.wait(lambda d: len(d.find_elements("css selector", "article.turn .bubble.bot")) == 2, timeout=40)
    # Then it is the conversation's second turn: same address, one conversation listed, two messages
    assert tech.driver.current_url.endswith("/console/chat/" + conversation)
    assert len(tech.find("#w-conversations").find_elements("css selector", "li")) == 1
    assert user_messages(tech, conversation) == [PRINTER, FOLLOW_UP]
    # And WIBOT remembered which ticket "ce ticket" is (the conversation's memory)
    follow_up = tech.driver.find_elements("css selector", "article.turn")[1]
    assert "glpi_get_ticket_details" in follow_up.text
    # And reopening the conversation shows both turns
    tech.open("/console/chat/" + conversation)
    tech.wait(lambda d: len(d.find_elements("css selector", "article.turn .bubble.bot")) == 2, timeout=40)
    assert FOLLOW_UP in tech.find("#turns").text
    tech.shot("chat-tech-follow-up-same-conversation")

    # When the approver, now on a phone, opens a new request's conversation from the desk and approves inline
    approver.driver.set_window_size(390, 844)
    tech.open("/console/chat")
    ask(tech, PRINTER)
    approver.open("/console/safeguard")
    approver.find(".card.request a[href^='/console/chat/']").click()
    # (the desk links to the technician's session: conversations are their owner's only)
    assert "/console/chat/" in approver.driver.current_url
    assert PRINTER in approver.find("#turns").text
    banner = approver.find(".banner.safeguard", "Validation requise")
    banner.find_element("css selector", "input[name=comment]").send_keys("vu au téléphone")
    approver.shot("chat-approver-inline-banner-phone")
    banner.find_element("css selector", "button.approve").click()
    # Then the technician's chat goes on to the answer
    tech.find(".step.resumed", timeout=40)
    tech.find(".bubble.bot", timeout=40)

    # When a third request is rejected inline with a reason
    tech.open("/console/chat")
    ask(tech, BADGE)
    badge = tech.driver.current_url.rsplit("/", 1)[1]
    approver.open("/console/safeguard")
    approver.find(".card.request a[href^='/console/chat/']").click()
    banner = approver.find(".banner.safeguard:not(.closed)", "Validation requise")
    banner.find_element("css selector", "form.reject input[name=reason]").send_keys("doublon du ticket 12")
    banner.find_element("css selector", "button.reject").click()
    # Then the technician sees the rejection step with the approver's reason, then WIBOT's answer
    rejected = tech.find(".step.rejected", "doublon du ticket 12", timeout=40)
    assert "Rejeté" in rejected.text
    tech.find(".bubble.bot", timeout=40)
    tech.shot("chat-tech-rejected-with-comment")
    assert glpi.state.calls.get("POST Ticket", 0) == tickets_before + 2
    # And nothing went wrong in either browser's console
    assert tech.console_errors() == [] and approver.console_errors() == []
    # And the conversation stays the technician's: the approver only ever saw the session
    assert approver.driver.execute_script(
        "return fetch(arguments[0]).then((r) => r.status)", f"/conversations/{badge}/messages") == 404




def test_a_documentation_answer_lists_its_cited_sources(chat_stack, browsers, conn):
    from widip.config import PROJECT_ROOT
    from widip.functions.docs import ingest
    from widip.functions.docs.embedding import _spacy

    ingest.ingest_tree(conn, [PROJECT_ROOT / "docs" / "runbooks"], _spacy(), actor="test")
    tech = browsers()
    tech.login("tech")
    # When the technician asks a documentation question
    box = tech.find("#message")
    box.send_keys("Comment configurer le VPN pour un nouvel EHPAD ?")
    box.send_keys("\n")
    # Then the answer lists the passages it cites, under the answer
    sources = tech.find("article.turn nav.citations", "Spécificités EHPAD", timeout=40)
    assert "Sources" in sources.text and "[doc" in sources.text
    tech.shot("chat-tech-answer-with-sources")
    assert tech.console_errors() == []
