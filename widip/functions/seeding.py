"""Data every deployment needs after migrating: the SAFEGUARD levels from policy/ (idempotent)."""

from __future__ import annotations

from pathlib import Path

from psycopg import Connection

from widip.functions.safeguard.policy import load_policy, seed_config
from widip.functions.tools import all_tools


def seed(conn: Connection, policy_dir: Path) -> dict:
    """Insert what is missing; never overwrite what ops changed through the API."""
    inserted = seed_config(conn, load_policy(policy_dir), [t.name for t in all_tools()])
    return {"safeguard_levels_added": inserted}


def seed_demo_inventory(conn: Connection) -> dict:
    """The demo's estate (every simulated device mapped to its site, client, GLPI entity and line)."""
    from widip.config import PROJECT_ROOT
    from widip.functions.sentinel import inventory

    return inventory.import_csv(conn, PROJECT_ROOT / "simulators" / "demo_inventory.csv", source="demo")
