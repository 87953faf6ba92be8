"""The SAFEGUARD desk and direct tool calls over HTTP, with real users, tokens, database and GLPI simulator."""

from datetime import datetime, timedelta, timezone

import pytest
from falcon.testing import TestClient

from tests.conftest import drain
from widip import deps as actor_deps
from widip.http.app import build_context, create_app

TICKET = {"title": "Imprimante en panne", "content": "L'imprimante du 2e étage ne répond plus."}


@pytest.fixture
def api(integrated_settings, stub_broker):
    client = TestClient(create_app(build_context(integrated_settings)))
    actor_deps.configure(integrated_settings)
    return client


def test_get_tools_lists_every_tool_with_schema_and_live_level(api, people):
    assert api.simulate_get("/tools").status_code == 401
    tools = api.simulate_get("/tools", headers=people.tech.headers).json["tools"]
    assert len(tools) >= 22
    systems = {t["system"] for t in tools}
    assert systems == {"glpi", "observium", "phibee", "smtp", "active_directory", "mysecret", "docs"}
    for tool in tools:
        assert tool["schema"]["additionalProperties"] is False and tool["level"] in ("L0", "L1", "L2", "L3", "L4")
    levels = {t["name"]: t["level"] for t in tools}
    assert levels["glpi_create_ticket"] == "L3" and levels["smtp_test_connection"] == "L0"


def test_a_technician_l3_call_waits_for_an_approver_then_runs_once(api, people, stub_broker, stub_worker, glpi):
    asked = api.simulate_post("/tools/glpi_create_ticket", json=TICKET, headers=people.tech.headers)
    assert asked.status_code == 202
    request_id = asked.json["request_id"]
    assert asked.json["next"] == f"approval required from N3; request {request_id}"
    own = api.simulate_post(f"/safeguard/requests/{request_id}/approve", json={}, headers=people.tech.headers)
    assert own.status_code == 403
    pending = api.simulate_get("/safeguard/requests?status=pending", headers=people.approver.headers).json["requests"]
    assert [r["id"] for r in pending] == [request_id]
    before = glpi.state.calls.get("POST Ticket", 0)
    approved = api.simulate_post(f"/safeguard/requests/{request_id}/approve", json={"comment": "ok"},
                                 headers=people.approver.headers)
    assert approved.status_code == 200 and "queued to run" in approved.json["next"]
    again = api.simulate_post(f"/safeguard/requests/{request_id}/approve", json={}, headers=people.approver2.headers)
    assert again.status_code == 409 and "already approved" in again.json["description"]
    drain(stub_broker, stub_worker)
    assert glpi.state.calls.get("POST Ticket", 0) == before + 1
    call = api.simulate_get(asked.headers["Location"], headers=people.tech.headers).json
    assert call["status"] == "done" and call["result"]["ticket_id"]


def test_an_approver_runs_an_l3_tool_directly_and_an_n1_reads_freely(api, people, stub_broker, stub_worker, glpi):
    direct = api.simulate_post("/tools/glpi_create_ticket", json=TICKET, headers=people.approver.headers)
    assert direct.status_code == 200 and direct.json["status"] == "ready"
    read = api.simulate_post("/tools/glpi_get_ticket_details", json={"ticket_id": 1}, headers=people.tech.headers)
    assert read.status_code == 200
    drain(stub_broker, stub_worker)
    assert api.simulate_get(read.headers["Location"], headers=people.tech.headers).json["status"] == "done"


def test_rejection_needs_a_reason_and_stops_the_call(api, people, stub_broker, stub_worker, glpi):
    request_id = api.simulate_post("/tools/glpi_create_ticket", json=TICKET,
                                   headers=people.tech.headers).json["request_id"]
    assert api.simulate_post(f"/safeguard/requests/{request_id}/reject", json={},
                             headers=people.approver.headers).status_code == 400
    rejected = api.simulate_post(f"/safeguard/requests/{request_id}/reject", json={"reason": "doublon"},
                                 headers=people.approver.headers)
    assert rejected.status_code == 200
    before = glpi.state.calls.get("POST Ticket", 0)
    drain(stub_broker, stub_worker)
    assert glpi.state.calls.get("POST Ticket", 0) == before


