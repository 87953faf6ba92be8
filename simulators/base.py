"""Shared plumbing for the local simulators: a threaded WSGI server on a real socket.

Every HTTP simulator is a Falcon app built by `make_app(state)` over an in-memory state object; tests
start it with `serve(app)` on an ephemeral port and talk to it over real HTTP, exactly as the service
does in production. Inspection/seeding endpoints live under `/_sim/` so they never collide with the
real API's paths.
"""

from __future__ import annotations

import argparse
import logging
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - wsgiref's signature
        logging.getLogger("simulators.http").debug("%s " + format, self.address_string(), *args)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class RunningServer:
    """A simulator listening on `url`; `stop()` closes its socket (a "down" system)."""

    server: WSGIServer
    thread: threading.Thread
    url: str

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def count_and_fault(state, req) -> int | None:
    """For a simulator gate: count the API call, apply an injected fault (`state.fault`:
    delay_seconds, status, times) and return the status to answer with, or None to carry on."""
    with state.lock:
        state.calls[f"{req.method} {req.uri_template or req.path}"] += 1
        fault = dict(state.fault)
        if fault.get("times") is not None:
            state.fault["times"] = fault["times"] - 1
            if state.fault["times"] <= 0:
                state.fault = {}
    if fault.get("delay_seconds"):
        time.sleep(float(fault["delay_seconds"]))
    return int(fault["status"]) if fault.get("status") else None


class CallsAndFaults:
    """`/_sim/calls` (GET counts, DELETE resets) and `/_sim/fault` for a simulator whose state has
    `lock`, `calls` (a Counter) and `fault`; mix into the simulator's `/_sim/` resource."""

    _state = None

    def on_get_calls(self, req, resp):
        with self._state.lock:
            resp.media = {"total": sum(self._state.calls.values()), "by_route": dict(self._state.calls)}

    def on_delete_calls(self, req, resp):
        with self._state.lock:
            self._state.calls.clear()
        resp.media = {"total": 0, "by_route": {}}

    def on_post_fault(self, req, resp):
        body = req.get_media(default_when_empty={}) or {}
        with self._state.lock:
            self._state.fault = {k: body[k] for k in ("delay_seconds", "status", "times") if body.get(k) is not None}
        resp.media = {"fault": self._state.fault}


def add_calls_and_faults(app, resource) -> None:
    app.add_route("/_sim/calls", resource, suffix="calls")
    app.add_route("/_sim/fault", resource, suffix="fault")


def serve(app, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve a WSGI app in a daemon thread; port 0 picks a free one."""
    server = make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sim-{server.server_address[1]}", daemon=True)
    thread.start()
    return RunningServer(server, thread, f"http://{host}:{server.server_address[1]}")


def option(*flags: str, **kwargs) -> tuple[tuple[str, ...], dict]:
    """One command-line option of a simulator, as `argparse.add_argument` takes it."""
    return flags, kwargs


def parse_args(description: str, port: int, argv: list[str] | None, *options, host: str = "127.0.0.1"):
    """Every simulator's command line: --host, --port (its usual one), then its own `option(...)`s."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default=host)
    parser.add_argument("--port", type=int, default=port)
    for flags, kwargs in options:
        parser.add_argument(*flags, **kwargs)
    return parser.parse_args(argv)


def run(description: str, port: int, build: Callable[[argparse.Namespace], object], banner: str,
        argv: list[str] | None = None, *options) -> None:
    """An HTTP simulator's `main()`: parse its command line, build its app, serve until Ctrl-C."""
    args = parse_args(description, port, argv, *options)
    server = serve(build(args), args.host, args.port)
    print(banner.format(url=server.url), flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()
