"""LLM scheduling in one process: priority classes, actors and queues, positions, the gateway, SSRF
refusals and the GPU lock (real PostgreSQL sessions, real Redis, the Ollama simulator over HTTP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import falcon
import httpx
import pytest
from falcon.testing import TestClient

from simulators import ollama as ollama_sim
from simulators.base import serve
from widip.config import PROJECT_ROOT
from widip.errors import Invalid, Rejected, Unavailable
from widip.functions.llm import gpu_lock, gateway as llm_gateway, queue as llm_queue


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ollama():
    state = ollama_sim.State().seed_demo()
    server = serve(ollama_sim.make_app(state))
    yield state, server
    server.stop()


class Receiver:
    """A tiny HTTP endpoint recording the callbacks it receives; /moved answers a redirect."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []

    def on_post(self, req, resp, name):
        self.received.append((name, json.loads(req.bounded_stream.read() or b"{}")))
        if name == "moved":
            resp.status = falcon.HTTP_302
            resp.location = "/hook/target"


@pytest.fixture(scope="module")
def receiver():
    app = falcon.App()
    handler = Receiver()
    app.add_route("/hook/{name}", handler)
    server = serve(app)
    yield handler, server
    server.stop()


@pytest.fixture
def llm_settings(settings, ollama):
    state, server = ollama
    state.reset()
    return settings.with_overrides(llm_provider="ollama", ollama_host=server.url,
                                   llm_callback_allowlist=("127.0.0.1",), llm_timeout_seconds=5.0)


@pytest.fixture
def gateway(llm_settings, stub_broker):
    from widip import deps as actor_deps
    from widip.http.app import build_context, create_app

    client = TestClient(create_app(build_context(llm_settings)), headers=gateway_headers(llm_settings.database_url))
    actor_deps.configure(llm_settings)
    return client


def gateway_headers(database_url: str) -> dict:
    """A service token with the gateway scope, as an internal workflow would hold."""
    from widip.functions import db, identity

    with db.connect(database_url) as conn:
        issued = identity.create_service_token(conn, name=f"workflow-{uuid.uuid4().hex[:8]}",
                                               scopes=["llm:gateway"], actor="test")
    return {"Authorization": f"Bearer {issued.token}"}


# --- classes, actors, queues --------------------------------------------------------------------

def test_priority_classes_come_from_the_policy_file_most_urgent_first():
    classes = llm_queue.load_classes(PROJECT_ROOT / "policy" / "priorities.toml")
    assert [(c.name, c.seed_priority, c.queue, c.dramatiq_priority) for c in classes.values()] == [
        ("sentinel", 1000, "llm.p0", 0), ("notificateur", 900, "llm.p1", 10),
        ("assist", 500, "llm.p2", 20), ("wibot", 100, "llm.p3", 30)]


def test_seed_sources_and_persona_names_pick_their_class_and_others_are_refused():
    assert llm_queue.class_for("proactif_sentinel").queue == "llm.p0"
    assert llm_queue.class_for("proactif_notificateur").queue == "llm.p1"
    assert llm_queue.class_for("Assist").queue == "llm.p2"
    assert llm_queue.class_for("wibot").queue == "llm.p3"
    assert llm_queue.queue_for("sentinel", remote=True) == "llm-remote"
    for bad in ("", "proactif_wibot", "admin", "llm.p0"):
        with pytest.raises(Invalid):
            llm_queue.class_for(bad)


def test_a_malformed_priorities_file_fails_loudly(tmp_path):
    from widip.errors import ConfigError

    bad = tmp_path / "priorities.toml"
    bad.write_text('[classes.a]\nseed_priority = 1\nqueue = "llm.p0"\ndramatiq_priority = 0\n'
                   '[classes.b]\nseed_priority = 2\nqueue = "llm.p0"\ndramatiq_priority = 5\n')
    with pytest.raises(ConfigError, match="two Dramatiq priorities"):
        llm_queue.load_classes(bad)


