"""SAFEGUARD on real processes: gunicorn web + dramatiq worker on the Redis broker, the GLPI simulator.

Twenty approvers racing on one request give one execution and nineteen clear 409s; a worker
SIGKILLed in the middle of an approved ticket creation still leaves exactly one ticket.
"""

import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.stack import poll
from tests.test_e2e_outbox import requeue_from_dead_workers
from tests.test_metrics import integration_env

pytestmark = pytest.mark.e2e
TICKET = {"title": "Imprimante en panne", "content": "L'imprimante du 2e étage ne répond plus."}


def ask_ticket(stack, people) -> dict:
    asked = httpx.post(stack.url + "/tools/glpi_create_ticket", json=TICKET, headers=people.tech.headers, timeout=10)
    assert asked.status_code == 202, asked.text
    return asked.json()


def approvers(conn, count):
    from widip.functions import identity

    made = []
    for i in range(count):
        user = identity.create_user(conn, username=f"approver{i:02d}", password="correct-horse-battery-staple",
                                    accreditation_level=3)
        made.append({"Authorization": f"Bearer {identity.issue_session(conn, user.id, ttl_hours=1).token}"})
    return made


def test_twenty_concurrent_approvals_make_one_execution_and_nineteen_409s(stack, people, conn, glpi, mail_sink):
    stack.env.update(integration_env(glpi, mail_sink))
    stack.start("web", "worker")
    asked = ask_ticket(stack, people)
    headers = approvers(conn, 20)
    url = f"{stack.url}/safeguard/requests/{asked['request_id']}/approve"
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda h: httpx.post(url, json={"comment": "ok"}, headers=h, timeout=20), headers))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 19, codes
    assert all("already approved" in a.json()["description"] for a in answers if a.status_code == 409)
    call = poll(lambda: httpx.get(f"{stack.url}/tools/calls/{asked['call_id']}", headers=people.tech.headers).json(),
                lambda c: c["status"] == "done", timeout=30)
    assert call["result"]["created"] is True
    assert glpi.state.calls.get("POST Ticket", 0) == 1


def test_a_worker_killed_during_an_approved_run_leaves_exactly_one_ticket(stack, people, conn, glpi, mail_sink,
                                                                           redis_url):
    stack.env.update(integration_env(glpi, mail_sink))
    stack.start("web", "worker")
    asked = ask_ticket(stack, people)
    glpi.state.fault = {"delay_seconds": 2}  # the worker will be inside the GLPI call when it dies
    assert httpx.post(f"{stack.url}/safeguard/requests/{asked['request_id']}/approve", json={},
                      headers=people.approver.headers, timeout=10).status_code == 200
    poll(lambda: conn.execute("SELECT status FROM tool_calls WHERE id = %s", (asked["call_id"],)).fetchone()["status"],
         lambda status: status == "running", timeout=20)
    stack.kill("worker", signal.SIGKILL)
    glpi.state.fault = {}
    stack.start("worker")
    # Dramatiq returns a dead worker's message after its heartbeat ages out; run that maintenance now.
    poll(lambda: requeue_from_dead_workers(redis_url, "tools", heartbeat_timeout_ms=3_000) or
         conn.execute("SELECT status FROM tool_calls WHERE id = %s", (asked["call_id"],)).fetchone()["status"],
         lambda status: status == "done", timeout=40, interval=1.0)
    tickets = [t for t in glpi.state.items["Ticket"].values() if f"[widip:{asked['call_id']}]" in (t.get("content") or "")]
    assert len(tickets) == 1
    audit = [r["action"] for r in conn.execute("SELECT action FROM safeguard_audit WHERE call_id = %s ORDER BY id",
                                               (asked["call_id"],))]
    assert audit.count("executed") == 1 and "approved" in audit
