"""The local GPU model (Qwen 2.5 14B by default) through the official `ollama` client.

Maps our transcript to Ollama's chat format (tool arguments are JSON objects, tool results are
`role: "tool"` messages named by `tool_name`) and the client's errors to ours. It does not queue or
serialise calls: the GPU mutex is the single-threaded `llm` worker (docs/architecture.md).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Sequence

import httpx
import ollama
import pydantic

from widip.errors import Rejected
from widip.functions.llm.base import (
    SYSTEM, Completion, Message, ProviderUnavailable, ToolCall, ToolSpec, extract_confidence,
    new_tool_call_id, report_outcome, system_prompt, tool_schema, wrap_tool_result,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen2.5:14b"
DEFAULT_NUM_CTX = 16384
DEFAULT_TIMEOUT_SECONDS = 120.0


class OllamaProvider:
    """Chat completions with tools from an Ollama server (`POST /api/chat`, non-streaming)."""

    name = "ollama"
    #: Runs on our GPU: calls go through the priority queues llm.p0…p3 (docs/architecture.md).
    local = True

    def __init__(self, host: str, model: str = DEFAULT_MODEL, *, num_ctx: int = DEFAULT_NUM_CTX,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS, options: dict | None = None):
        self.host = host.rstrip("/")
        self.model = model
        self.num_ctx = num_ctx
        self.timeout = timeout
        self._options = {**(options or {}), "num_ctx": num_ctx}
        self._clients: dict[float, ollama.Client] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "OllamaProvider":
        return cls(settings.ollama_host, settings.ollama_model, timeout=settings.llm_timeout_seconds)

    def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = (), *,
                 want_confidence: bool = False, timeout: float | None = None,
                 json_schema: dict | None = None) -> Completion:
        """Ask the model once; raise ProviderUnavailable (down, slow, 5xx) or Rejected (4xx)."""
        system = system_prompt(messages, tools, want_confidence=want_confidence,
                               json_schema=json_schema, json_in_prompt=False)
        request: dict[str, Any] = {
            "model": self.model,
            "messages": to_ollama_messages(messages, system),
            "tools": [to_ollama_tool(t, want_confidence=want_confidence) for t in tools] or None,
            "options": dict(self._options),
            "stream": False,
        }
        if json_schema is not None:
            request["format"] = json_schema
        started = time.perf_counter()
        try:
            response = self._client(timeout).chat(**request)
            completion = self._completion(response, want_confidence, json_schema is not None)
        except Exception as exc:  # noqa: BLE001 - translated below, the rest re-raised
            error = self._translate(exc)
            report_outcome(self.name, started, error)
            if error is exc:
                raise
            raise error from exc
        report_outcome(self.name, started, None)
        logger.debug("ollama answered model=%s tool_calls=%d in %.2f s", self.model,
                     len(completion.tool_calls), time.perf_counter() - started)
        return completion

    def _client(self, timeout: float | None) -> ollama.Client:
        """One pooled client per distinct timeout (personas use a handful of fixed values)."""
        seconds = float(timeout if timeout is not None else self.timeout)
        with self._lock:
            client = self._clients.get(seconds)
            if client is None:
                client = self._clients[seconds] = ollama.Client(host=self.host, timeout=seconds)
            return client

    def _completion(self, response, want_confidence: bool, json_answer: bool) -> Completion:
        message = response.message
        calls = tuple(
            ToolCall(id=_call_id(call), name=call.function.name, arguments=dict(call.function.arguments or {}))
            for call in (message.tool_calls or ())
        )
        text = message.content or ""
        confidence = None
        if want_confidence:
            text, calls, confidence = extract_confidence(text, calls, json_answer=json_answer)
        usage = {"input_tokens": response.prompt_eval_count or 0, "output_tokens": response.eval_count or 0}
        return Completion(text=text, tool_calls=calls, provider=self.name,
                          model=response.model or self.model, confidence=confidence, usage=usage)

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, ollama.ResponseError):
            status = exc.status_code if exc.status_code and exc.status_code > 0 else None
            message = f"ollama {status or 'stream'} {str(exc.error)[:200]}"
            if status is not None and 400 <= status < 500 and status not in (408, 429, 499):
                return Rejected(SYSTEM, message, status_code=status)
            return ProviderUnavailable(message, provider=self.name, status_code=status)
        if isinstance(exc, httpx.TimeoutException):
            return ProviderUnavailable(f"ollama timed out ({type(exc).__name__})", provider=self.name)
        if isinstance(exc, (ConnectionError, httpx.TransportError)):
            return ProviderUnavailable(f"ollama cannot connect to {self.host} ({type(exc).__name__})",
                                       provider=self.name)
        if isinstance(exc, (pydantic.ValidationError, ValueError)):
            return ProviderUnavailable(f"ollama sent a malformed answer ({type(exc).__name__})",
                                       provider=self.name)
        return exc

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def to_ollama_messages(messages: Sequence[Message], system: str) -> list[dict]:
    """Our transcript as Ollama chat messages; all system text goes first, in one message."""
    out: list[dict] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            out.append({"role": "tool", "tool_name": message.name or "",
                        "content": wrap_tool_result(message.name, message.content)})
        elif message.role == "assistant" and message.tool_calls:
            out.append({"role": "assistant", "content": message.content, "tool_calls": [
                {"function": {"name": c.name, "arguments": dict(c.arguments)}} for c in message.tool_calls]})
        else:
            out.append({"role": message.role, "content": message.content})
    return out


def to_ollama_tool(spec: ToolSpec, *, want_confidence: bool = False) -> dict:
    """A tool in Ollama's (OpenAI-like) function format.

    NOTE: ollama-python 0.6 re-validates tools through its pydantic `Tool` model, which keeps only
    type/description/enum/items of each property (nested `properties`, `minimum`, `pattern` are
    dropped before sending). Keep tool schemas flat; the gate validates arguments anyway.
    """
    return {"type": "function", "function": {
        "name": spec.name, "description": spec.description,
        "parameters": tool_schema(spec, want_confidence=want_confidence)}}


def _call_id(call) -> str:
    """Recent Ollama servers name calls (`call_…`), but the client model drops unknown fields."""
    extra = getattr(call, "model_extra", None) or {}
    return str(extra.get("id") or getattr(call, "id", None) or new_tool_call_id())