def test_one_actor_per_class_on_its_own_queue_and_llm_remote_for_remote_providers():
    from widip.actors import llm as llm_actors

    gpu_actors = (llm_actors.llm_p0, llm_actors.llm_p1, llm_actors.llm_p2, llm_actors.llm_p3)
    assert [(a.actor_name, a.queue_name, a.priority) for a in gpu_actors] == [
        ("llm_p0", "llm.p0", 0), ("llm_p1", "llm.p1", 10), ("llm_p2", "llm.p2", 20), ("llm_p3", "llm.p3", 30)]
    assert llm_actors.llm_remote.queue_name == "llm-remote"


def test_enqueue_llm_sends_only_ids_to_the_class_queue_or_to_llm_remote(stub_broker):
    from widip.messaging import door

    door.send_llm("agent_step", "s-1", "notificateur", remote=False)
    door.send_llm("gateway", "r-1", "proactif_sentinel", remote=True)
    (local,), (remote,) = stub_broker.queues["llm.p1"].queue, stub_broker.queues["llm-remote"].queue
    from dramatiq import Message
    local, remote = Message.decode(local), Message.decode(remote)
    assert (local.actor_name, local.args, local.kwargs) == ("llm_p1", ("agent_step", "s-1"), {})
    assert (remote.actor_name, remote.args, remote.kwargs) == ("llm_remote", ("gateway", "r-1"), {})


def test_an_unknown_job_kind_is_a_permanent_error_and_kinds_cannot_be_stolen():
    with pytest.raises(LookupError, match="no LLM job handler"):
        llm_queue.run_llm_job("no-such-kind", "x", deps=None)
    with pytest.raises(ValueError, match="already registered"):
        llm_queue.register_llm_job("gateway", lambda job_id, deps: None)


# --- positions ----------------------------------------------------------------------------------

def test_position_counts_waiting_and_fetched_jobs_of_this_and_more_urgent_queues(redis_url, redis_client):
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url, middleware=[])
    for queue in ("llm.p0", "llm.p2", "llm.p3"):
        broker.declare_queue(queue)

    def put(queue):
        return broker.enqueue(Message(queue_name=queue, actor_name="x", args=(), kwargs={}, options={}))

    # Given 2 sentinel, 3 assist and 1 wibot jobs waiting
    sentinels = [put("llm.p0") for _ in range(2)]
    assists = [put("llm.p2") for _ in range(3)]
    wibot = put("llm.p3")
    entry = lambda m: m.options["redis_message_id"]  # noqa: E731
    assert llm_queue.queue_position(redis_client, "llm.p0", entry(sentinels[1])) == 1
    assert llm_queue.queue_position(redis_client, "llm.p2", entry(assists[2])) == 4
    assert llm_queue.queue_position(redis_client, "llm.p3", entry(wibot)) == 5
    # When a worker fetches the first sentinel (running or prefetched), it still counts as ahead
    broker.do_fetch("llm.p0", 1)
    assert llm_queue.queue_position(redis_client, "llm.p2", entry(assists[2])) == 4
    # ...and a fetched job does not count itself
    broker.do_fetch("llm.p0", 1)
    assert llm_queue.queue_position(redis_client, "llm.p0", entry(sentinels[1])) == 1
    broker.close()


def test_estimated_wait_follows_the_measured_call_times(redis_client):
    assert llm_queue.estimated_wait_seconds(redis_client, "llm.p2", 0) == 0.0
    assert llm_queue.estimated_wait_seconds(redis_client, "llm.p2", 3) == 3 * llm_queue.DEFAULT_CALL_SECONDS
    llm_queue.record_call_duration(redis_client, "local", 2.0)
    llm_queue.record_call_duration(redis_client, "local", 2.0)
    assert llm_queue.estimated_wait_seconds(redis_client, "llm.p3", 3) == 6.0
    assert llm_queue.estimated_wait_seconds(redis_client, "llm-remote", 1) == llm_queue.DEFAULT_CALL_SECONDS