def test_l4_is_deferred_and_another_n4_schedules_it(api, people):
    asked = api.simulate_post("/tools/glpi_delete_ticket", json={"ticket_id": 1}, headers=people.admin.headers)
    assert asked.status_code == 202 and "24–48 h" in asked.json["next"]
    deferred = api.simulate_get("/safeguard/deferred", headers=people.admin.headers).json["deferred"]
    action_id = deferred[0]["id"]
    run_at = (datetime.now(timezone.utc) + timedelta(hours=30)).isoformat()
    own = api.simulate_post(f"/safeguard/deferred/{action_id}/schedule", json={"run_at": run_at},
                            headers=people.admin.headers)
    assert own.status_code == 403
    too_soon = api.simulate_post(f"/safeguard/deferred/{action_id}/schedule",
                                 json={"run_at": datetime.now(timezone.utc).isoformat()}, headers=people.admin2.headers)
    assert too_soon.status_code == 400 and "between 24 h and 48 h" in too_soon.json["description"]
    scheduled = api.simulate_post(f"/safeguard/deferred/{action_id}/schedule", json={"run_at": run_at},
                                  headers=people.admin2.headers)
    assert scheduled.status_code == 200 and "unless cancelled" in scheduled.json["next"]
    cancelled = api.simulate_post(f"/safeguard/deferred/{action_id}/cancel", json={"comment": "finalement non"},
                                  headers=people.admin2.headers)
    assert cancelled.status_code == 200


def test_a_technician_cannot_run_an_l4_tool_at_all(api, people):
    refused = api.simulate_post("/tools/ad_disable_account", json={"username": "jdupont"}, headers=people.tech.headers)
    assert refused.status_code == 403 and "N4" in refused.json["description"]


def test_level_changes_are_n4_only_and_audited(api, people):
    body = {"level": "L3", "reason": "incident sécurité en cours"}
    assert api.simulate_put("/safeguard/config/glpi_search_client", json=body,
                            headers=people.approver.headers).status_code == 403
    changed = api.simulate_put("/safeguard/config/glpi_search_client", json=body, headers=people.admin.headers)
    assert changed.status_code == 200 and changed.json["previous_level"] == "L0"
    audit = api.simulate_get("/safeguard/audit?tool=glpi_search_client", headers=people.approver.headers).json["audit"]
    assert audit[0]["action"] == "config_changed" and audit[0]["outcome"] == "L0 -> L3"
    assert api.simulate_get("/safeguard/audit", headers=people.tech.headers).status_code == 403


@pytest.mark.parametrize("method, path, body", [
    ("post", "/tools/glpi_create_ticket", {"title": "x"}),
    ("post", "/tools/glpi_create_ticket", {"title": "Titre", "content": "c", "urgency": 9}),
    ("post", "/tools/no_such_tool", {}),
    ("post", "/safeguard/requests/abc/approve", {}),
    ("post", "/safeguard/requests/999999/approve", {}),
    ("put", "/safeguard/config/glpi_search_client", {"level": "L9", "reason": "x"}),
    ("get", "/safeguard/requests?status=weird", None),
    ("get", "/safeguard/audit?since=yesterday", None),
])
def test_bad_safeguard_input_gets_a_4xx_with_a_message(api, people, method, path, body):
    result = getattr(api, f"simulate_{method}")(path, json=body, headers=people.admin.headers)
    assert 400 <= result.status_code < 500, result.text
    assert result.json.get("description") or result.json.get("title")


def test_safeguard_endpoints_require_a_login(api):
    for path in ("/safeguard/requests", "/safeguard/config", "/safeguard/audit", "/safeguard/deferred"):
        assert api.simulate_get(path).status_code == 401
    assert api.simulate_post("/tools/glpi_get_user", json={"user_id": 2}).status_code == 401


def test_requests_are_visible_to_approvers_and_to_whoever_caused_them_only(api, people, conn):
    from widip.functions import identity

    body = {"to": ["astreinte@widip.fr"], "subject": "Votre lien",
            "body": "Voici votre lien : http://mysecret.widip.fr/p/tok_123abc (usage unique)"}
    request_id = api.simulate_post("/tools/smtp_send_email", json=body, headers=people.tech.headers).json["request_id"]
    other = identity.create_user(conn, username="tech2", password="correct-horse-battery-staple", accreditation_level=1)
    other_headers = {"Authorization": f"Bearer {identity.issue_session(conn, other.id, ttl_hours=1).token}"}
    assert api.simulate_get("/safeguard/requests", headers=other_headers).json["requests"] == []
    assert api.simulate_get(f"/safeguard/requests/{request_id}", headers=other_headers).status_code == 404
    own = api.simulate_get(f"/safeguard/requests/{request_id}", headers=people.tech.headers).json
    shown = api.simulate_get(f"/safeguard/requests/{request_id}", headers=people.approver.headers).json
    assert own["id"] == shown["id"] == request_id
    assert "tok_123abc" not in str(shown) and "[lien secret masqué]" in shown["args_redacted"]["body"]
    audit = api.simulate_get("/safeguard/audit?tool=smtp_send_email", headers=people.approver.headers).text
    assert "tok_123abc" not in audit
