"""A tool call asked for directly by a caller (POST /tools/{name}, an MCP client): one path to the gate.

Both doors call `propose_direct`, so validation, the gate, the audit and the outbox row that runs
the call are the same whichever door was used.
"""

from __future__ import annotations

from widip.errors import Invalid, NotFound
from widip.functions import db
from widip.functions.callers import Caller
from widip.functions.safeguard import calls
from widip.functions.safeguard.policy import policy_for


def propose_direct(pool, settings, caller: Caller, tool_name: str, arguments, *,
                   offered: set[str] | frozenset[str] | None = None) -> dict:
    """Propose one call through the SAFEGUARD gate in its own transaction; return the call row.

    Raises NotFound / Invalid for an unknown or unoffered tool or bad arguments, after committing the
    refusal's audit row (a refused attempt is evidence, not something to roll back). The caller relays
    the outbox afterwards so a `ready` call starts at once.
    """
    with db.transaction(pool) as conn:
        try:
            return calls.propose(conn, calls.Proposal(tool_name, arguments, caller, offered=offered),
                                 policy_for(settings))
        except (NotFound, Invalid) as exc:
            refused = exc  # leave the block normally so the audit row commits
    raise refused