# --- the gateway --------------------------------------------------------------------------------

def test_a_gateway_request_is_accepted_then_pending_then_answered_and_expires(gateway, stub_broker, redis_client,
                                                                              ollama):
    from dramatiq import Worker

    state, _ = ollama
    accepted = gateway.simulate_post("/llm/requests", json={
        "source": "assist", "prompt": "Le poste infirmier de l'EHPAD Les Lilas ne démarre plus.",
        "system": "Tu es l'assistant support de WIDIP."})
    assert accepted.status_code == 202
    request_id = accepted.json["request_id"]
    assert accepted.headers["Location"] == f"/llm/requests/{request_id}"
    assert isinstance(accepted.json["position"], int) and accepted.json["estimated_wait"] >= 0
    # The message carries the id only; the prompt waits in Redis
    assert b"Lilas" not in stub_broker.queues["llm.p2"].queue[0]

    pending = gateway.simulate_get(f"/llm/requests/{request_id}")
    assert pending.status_code == 202 and pending.json["status"] == "pending"
    worker = Worker(stub_broker, worker_timeout=100)
    worker.start()
    try:
        stub_broker.join("llm.p2")
        worker.join()
    finally:
        worker.stop()

    done = gateway.simulate_get(f"/llm/requests/{request_id}")
    assert done.status_code == 200
    assert done.json["status"] == "done" and "Les Lilas" in done.json["result"]
    assert done.json["provider"] == "ollama"
    sent = state.requests[-1]["body"]["messages"]
    assert sent[0] == {"role": "system", "content": "Tu es l'assistant support de WIDIP."}
    assert 290 < redis_client.ttl(f"llm_result:{request_id}") <= 300

    # A result kept for 1 s instead of 5 min is gone afterwards
    llm_gateway.store_result(redis_client, request_id, done.json, ttl_seconds=1)
    time.sleep(1.2)
    assert gateway.simulate_get(f"/llm/requests/{request_id}").status_code == 404


def test_a_pending_request_reports_its_place_and_unknown_ids_are_404(gateway, redis_client):
    first = gateway.simulate_post("/llm/requests", json={"source": "wibot", "prompt": "un"})
    pending = gateway.simulate_get(f"/llm/requests/{first.json['request_id']}")
    assert pending.status_code == 202
    assert pending.json["status"] == "pending" and pending.headers["Retry-After"] == "1"
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        assert gateway.simulate_get(f"/llm/requests/{unknown}").status_code == 404


@pytest.mark.parametrize("body", [
    {"source": "urgent", "prompt": "x"},
    {"source": "assist"},
    {"source": "assist", "prompt": ""},
    {"source": "assist", "prompt": "x", "model": "qwen; rm -rf /"},
    {"source": "assist", "prompt": "x", "extra": 1},
])
def test_bad_gateway_bodies_are_refused_with_400(gateway, body):
    result = gateway.simulate_post("/llm/requests", json=body)
    assert result.status_code == 400 and result.json["description"]


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost:8000/hook/a",
    "ftp://127.0.0.1/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "http://127.0.0.1@evil.example/hook",
    "http://user:pw@127.0.0.1/hook",
    "http://127.0.0.1.evil.example/hook",
    "http:\\\\127.0.0.1\\hook",
    "//127.0.0.1/hook",
    "http://127.0.0.1:99999/hook",
])
def test_callback_urls_off_the_allowlist_or_not_http_are_refused_with_400(gateway, url, stub_broker):
    result = gateway.simulate_post("/llm/requests", json={"source": "wibot", "prompt": "x", "callback_url": url})
    assert result.status_code == 400, url
    assert "callback_url" in result.json["description"]
    assert not any(q.queue for q in stub_broker.queues.values() if hasattr(q, "queue"))


