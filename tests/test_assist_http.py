"""Assist over HTTP: an approver runs a cycle (202 + job), and anyone logged in sees per ticket what Assist
decided, why, what it did and how it ended, and the cycle log."""

import pytest
from falcon.testing import TestClient

from tests.conftest import drain
from widip.http.app import build_context, create_app


@pytest.fixture
def client(directory_settings, stub_broker, people):
    return TestClient(create_app(build_context(directory_settings.with_overrides(llm_provider="rules"))))


def test_an_approver_runs_a_cycle_and_everyone_sees_what_assist_did_per_ticket(
        client, people, stub_broker, stub_worker, glpi, active_directory, pwpush, mail_sink):
    assert client.simulate_post("/assist/cycles", headers=people.tech.headers).status_code == 403
    assert client.simulate_post("/assist/cycles").status_code == 401
    started = client.simulate_post("/assist/cycles", headers=people.approver.headers)
    assert started.status_code == 202 and started.headers["location"] == f"/jobs/{started.json['job_id']}"
    drain(stub_broker, stub_worker, rounds=100)
    assert client.simulate_get(started.headers["location"], headers=people.approver.headers).json["status"] == "done"
    tickets = {t["ticket_id"]: t for t in client.simulate_get("/assist/tickets", headers=people.tech.headers)
               .json["tickets"]}
    reset = tickets[1]
    assert (reset["category"], reset["decision"], reset["outcome"]) == ("RESET_MDP", "auto", "solved")
    assert reset["requester"]["ad_account"] == "jdupont" and reset["session"].startswith("/agent/sessions/")
    assert [a["target"] for a in reset["actions"] if a["tool"] == "ad_reset_password"] == ["jdupont"]
    assert "secret_handle" not in str(reset["actions"]) and "/p/" not in str(reset)
    creation = tickets[3]
    assert (creation["decision"], creation["outcome"]) == ("handover", "handed_over")
    assert "création" in creation["reason"]
    handed = client.simulate_get("/assist/tickets", params={"decision": "handover"}, headers=people.tech.headers)
    assert {t["ticket_id"] for t in handed.json["tickets"]} == {3, 4}
    cycles = client.simulate_get("/assist/cycles", headers=people.tech.headers).json["cycles"]
    assert cycles[0]["status"] == "success" and cycles[0]["tickets_found"] == 4


@pytest.mark.parametrize("path, params", [("/assist/tickets", {"decision": "maybe"}),
                                          ("/assist/tickets", {"limit": "0"}), ("/assist/cycles", {"limit": "x"})])
def test_bad_filters_are_a_clear_400(client, people, path, params):
    response = client.simulate_get(path, params=params, headers=people.tech.headers)
    assert response.status_code == 400 and response.json["title"] and response.json["description"]
