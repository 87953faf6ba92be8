"""The Sentinel rules playbook: a deterministic diagnosis when no LLM is configured, reachable or valid.

Registered on the rules provider for persona "sentinel" (docs/architecture.md). The evidence a careful
technician would look at (inventory, Phibee lines and incidents, Observium, GLPI) is gathered before
the session starts and written in the JSON block of the first user message (`diagnosis.facts_message`);
the playbook reads it as data only and applies the responsibility rules of policy/sentinel_rules.toml
(`responsibility.decide`). `conclude()` is also the last resort of the agent loop when the model's
answer stays invalid after one retry, comes too late, or is unsure.
"""

from __future__ import annotations

import json
import re
from typing import Sequence

from widip.functions.llm.base import Completion, Message
from widip.functions.llm.rules import answer
from widip.functions.sentinel.responsibility import decide

_FACTS = re.compile(r"```json\s*(\{.*?\})\s*```", re.DOTALL)


def facts_from(messages: Sequence[Message]) -> dict:
    for message in messages:
        if message.role == "user":
            match = _FACTS.search(message.content or "")
            if match:
                try:
                    return json.loads(match.group(1))
                except ValueError:
                    return {}
    return {}


def sentinel_playbook(messages: Sequence[Message], offered: set[str], json_schema: dict | None) -> Completion:
    """The evidence is already in the first message (diagnosis.collect): conclude by the rules."""
    return answer(json.dumps(conclude(facts_from(messages)), ensure_ascii=False))


def conclude(facts: dict) -> dict:
    """The diagnosis (diagnosis.SCHEMA) the responsibility rules draw from the facts block."""
    return decide(facts)

