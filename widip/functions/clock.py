"""One `now()` for the Sentinel pipeline, so tests and replays can move time.

Every time-based rule (correlation and flap windows, maintenance windows, the diagnosis cache, the
device-down threshold) reads this clock and passes the instant to PostgreSQL and Redis logic as a
parameter, never their own `now()`. In production it is the wall clock. Tests pin or shift it with
`set_now` / `shift`; a deployment can be shifted with WIDIP_CLOCK_OFFSET_SECONDS (read once).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

_pinned: datetime | None = None
_offset = timedelta(seconds=float(os.environ.get("WIDIP_CLOCK_OFFSET_SECONDS") or 0))


def now() -> datetime:
    """The pipeline's current instant (timezone-aware UTC)."""
    if _pinned is not None:
        return _pinned
    return datetime.now(timezone.utc) + _offset


def set_now(moment: datetime | None) -> None:
    """Pin the clock at `moment` (None: back to the wall clock plus the offset)."""
    global _pinned
    _pinned = moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def shift(delta: timedelta) -> None:
    """Move the clock by `delta` (a pinned clock moves its pin; a running one its offset)."""
    global _pinned, _offset
    if _pinned is not None:
        _pinned += delta
    else:
        _offset += delta
