"""A local Ollama server for tests and the demo: `/api/chat` (JSON or NDJSON stream), tags, show, embed.

Answers come from the shared script (simulators/llm_script.py); the wire format follows Ollama's
`api/types.go`: tool-call arguments are JSON objects, tool results arrive as `role: "tool"` messages,
errors are `{"error": "…"}` with Ollama's statuses (404 unknown model, 400 model without tools).
Run alone: `python -m simulators.ollama --port 11434`.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from datetime import datetime, timezone

import falcon

from simulators.llm_script import (
    ScriptState, add_sim_routes, default_text, example_from_schema, read_json, safe_headers,
)

VERSION = "0.12.6"
ROLES = {"system", "user", "assistant", "tool"}
EMBED_DIMENSIONS = 768


class State(ScriptState):
    """Script state plus the installed models (`name -> details`)."""

    def __init__(self):
        self.models: dict[str, dict] = {}
        super().__init__()

    def add_model(self, name: str, *, family: str, size: str, tools: bool = True, embedding: bool = False,
                  dimensions: int = EMBED_DIMENSIONS) -> None:
        """`dimensions`: the length of an embedding model's vectors (each real model has its own)."""
        self.models[name] = {"family": family, "parameter_size": size, "tools": tools, "embedding": embedding,
                             "dimensions": dimensions}

    def seed_demo(self) -> "State":
        """The models of WIDIP's GPU box: Qwen 2.5 14B for Sentinel/Assist, a small one, an embedder."""
        self.add_model("qwen2.5:14b", family="qwen2", size="14.8B")
        self.add_model("llama3.2:3b", family="llama", size="3.2B")
        self.add_model("gemma3:4b", family="gemma3", size="4.3B", tools=False)
        self.add_model("nomic-embed-text:latest", family="nomic-bert", size="137M", tools=False, embedding=True)
        self.add_model("bge-m3:latest", family="bert", size="567M", tools=False, embedding=True, dimensions=1024)
        return self

    def find_model(self, name: str | None) -> str | None:
        if not name:
            return None
        for candidate in (name, f"{name}:latest"):
            if candidate in self.models:
                return candidate
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _error(resp, status: int, message: str) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.media = {"error": message}


def request_tag(messages) -> str:
    """The last user message's text: lets priority tests see which request started when."""
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _check_messages(messages) -> str | None:
    if not isinstance(messages, list):
        return "json: cannot unmarshal messages into Go struct field ChatRequest.messages of type []api.Message"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"invalid role: {message.get('role') if isinstance(message, dict) else message!r}"
        for call in message.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if not isinstance(arguments, dict):
                return ("json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls"
                        ".function.arguments of type api.ToolCallFunctionArguments")
    return None


class Chat:
    """POST /api/chat."""

    def __init__(self, state: State):
        self._state = state

    def on_post(self, req, resp):
        try:
            body = read_json(req)
        except ValueError as exc:
            return _error(resp, 400, str(exc))
        self._state.record(req.path, safe_headers(req), body)
        model = self._state.find_model(body.get("model"))
        if not body.get("model"):
            return _error(resp, 400, "model is required")
        if model is None:
            return _error(resp, 404, f"model \"{body['model']}\" not found, try pulling it first")
        if body.get("tools") and not self._state.models[model]["tools"]:
            return _error(resp, 400, f"registry.ollama.ai/library/{model} does not support tools")
        problem = _check_messages(body.get("messages", []))
        if problem:
            return _error(resp, 400, problem)
        started = time.perf_counter()
        tag = request_tag(body.get("messages"))
        with self._state.turn(tag) as turn:
            if turn.status:
                return _error(resp, turn.status, turn.message or "server busy, please try again")
            message = _assistant_message(turn.reply, tag, body.get("format"))
        final = _final(model, message, body, time.perf_counter() - started)
        if body.get("stream", True) is False:
            resp.media = final
        else:
            resp.content_type = "application/x-ndjson"
            resp.text = "".join(json.dumps(part) + "\n" for part in _stream_parts(model, final))


def _assistant_message(reply: dict | None, tag: str, fmt) -> dict:
    if reply is None:
        if fmt == "json":
            text = "{}"
        elif isinstance(fmt, dict):
            text = json.dumps(example_from_schema(fmt), ensure_ascii=False)
        else:
            text = default_text(tag)
        return {"role": "assistant", "content": text}
    message = {"role": "assistant", "content": reply.get("text", "")}
    if reply.get("tool_calls"):
        message["tool_calls"] = [
            {"id": call.get("id") or "call_" + secrets.token_hex(4),
             "function": {"index": i, "name": call["name"], "arguments": call.get("arguments") or {}}}
            for i, call in enumerate(reply["tool_calls"])]
    return message


