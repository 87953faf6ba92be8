"""Scripted replies, latency, faults and concurrency accounting shared by the Ollama and Anthropic simulators.

A test (or the demo) queues replies with `POST /_sim/script` — `{"text": …}` or
`{"tool_calls": [{"name": …, "arguments": {…}}]}`, optionally with a one-shot `latency_ms`,
`status` or `hang` — and each model request pops the next one; with the queue empty the simulator
answers a short French text. `POST /_sim/config` sets lasting behaviour (`latency_ms`, `status`,
`hang`, `hang_max_seconds`); `GET /_sim/stats` tells how many requests ran at once (the GPU mutex and
priority tests rely on `max_in_flight` and the start order); `GET /_sim/requests` returns every body
received, so tests can check what the model saw. This module knows nothing of either wire format.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections import deque
from dataclasses import dataclass

import falcon

REPLY_KEYS = {"text", "tool_calls", "latency_ms", "status", "message", "hang"}
CONFIG_DEFAULTS = {"latency_ms": 0, "status": None, "hang": False, "hang_max_seconds": 30.0}
TAG_MAX_CHARS = 120


@dataclass
class Turn:
    """What one model request should do: fail with `status`, or answer `reply` (None = default)."""

    reply: dict | None
    status: int | None = None
    message: str | None = None


class ScriptState:
    """Thread-safe script queue, behaviour config, request log and in-flight counters."""

    def __init__(self):
        self.lock = threading.Lock()
        self._release = threading.Event()
        self.reset()

    def reset(self) -> None:
        """Forget everything and let any hanging request go."""
        with self.lock:
            # Requests still running from before the reset must not decrement the new counters.
            self._generation = getattr(self, "_generation", 0) + 1
            self._release.set()
            self._release = threading.Event()
            self.script: deque[dict] = deque()
            self.config = dict(CONFIG_DEFAULTS)
            self.requests: list[dict] = []
            self.started: list[dict] = []
            self.in_flight = 0
            self.max_in_flight = 0

    def release_hangs(self) -> None:
        """End every request currently hanging (tests call it before stopping the server)."""
        with self.lock:
            self._release.set()
            self._release = threading.Event()

    def push(self, items: list[dict]) -> int:
        for item in items:
            if not isinstance(item, dict) or not set(item) <= REPLY_KEYS:
                raise ValueError(f"a scripted reply is an object with keys among {sorted(REPLY_KEYS)}")
            for call in item.get("tool_calls") or ():
                if not isinstance(call, dict) or "name" not in call:
                    raise ValueError("each scripted tool call needs a name")
        with self.lock:
            self.script.extend(copy.deepcopy(items))
            return len(self.script)

    def configure(self, changes: dict) -> dict:
        unknown = set(changes) - set(CONFIG_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        with self.lock:
            self.config.update(changes)
            if not self.config.get("hang"):
                self._release.set()
                self._release = threading.Event()
            return dict(self.config)

    def record(self, path: str, headers: dict, body) -> None:
        with self.lock:
            self.requests.append({"at": time.time(), "path": path, "headers": headers, "body": body})

    def stats(self) -> dict:
        with self.lock:
            return {"requests": len(self.started), "received": len(self.requests),
                    "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                    "started": [dict(s) for s in self.started], "pending_script": len(self.script)}

    @contextlib.contextmanager
    def turn(self, tag: str):
        """Count the request in flight for its whole life, apply latency and faults, yield a Turn."""
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            entry = {"at": time.time(), "tag": (tag or "")[:TAG_MAX_CHARS], "finished_at": None}
            self.started.append(entry)
            item = self.script.popleft() if self.script else None
            config = dict(self.config)
            release = self._release
            generation = self._generation
        try:
            yield self._play(item, config, release)
        finally:
            with self.lock:
                if generation == self._generation:
                    self.in_flight -= 1
                entry["finished_at"] = time.time()

    @staticmethod
    def _play(item: dict | None, config: dict, release: threading.Event) -> Turn:
        source = item or {}
        latency_ms = source.get("latency_ms", config["latency_ms"]) or 0
        if latency_ms:
            time.sleep(latency_ms / 1000)
        if source.get("hang", config["hang"]):
            release.wait(float(config["hang_max_seconds"]))
            return Turn(None, status=503, message="hang released")
        status = source.get("status", config["status"])
        if status:
            return Turn(None, status=int(status), message=source.get("message"))
        return Turn(item if item and ("text" in item or "tool_calls" in item) else None)


def default_text(tag: str) -> str:
    """The echo-like answer when nothing is scripted: short, French, mentions the request."""
    subject = " ".join((tag or "").split())[:80]
    return f"Bien reçu : « {subject} ». Je m'en occupe." if subject else "Bien reçu. Je m'en occupe."


def example_from_schema(schema: dict | None):
    """A minimal value satisfying a simple JSON Schema (for JSON-format answers nobody scripted)."""
    schema = schema if isinstance(schema, dict) else {}
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        props = schema.get("properties") or {}
        keys = schema.get("required") or list(props)
        return {key: example_from_schema(props.get(key)) for key in keys}
    return {"array": [], "string": "", "integer": 0, "number": 0, "boolean": False, "null": None}.get(kind, None)


def read_json(req: falcon.Request):
    """The request body as JSON; raises ValueError with a message for empty or broken bodies."""
    raw = req.bounded_stream.read()
    if not raw:
        raise ValueError("missing request body")
    return json.loads(raw)


def safe_headers(req: falcon.Request) -> dict:
    """Request headers for the log, credentials masked."""
    masked = {"X-API-KEY", "AUTHORIZATION"}
    return {k.lower(): ("***" if k.upper() in masked else v) for k, v in req.headers.items()}


class _Script:
    def __init__(self, state: ScriptState):
        self._state = state

    def on_get(self, req, resp):
        with self._state.lock:
            resp.media = list(self._state.script)

    def on_post(self, req, resp):
        try:
            body = read_json(req)
            items = body if isinstance(body, list) else [body]
            if req.get_param_as_bool("replace", default=False):
                with self._state.lock:
                    self._state.script.clear()
            resp.media = {"queued": self._state.push(items)}
        except ValueError as exc:
            raise falcon.HTTPBadRequest(description=str(exc)) from exc

    def on_delete(self, req, resp):
        with self._state.lock:
            self._state.script.clear()
        resp.media = {"queued": 0}


class _Config:
    def __init__(self, state: ScriptState, *, fault_alias: bool = False):
        self._state = state
        self._fault_alias = fault_alias

    def on_get(self, req, resp):
        with self._state.lock:
            resp.media = dict(self._state.config)

    def on_post(self, req, resp):
        try:
            changes = read_json(req)
            if not isinstance(changes, dict):
                raise ValueError("expected an object")
            if self._fault_alias and "delay_seconds" in changes:
                changes["latency_ms"] = int(float(changes.pop("delay_seconds")) * 1000)
            resp.media = self._state.configure(changes)
        except ValueError as exc:
            raise falcon.HTTPBadRequest(description=str(exc)) from exc


class _Stats:
    def __init__(self, state: ScriptState):
        self._state = state

    def on_get(self, req, resp):
        resp.media = self._state.stats()


class _Requests:
    def __init__(self, state: ScriptState):
        self._state = state

    def on_get(self, req, resp):
        with self._state.lock:
            resp.media = list(self._state.requests)


class _Action:
    def __init__(self, action):
        self._action = action

    def on_post(self, req, resp):
        self._action()
        resp.media = {"ok": True}


def add_sim_routes(app: falcon.App, state: ScriptState) -> None:
    """Mount the shared /_sim/ endpoints on a simulator app."""
    app.add_route("/_sim/script", _Script(state))
    app.add_route("/_sim/config", _Config(state))
    app.add_route("/_sim/fault", _Config(state, fault_alias=True))
    app.add_route("/_sim/stats", _Stats(state))
    app.add_route("/_sim/requests", _Requests(state))
    app.add_route("/_sim/reset", _Action(state.reset))
    app.add_route("/_sim/release", _Action(state.release_hangs))