def test_the_result_is_posted_to_an_allowlisted_callback(gateway, stub_broker, stub_worker, receiver):
    handler, server = receiver
    handler.received.clear()
    accepted = gateway.simulate_post("/llm/requests", json={
        "source": "proactif_sentinel", "prompt": "Diagnostic du lien fibre de la clinique Saint-Roch",
        "callback_url": server.url + "/hook/sentinel"})
    assert accepted.status_code == 202
    stub_broker.join("llm.p0")
    stub_worker.join()
    stub_broker.join("default")
    stub_worker.join()
    assert [name for name, _ in handler.received] == ["sentinel"]
    body = handler.received[0][1]
    assert body["request_id"] == accepted.json["request_id"] and body["status"] == "done"
    assert "Saint-Roch" in body["result"]


def test_a_callback_answering_a_redirect_is_not_followed_nor_retried(llm_settings, redis_client, receiver):
    handler, server = receiver
    handler.received.clear()
    request_id = str(uuid.uuid4())
    redis_client.hset(f"llm_request:{request_id}", mapping={
        "source": "assist", "queue": "llm.p2", "prompt": "x", "callback_url": server.url + "/hook/moved"})
    llm_gateway.store_result(redis_client, request_id, {"request_id": request_id, "status": "done", "result": "ok"})
    with pytest.raises(Rejected, match="302"):
        llm_gateway.deliver_callback(redis_client, llm_settings, request_id)
    assert [name for name, _ in handler.received] == ["moved"]
    # A URL taken off the allowlist after submission is not called either
    with pytest.raises(Rejected, match="ALLOWLIST"):
        llm_gateway.deliver_callback(redis_client, llm_settings.with_overrides(llm_callback_allowlist=()), request_id)
    assert len(handler.received) == 1


def test_an_unreachable_llm_answers_the_french_unavailable_text(gateway, stub_broker, stub_worker, llm_settings):
    from widip import deps as actor_deps
    from widip.http.app import build_context, create_app

    down = llm_settings.with_overrides(ollama_host="http://127.0.0.1:9")
    client = TestClient(create_app(build_context(down)),
                        headers=gateway_headers(down.database_url))
    actor_deps.configure(down)
    accepted = client.simulate_post("/llm/requests", json={"source": "wibot", "prompt": "Bonjour"})
    stub_broker.join("llm.p3")
    stub_worker.join()
    done = client.simulate_get(f"/llm/requests/{accepted.json['request_id']}")
    assert done.status_code == 200 and done.json["provider"] == "rules"
    assert "indisponible" in done.json["result"]


# --- the GPU lock -------------------------------------------------------------------------------

def test_the_gpu_lock_admits_one_holder_and_hands_over_on_release(database_url):
    first, second = gpu_lock.GpuLock(database_url), gpu_lock.GpuLock(database_url)
    got = threading.Event()
    try:
        first.acquire()
        waiter = threading.Thread(target=lambda: (second.acquire(), got.set()))
        waiter.start()
        assert not got.wait(0.5), "a second holder got the GPU while it was held"
        first.release()
        assert got.wait(1.0), "the waiter did not get the GPU once it was released"
        waiter.join()
        second.release()
    finally:
        first.close()
        second.close()


def test_waiting_too_long_for_the_gpu_is_unavailable_so_the_job_is_retried(database_url):
    holder, waiter = gpu_lock.GpuLock(database_url), gpu_lock.GpuLock(database_url, acquire_timeout=0.3)
    try:
        with holder.held():
            started = time.monotonic()
            with pytest.raises(Unavailable, match="GPU busy"):
                waiter.acquire()
            assert 0.25 < time.monotonic() - started < 2
        with waiter.held() as slot:
            assert slot == 0
    finally:
        holder.close()
        waiter.close()


def test_two_slots_admit_two_holders_and_block_the_third(database_url):
    locks = [gpu_lock.GpuLock(database_url, slots=2, acquire_timeout=0.6) for _ in range(3)]
    try:
        assert sorted([locks[0].acquire(), locks[1].acquire()]) == [0, 1]
        with pytest.raises(Unavailable):
            locks[2].acquire()
        locks[1].release()
        assert locks[2].acquire() in (0, 1)
    finally:
        for lock in locks:
            lock.close()