def _final(model: str, message: dict, body: dict, elapsed: float) -> dict:
    prompt_chars = len(json.dumps(body.get("messages") or []))
    total_ns = int(elapsed * 1e9)
    return {"model": body.get("model") or model, "created_at": _now(), "message": message, "done": True,
            "done_reason": "stop", "total_duration": total_ns, "load_duration": 1_000_000,
            "prompt_eval_count": max(1, prompt_chars // 4), "prompt_eval_duration": total_ns // 3,
            "eval_count": max(1, len(message.get("content") or "") // 4), "eval_duration": total_ns // 2}


def _stream_parts(model: str, final: dict):
    """NDJSON chunks: the content word by word, tool calls in their own chunk, then the `done` line."""
    content, calls = final["message"].get("content") or "", final["message"].get("tool_calls")
    base = {"model": final["model"], "created_at": final["created_at"], "done": False}
    words = content.split(" ")
    for i, word in enumerate(words if content else []):
        piece = word if i == len(words) - 1 else word + " "
        yield {**base, "message": {"role": "assistant", "content": piece}}
    if calls:
        yield {**base, "message": {"role": "assistant", "content": "", "tool_calls": calls}}
    yield {**final, "message": {"role": "assistant", "content": ""}}


class Tags:
    def __init__(self, state: State):
        self._state = state

    def on_get(self, req, resp):
        resp.media = {"models": [_describe(name, info) for name, info in self._state.models.items()]}


class Show:
    def __init__(self, state: State):
        self._state = state

    def on_post(self, req, resp):
        try:
            body = read_json(req)
        except ValueError as exc:
            return _error(resp, 400, str(exc))
        name = self._state.find_model(body.get("model") or body.get("name"))
        if name is None:
            return _error(resp, 404, f"model '{body.get('model') or body.get('name')}' not found")
        info = self._state.models[name]
        capabilities = ["embedding"] if info["embedding"] else ["completion"] + (["tools"] if info["tools"] else [])
        resp.media = {"modelfile": f"FROM {name}\n", "parameters": "num_ctx 2048", "template": "{{ .Prompt }}",
                      "details": _describe(name, info)["details"], "capabilities": capabilities,
                      "model_info": {"general.architecture": info["family"]}, "modified_at": _now()}


class Embed:
    """POST /api/embed: deterministic unit vectors (same text, same vector) so RAG tests are stable."""

    def __init__(self, state: State):
        self._state = state

    def on_post(self, req, resp):
        try:
            body = read_json(req)
        except ValueError as exc:
            return _error(resp, 400, str(exc))
        self._state.record(req.path, safe_headers(req), body)
        model = self._state.find_model(body.get("model"))
        if model is None:
            return _error(resp, 404, f"model \"{body.get('model')}\" not found, try pulling it first")
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dimensions = int(body.get("dimensions") or self._state.models[model]["dimensions"])
        resp.media = {"model": body["model"], "embeddings": [embed_text(t, dimensions) for t in inputs],
                      "total_duration": 1_000_000, "load_duration": 0,
                      "prompt_eval_count": sum(len(t) // 4 + 1 for t in inputs)}


def embed_text(text: str, dimensions: int = EMBED_DIMENSIONS) -> list[float]:
    """A bag-of-words hash vector: texts sharing words get close vectors (enough for ranking tests)."""
    vector = [0.0] * dimensions
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip(".,;:!?«»()\"'").encode()).digest()
        index = int.from_bytes(digest[:4], "big") % dimensions
        vector[index] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _describe(name: str, info: dict) -> dict:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {"name": name, "model": name, "modified_at": _now(), "size": 9_000_000_000, "digest": digest,
            "details": {"parent_model": "", "format": "gguf", "family": info["family"],
                        "families": [info["family"]], "parameter_size": info["parameter_size"],
                        "quantization_level": "Q4_K_M"}}


class Version:
    def on_get(self, req, resp):
        resp.media = {"version": VERSION}


class Ps:
    def on_get(self, req, resp):
        resp.media = {"models": []}


class Root:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Ollama is running"


def make_app(state: State | None = None) -> falcon.App:
    """The simulator app; without a state, one seeded with the demo models."""
    state = state if state is not None else State().seed_demo()
    app = falcon.App()
    app.add_route("/", Root())
    app.add_route("/api/chat", Chat(state))
    app.add_route("/api/tags", Tags(state))
    app.add_route("/api/show", Show(state))
    app.add_route("/api/embed", Embed(state))
    app.add_route("/api/version", Version())
    app.add_route("/api/ps", Ps())
    add_sim_routes(app, state)
    return app


def main(argv: list[str] | None = None) -> None:
    from simulators.base import run

    run(__doc__.splitlines()[0], 11434, lambda args: make_app(), "ollama simulator on {url}", argv)


if __name__ == "__main__":
    main()
