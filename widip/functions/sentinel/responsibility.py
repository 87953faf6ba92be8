"""Responsibility from evidence: the rules of policy/sentinel_rules.toml applied to an incident's signals.

Ops read and extend the rules without touching code; the first rule whose `when` signals are all true
and whose `unless` signals are all false decides responsibility, severity, summary and actions. The
diagnosis lists the evidence with its source ("[phibee] ligne … : synchronisation down"). The same
function concludes for the rules provider, and decides when the model's answer is invalid or late.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from widip.config import PROJECT_ROOT
from widip.errors import ConfigError

RULES_FILE = "sentinel_rules.toml"
RESPONSIBILITIES = ("WIDIP", "CLIENT", "OPERATEUR", "INCONNU")
SEVERITIES = ("critique", "majeure", "mineure")
#: This many devices, or two sites, down together is critical whatever the rule says.
CRITICAL_DEVICES, CRITICAL_SITES = 5, 2


@dataclass(frozen=True)
class Rule:
    name: str
    when: tuple[str, ...]
    unless: tuple[str, ...]
    responsibility: str
    severity: str
    summary: str
    actions: tuple[str, ...]

    def matches(self, signals: dict) -> bool:
        return all(signals.get(s) for s in self.when) and not any(signals.get(s) for s in self.unless)


@lru_cache(maxsize=4)
def load_rules(policy_dir: Path = PROJECT_ROOT / "policy") -> tuple[Rule, ...]:
    """The rules file, read once per process; ConfigError naming the bad rule."""
    data = tomllib.loads((Path(policy_dir) / RULES_FILE).read_text(encoding="utf-8"))
    rules = []
    for index, raw in enumerate(data.get("rule", []), start=1):
        name = raw.get("name") or f"rule {index}"
        if raw.get("responsibility") not in RESPONSIBILITIES or raw.get("severity") not in SEVERITIES:
            raise ConfigError(f"{RULES_FILE}: {name}: responsibility or severity is not one of the allowed values")
        rules.append(Rule(name, tuple(raw.get("when", ())), tuple(raw.get("unless", ())), raw["responsibility"],
                          raw["severity"], str(raw.get("summary") or name), tuple(raw.get("actions") or ())))
    if not rules or rules[-1].when:
        raise ConfigError(f"{RULES_FILE}: the last rule must have no `when` (it decides when nothing else does)")
    return tuple(rules)


def decide(facts: dict, rules: tuple[Rule, ...] | None = None) -> dict:
    """The diagnosis (diagnosis.SCHEMA, plus `rule`) for the facts block of diagnosis.facts_message."""
    rules = rules or load_rules()
    evidence = facts.get("evidence") or {}
    signals = evidence.get("signals") or {}
    rule = next(r for r in rules if r.matches(signals))
    context = _context(facts, evidence)
    severity = rule.severity
    if rule.responsibility != "INCONNU" and (context["count"] >= CRITICAL_DEVICES
                                             or context["site_count"] >= CRITICAL_SITES):
        severity = "critique"
    lines = [f"[{f['source']}] {f['fact']}" for f in (evidence.get("facts") or [])][:25]
    if rule.responsibility == "INCONNU":
        lines.append("[manquant] " + context["missing"])
    return {"responsibility": rule.responsibility, "severity": severity,
            "summary": rule.summary.format_map(_Blank(context))[:4000],
            "evidence": [line[:2000] for line in lines] or ["aucun fait recueilli"],
            "recommended_actions": list(rule.actions) or ["Vérifier l'équipement dans Observium."],
            "rule": rule.name}


def _context(facts: dict, evidence: dict) -> dict:
    devices = facts.get("devices") or []
    sites = [s for s in facts.get("sites") or [facts.get("site")] if s]
    operators = (evidence.get("signals") or {}).get("operators") or [facts.get("operator")]
    names = ", ".join(d.get("hostname", "?") for d in devices[:8]) + (" …" if len(devices) > 8 else "")
    count = int(facts.get("device_count") or len(devices) or 1)
    return {"site": sites[0] if sites else "site inconnu", "sites": ", ".join(sites[:6]) or "site inconnu",
            "site_count": len(sites), "client": facts.get("client") or "le client", "count": count,
            "names": names or "?", "operator": next((o for o in operators if o), None) or "l'opérateur",
            "client_works": (evidence.get("signals") or {}).get("client_works") or "",
            "widip_change": (evidence.get("signals") or {}).get("widip_change") or "",
            "port_down": (evidence.get("signals") or {}).get("neighbour_port_down") or "",
            "missing": "; ".join(evidence.get("missing") or []) or "aucun indice décisif (ni ligne, ni capteur, "
                                                                   "ni ticket)"}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""
