"""A local Anthropic Messages API (`POST /v1/messages`) for tests and the demo, answering from a script.

Checks what the real API checks and our mapping could get wrong: the key (`x-api-key`, or
`Authorization: Bearer` as anthropic SDK 2.x sends it; 401 authentication_error), `anthropic-version`, `max_tokens`, and that every `tool_use` is answered by a
`tool_result` with the same id at the start of the next user message (400 otherwise). Errors use the
API's body `{"type":"error","error":{"type":…,"message":…}}` and a `request-id` header.
Run alone: `python -m simulators.anthropic --port 8765` (key `sk-ant-sim`).
"""

from __future__ import annotations

import json
import secrets

import falcon

from simulators.llm_script import ScriptState, add_sim_routes, default_text, read_json, safe_headers

DEFAULT_API_KEY = "sk-ant-sim"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


class State(ScriptState):
    """Script state plus the accepted API key and model names."""

    def __init__(self, api_key: str = DEFAULT_API_KEY):
        self.api_key = api_key
        self.models: set[str] = set()
        super().__init__()

    def seed_demo(self) -> "State":
        """The Claude models WIBOT may be configured with; any `claude-*` name is accepted too."""
        self.models |= {"claude-sonnet-4-5", "claude-sonnet-4-20250514", "claude-haiku-4-5"}
        return self

    def knows(self, model: str) -> bool:
        return model in self.models or model.startswith("claude-")


def _error(resp, status: int, message: str, error_type: str | None = None) -> None:
    kind = error_type or ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    request_id = "req_" + secrets.token_hex(12)
    resp.status = falcon.code_to_http_status(status)
    resp.set_header("request-id", request_id)
    resp.media = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


def _blocks(content) -> list[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def request_tag(messages) -> str:
    """Text of the last user message that has text (tool-result-only messages are skipped)."""
    for message in reversed(messages or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        texts = [b.get("text", "") for b in _blocks(message.get("content")) if b.get("type") == "text"]
        if any(texts):
            return " ".join(t for t in texts if t)
    return ""


def check_request(body: dict) -> str | None:
    """The first validation error the real API would report, or None."""
    if not body.get("model"):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for tool in body.get("tools") or ():
        if not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
            return "tools: each tool needs a name and an input_schema object"
    for i, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        problem = _check_pairing(messages, i)
        if problem:
            return problem
    return None


def _check_pairing(messages: list[dict], i: int) -> str | None:
    blocks = _blocks(messages[i].get("content"))
    previous_uses = set()
    if i > 0 and messages[i - 1].get("role") == "assistant":
        previous_uses = {b.get("id") for b in _blocks(messages[i - 1].get("content")) if b.get("type") == "tool_use"}
    results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
    unexpected = [r for r in results if r not in previous_uses]
    if unexpected:
        return (f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: {unexpected[0]}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
    kinds = [b.get("type") for b in blocks]
    if "tool_result" in kinds and kinds.index("tool_result") > 0 and "text" in kinds[:kinds.index("tool_result")]:
        return f"messages.{i}: `tool_result` blocks must come first in the user message"
    if messages[i].get("role") == "assistant":
        uses = [b.get("id") for b in blocks if b.get("type") == "tool_use"]
        following = messages[i + 1] if i + 1 < len(messages) else None
        answered = {b.get("tool_use_id") for b in _blocks((following or {}).get("content"))
                    if b.get("type") == "tool_result"} if following and following.get("role") == "user" else set()
        missing = [u for u in uses if u not in answered]
        if missing and following is not None:
            return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` "
                    "block in the next message.")
    return None


class Messages:
    """POST /v1/messages."""

    def __init__(self, state: State):
        self._state = state

    def on_post(self, req, resp):
        key = req.get_header("x-api-key") or (req.get_header("authorization") or "").removeprefix("Bearer ")
        problem = "body must be a JSON object"
        try:
            body = read_json(req)
        except ValueError as exc:
            body, problem = None, f"invalid JSON body: {exc}"
        self._state.record(req.path, safe_headers(req), body)
        if key != self._state.api_key:
            return _error(resp, 401, "invalid x-api-key")
        if not req.get_header("anthropic-version"):
            return _error(resp, 400, "anthropic-version: header is required")
        if not isinstance(body, dict):
            return _error(resp, 400, problem)
        problem = check_request(body)
        if problem:
            return _error(resp, 400, problem)
        if not self._state.knows(body["model"]):
            return _error(resp, 404, f"model: {body['model']}")
        tag = request_tag(body["messages"])
        with self._state.turn(tag) as turn:
            if turn.status:
                return _error(resp, turn.status, turn.message or "Overloaded")
            content = _content(turn.reply, tag)
        request_id = "req_" + secrets.token_hex(12)
        resp.set_header("request-id", request_id)
        resp.media = {
            "id": "msg_" + secrets.token_hex(12), "type": "message", "role": "assistant", "model": body["model"],
            "content": content,
            "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": max(1, len(json.dumps(body["messages"])) // 4),
                      "output_tokens": max(1, len(json.dumps(content)) // 4),
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }


def _content(reply: dict | None, tag: str) -> list[dict]:
    if reply is None:
        return [{"type": "text", "text": default_text(tag)}]
    content = [{"type": "text", "text": reply["text"]}] if reply.get("text") else []
    content += [{"type": "tool_use", "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                 "name": call["name"], "input": call.get("arguments") or {}}
                for call in reply.get("tool_calls") or ()]
    return content or [{"type": "text", "text": ""}]


def make_app(state: State | None = None) -> falcon.App:
    """The simulator app; without a state, one accepting key `sk-ant-sim` and the demo models."""
    state = state if state is not None else State().seed_demo()
    app = falcon.App()
    app.add_route("/v1/messages", Messages(state))
    add_sim_routes(app, state)
    return app


def main(argv: list[str] | None = None) -> None:
    from simulators.base import option, run

    run(__doc__.splitlines()[0], 8765, lambda args: make_app(State(args.api_key).seed_demo()),
        "anthropic simulator on {url}", argv, option("--api-key", default=DEFAULT_API_KEY))


if __name__ == "__main__":
    main()
