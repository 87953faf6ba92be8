"""The process's provider for agent steps and the gateway: configured LLM, falling back to rules.

A fallback's reason comes back on the answer (`Completion.fallback_reasons`), so the agent runtime
records an event for the very session that fell back; each one is counted in `widip_llm_fallback_total`.
"""

from __future__ import annotations

import functools

from widip.functions.llm.fallback import build_provider
from widip.functions.llm.rules import RulesProvider


def _on_fallback(reason: str) -> None:
    try:
        from widip.functions.metrics import LLM_FALLBACK_TOTAL
    except ImportError:
        return
    LLM_FALLBACK_TOTAL.inc()


def settings_for_persona(settings, persona: str):
    """WIBOT talks with Claude when it is configured, even where "auto" prefers the local model for
    the other personas (issue 14); explicit LLM_PROVIDER choices are kept."""
    if persona == "wibot" and settings.llm_provider == "auto" and settings.anthropic_api_key:
        return settings.with_overrides(llm_provider="anthropic")
    return settings


@functools.lru_cache(maxsize=16)
def provider_for(settings, model: str | None = None, fallback=None):
    """One provider per (settings, model, fallback) per process; clients keep their connections.

    Local providers (Ollama) are wrapped so each call holds the GPU lock (a safety net beside the
    single-threaded llm process, docs/architecture.md);
    `fallback` defaults to the rules playbooks.
    """
    from widip.functions.llm.gpu_lock import with_gpu_lock

    if model:
        settings = settings.with_overrides(ollama_model=model, anthropic_model=model)
    provider = build_provider(settings, fallback or RulesProvider(), on_fallback=_on_fallback)
    return with_gpu_lock(provider, settings)
