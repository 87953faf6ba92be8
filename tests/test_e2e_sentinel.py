"""Sentinel end to end on real processes (web, worker, llm from the Procfile, Redis broker) and the simulators:
Observium posts its alert, the Ollama simulator is the LLM, GLPI and the SMTP sink receive the effects."""

from __future__ import annotations

import json

import httpx
import pytest

from simulators import observium as observium_sim
from simulators import ollama as ollama_sim
from simulators import phibee as phibee_sim
from simulators.base import serve
from simulators.smtp import start_sink
from tests.conftest import drain
from tests.stack import free_port, poll
from widip import deps as actor_deps
from widip.actors import sentinel as sentinel_actors

pytestmark = pytest.mark.e2e

TOKEN = "observium-webhook-secret"
OPERATOR = {"responsibility": "OPERATEUR", "severity": "critique",
            "summary": "Coupure de la fibre Phibee à Vienne : le CPE du site est injoignable.",
            "evidence": ["Incident opérateur ouvert sur le site"], "recommended_actions": ["Suivre l'incident"]}
LOCAL = {"responsibility": "CLIENT", "severity": "majeure", "summary": "Commutateur du bloc A éteint.",
         "evidence": ["Seul équipement du site en panne"], "recommended_actions": ["Appeler la clinique"]}


@pytest.fixture
def world(stack, glpi, observium, phibee, ollama, tmp_path, people):
    sink = start_sink(tmp_path / "var" / "mail")
    env = {"GLPI_URL": glpi.url, "GLPI_APP_TOKEN": "sim-app-token", "GLPI_USER_TOKEN": "sim-user-token",
           "OBSERVIUM_URL": observium.url, "OBSERVIUM_USER": observium_sim.DEFAULT_USER,
           "OBSERVIUM_PASS": observium_sim.DEFAULT_PASSWORD, "PHIBEE_API_URL": phibee.url,
           "PHIBEE_API_TOKEN": phibee_sim.DEFAULT_TOKEN, "SMTP_HOST": sink.host, "SMTP_PORT": str(sink.port),
           "SMTP_USE_TLS": "none", "ALERT_MAIL_RECIPIENTS": "astreinte@widip.fr", "WEBHOOK_TOKEN": TOKEN,
           "LLM_PROVIDER": "ollama", "OLLAMA_HOST": ollama[1], "LLM_TIMEOUT_SECONDS": "10",
           "INTEGRATION_TIMEOUT_SECONDS": "3", "SENTINEL_HOLD_SECONDS": "3", "SENTINEL_BATCH_SECONDS": "3"}
    stack.env.update(env)
    stack.start("web", "worker", "llm")
    client = httpx.Client(base_url=stack.url, timeout=10)
    yield stack, client, sink
    client.close()
    sink.stop()


def send_alert(stack, observium, device_id, state="ALERT"):
    reply = httpx.post(observium.url + "/_sim/send_alert", json={
        "device_id": device_id, "state": state, "url": stack.url + "/webhook/widip-alertes", "token": TOKEN}, timeout=15)
    assert reply.status_code == 200 and reply.json()["status_code"] == 200, reply.text
    answer = json.loads(reply.json()["response"])
    assert answer["status"] == "successful"
    return answer["tracking_id"]


def sentinel_tickets(glpi):
    return [t for t in glpi.state.items["Ticket"].values() if t["name"].startswith("[Sentinel]")]


def tick(client, people):
    location = client.post("/sentinel/ticks", headers=people.approver.headers).headers["Location"]
    return poll(lambda: client.get(location, headers=people.approver.headers).json(), lambda j: j["status"] in ("done", "failed"), timeout=30)


