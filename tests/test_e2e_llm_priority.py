"""End to end on real processes: LLM priority classes, the GPU mutex and the gateway.

Real `web`, `llm` (and `worker`) processes from the Procfile on the Redis broker, the Ollama
simulator as the GPU: its `/_sim/stats` tells which request started when (tagged by the prompt)
and how many ran at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import falcon
import httpx
import pytest

from simulators import ollama as ollama_sim
from simulators.base import serve
from tests.test_llm_queue import gateway_headers
from tests.stack import free_port, poll
from widip.config import PROJECT_ROOT
from widip.functions.llm import gpu_lock
from widip.launcher import procfile_entries

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def _ollama_server():
    state = ollama_sim.State().seed_demo()
    server = serve(ollama_sim.make_app(state))
    yield state, server
    state.release_hangs()
    server.stop()


@pytest.fixture
def ollama(_ollama_server):
    state, server = _ollama_server
    state.reset()
    return state, server


def llm_env(server, **extra) -> dict[str, str]:
    return {"OLLAMA_HOST": server.url, "LLM_PROVIDER": "ollama", "LLM_TIMEOUT_SECONDS": "20", **extra}


def set_latency(server, ms: int) -> None:
    httpx.post(server.url + "/_sim/config", json={"latency_ms": ms}, timeout=5).raise_for_status()


def stats(server) -> dict:
    return httpx.get(server.url + "/_sim/stats", timeout=5).json()


def conn_url(stack) -> str:
    return stack.env["DATABASE_URL"]


def submit(client: httpx.Client, source: str, prompt: str, **extra) -> httpx.Response:
    return client.post("/llm/requests", json={"source": source, "prompt": prompt, **extra})


def start_second_llm(stack, name: str, **overrides) -> subprocess.Popen:
    """Another `llm` process with the Procfile's exact command (ops scaling it by mistake)."""
    command = procfile_entries(PROJECT_ROOT / "Procfile")["llm"]
    log = open(stack.log_dir / f"{name}.log", "ab")
    env = {**stack.env, **overrides, "LLM_PROM_PORT": str(free_port())}
    return subprocess.Popen(command, shell=True, cwd=PROJECT_ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def started_between(entries: list[dict], since: float, tag: str) -> list[str]:
    """Tags of the requests that started after `since` and before the one tagged `tag`."""
    index = next(i for i, entry in enumerate(entries) if entry["tag"] == tag)
    return [entry["tag"] for entry in entries[:index] if entry["at"] > since]


def test_a_sentinel_request_starts_right_after_the_call_in_progress_despite_a_backlog(stack, ollama):
    state, server = ollama
    set_latency(server, 200)
    env = llm_env(server)
    stack.start("web", **env)
    with httpx.Client(base_url=stack.url, timeout=10, headers=gateway_headers(conn_url(stack))) as client:
        # Given 30 wibot then 30 assist requests queued while the llm process is stopped
        for i in range(30):
            assert submit(client, "wibot", f"wibot-{i}").status_code == 202
        for i in range(30):
            assert submit(client, "assist", f"assist-{i}").status_code == 202
        # When the llm process runs a few of them
        stack.start("llm", **env)
        poll(lambda: stats(server)["requests"], lambda n: n >= 4, timeout=30)
        # ...and a sentinel request arrives
        submitted = time.time()
        assert submit(client, "proactif_sentinel", "sentinel-urgent").status_code == 202
        final = poll(lambda: stats(server), lambda s: any(e["tag"] == "sentinel-urgent" for e in s["started"]))
    # Then it starts next: at most the call already prefetched/in progress starts in between
    between = started_between(final["started"], submitted, "sentinel-urgent")
    assert len(between) <= 1, between
    # ...and assist ran before wibot (at most one wibot at start-up, before assist was fetched)
    before = [e["tag"] for e in final["started"]]
    assert sum(tag.startswith("wibot") for tag in before) <= 1, before
    assert final["max_in_flight"] == 1


def test_two_llm_processes_share_the_gpu_one_call_at_a_time_and_a_killed_holder_frees_it(stack, ollama, conn):
    state, server = ollama
    set_latency(server, 150)
    env = llm_env(server)
    stack.start("web", **env)
    second = None
    with httpx.Client(base_url=stack.url, timeout=10, headers=gateway_headers(conn_url(stack))) as client:
        for i in range(16):
            assert submit(client, "wibot", f"wibot-{i}").status_code == 202
            assert submit(client, "assist", f"assist-{i}").status_code == 202
        try:
            # Given two llm processes (someone scaled the GPU worker)
            stack.start("llm", **env)
            second = start_second_llm(stack, "llm-2", **env)
            poll(lambda: _lock_sessions(conn), lambda n: n == 2, timeout=30)
            poll(lambda: stats(server)["requests"], lambda n: n >= 3)
            # When a sentinel request arrives, priorities still hold: it may wait for the job each
            # process already holds (one running, one waiting for the lock) and for one starting
            # while the request is being submitted, never for the backlog.
            submitted = time.time()
            assert submit(client, "sentinel", "sentinel-urgent").status_code == 202
            poll(lambda: stats(server), lambda s: any(e["tag"] == "sentinel-urgent" for e in s["started"]))
            # Then, over 20 calls, the GPU never saw two at once
            before_kill = poll(lambda: stats(server), lambda s: s["requests"] >= 20)
            assert before_kill["max_in_flight"] == 1, before_kill["started"]
            between = started_between(before_kill["started"], submitted, "sentinel-urgent")
            assert len(between) <= 3, between

            # When the process holding the GPU is killed mid-call
            count = stats(server)["requests"]
            poll(lambda: stats(server)["requests"], lambda n: n > count, interval=0.01)
            (holder,) = poll(lambda: gpu_lock.lock_holders(conn), lambda h: len(h) == 1, interval=0.01)
            victim_pid = gpu_lock.holder_os_pid(holder["application_name"])
            killed_at = time.time()
            os.killpg(os.getpgid(victim_pid), signal.SIGKILL)
            # Then the other process starts its next call at once, not after a lock TTL
            after = poll(lambda: stats(server), lambda s: any(e["at"] > killed_at for e in s["started"]))
            first_after = min(e["at"] for e in after["started"] if e["at"] > killed_at)
            assert first_after - killed_at < 1.0, (first_after - killed_at, after["started"][-4:])
        finally:
            if second is not None:
                stop_process(second)


def _lock_sessions(conn) -> int:
    return conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE %s",
                        (gpu_lock.APPLICATION_NAME.split("{")[0] + "%",)).fetchone()["n"]


