"""The facts a diagnosis stands on, gathered once per incident within its time budget.

For an incident: the estate of its devices (inventory), then — each read proposed as the Sentinel
through SAFEGUARD by `read(tool, arguments)`, so it is gated, audited and linked to the incident —
Phibee's status of every line of the incident's sites and its collective incidents there, Observium's
view of the first device (ping vs SNMP) and of every device down now (the rest of the site, other
sites of the same operator), and GLPI's recent New tickets of the client's entity (announced works)
and of WIDIP's own (a change, a firmware or configuration push naming the client, a site or a device).

Each fact is kept with its source ({"source", "fact"}); `signals` are the yes/no findings the
responsibility rules (policy/sentinel_rules.toml) read; `missing` says what could not be known, so an
INCONNU diagnosis can say what would have decided it. Reads stop when the deadline is near.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

#: New GLPI tickets younger than this count as "announced works" or "a recent WIDIP change".
GLPI_WINDOW_MINUTES = 3 * 24 * 60
MAX_LINES, MAX_SITES = 8, 4
#: A read is not started with less than this left of the budget (the model still needs time).
READ_MARGIN_SECONDS = 2.0
_WORKS = re.compile(r"travaux|coupure (?:électrique|de courant|d'électricité)|intervention|électricien|"
                    r"maintenance|déménagement|onduleur", re.IGNORECASE)
_CHANGE = re.compile(r"changement|mise à jour|firmware|configuration|migration|déploiement|upgrade",
                     re.IGNORECASE)
_UPS = re.compile(r"batter|onduleur|\bups\b|on ?battery|power ?source", re.IGNORECASE)
_TEMPERATURE = re.compile(r"temp[eé]rature|\btemp\b|humidit|climatisation", re.IGNORECASE)
_OWN_TICKET = re.compile(r"\bALT-\d{8}-[0-9A-F]{10}\b")


@dataclass
class Evidence:
    facts: list[dict] = field(default_factory=list)
    signals: dict[str, object] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def add(self, source: str, fact: str) -> None:
        self.facts.append({"source": source, "fact": fact[:600]})

    def to_dict(self) -> dict:
        return {"facts": self.facts, "signals": self.signals, "missing": self.missing}


def gather(read: Callable[[str, dict], object], incident: dict, members: list[dict], estate: dict[str, dict],
           first_alert, *, deadline: float, widip_entity: int | None) -> Evidence:
    """Evidence for one incident; `estate` maps member hostnames to inventory rows (absent: unmapped)."""
    ev = Evidence()
    sites = _ordered(m["site"] for m in members)
    clients = _ordered(m["client"] for m in members)
    mapped = [estate[m["hostname"].lower()] for m in members if m["hostname"].lower() in estate]
    unmapped = [m["hostname"] for m in members if m["hostname"].lower() not in estate]
    ev.add("alertes", f"{len(members)} équipement(s) en alerte sur {len(sites)} site(s) : "
           + ", ".join(m["hostname"] for m in members[:12]) + (" …" if len(members) > 12 else "") + ".")
    if unmapped:
        ev.missing.append("équipement(s) absent(s) de l'inventaire : " + ", ".join(unmapped[:5]))
    for row in mapped[:1]:
        ev.add("inventaire", f"{row['hostname']} : {row['role']} du site {row['site']} ({row['client']}"
               + (f", {row['sub_location']}" if row.get("sub_location") else "") + ")"
               + (f", ligne {row['service_ref']} {row['operator']}" if row.get("service_ref") else "") + ".")
    lines = _site_lines(mapped, members)
    _lines(read, ev, lines, deadline)
    _operator_incidents(read, ev, lines, deadline)
    down = _observium(read, ev, incident, members, first_alert, deadline)
    _glpi(read, ev, incident, members, mapped, sites, clients, deadline, widip_entity)
    _conclude_signals(ev, members, mapped, lines, sites, down, first_alert)
    return ev


def _site_lines(mapped: list[dict], members: list[dict]) -> list[dict]:
    """Every known line of the incident's sites (inventory), else the reference the alert text named."""
    seen: dict[str, dict] = {}
    for row in mapped:
        for line in row.get("site_lines") or ():
            seen.setdefault(line["service_ref"], {**line, "site": row["site"]})
    for member in members:
        if member.get("service_ref") and member.get("operator"):
            seen.setdefault(member["service_ref"], {"service_ref": member["service_ref"], "site": member["site"],
                                                    "operator": member["operator"], "technology": None})
    return list(seen.values())[:MAX_LINES]


