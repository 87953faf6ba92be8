"""The Sentinel rules playbook: a deterministic diagnosis when no LLM is configured, reachable or valid.

Registered on the rules provider for persona "sentinel" (docs/architecture.md), it behaves like a careful
technician with the same read-only tools as the model: look at the device in Observium, the access
line at Phibee when the device description names one, the operator's incidents on the site; then
conclude. It reads the facts from the JSON block of the first user message (written by
`diagnosis.facts_message`) and tool results as data only. `conclude()` is also the last resort of
the agent loop when the model's answer stays invalid after one retry.
"""

from __future__ import annotations

import json
import re
from typing import Sequence

from widip.functions.llm.base import Completion, Message
from widip.functions.llm.rules import answer, call

_FACTS = re.compile(r"```json\s*(\{.*?\})\s*```", re.DOTALL)
WIDIP_CLIENTS = ("widip", "widip core")


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


def tool_results(messages: Sequence[Message]) -> dict[str, object]:
    """The latest result of each tool in the transcript (errors included, as {"error": …})."""
    out: dict[str, object] = {}
    for message in messages:
        if message.role == "tool" and message.name:
            try:
                out[message.name] = json.loads(message.content)
            except ValueError:
                out[message.name] = {"error": message.content}
    return out


def sentinel_playbook(messages: Sequence[Message], offered: set[str], json_schema: dict | None) -> Completion:
    """One read per turn (device, line, site incidents), then the JSON diagnosis."""
    facts = facts_from(messages)
    done = tool_results(messages)
    devices = facts.get("devices") or [{}]
    primary = devices[0]
    device_ref = primary.get("device_id") or primary.get("hostname")
    if device_ref and "observium_get_device" in offered and "observium_get_device" not in done:
        ref = int(device_ref) if str(device_ref).isdigit() else str(device_ref)
        return call("observium_get_device", {"device": ref}, None)
    line = primary.get("line_reference")
    if line and "phibee_get_line_status" in offered and "phibee_get_line_status" not in done:
        return call("phibee_get_line_status", {"reference": line}, None)
    site = facts.get("site") or primary.get("site")
    if site and (line or facts.get("operator")) and "phibee_list_site_incidents" in offered \
            and "phibee_list_site_incidents" not in done:
        return call("phibee_list_site_incidents", {"site": site}, None)
    return answer(json.dumps(conclude(facts, done), ensure_ascii=False))


def conclude(facts: dict, results: dict) -> dict:
    """The diagnosis from facts and whatever tool results were gathered (schema of diagnosis.SCHEMA)."""
    devices = facts.get("devices") or [{}]
    primary = devices[0]
    count = len(devices)
    names = ", ".join(d.get("hostname", "?") for d in devices[:10]) + (" …" if count > 10 else "")
    device = _ok(results.get("observium_get_device"))
    line = _ok(results.get("phibee_get_line_status"))
    incidents = results.get("phibee_list_site_incidents")
    incidents = [i for i in incidents if isinstance(i, dict)] if isinstance(incidents, list) else []
    client = (device or {}).get("client") or facts.get("client") or primary.get("client")
    site = facts.get("site") or primary.get("site") or "site inconnu"
    status_type = (device or {}).get("status_reason") or primary.get("status_type")
    evidence = [f"{count} équipement(s) injoignable(s) : {names}."]
    if device:
        evidence.append(f"Observium : {device.get('hostname')} est {'en panne' if device.get('status') == 'down' else 'joignable'}"
                        + (f" ({status_type})" if status_type else "") + ".")
    if line:
        evidence.append(f"Ligne Phibee {line.get('reference')} : synchronisation {line.get('sync_status')}, "
                        f"état {line.get('oper_status')}.")
    for incident in incidents[:3]:
        evidence.append(f"Incident opérateur {incident.get('reference')} : {incident.get('title')} ({incident.get('status')}).")
    many = count >= 5
    if incidents or (line and line.get("operator_incident")):
        title = incidents[0].get("title") if incidents else line.get("incident_ref")
        return _diag("OPERATEUR", "critique",
                     f"Incident opérateur Phibee en cours sur {site} ({title}) : {count} équipement(s) injoignable(s).",
                     evidence, ["Suivre l'incident opérateur jusqu'au rétablissement.",
                                "Vérifier la bascule sur le lien de secours du site.",
                                "Prévenir l'établissement de la coupure et de son origine."])
    if line and (line.get("sync_status") == "down" or line.get("oper_status") == "down"):
        return _diag("OPERATEUR", "critique" if many else "majeure",
                     f"La ligne opérateur {line.get('reference')} n'est plus synchronisée : coupure d'accès sur {site}.",
                     evidence, ["Ouvrir un ticket auprès de Phibee avec la référence de ligne.",
                                "Vérifier la bascule sur le lien de secours du site."])
    if (client or "").lower() in WIDIP_CLIENTS or (facts.get("client") or "").lower().startswith("widip"):
        return _diag("WIDIP", "critique", f"Équipement de l'infrastructure WIDIP injoignable : {names}.",
                     evidence, ["Intervention immédiate de l'astreinte WIDIP.",
                                "Vérifier les équipements voisins et la redondance."])
    if status_type == "snmp":
        return _diag("WIDIP", "mineure", f"{primary.get('hostname')} répond au ping mais plus en SNMP : "
                     "la supervision est à vérifier, le service n'est probablement pas interrompu.",
                     evidence, ["Vérifier la configuration SNMP et les ACL de supervision."])
    if line and line.get("sync_status") == "up":
        return _diag("CLIENT", "critique" if many else "majeure",
                     f"La ligne opérateur est synchronisée mais {primary.get('hostname')} ne répond plus : "
                     f"panne locale probable chez {client or 'le client'} (alimentation, équipement).",
                     evidence, ["Contacter l'établissement pour vérifier l'alimentation et l'équipement.",
                                "Planifier une intervention sur site si nécessaire."])
    return _diag("INCONNU", "critique" if many else ("majeure" if primary.get("device_type") in
                                                    ("network", "firewall", None) else "mineure"),
                 f"{count} équipement(s) injoignable(s) sur {site} ; cause non déterminée automatiquement.",
                 evidence, ["Vérifier l'équipement et ses voisins dans Observium.",
                            "Contacter l'établissement si la coupure persiste."])


def _ok(result) -> dict | None:
    return result if isinstance(result, dict) and "error" not in result else None


def _diag(responsibility: str, severity: str, summary: str, evidence: list[str], actions: list[str]) -> dict:
    return {"responsibility": responsibility, "severity": severity, "summary": summary,
            "evidence": evidence, "recommended_actions": actions}