class _Receiver:
    def __init__(self):
        self.bodies: list[dict] = []

    def on_post(self, req, resp):
        import json

        self.bodies.append(json.loads(req.bounded_stream.read()))


def test_the_gateway_queues_answers_expires_and_calls_back_over_http(stack, ollama, redis_client):
    state, server = ollama
    set_latency(server, 400)
    app = falcon.App()
    receiver = _Receiver()
    app.add_route("/hook", receiver)
    hook = serve(app)
    try:
        stack.start("web", "llm", "worker", **llm_env(server, LLM_CALLBACK_ALLOWLIST="127.0.0.1"))
        with httpx.Client(base_url=stack.url, timeout=10, headers=gateway_headers(conn_url(stack))) as client:
            accepted = submit(client, "assist", "Imprimante bloquée à l'EHPAD Les Lilas",
                              callback_url=hook.url + "/hook")
            assert accepted.status_code == 202
            body = accepted.json()
            assert set(body) >= {"request_id", "position", "estimated_wait"}
            assert body["position"] == 0 and body["estimated_wait"] == 0
            location = accepted.headers["Location"]

            polls = []
            done = poll(lambda: polls.append(client.get(location)) or polls[-1],
                        lambda r: r.status_code == 200, timeout=30)
            assert polls[0].status_code == 202 and polls[0].json()["status"] == "pending"
            assert done.json()["status"] == "done" and "Les Lilas" in done.json()["result"]
            ttl = redis_client.ttl(f"llm_result:{body['request_id']}")
            assert 280 < ttl <= 300

            poll(lambda: receiver.bodies, lambda b: len(b) == 1, timeout=20)
            assert receiver.bodies[0] == done.json()

            assert client.get("/llm/requests/6b0d7c1e-0000-4000-8000-000000000000").status_code == 404
            assert submit(client, "urgent", "x").status_code == 400
            assert submit(client, "wibot", "x", callback_url="http://10.0.0.1/hook").status_code == 400
            assert submit(client, "wibot", "x", callback_url="ftp://127.0.0.1/hook").status_code == 400
    finally:
        hook.stop()
