"""Benchmark of the LLM queue on real parts; prints figures and exits.

Starts embedded Valkey + PostgreSQL, the Ollama simulator with a fixed latency, and a real `llm`
process running the Procfile's command (1 process × 1 thread, dramatiq_worker_timeout=100, GPU
lock on). Measures, with gateway requests submitted the way the web process does:
  1. the GPU idle gap between consecutive calls with a full queue, and the queue's overhead as a
     share of LLM time (100 jobs);
  2. enqueue → start latency on an idle queue;
  3. idle Redis calls/s of the llm process, then of the fleet (llm + the default `worker`).
Targets (docs/architecture.md): gap median ≤ 5 ms, overhead ≤ 1 %, idle pickup
p95 ≤ 100 ms.

Run: .venv/bin/python bench/llm_queue.py [--jobs 100] [--latency-ms 100] [--pickups 40]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, Fleet, percentile, report  # noqa: E402
from bench.webhook import start_servers  # noqa: E402




def wait_until(check, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("benchmark step did not finish in time (see the llm log)")



def command_rates(client, seconds: float) -> dict[str, float]:
    """Commands per second by name over `seconds` (INFO commandstats delta, our INFO excluded).

    Commands run inside a Lua script are counted one by one: an idle Dramatiq poll is one EVALSHA
    round trip that runs ZADD (heartbeat) + LPOP inside.
    """
    before = client.info("commandstats")
    time.sleep(seconds)
    after = client.info("commandstats")
    return {name[len("cmdstat_"):]: (stats["calls"] - before.get(name, {"calls": 0})["calls"]) / seconds
            for name, stats in after.items() if name != "cmdstat_info"}


def describe_rates(rates: dict[str, float]) -> str:
    scripted = rates.get("evalsha", 0) + rates.get("eval", 0)
    top = sorted(((rate, name) for name, rate in rates.items() if rate), reverse=True)[:4]
    return (f"{scripted:.0f} script calls/s (round trips), {sum(rates.values()):.0f} commands/s in all "
            f"({', '.join(f'{name} {rate:.0f}' for rate, name in top)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--pickups", type=int, default=40)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    print("starting embedded PostgreSQL + Valkey (migrated), the Ollama simulator and an llm process…", flush=True)
    servers, workdir, base_env, _ = start_servers("widip-bench-llm-")
    fleet = None
    sim = None
    try:
        os.environ.update({"REDIS_URL": servers.redis_url, "WIDIP_BROKER": "redis"})
        import redis

        from simulators import ollama as ollama_sim
        from simulators.base import serve
        from widip import deps as actor_deps
        from widip.messaging import door
        from widip.config import Settings
        from widip.functions.llm import gateway as llm_gateway

        state = ollama_sim.State().seed_demo()
        sim = serve(ollama_sim.make_app(state))
        settings = Settings(database_url=servers.database_url, redis_url=servers.redis_url, env="test",
                            llm_provider="ollama", ollama_host=sim.url)
        deps = actor_deps.configure(settings)
        client = redis.Redis.from_url(servers.redis_url)

        def submit(source: str, tag: str) -> None:
            llm_gateway.submit(deps.redis, settings, {"source": source, "prompt": tag},
                               enqueue=door.send_llm_entry)

        def started(tag: str):
            return next((e for e in state.stats()["started"] if e["tag"] == tag), None)

        env = {**base_env, "OLLAMA_HOST": sim.url, "LLM_PROVIDER": "ollama"}
        fleet = Fleet(env, workdir)
        fleet.start("llm")
        submit("assist", "warm-up")
        wait_until(lambda: (e := started("warm-up")) and e["finished_at"], timeout=60)
        time.sleep(0.5)

        # 1. Idle gap and overhead with a full queue.
        state.reset()
        state.configure({"latency_ms": args.latency_ms})
        for i in range(args.jobs):
            submit("assist", f"job-{i}")
        runs = wait_until(lambda: (s := state.stats()["started"]) and len(s) == args.jobs
                          and all(e["finished_at"] for e in s) and s, timeout=args.jobs * args.latency_ms / 100 + 60)
        runs.sort(key=lambda e: e["at"])
        gaps = [(b["at"] - a["finished_at"]) * 1000 for a, b in zip(runs, runs[1:])]
        busy = sum((e["finished_at"] - e["at"]) * 1000 for e in runs[1:])
        overhead = 100 * sum(gaps) / busy
        print(f"\n1. full queue, {args.jobs} jobs × {args.latency_ms} ms (max in flight "
              f"{state.stats()['max_in_flight']}):")
        print(f"   GPU idle gap between calls: median {statistics.median(gaps):.2f} ms, "
              f"p95 {percentile(gaps, 95):.2f} ms, max {max(gaps):.2f} ms")
        print(f"   queue overhead: {overhead:.2f} % of LLM time "
              f"(the same gaps around a 2 s call would be {100 * statistics.mean(gaps) / 2000:.2f} %)")

        # 2. Enqueue → start on an idle queue.
        state.reset()
        pickups = []
        rng = random.Random(7)
        for i in range(args.pickups):
            time.sleep(rng.uniform(0.15, 0.5))
            tag = f"idle-{i}"
            sent = time.time()
            submit(rng.choice(["proactif_sentinel", "assist", "wibot"]), tag)
            entry = wait_until(lambda: started(tag), timeout=10, interval=0.02)
            pickups.append((entry["at"] - sent) * 1000)
        print(f"\n2. idle pickup (enqueue → LLM call starts), {args.pickups} samples:")
        print(f"   p50 {percentile(pickups, 50):.1f} ms, p95 {percentile(pickups, 95):.1f} ms, "
              f"max {max(pickups):.1f} ms")

        # 2b. Priority inversions: with the GPU busy on low-priority work, high-priority calls arrive;
        # an inversion is a wibot call that starts after a sentinel call was queued and before it started.
        state.reset()
        state.configure({"latency_ms": 100})
        submitted = {}
        for i in range(8):
            submitted[f"low-{i}"] = time.time()
            submit("wibot", f"low-{i}")
        time.sleep(0.15)
        for i in range(4):
            submitted[f"high-{i}"] = time.time()
            submit("proactif_sentinel", f"high-{i}")
        done = wait_until(lambda: (s := state.stats()["started"]) and len(s) == 12 and all(e["finished_at"] for e in s)
                          and s, timeout=60)
        start = {e["tag"]: e["at"] for e in done}
        inversions = sum(1 for low in (t for t in start if t.startswith("low-"))
                         if any(submitted[h] < start[low] < start[h] for h in start if h.startswith("high-")))
        print(f"\n2b. priority: {inversions} wibot call(s) started ahead of a waiting sentinel call (target 0)")
        state.configure({"latency_ms": args.latency_ms})

        # 3. Idle Redis calls/s.
        time.sleep(1.0)
        llm_rates = command_rates(client, args.idle_seconds)
        fleet.start("worker")
        time.sleep(6.0)  # let the worker boot and settle into idle polling
        fleet_rates = command_rates(client, args.idle_seconds)
        print(f"\n3. idle Redis load (INFO commandstats delta over {args.idle_seconds:.0f} s):")
        print(f"   llm process alone: {describe_rates(llm_rates)}")
        print(f"   fleet (llm + worker, {os.environ.get('WORKER_PROCESSES', '2')} processes × 4 threads): "
              f"{describe_rates(fleet_rates)}")

        ok_gap = statistics.median(gaps) <= 5
        ok_overhead = overhead <= 1
        ok_pickup = percentile(pickups, 95) <= 100
        print(f"\ntargets: gap median ≤ 5 ms {'OK' if ok_gap else 'MISSED'}; overhead ≤ 1 % "
              f"{'OK' if ok_overhead else 'MISSED'}; idle pickup p95 ≤ 100 ms {'OK' if ok_pickup else 'MISSED'}")
        client.close()
        failed = (workdir / "llm.log").read_text(errors="replace").count("Failed to process message")
        print(f"LLM jobs that raised (each one is retried and distorts the figures above): {failed}")
        report([Figure("LLM queue: jobs that raised", failed, "jobs", "<=", 0),Figure("LLM queue: GPU idle gap between calls, median", statistics.median(gaps), "ms", "<=", 5),
                Figure("LLM queue: overhead share of LLM time", overhead, "%", "<=", 1),
                Figure("LLM queue: idle pickup p95", percentile(pickups, 95), "ms", "<=", 100),
                Figure("LLM queue: priority inversions", inversions, "jobs", "<=", 0),
                Figure("LLM queue: idle Redis calls/s, llm process",
                       llm_rates.get("evalsha", 0) + llm_rates.get("eval", 0), "calls/s")])
        return 0
    finally:
        if fleet is not None:
            fleet.stop()
        if sim is not None:
            sim.stop()
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
