"""The gate alone: every level's rule for AI and human callers, and the invariants no input can break."""

import itertools
import math

import pytest

from widip.config import PROJECT_ROOT
from widip.functions.callers import PERSONAS, Caller, system_persona
from widip.functions.safeguard import gate
from widip.functions.safeguard.policy import LEVELS, load_policy

POLICY = load_policy(PROJECT_ROOT / "policy")
#: WIBOT acting for an N4 user: the AI rules alone decide (the user could do more by hand).
WIBOT_FOR_ADMIN = Caller(kind="ai", username="wibot", persona="wibot", on_behalf_of=3, accreditation=4)
WIBOT_FOR_TECH = Caller(kind="ai", username="wibot", persona="wibot", on_behalf_of=5, accreditation=1)


def human(level):
    return Caller(kind="human", username=f"n{level}", accreditation=level, user_id=100 + level)


@pytest.mark.parametrize("level, confidence, outcome", [
    ("L0", None, gate.RUN),
    ("L1", 0.80, gate.RUN),
    ("L1", 0.95, gate.RUN),
    ("L1", 0.79, gate.APPROVAL),
    ("L1", None, gate.APPROVAL),
    ("L2", None, gate.NOTIFY),
    ("L3", 1.0, gate.APPROVAL),
    ("L4", 1.0, gate.DEFERRED),
])
def test_ai_callers_follow_the_design_rules(level, confidence, outcome):
    assert gate.decide(level, WIBOT_FOR_ADMIN, POLICY, confidence=confidence).outcome == outcome
    assert gate.decide(level, system_persona("assist"), POLICY, confidence=confidence).outcome == outcome


@pytest.mark.parametrize("level, outcome", [
    ("L0", gate.RUN), ("L1", gate.RUN), ("L2", gate.APPROVAL), ("L3", gate.APPROVAL), ("L4", gate.REFUSED),
])
def test_an_assistant_never_exceeds_the_rights_of_the_user_it_acts_for(level, outcome):
    assert gate.decide(level, WIBOT_FOR_TECH, POLICY, confidence=0.95).outcome == outcome


def test_an_n0_user_is_refused_every_tool():
    assert all(gate.decide(level, human(0), POLICY).outcome == gate.REFUSED for level in LEVELS)


@pytest.mark.parametrize("level, accreditation, outcome", [
    ("L0", 1, gate.RUN), ("L0", 0, gate.REFUSED), ("L3", 0, gate.REFUSED),
    ("L1", 1, gate.RUN),
    ("L2", 2, gate.NOTIFY), ("L2", 1, gate.APPROVAL),
    ("L3", 3, gate.RUN), ("L3", 2, gate.APPROVAL), ("L3", 1, gate.APPROVAL),
    ("L4", 4, gate.DEFERRED), ("L4", 3, gate.REFUSED),
])
def test_humans_pass_the_same_gate_with_their_own_accreditation(level, accreditation, outcome):
    assert gate.decide(level, human(accreditation), POLICY).outcome == outcome


def test_an_l3_refusal_says_who_must_approve():
    decision = gate.decide("L3", human(1), POLICY)
    assert "approval required from N3" in decision.reason


def test_service_tokens_never_run_tools():
    service = Caller(kind="service", username="frontend", scopes=("frontend",))
    assert all(gate.decide(level, service, POLICY).outcome == gate.REFUSED for level in LEVELS)


CONFIDENCES = [None, -1.0, 0.0, 0.5, 0.79999, 0.8, 0.99, 1.0, 1.5, 80.0, math.inf, math.nan]


def test_no_l4_decision_ever_lets_an_ai_run_whatever_the_persona_or_confidence():
    for persona, confidence in itertools.product(PERSONAS, CONFIDENCES):
        for caller in (system_persona(persona), Caller(kind="ai", username="x", persona=persona, on_behalf_of=1,
                                                       accreditation=4)):
            decision = gate.decide("L4", caller, POLICY, confidence=confidence)
            assert decision.outcome == gate.DEFERRED and not decision.runs_now


def test_out_of_range_confidence_never_passes_l1():
    for confidence in (1.5, 80.0, math.inf, math.nan, -1.0):
        assert gate.decide("L1", WIBOT_FOR_ADMIN, POLICY, confidence=confidence).outcome == gate.APPROVAL


def test_approval_needs_the_accreditation_of_the_level():
    assert gate.may_approve("L3", human(3), POLICY)[0]
    assert not gate.may_approve("L3", human(2), POLICY)[0]
    assert not gate.may_approve("L4", human(3), POLICY)[0]
    assert not gate.may_approve("L3", WIBOT_FOR_ADMIN, POLICY)[0]
