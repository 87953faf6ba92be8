"""The process's provider for agent steps and the gateway: configured LLM, falling back to rules.

Fallbacks are reported to whoever is listening in the current context (`fallback_reasons`), so the
agent runtime can record an event for the very session that fell back, and counted in
`widip_llm_fallback_total`.
"""

from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager

from widip.functions.llm.fallback import build_provider
from widip.functions.llm.rules import RulesProvider

_listener: contextvars.ContextVar[list | None] = contextvars.ContextVar("llm_fallbacks", default=None)
_lock = threading.Lock()
_cached: dict[int, object] = {}


def _on_fallback(reason: str) -> None:
    sink = _listener.get()
    if sink is not None:
        sink.append(reason)
    try:
        from widip.functions.metrics import LLM_FALLBACK_TOTAL
    except ImportError:
        return
    LLM_FALLBACK_TOTAL.inc()


@contextmanager
def fallback_reasons(sink: list):
    """Collect the fallback reasons of provider calls made inside this block."""
    token = _listener.set(sink)
    try:
        yield sink
    finally:
        _listener.reset(token)


def provider_for(settings):
    """One provider per settings object per process (clients keep their connections)."""
    key = id(settings)
    with _lock:
        if key not in _cached:
            _cached[key] = build_provider(settings, RulesProvider(), on_fallback=_on_fallback)
        return _cached[key]
