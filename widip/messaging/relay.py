"""The outbox relay: committed outbox rows go to the broker through the one door.

Called right after a transaction that queued work (so it starts now) and by the minute sweep (so a
crash or a broker outage loses nothing). Rows waiting for a system that is down stay in the outbox.
"""

from __future__ import annotations

from widip.deps import deps
from widip.functions import outbox
from widip.functions.integrations import circuit
from widip.messaging import door


def flush_outbox() -> int:
    """Hand committed outbox rows to the broker now; return how many were sent."""
    d = deps()
    return outbox.relay(d.pool, door.send_named, lambda dependency: circuit.is_available(d.redis, dependency))
