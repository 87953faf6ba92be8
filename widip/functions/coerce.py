"""Lenient conversions for values read from external JSON (Observium's strings, Phibee's numbers)."""

from __future__ import annotations

from typing import Any


def as_text(value: Any) -> str | None:
    """Stripped text, or None for missing/empty values."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def as_int(value: Any) -> int | None:
    """An integer from 12, "12" or "12.0"; None when it is not a number."""
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
