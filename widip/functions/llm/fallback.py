"""Degraded mode: when the configured LLM cannot answer, the rules provider does (docs/architecture.md).

`build_provider` picks the provider from settings once at start. The rules provider is passed in, not
imported, so this module does not depend on how the playbooks are written.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Sequence

from widip.errors import ConfigError
from widip.functions.llm.base import Completion, Message, Provider, ProviderUnavailable, ToolSpec

logger = logging.getLogger(__name__)


class FallbackProvider:
    """Answers with `primary`, or with `fallback` when `primary` raises ProviderUnavailable.

    The fallback's completion carries the reason in `fallback_reasons` (the agent runtime records an
    event for its session); `on_fallback(reason)` is called before the fallback answers (it bumps
    `widip_llm_fallback_total`). A Rejected error (bad request, unknown model) is not hidden: it
    propagates, because answering from rules would mask a configuration mistake.
    """

    def __init__(self, primary: Provider, fallback: Provider, *,
                 on_fallback: Callable[[str], None] | None = None):
        self.primary = primary
        self.fallback = fallback
        self.on_fallback = on_fallback
        self.name = primary.name
        self.local = primary.local

    def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = (), *,
                 want_confidence: bool = False, timeout: float | None = None,
                 json_schema: dict | None = None) -> Completion:
        kwargs = dict(want_confidence=want_confidence, timeout=timeout, json_schema=json_schema)
        try:
            return self.primary.complete(messages, tools, **kwargs)
        except ProviderUnavailable as exc:
            reason = f"{self.primary.name}: {exc.message}"
            logger.warning("LLM %s unavailable, answering with %s: %s",
                           self.primary.name, self.fallback.name, exc.message)
            if self.on_fallback is not None:
                try:
                    self.on_fallback(reason)
                except Exception:  # noqa: BLE001 - bookkeeping must not cost the answer
                    logger.exception("on_fallback callback failed")
            completion = self.fallback.complete(messages, tools, **kwargs)
            return dataclasses.replace(completion, fallback_reasons=completion.fallback_reasons + (reason,))


def build_provider(settings, rules_provider: Provider, *,
                   on_fallback: Callable[[str], None] | None = None) -> Provider:
    """The provider named by settings.llm_provider, falling back to `rules_provider` when down.

    "auto" means Ollama when OLLAMA_HOST is set, else Anthropic when ANTHROPIC_API_KEY is set, else
    the rules alone. Each SDK is imported here, only when its provider is chosen.
    """
    choice = settings.llm_provider
    if choice == "auto":
        choice = "ollama" if settings.ollama_host else "anthropic" if settings.anthropic_api_key else "rules"
    if choice == "rules":
        logger.info("LLM provider: rules only")
        return rules_provider
    if choice == "ollama":
        if not settings.ollama_host:
            raise ConfigError(["LLM_PROVIDER=ollama needs OLLAMA_HOST"])
        from widip.functions.llm.ollama_provider import OllamaProvider

        primary: Provider = OllamaProvider.from_settings(settings)
    elif choice == "anthropic":
        if not settings.anthropic_api_key:
            raise ConfigError(["LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY"])
        from widip.functions.llm.anthropic_provider import AnthropicProvider

        primary = AnthropicProvider.from_settings(settings)
    else:
        raise ConfigError([f"LLM_PROVIDER must be auto, ollama, anthropic or rules, got {choice!r}"])
    logger.info("LLM provider: %s (model %s), fallback %s", primary.name,
                getattr(primary, "model", "?"), rules_provider.name)
    return FallbackProvider(primary, rules_provider, on_fallback=on_fallback)