def test_a_process_killed_while_holding_the_gpu_frees_it_at_once(database_url, conn):
    code = ("import sys, time; from widip.functions.llm.gpu_lock import GpuLock; "
            "lock = GpuLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, database_url], cwd=PROJECT_ROOT,
                             stdout=subprocess.PIPE, text=True)
    waiter = gpu_lock.GpuLock(database_url, acquire_timeout=10)
    try:
        assert child.stdout.readline().strip() == "held"
        (holder,) = gpu_lock.lock_holders(conn)
        assert gpu_lock.holder_os_pid(holder["application_name"]) == child.pid
        os.kill(child.pid, signal.SIGKILL)
        started = time.monotonic()
        waiter.acquire()
        assert time.monotonic() - started < 1.0
    finally:
        child.kill()
        child.wait(5)
        waiter.close()


def test_a_local_provider_call_holds_the_gpu_lock(llm_settings, conn, ollama):
    from widip.functions.llm import Message

    state, server = ollama
    provider = llm_gateway.provider_for(llm_settings)
    assert isinstance(provider, gpu_lock.LockedProvider)
    seen = []
    httpx.post(server.url + "/_sim/config", json={"latency_ms": 300}, timeout=5)
    caller = threading.Thread(target=lambda: provider.complete([Message("user", "ping")]))
    caller.start()
    time.sleep(0.15)
    seen.append(gpu_lock.lock_holders(conn))
    caller.join()
    seen.append(gpu_lock.lock_holders(conn))
    assert len(seen[0]) == 1 and seen[1] == []
    assert not isinstance(llm_gateway.provider_for(llm_settings.with_overrides(llm_provider="rules")),
                          gpu_lock.LockedProvider)


def test_a_model_the_llm_does_not_have_ends_the_request_as_failed_not_retried(llm_settings, stub_broker,
                                                                             stub_worker):
    from widip import deps as actor_deps
    from widip.http.app import build_context, create_app

    # Given a deployment configured with a model the Ollama server does not have
    missing = llm_settings.with_overrides(ollama_model="nope:1b")
    gateway = TestClient(create_app(build_context(missing)), headers=gateway_headers(missing.database_url))
    actor_deps.configure(missing)
    accepted = gateway.simulate_post("/llm/requests", json={"source": "assist", "prompt": "x"})
    stub_broker.join("llm.p2")
    stub_worker.join()
    failed = gateway.simulate_get(f"/llm/requests/{accepted.json['request_id']}")
    assert failed.status_code == 200
    assert failed.json["status"] == "failed" and "nope:1b" in failed.json["error"]


def test_a_model_outside_the_configured_ones_is_refused(gateway):
    result = gateway.simulate_post("/llm/requests", json={"source": "assist", "prompt": "x", "model": "llama3:70b"})
    assert result.status_code == 400 and "configured models" in result.json["description"]


def test_the_gateway_needs_a_gateway_token_or_a_logged_in_technician(llm_settings, stub_broker, people):
    from widip.http.app import build_context, create_app

    anonymous = TestClient(create_app(build_context(llm_settings)))
    body = {"source": "wibot", "prompt": "Bonjour"}
    jump = anonymous.simulate_post("/llm/requests", json={"source": "proactif_sentinel", "prompt": "x"},
                                   headers=people.tech.headers)
    assert jump.status_code == 403 and "wibot" in jump.json["description"]
    assert anonymous.simulate_post("/llm/requests", json=body).status_code == 401
    assert anonymous.simulate_post("/llm/requests", json=body, headers=people.tech.headers).status_code == 202
    from widip.functions import db, identity
    with db.connect(llm_settings.database_url) as conn:
        other = identity.create_service_token(conn, name="observium-hook", scopes=["webhook:observium"], actor="test")
    wrong = anonymous.simulate_post("/llm/requests", json=body, headers={"Authorization": f"Bearer {other.token}"})
    assert wrong.status_code == 403
