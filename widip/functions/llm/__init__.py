"""LLM providers behind one small interface (`Provider.complete`); see base.py for the types."""

from widip.functions.llm.anthropic_provider import AnthropicProvider
from widip.functions.llm.base import (
    Completion, Message, Provider, ProviderUnavailable, ToolCall, ToolSpec, extract_confidence,
    new_tool_call_id, untrusted_data_notice, wrap_tool_result,
)
from widip.functions.llm.fallback import FallbackProvider, build_provider
from widip.functions.llm.ollama_provider import OllamaProvider

__all__ = [
    "AnthropicProvider", "Completion", "FallbackProvider", "Message", "OllamaProvider", "Provider",
    "ProviderUnavailable", "ToolCall", "ToolSpec", "build_provider", "extract_confidence",
    "new_tool_call_id", "untrusted_data_notice", "wrap_tool_result",
]