def _lines(read, ev: Evidence, lines: list[dict], deadline: float) -> None:
    if not lines:
        ev.missing.append("aucune ligne opérateur connue pour le(s) site(s)")
        return
    statuses = []
    for line in lines:
        if not _time_left(deadline):
            ev.missing.append("budget de temps épuisé avant l'état de toutes les lignes")
            break
        if line["operator"] != "phibee":
            ev.missing.append(f"ligne {line['service_ref']} de {line['operator']} : pas d'API opérateur")
            continue
        result = read("phibee_get_line_status", {"reference": line["service_ref"]})
        if not _ok(result):
            ev.missing.append(f"état de la ligne {line['service_ref']} indisponible (Phibee : {_error(result)})")
            continue
        statuses.append({**result, "site_inventory": line["site"]})
        ev.add("phibee", f"ligne {result.get('reference')} ({line['site']}) : synchronisation "
               f"{result.get('sync_status')}, état {result.get('oper_status')}"
               + (", session PPP coupée" if result.get("session_up") is False else "")
               + (f", incident opérateur {result.get('incident_ref')}" if result.get("operator_incident") else "")
               + ".")
    ev.signals["line_statuses"] = statuses


def _operator_incidents(read, ev: Evidence, lines: list[dict], deadline: float) -> None:
    found = []
    for site in _ordered(line["site"] for line in lines if line["operator"] == "phibee")[:MAX_SITES]:
        if not _time_left(deadline):
            ev.missing.append("budget de temps épuisé avant les incidents opérateur")
            break
        result = read("phibee_list_site_incidents", {"site": site})
        if not isinstance(result, list):
            ev.missing.append(f"incidents opérateur de {site} indisponibles (Phibee : {_error(result)})")
            continue
        for incident in result:
            if isinstance(incident, dict) and incident.get("status") == "open":
                found.append(incident)
                ev.add("phibee", f"incident collectif {incident.get('reference')} ({site}) : "
                       f"{incident.get('title')}, en cours depuis {incident.get('started_at')}.")
    ev.signals["operator_incidents"] = found


def _observium(read, ev: Evidence, incident: dict, members: list[dict], first_alert, deadline: float) -> set[str]:
    """Observium's view of the first device and the set of hostnames down now (lower-case)."""
    ref = incident.get("primary_device_id") or incident.get("primary_hostname")
    if ref and _time_left(deadline):
        device = read("observium_get_device", {"device": int(ref) if str(ref).isdigit() else str(ref)})
        if _ok(device):
            ev.signals["status_reason"] = device.get("status_reason")
            ev.add("observium", f"{device.get('hostname')} : {device.get('status')}"
                   + (f" ({device.get('status_reason')})" if device.get("status_reason") else "")
                   + (f", en panne depuis {device.get('down_since')}" if device.get("down_since") else "") + ".")
        else:
            ev.missing.append(f"état Observium de {incident.get('primary_hostname')} indisponible")
    down: set[str] = set()
    if _time_left(deadline):
        listed = read("observium_list_devices", {"status": "down"})
        if isinstance(listed, list):
            down = {str(d.get("hostname", "")).lower() for d in listed if isinstance(d, dict)}
            others = sorted(down - {m["hostname"].lower() for m in members})
            ev.signals["observium_down"] = sorted(down)
            if others:
                ev.add("observium", f"{len(down)} équipement(s) en panne dans Observium, dont hors incident : "
                       + ", ".join(others[:8]) + ".")
        else:
            ev.missing.append("liste des équipements en panne d'Observium indisponible")
    return down


def _glpi(read, ev: Evidence, incident: dict, members: list[dict], mapped: list[dict], sites: list[str],
          clients: list[str], deadline: float, widip_entity: int | None) -> None:
    entities = {row["glpi_entity_id"] for row in mapped if row.get("glpi_entity_id") is not None}
    ev.signals["client_works"], ev.signals["widip_change"] = None, None
    if not _time_left(deadline):
        ev.missing.append("budget de temps épuisé avant la recherche GLPI")
        return
    tickets = read("glpi_search_new_tickets", {"minutes_since": GLPI_WINDOW_MINUTES, "limit": 100})
    if not isinstance(tickets, list):
        ev.missing.append(f"tickets GLPI récents indisponibles ({_error(tickets)})")
        return
    names = [n.lower() for n in sites + clients + [m["hostname"] for m in members] if n]
    for ticket in tickets:
        if not isinstance(ticket, dict):
            continue
        text = f"{ticket.get('title', '')}\n{ticket.get('content', '')}"
        if _OWN_TICKET.search(text):
            continue  # a Sentinel ticket is not evidence of its own cause
        entity = ticket.get("entity_id")
        if entity in entities and _WORKS.search(text) and ev.signals["client_works"] is None:
            ev.signals["client_works"] = f"n° {ticket.get('id')} « {ticket.get('title')} »"
            ev.add("glpi", f"travaux annoncés par le client : ticket {ev.signals['client_works']} "
                   f"du {ticket.get('date')}.")
        elif (widip_entity is not None and entity == widip_entity and _CHANGE.search(text)
              and any(name in text.lower() for name in names) and ev.signals["widip_change"] is None):
            ev.signals["widip_change"] = f"n° {ticket.get('id')} « {ticket.get('title')} »"
            ev.add("glpi", f"changement WIDIP récent : ticket {ev.signals['widip_change']} du {ticket.get('date')}.")


