"""Claude through the official `anthropic` SDK (Messages API with tool use).

Maps our transcript to Anthropic's content blocks: assistant tool calls become `tool_use` blocks,
our "tool" messages become `tool_result` blocks in the next user message (consecutive ones merged,
as the API requires every result right after its call), system text goes to the top-level `system`.
Retries are the caller's business (Dramatiq, the fallback provider): the SDK's own are turned off.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import anthropic

from widip.errors import Rejected
from widip.functions.llm.base import (
    SYSTEM, Completion, Message, ProviderUnavailable, ToolCall, ToolSpec, extract_confidence,
    extract_json_text, report_outcome, system_prompt, tool_schema, wrap_tool_result,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_TIMEOUT_SECONDS = 120.0
DEFAULT_MAX_TOKENS = 2048
#: 4xx that mean "not now" rather than "never": request timeout, rate limit.
TRANSIENT_4XX = (408, 429)


class AnthropicProvider:
    """Chat completions with tools from the Anthropic Messages API (or a server speaking it)."""

    name = "anthropic"
    #: Remote: calls go through the `llm-remote` queue, not the GPU priority queues (docs/architecture.md).
    local = False

    def __init__(self, api_key: str, model: str = DEFAULT_MODEL, *, base_url: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS, max_tokens: int = DEFAULT_MAX_TOKENS):
        self.model = model
        self.base_url = base_url
        self.timeout = timeout
        self.max_tokens = max_tokens
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

    @classmethod
    def from_settings(cls, settings) -> "AnthropicProvider":
        return cls(settings.anthropic_api_key, settings.anthropic_model, base_url=settings.anthropic_base_url,
                   timeout=settings.llm_timeout_seconds)

    def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = (), *,
                 want_confidence: bool = False, timeout: float | None = None,
                 json_schema: dict | None = None) -> Completion:
        """Ask the model once; raise ProviderUnavailable (down, slow, 5xx, 529, 429) or Rejected (4xx)."""
        system = system_prompt(messages, tools, want_confidence=want_confidence,
                               json_schema=json_schema, json_in_prompt=True)
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": to_anthropic_messages(messages),
        }
        if system:
            request["system"] = system
        if tools:
            request["tools"] = [to_anthropic_tool(t, want_confidence=want_confidence) for t in tools]
        if timeout is not None:
            request["timeout"] = timeout
        started = time.perf_counter()
        try:
            response = self._client.messages.create(**request)
        except anthropic.AnthropicError as exc:
            error = self._translate(exc)
            report_outcome(self.name, started, error)
            raise error from exc
        report_outcome(self.name, started, None)
        completion = self._completion(response, want_confidence, json_schema is not None)
        logger.debug("anthropic answered model=%s stop=%s tool_calls=%d in %.2f s", completion.model,
                     response.stop_reason, len(completion.tool_calls), time.perf_counter() - started)
        return completion

    def _completion(self, response, want_confidence: bool, json_answer: bool) -> Completion:
        texts, calls = [], []
        for block in response.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input or {})))
        text = "\n".join(t for t in texts if t)
        if json_answer:
            text = extract_json_text(text)
        confidence = None
        tool_calls = tuple(calls)
        if want_confidence:
            text, tool_calls, confidence = extract_confidence(text, tool_calls, json_answer=json_answer)
        usage = {"input_tokens": response.usage.input_tokens, "output_tokens": response.usage.output_tokens}
        return Completion(text=text, tool_calls=tool_calls, provider=self.name, model=response.model,
                          confidence=confidence, usage=usage)

    def _translate(self, exc: anthropic.AnthropicError) -> Exception:
        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderUnavailable("anthropic timed out", provider=self.name)
        if isinstance(exc, anthropic.APIConnectionError):
            return ProviderUnavailable(f"anthropic cannot connect ({type(exc.__cause__ or exc).__name__})",
                                       provider=self.name)
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            code, detail = _error_detail(exc.body)
            message = f"anthropic {status} {code or ''} {detail}".strip()
            if status >= 500 or status in TRANSIENT_4XX:
                return ProviderUnavailable(message, provider=self.name, status_code=status, code=code)
            return Rejected(SYSTEM, message, status_code=status, code=code)
        return ProviderUnavailable(f"anthropic sent a malformed answer ({type(exc).__name__})",
                                   provider=self.name)

    def close(self) -> None:
        self._client.close()


def to_anthropic_messages(messages: Sequence[Message]) -> list[dict]:
    """Our transcript as Anthropic messages; system messages are left out (they go to `system`)."""
    out: list[dict] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": message.tool_call_id or "",
                                     "content": wrap_tool_result(message.name, message.content)}]
        elif message.role == "assistant":
            role = "assistant"
            blocks = [{"type": "text", "text": message.content}] if message.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
                       for c in message.tool_calls]
        else:
            role, blocks = "user", [{"type": "text", "text": message.content}]
        if out and out[-1]["role"] == role:
            _merge(out[-1]["content"], blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _merge(existing: list[dict], blocks: list[dict]) -> None:
    """Append blocks to the previous same-role message, keeping tool_result blocks first."""
    results = [b for b in existing + blocks if b["type"] == "tool_result"]
    others = [b for b in existing + blocks if b["type"] != "tool_result"]
    existing[:] = results + others


def to_anthropic_tool(spec: ToolSpec, *, want_confidence: bool = False) -> dict:
    return {"name": spec.name, "description": spec.description,
            "input_schema": tool_schema(spec, want_confidence=want_confidence)}


def _error_detail(body) -> tuple[str | None, str]:
    """(error type, message) from `{"type":"error","error":{"type":…,"message":…}}`."""
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        return error.get("type"), str(error.get("message") or "")[:200]
    return None, str(body or "")[:200]