def test_sentinel_end_to_end(world, glpi, observium, ollama, people, conn, redis_client):
    stack, client, sink = world
    llm, _ = ollama
    llm.push([{"tool_calls": [{"name": "observium_get_device", "arguments": {"device": 301}}]},
              {"text": json.dumps(OPERATOR)}, {"text": json.dumps(LOCAL)}])

    # An Observium alert → 200 successful → a GLPI ticket with the diagnosis, a team mail, a log row, metrics.
    tracking = send_alert(stack, observium, 301)
    poll(lambda: sentinel_tickets(glpi), bool, timeout=30)
    assert OPERATOR["summary"] in sentinel_tickets(glpi)[0]["content"]
    team = poll(lambda: [m for m in sink.messages() if "[WIDIP Sentinel]" in m["Subject"]], bool)
    assert (stack.log_dir / "var" / "mail").exists() and len(team) == 1
    log = poll(lambda: conn.execute("SELECT * FROM incident_logs WHERE tracking_id = %s", (tracking,)).fetchone(),
               bool)
    assert log["responsibility"] == "OPERATEUR" and log["cache_used"] is False and log["ticket_id"]
    metrics = client.get("/metrics").text
    assert 'widip_workflow_success_total{workflow="proactif"} 1.0' in metrics
    assert "widip_sentinel_duration_seconds_count 1.0" in metrics
    assert len(llm.requests) == 2

    # Observium notifies again (reminder): attached to the incident, no second ticket.
    again = send_alert(stack, observium, 301, "ALERT REMINDER")
    poll(lambda: conn.execute("SELECT outcome FROM alerts WHERE tracking_id = %s", (again,)).fetchone()["outcome"],
         lambda outcome: outcome == "attached")

    # GLPI down during an alert: diagnosis still runs, the mail says pending, the ticket exists once after recovery.
    redis_client.set("glpi_health_status", "down")
    glpi.state.fault = {"status": 503}
    observium.state.set_up(204)
    observium.state.set_down(204, since_seconds=21 * 60)
    parc = send_alert(stack, observium, 204)
    pending = poll(lambda: [m for m in sink.messages() if "[WIDIP Sentinel]" in m["Subject"]],
                   lambda mails: len(mails) == 2, timeout=30)
    assert "en attente" in pending[1].get_content() and len(sentinel_tickets(glpi)) == 1
    glpi.state.fault = {}
    redis_client.set("glpi_health_status", "ok")
    tick(client, people)
    poll(lambda: sentinel_tickets(glpi), lambda t: len(t) == 2, timeout=30)
    incident = poll(lambda: client.get(f"/incidents/{parc}", headers=people.tech.headers).json(),
                    lambda s: s["ticket"]["id"], timeout=20)
    assert incident["diagnosis"] == LOCAL and incident["incident"]["degraded"] is True

    # 204 has been down 21 min: exactly one L3 alert-mail request across many ticks; approved → one mail.
    for _ in range(3):
        tick(client, people)
    alert_requests = conn.execute("SELECT * FROM safeguard_requests WHERE tool_name = 'smtp_send_alert' AND "
                                  "args_redacted->>'device' = 'sw-parc-bloc-a.widip.net'").fetchall()
    assert len(alert_requests) == 1 and alert_requests[0]["level"] == "L3"
    approved = client.post(f"/safeguard/requests/{alert_requests[0]['id']}/approve", json={},
                           headers=people.approver.headers)
    assert approved.status_code == 200
    poll(lambda: [m for m in sink.messages() if "sw-parc-bloc-a" in m["Subject"]], lambda m: len(m) == 1)
    tick(client, people)
    assert redis_client.hget("workflow:device_down:204", "alert_sent") == b"1"

    # Up again: tracker cleared, recovery follow-up on its ticket.
    observium.state.set_up(204)
    tick(client, people)
    assert not redis_client.exists("workflow:device_down:204")
    ticket_id = incident["ticket"]["id"]
    poll(lambda: [f for f in glpi.state.items["ITILFollowup"].values()
                  if f["items_id"] == ticket_id and "Rétablissement" in f["content"]], bool, timeout=20)
    assert len([m for m in sink.messages() if "sw-parc-bloc-a" in m["Subject"]]) == 1

    # Within 20 min, a second incident on device 301 makes no LLM call (cache).
    observium.state.set_up(301)
    send_alert(stack, observium, 301, "RECOVER")
    poll(lambda: client.get(f"/incidents/{tracking}", headers=people.tech.headers).json()["incident"]["status"],
         lambda s: s == "recovered")
    port_alert = {**observium.state.webhook_body(301), "ENTITY_TYPE": "port", "ENTITY_ID": "30101",
                  "ENTITY_NAME": "GigabitEthernet0/0/0", "CONDITIONS": "ifOperStatus equals down (down)",
                  "ALERT_ID": "77301"}
    second = client.post("/webhook/widip-alertes", json=port_alert, headers={"Authorization": f"Bearer {TOKEN}"})
    assert second.json()["status"] == "successful"
    story = poll(lambda: client.get(f"/incidents/{second.json()['tracking_id']}", headers=people.tech.headers),
                 lambda r: r.status_code == 200 and r.json()["diagnosis"], timeout=30).json()
    assert story["incident"]["tracking_id"] != tracking and story["incident"]["cache_used"] is True
    assert story["diagnosis"] == OPERATOR and len(llm.requests) == 3  # 2 (first) + 1 (parc), none for this one