def _conclude_signals(ev: Evidence, members: list[dict], mapped: list[dict], lines: list[dict], sites: list[str],
                      down: set[str], first_alert) -> None:
    s = ev.signals
    statuses = s.pop("line_statuses", [])
    incidents = s.pop("operator_incidents", [])
    s["operator_incident"] = bool(incidents) or any(st.get("operator_incident") for st in statuses)
    s["line_down"] = any(st.get("sync_status") == "down" or st.get("oper_status") == "down" for st in statuses)
    s["line_degraded"] = any(st.get("oper_status") == "degraded" for st in statuses)
    s["lines_up"] = bool(statuses) and len(statuses) == len([x for x in lines if x["operator"] == "phibee"]) and all(
        st.get("sync_status") == "up" and st.get("oper_status") == "up" for st in statuses)
    s["line_intact_cpe_silent"] = any(st.get("sync_status") == "up" and st.get("session_up") is False
                                      for st in statuses)
    access = [m for m in members if m.get("role") == "access" or m.get("operator")]
    operators = {m["operator"] for m in access if m.get("operator")}
    access_sites = {m["site"] for m in access if m.get("site")}
    s["multi_site_operator"] = len(operators) == 1 and len(access_sites) >= 2
    s["widip_infra"] = any(row.get("widip") for row in mapped) or any(
        (m.get("client") or "").lower().startswith("widip") for m in members)
    texts = " ".join(f"{m.get('entity')} {m.get('condition')} {m.get('role')}" for m in members)
    s["ups_on_battery"] = bool(_UPS.search(texts)) or any(m.get("role") == "ups" for m in members)
    s["temperature"] = bool(_TEMPERATURE.search(texts)) or any(m.get("role") == "sensor" for m in members)
    s["access_down"] = bool(access)
    member_names = {m["hostname"].lower() for m in members}
    site_devices = {d["hostname"].lower() for row in mapped for d in row.get("site_devices") or ()}
    s["site_all_down"] = len(sites) == 1 and len(site_devices) >= 2 and site_devices <= (member_names | down)
    s["sensor_event"] = any((m.get("entity") or "").split(":")[0] in ("sensor", "status") for m in members)
    status_type = (s.get("status_reason") or _status_type(first_alert) or "").lower()
    s["snmp_only"] = "snmp" in status_type
    s["mapped"] = len(mapped) == len(members)
    s["device_count"], s["site_count"] = len(members), len(sites)
    s["operators"] = sorted(operators)
    if s["ups_on_battery"]:
        ev.add("observium", "capteur d'alimentation : onduleur sur batterie (coupure secteur sur le site).")
    if s["temperature"]:
        ev.add("observium", "capteur de température en alerte dans le local technique.")
    if s["site_all_down"]:
        ev.add("inventaire", f"tous les équipements connus du site {sites[0]} sont injoignables.")
    if s["multi_site_operator"]:
        ev.add("inventaire", f"{len(access_sites)} sites derrière l'opérateur {sorted(operators)[0]} tombés ensemble.")


def _status_type(first_alert) -> str | None:
    uptime = str(((first_alert or {}).get("body") or {}).get("DEVICE_UPTIME") or "").lower()
    return next((kind for kind in ("ping", "snmp") if f"({kind})" in uptime), None)


def _ordered(values) -> list[str]:
    out: list[str] = []
    for value in values:
        if value and value not in out:
            out.append(value)
    return out


def _ok(result) -> bool:
    return isinstance(result, dict) and "error" not in result


def _error(result) -> str:
    return str(result.get("error"))[:200] if isinstance(result, dict) and result.get("error") else "réponse inattendue"


def _time_left(deadline: float) -> bool:
    return deadline - time.monotonic() > READ_MARGIN_SECONDS
