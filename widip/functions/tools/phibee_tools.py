"""Phibee (operator line) tools: line status, line tests, operator incidents."""

from __future__ import annotations

from widip.functions.tools.registry import Tool, obj

REFERENCE = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_\-]{2,63}$",
             "description": "référence de ligne opérateur, ex. FTTH-LYON-00123"}

TOOLS = [
    Tool("phibee_get_line_status", "phibee",
         "État de synchronisation d'une ligne opérateur (débits, atténuation, dernière resynchro, incident). "
         "Operator line sync state.",
         obj({"reference": REFERENCE}, ("reference",)),
         lambda c, a, ctx: c.phibee.get_line_status(a["reference"]), read_only=True),
    Tool("phibee_run_line_test", "phibee",
         "Lance un test de ligne côté opérateur et attend le verdict (peut couper la ligne quelques secondes). "
         "Runs an operator line test (may briefly disturb the line).",
         obj({"reference": REFERENCE, "max_wait_seconds": {"type": "integer", "minimum": 1, "maximum": 60}},
             ("reference",)),
         lambda c, a, ctx: c.phibee.run_line_test(a["reference"], max_wait=a.get("max_wait_seconds", 15))),
    Tool("phibee_list_site_incidents", "phibee",
         "Incidents opérateur en cours sur un site ou une zone. Operator incidents affecting a site.",
         obj({"site": {"type": "string", "minLength": 2, "maxLength": 120},
              "status": {"enum": ["open", "cleared", "all"]}}, ("site",)),
         lambda c, a, ctx: c.phibee.list_site_incidents(a["site"], status=a.get("status", "open")), read_only=True),
]