def test_an_alert_accepted_while_redis_is_down_is_processed_later(stack, integrated_settings, stub_broker, stub_worker,
                                                                 conn, glpi):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    stack.start("web", REDIS_URL=dead, WEBHOOK_TOKEN=TOKEN)
    body = observium_sim.State().seed_demo().webhook_body(301)
    answer = httpx.post(stack.url + "/webhook/widip-alertes", json=body, headers={"Authorization": TOKEN}, timeout=15)
    assert answer.status_code == 200 and answer.json()["status"] == "successful", answer.text
    row = conn.execute("SELECT status, enqueued_at FROM alerts").fetchone()
    assert row["status"] == "received" and row["enqueued_at"] is None
    conn.execute("UPDATE alerts SET received_at = received_at - interval '1 minute'")
    actor_deps.configure(integrated_settings.with_overrides(llm_provider="rules"))
    sentinel_actors.sweep_sentinel.send()
    drain(stub_broker, stub_worker)
    assert conn.execute("SELECT status, outcome FROM alerts").fetchone() == {"status": "processed", "outcome": "opened"}
    assert len(sentinel_tickets(glpi)) == 1


def test_the_demo_story_replayed_names_its_causes_with_evidence_when_the_model_answers_nonsense(
        world, glpi, observium, ollama, people, conn, tmp_path, monkeypatch):
    """On real processes with the demo inventory: `widip sentinel replay` posts the demo's two outages; the model's
    answers are invalid, so the rules decide from the evidence; each ticket lands in its client's GLPI entity with a
    diagnosis other than INCONNU and its evidence, also shown by /incidents/{id}."""
    from widip import cli
    from widip.functions import seeding

    stack, client, _ = world
    seeding.seed_demo_inventory(conn)
    ollama[0].push([{"text": "Aucune idée."}] * 4)  # invalid twice per incident: the rules conclude
    recorded = tmp_path / "demo.jsonl"
    recorded.write_text("\n".join(json.dumps({"at": at, "body": observium.state.webhook_body(device)})
                                  for at, device in ((0, 301), (1.5, 204))) + "\n", encoding="utf-8")
    monkeypatch.setenv("WEBHOOK_TOKEN", TOKEN)
    assert cli.main(["sentinel", "replay", str(recorded), "--speed", "3", "--url",
                     stack.url + "/webhook/widip-alertes"]) == 0
    tickets = poll(lambda: sentinel_tickets(glpi), lambda t: len(t) == 2, timeout=90)
    by_entity = {t["entities_id"]: t for t in tickets}
    assert set(by_entity) == {2, 3}  # Clinique du Parc, EHPAD Saint-Joseph: the clients' own entities
    assert "[phibee] incident collectif" in by_entity[3]["content"]
    stories = {}
    for row in conn.execute("SELECT tracking_id, client FROM incidents").fetchall():
        stories[row["client"]] = poll(lambda: client.get(f"/incidents/{row['tracking_id']}",
                                                         headers=people.tech.headers).json(),
                                      lambda s: s["diagnosis"], timeout=30)
    assert stories["EHPAD Saint-Joseph"]["diagnosis"]["responsibility"] == "OPERATEUR"
    assert stories["Clinique du Parc"]["diagnosis"]["responsibility"] == "CLIENT"
    for story in stories.values():
        assert story["incident"]["diagnosis_source"] == "rules"
        assert {"phibee", "inventaire"} <= {fact["source"] for fact in story["evidence"]["facts"]}
