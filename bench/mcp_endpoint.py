"""Benchmark of the MCP endpoint on real parts; prints figures and exits.

Starts embedded PostgreSQL + Valkey (migrated and seeded), the GLPI simulator, and the Procfile's `mcp`
and `worker` processes. With the SDK's own Streamable HTTP client and an N1 user's token it measures
`tools/list` and an L0 `tools/call` (glpi_get_ticket_details: gate, audit, outbox, worker, GLPI and
back), then the `mcp` process's resident memory. Everything listens on 127.0.0.1.

Run: .venv/bin/python bench/mcp_endpoint.py [--calls 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, Fleet, free_port, percentile, report  # noqa: E402
from bench.webhook import start_servers  # noqa: E402


def rss_mb(fleet: Fleet, name: str) -> float:
    """Resident memory of the named process's group (uvicorn runs under the Procfile's shell)."""
    import subprocess

    pid = fleet.processes[list(fleet.started).index(name)].pid
    out = subprocess.run(["ps", "-eo", "pgid=,rss="], capture_output=True, text=True).stdout.split("\n")
    return sum(int(r) for g, r in (line.split() for line in out if line.strip()) if int(g) == pid) / 1024


def measure(url: str, token: str, calls: int) -> tuple[list[float], list[float], int]:
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    late = [0]

    async def main():
        listing, calling = [], []
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                      timeout=httpx2.Timeout(30, read=60)) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                await client.call_tool("glpi_get_ticket_details", {"ticket_id": 1})  # warm-up
                for _ in range(calls):
                    started = time.perf_counter()
                    await client.list_tools()
                    listing.append(time.perf_counter() - started)
                for _ in range(calls):
                    started = time.perf_counter()
                    result = await client.call_tool("glpi_get_ticket_details", {"ticket_id": 1})
                    calling.append(time.perf_counter() - started)
                    status = (result.structured_content or {}).get("status")
                    if status != "done":
                        late[0] += 1  # still running after the server's 30 s wait, or failed
                        print(f"  a call ended {status!r}: {[getattr(b, 'text', '')[:200] for b in result.content]}")
        return listing, calling

    listing, calling = anyio.run(main)
    return listing, calling, late[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30, help="requests per measure (bounded: at most 500)")
    args = parser.parse_args(argv)
    calls = max(1, min(args.calls, 500))
    print("starting embedded PostgreSQL + Valkey, the GLPI simulator, mcp and a worker…", flush=True)
    from simulators import glpi as glpi_sim
    from simulators.base import serve
    from widip.functions import db, identity

    glpi_state = glpi_sim.State()
    glpi_state.seed_demo()
    glpi = serve(glpi_sim.make_app(glpi_state))
    servers, workdir, env, _web = start_servers("widip-bench-mcp-")
    port = free_port()
    env.update(GLPI_URL=glpi.url + "/apirest.php", GLPI_APP_TOKEN="sim-app-token", GLPI_USER_TOKEN="sim-user-token",
               WIDIP_MCP_PORT=str(port), WORKER_PROCESSES="1")
    fleet = Fleet(env, workdir)
    fleet.started = []
    try:
        with db.connect(servers.database_url) as conn:
            from widip.functions.access_matrix import AccessRights, set_access

            user = identity.create_user(conn, username="bench", password="correct-horse-battery-staple",
                                        accreditation_level=1)
            set_access(conn, user.id, AccessRights(acces_glpi=True, clients_autorises=("*",),
                                                        categories_tickets=("*",)), actor="bench")
            token = identity.issue_session(conn, user.id, ttl_hours=1).token
            conn.commit()
        for name in ("mcp", "worker"):
            fleet.start(name)
            fleet.started.append(name)
        url = f"http://127.0.0.1:{port}/mcp"
        _wait(url)
        listing, calling, late = measure(url, token, calls)
        print(f"\nMCP over Streamable HTTP (SDK client, one N1 user), {calls} requests each:")
        for label, values in (("tools/list", listing), ("tools/call L0 (gate → worker → GLPI sim)", calling)):
            print(f"  {label:<42} p50 {1000 * statistics.median(values):7.1f} ms, "
                  f"p99 {1000 * percentile(values, 99):7.1f} ms")
        print(f"  L0 calls not done (still running after the 30 s tools/call wait, or failed): {late}")
        rss = rss_mb(fleet, "mcp")
        print(f"  mcp process resident memory after the run: {rss:.0f} MB")
        report([Figure("MCP tools/list p50", 1000 * statistics.median(listing), "ms"),
                Figure("MCP tools/list p99", 1000 * percentile(listing, 99), "ms"),
                Figure("MCP tools/call L0 (gate, worker, GLPI sim) p50", 1000 * statistics.median(calling), "ms"),
                Figure("MCP tools/call L0 (gate, worker, GLPI sim) p99", 1000 * percentile(calling, 99), "ms"),
                Figure("MCP L0 calls not done", late, "calls", "<=", 0),
                Figure("MCP process RSS after the run", rss, "MB", "<=", 70)])
    finally:
        fleet.stop()
        servers.stop()
        glpi.stop()
    return 0


def _wait(url: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    raise TimeoutError(f"mcp did not answer at {url}")


if __name__ == "__main__":
    raise SystemExit(main())
