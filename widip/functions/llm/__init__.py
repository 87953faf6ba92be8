"""LLM providers behind one small interface (`Provider.complete`); see base.py for the types.

The provider classes are resolved on first access (PEP 562): importing this package must not load
the `anthropic` (~65 MB) or `ollama` (~27 MB) SDK in a process that never calls that provider.
"""

import importlib

from widip.functions.llm.base import (
    Completion, Message, Provider, ProviderUnavailable, ToolCall, ToolSpec, extract_confidence,
    new_tool_call_id, untrusted_data_notice, wrap_tool_result,
)
from widip.functions.llm.fallback import FallbackProvider, build_provider

#: Names loaded only when asked for, and the module that defines each.
_LAZY = {"AnthropicProvider": "anthropic_provider", "OllamaProvider": "ollama_provider"}

__all__ = [
    "AnthropicProvider", "Completion", "FallbackProvider", "Message", "OllamaProvider", "Provider",
    "ProviderUnavailable", "ToolCall", "ToolSpec", "build_provider", "extract_confidence",
    "new_tool_call_id", "untrusted_data_notice", "wrap_tool_result",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
