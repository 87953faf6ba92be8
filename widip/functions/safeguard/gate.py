"""The SAFEGUARD gate: the only function that decides whether a tool call runs.

It is pure — a level, a caller, a confidence and the policy in; a decision out — so every rule of
the level table (docs/architecture.md) is testable exhaustively, and no prompt text, tool
description or argument can change what it says. There is no bypass flag: an approved call is executed by the continuation that
re-checks the approval itself, not by skipping this function.
"""

from __future__ import annotations

from dataclasses import dataclass

from widip.functions.callers import Caller
from widip.functions.safeguard.policy import LEVELS, Policy

#: What happens to the call.
RUN, NOTIFY, APPROVAL, DEFERRED, REFUSED = "run", "notify", "approval", "deferred", "refused"


@dataclass(frozen=True)
class Decision:
    outcome: str
    level: str
    reason: str

    @property
    def runs_now(self) -> bool:
        return self.outcome in (RUN, NOTIFY)


#: From most to least permissive: combining two decisions keeps the stricter one.
_STRICTNESS = (RUN, NOTIFY, APPROVAL, DEFERRED, REFUSED)


def decide(level: str, caller: Caller, policy: Policy, *, confidence: float | None = None) -> Decision:
    if level not in LEVELS:
        return Decision(REFUSED, level, f"unknown level {level!r}")
    if caller.kind == "service":
        return Decision(REFUSED, level, "service tokens cannot run tools")
    if not caller.is_ai:
        return _decide_for_human(level, caller, policy)
    decision = _decide_for_ai(level, caller, policy, confidence)
    if caller.on_behalf_of is not None:
        # An assistant never gets more than the human it acts for would get calling the tool directly.
        as_human = _decide_for_human(level, caller, policy)
        if _STRICTNESS.index(as_human.outcome) > _STRICTNESS.index(decision.outcome):
            return Decision(as_human.outcome, level, f"{as_human.reason} (acting for user {caller.on_behalf_of})")
    return decision


def _decide_for_ai(level: str, caller: Caller, policy: Policy, confidence: float | None) -> Decision:
    if level == "L0":
        return Decision(RUN, level, "read-only tool")
    if level == "L1":
        threshold = policy.l1_threshold
        if confidence is not None and 0.0 <= confidence <= 1.0 and confidence >= threshold:
            return Decision(RUN, level, f"confidence {confidence:.2f} >= {threshold:.2f}")
        shown = "absent" if confidence is None else f"{confidence:.2f}"
        return Decision(APPROVAL, level, f"confidence {shown} below {threshold:.2f}: approval required")
    if level == "L2":
        return Decision(NOTIFY, level, "runs, then approvers are notified")
    if level == "L3":
        return Decision(APPROVAL, level, f"approval required from N{policy.approve['L3']}")
    return Decision(DEFERRED, level, "human-only action: never run on behalf of an AI")


def _decide_for_human(level: str, caller: Caller, policy: Policy) -> Decision:
    if caller.accreditation < 1:
        return Decision(REFUSED, level, "accreditation N0 is read-only: tools require N1")
    needed = policy.run_without_approval[level]
    if level == "L4":
        if caller.accreditation >= needed:
            return Decision(DEFERRED, level, f"human-only action: schedule it {policy.deferred_min_hours}–"
                                             f"{policy.deferred_max_hours} h ahead")
        return Decision(REFUSED, level, f"requires accreditation N{needed}")
    if caller.accreditation >= needed:
        return Decision(NOTIFY if level == "L2" else RUN, level, f"accreditation N{caller.accreditation} suffices")
    if level == "L0":
        return Decision(REFUSED, level, f"requires accreditation N{needed}")
    return Decision(APPROVAL, level, f"accreditation N{caller.accreditation} below N{needed}: "
                                     f"approval required from N{policy.approve[level]}")


def may_approve(level: str, approver: Caller, policy: Policy) -> tuple[bool, str]:
    """Whether this human may approve a request at `level` (self-approval is checked by the caller)."""
    if not approver.is_human:
        return False, "only humans approve"
    needed = policy.approve.get(level, 4)
    if approver.accreditation < needed:
        return False, f"approving an {level} action requires accreditation N{needed}"
    return True, "ok"
