"""SAFEGUARD policy: tool levels (with per-persona refinements) and what humans may do per level.

`policy/safeguard.toml` seeds table `safeguard_config`; after that the table is the live source
(changed through the API, audited), so levels are read from the database at decision time.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from psycopg import Connection

from widip.errors import Invalid, NotFound

LEVELS = ("L0", "L1", "L2", "L3", "L4")


@dataclass(frozen=True)
class Policy:
    levels: dict[str, str]
    persona_levels: dict[str, dict[str, str]] = field(default_factory=dict)
    run_without_approval: dict[str, int] = field(default_factory=lambda: {"L0": 1, "L1": 1, "L2": 2, "L3": 3, "L4": 4})
    approve: dict[str, int] = field(default_factory=lambda: {"L1": 3, "L2": 3, "L3": 3, "L4": 4})
    deferred_min_hours: int = 24
    deferred_max_hours: int = 48
    l1_threshold: float = 0.80
    #: tool → {"per": argument name, "max": calls, "hours": window}
    rate_limits: dict[str, dict] = field(default_factory=dict)
    #: How long an approval request stays open (SAFEGUARD_APPROVAL_TTL_HOURS).
    approval_ttl: timedelta = timedelta(hours=24)


def policy_for(settings) -> Policy:
    """The policy this deployment runs with: its policy file plus the approval deadline from settings."""
    return load_policy(settings.policy_dir, settings.approval_ttl_hours)


@functools.lru_cache(maxsize=8)
def load_policy(policy_dir: Path, approval_ttl_hours: int = 24) -> Policy:
    """The policy file, read once per process (levels themselves are live in safeguard_config)."""
    data = tomllib.loads((policy_dir / "safeguard.toml").read_text(encoding="utf-8"))
    human = data.get("human", {})
    policy = Policy(
        levels=dict(data["levels"]),
        persona_levels={p: dict(v) for p, v in data.get("persona_levels", {}).items()},
        run_without_approval=dict(human.get("run_without_approval", Policy.__dataclass_fields__["run_without_approval"].default_factory())),
        approve=dict(human.get("approve", Policy.__dataclass_fields__["approve"].default_factory())),
        deferred_min_hours=int(human.get("deferred_min_hours", 24)),
        deferred_max_hours=int(human.get("deferred_max_hours", 48)),
        l1_threshold=float(data.get("confidence", {}).get("l1_threshold", 0.80)),
        rate_limits={tool: dict(limit) for tool, limit in data.get("rate_limits", {}).items()},
        approval_ttl=timedelta(hours=approval_ttl_hours),
    )
    for tool, level in list(policy.levels.items()) + [(t, lv) for p in policy.persona_levels.values() for t, lv in p.items()]:
        if level not in LEVELS:
            raise ValueError(f"policy/safeguard.toml: {tool} has unknown level {level!r}")
    return policy


def seed_config(conn: Connection, policy: Policy, tool_names: list[str]) -> int:
    """Insert levels missing from the live table (existing rows win: ops may have changed them).

    Every registered tool must have a default level: a tool without one is a deployment error, not
    an implicit L0.
    """
    missing = sorted(set(tool_names) - set(policy.levels))
    if missing:
        raise ValueError(f"policy/safeguard.toml has no level for: {', '.join(missing)}")
    rows = [(tool, "", level) for tool, level in policy.levels.items()]
    rows += [(tool, persona, level) for persona, levels in policy.persona_levels.items() for tool, level in levels.items()]
    inserted = 0
    for tool, persona, level in rows:
        cur = conn.execute(
            "INSERT INTO safeguard_config (tool_name, persona, level) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (tool, persona, level))
        inserted += cur.rowcount
    return inserted


def level_for(conn: Connection, tool_name: str, persona: str | None) -> str:
    """The live level of a tool for this persona (persona refinement first, then the default).

    A tool with no configured level is treated as L4: unknown means humans only.
    """
    row = conn.execute(
        "SELECT level FROM safeguard_config WHERE tool_name = %s AND persona IN (%s, '') "
        "ORDER BY persona = '' LIMIT 1", (tool_name, persona or "")).fetchone()
    return row["level"] if row else "L4"


def list_config(conn: Connection) -> list[dict]:
    return conn.execute("SELECT tool_name, persona, level, reason, updated_by, updated_at FROM safeguard_config "
                        "ORDER BY tool_name, persona").fetchall()


def set_level(conn: Connection, tool_name: str, persona: str, level: str, *, reason: str, changed_by: str) -> dict:
    """Change a live level (the caller checked N4 and writes the audit row in the same transaction)."""
    if level not in LEVELS:
        raise Invalid(f"level must be one of {', '.join(LEVELS)}")
    if not reason or not reason.strip():
        raise Invalid("a reason is required to change a SAFEGUARD level")
    old = conn.execute("SELECT level FROM safeguard_config WHERE tool_name = %s AND persona = ''",
                       (tool_name,)).fetchone()
    if old is None:
        raise NotFound(f"unknown tool {tool_name!r}")
    row = conn.execute(
        "INSERT INTO safeguard_config (tool_name, persona, level, reason, updated_by, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (tool_name, persona) DO UPDATE SET "
        "level = EXCLUDED.level, reason = EXCLUDED.reason, updated_by = EXCLUDED.updated_by, updated_at = now() "
        "RETURNING tool_name, persona, level, reason, updated_by, updated_at",
        (tool_name, persona, level, reason.strip(), changed_by)).fetchone()
    return {**row, "previous_level": old["level"]}


def over_rate_limit(conn: Connection, policy: Policy, tool_name: str, arguments: dict) -> str | None:
    """Why this call exceeds its per-target cap (policy [rate_limits]), or None."""
    limit = policy.rate_limits.get(tool_name)
    if not limit or limit["per"] not in arguments:
        return None
    count = conn.execute(
        "SELECT count(*) AS n FROM tool_calls WHERE tool_name = %s AND arguments->>%s = %s "
        "AND status IN ('ready', 'running', 'done', 'waiting_approval', 'unknown_outcome') "
        "AND created_at > now() - make_interval(hours => %s)",
        (tool_name, limit["per"], str(arguments[limit["per"]]), int(limit["hours"]))).fetchone()["n"]
    if count >= int(limit["max"]):
        return (f"{tool_name} already called {count} time(s) for {limit['per']}={arguments[limit['per']]} "
                f"in the last {limit['hours']} h (limit {limit['max']})")
    return None
