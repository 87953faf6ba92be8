"""The facts a diagnosis stands on, gathered once per incident within its time budget.

For an incident: the estate of its devices (inventory), then — each read proposed as the Sentinel
through SAFEGUARD by `read(tool, arguments)`, so it is gated, audited and linked to the incident —
Phibee's status of every line of the incident's sites and its collective incidents there, Observium's
view of the first device (status type: ping vs SNMP) and of every device down now (the rest of the
site, other sites of the same operator), the sensors of the site's UPS and probes (a mains input or
battery sensor in alarm, a technical-room temperature), the ports of the site's devices that still
answer (a LAN link that dropped with the incident), and GLPI's recent activity — open tickets and
changes — of the client's entity (announced works) and of WIDIP's own (a change, a firmware or
configuration push naming the client, a site or a device).

Each fact is kept with its source ({"source", "fact"}); `signals` are the yes/no findings the
responsibility rules (policy/sentinel_rules.toml) read; `missing` says what could not be known, so an
INCONNU diagnosis can say what would have decided it. Reads stop when the deadline is near.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

#: GLPI tickets and changes updated this recently count as "announced works" or "a recent WIDIP change".
GLPI_WINDOW_DAYS = 3
MAX_LINES, MAX_SITES = 8, 4
#: Sensors are read on at most this many UPS/probe devices, ports on at most this many neighbours.
MAX_SENSOR_DEVICES, MAX_PORT_DEVICES = 3, 2
#: A port that went down this long before the incident opened is part of it (older ones are unused ports).
PORT_CHANGE_WINDOW = timedelta(minutes=30)
#: A read is not started with less than this left of the budget (the model still needs time).
READ_MARGIN_SECONDS = 2.0
_WORKS = re.compile(r"travaux|coupure (?:électrique|de courant|d'électricité)|intervention|électricien|"
                    r"maintenance|déménagement|onduleur", re.IGNORECASE)
_CHANGE = re.compile(r"changement|mise à jour|firmware|configuration|migration|déploiement|upgrade",
                     re.IGNORECASE)
_UPS = re.compile(r"batter|onduleur|\bups\b|on ?battery|power ?source", re.IGNORECASE)
_TEMPERATURE = re.compile(r"temp[eé]rature|\btemp\b|humidit|climatisation", re.IGNORECASE)
_OWN_TICKET = re.compile(r"\bALT-\d{8}-[0-9A-F]{10}\b")
_MAINS = re.compile(r"entr[ée]e|input|secteur|mains|utility|batter|onduleur|\bups\b", re.IGNORECASE)
_WAN = re.compile(r"\bwan\d*\b|ftth|fibre|[as]dsl|vdsl|phibee|orange|op[ée]rateur", re.IGNORECASE)
_STATUS_TYPES = {"ping": "ne répond plus au ping", "snmp": "répond au ping mais plus en SNMP",
                 "dns": "nom DNS non résolu"}


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
    _sensors(read, ev, members, mapped, down, deadline)
    _ports(read, ev, incident, members, mapped, down, deadline)
    _glpi(read, ev, members, mapped, sites, clients, deadline, widip_entity)
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
            reason = device.get("status_reason")
            ev.add("observium", f"{device.get('hostname')} : {device.get('status')}"
                   + (f" (status_type {reason} : {_STATUS_TYPES[reason]})" if reason in _STATUS_TYPES
                      else f" ({reason})" if reason else "")
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


def _sensors(read, ev: Evidence, members: list[dict], mapped: list[dict], down: set[str], deadline: float) -> None:
    """Sensors of the site's UPS and probes: a mains/battery sensor or a temperature in alarm is a site-side cause."""
    ev.signals["power_sensor_alarm"], ev.signals["temperature_sensor_alarm"] = None, None
    wanted = [m["hostname"] for m in members if m.get("role") in ("ups", "sensor")]
    wanted += [d["hostname"] for row in mapped for d in row.get("site_devices") or ()
               if d.get("role") in ("ups", "sensor") and d["hostname"].lower() not in down]
    for hostname, sensors in _per_device(read, ev, "observium_get_device_sensors", "capteurs",
                                         _ordered(wanted)[:MAX_SENSOR_DEVICES], deadline):
        for sensor in (x for x in sensors if isinstance(x, dict) and x.get("in_alarm")):
            kind, descr = str(sensor.get("sensor_class") or ""), str(sensor.get("description") or "")
            value = f"{sensor.get('value')} {sensor.get('unit') or ''}".strip()
            limits = ", ".join(f"{name} {sensor[key]}" for name, key in (("seuil bas", "limit_low"),
                                                                          ("seuil haut", "limit_high")) if sensor.get(key) is not None)
            text = f"{hostname} : capteur {kind} « {descr} » en alarme à {value}" + (f" ({limits})" if limits else "")
            if kind in ("temperature", "humidity"):
                ev.signals["temperature_sensor_alarm"] = ev.signals["temperature_sensor_alarm"] or text
            elif kind in ("runtime", "capacity") or _MAINS.search(descr):
                ev.signals["power_sensor_alarm"] = ev.signals["power_sensor_alarm"] or text
            ev.add("observium", text + ".")


def _ports(read, ev: Evidence, incident: dict, members: list[dict], mapped: list[dict], down: set[str],
           deadline: float) -> None:
    """Ports of the site's devices that still answer: a LAN link that dropped with the incident points inside
    the establishment (the access carrying that device works); a WAN port down is recorded as a fact."""
    ev.signals["neighbour_port_down"], ev.signals["wan_port_down"] = None, None
    in_incident = {m["hostname"].lower() for m in members}
    neighbours = [d["hostname"] for row in mapped for d in row.get("site_devices") or ()
                  if d.get("role") in ("access", "firewall", "switch", "core", "wifi")
                  and d["hostname"].lower() not in in_incident | down]
    opened = incident.get("opened_at")
    since = opened - PORT_CHANGE_WINDOW if isinstance(opened, datetime) else None
    for hostname, ports in _per_device(read, ev, "observium_get_device_ports", "ports",
                                       _ordered(neighbours)[:MAX_PORT_DEVICES], deadline):
        for port in (p for p in ports if isinstance(p, dict) and _dropped(p, since)):
            name = port.get("label") or port.get("name") or f"port {port.get('id')}"
            alias = port.get("alias") or port.get("description") or ""
            text = f"port {name}" + (f" ({alias})" if alias and alias != name else "") + f" de {hostname}"
            wan = bool(_WAN.search(f"{name} {alias}"))
            key = "wan_port_down" if wan else "neighbour_port_down"
            ev.signals[key] = ev.signals[key] or text
            ev.add("observium", f"{text} tombé à {port.get('last_change')} alors que {hostname} répond toujours"
                   + (" : accès principal coupé." if wan else " : lien local coupé."))


def _per_device(read, ev: Evidence, tool: str, what: str, hostnames: list[str], deadline: float):
    """(hostname, rows) of one Observium list read per device, while the budget lasts; failures go to `missing`."""
    for hostname in hostnames:
        if not _time_left(deadline):
            ev.missing.append(f"budget de temps épuisé avant les {what} Observium")
            return
        rows = read(tool, {"device": hostname})
        if isinstance(rows, list):
            yield hostname, rows
        else:
            ev.missing.append(f"{what} Observium de {hostname} indisponibles ({_error(rows)})")


def _dropped(port: dict, since: datetime | None) -> bool:
    if port.get("oper_status") not in ("down", "lowerLayerDown") or port.get("admin_status") != "up":
        return False
    if port.get("ignored") or port.get("disabled") or port.get("deleted"):
        return False
    try:
        changed = datetime.fromisoformat(str(port.get("last_change")))
    except ValueError:
        return False
    return since is None or (changed.tzinfo is not None and changed >= since)


def _glpi(read, ev: Evidence, members: list[dict], mapped: list[dict], sites: list[str], clients: list[str],
          deadline: float, widip_entity: int | None) -> None:
    """Recent GLPI activity of the client's entities and of WIDIP's: works the client announced, WIDIP changes."""
    ev.signals["client_works"], ev.signals["widip_change"] = None, None
    entities = _ordered(str(row["glpi_entity_id"]) for row in mapped if row.get("glpi_entity_id") is not None)
    searched = [(int(e), False) for e in entities if int(e) != widip_entity][:2]
    searched += [(widip_entity, True)] if widip_entity is not None else []
    if not searched:
        ev.missing.append("aucune entité GLPI connue (ni celle du client, ni celle de WIDIP)")
        return
    names = [n.lower() for n in sites + clients + [m["hostname"] for m in members] if n]
    for entity, is_widip in searched:
        if not _time_left(deadline):
            ev.missing.append("budget de temps épuisé avant la recherche GLPI")
            return
        found = read("glpi_search_recent_works", {"entity_id": entity, "days": GLPI_WINDOW_DAYS})
        if not isinstance(found, dict) or "error" in found:
            ev.missing.append(f"activité GLPI de l'entité {entity} indisponible ({_error(found)})")
            continue
        for item in [*(found.get("changes") or []), *(found.get("tickets") or [])]:
            if isinstance(item, dict):
                _glpi_item(ev, item, names, is_widip)


def _glpi_item(ev: Evidence, item: dict, names: list[str], is_widip: bool) -> None:
    text = f"{item.get('title', '')}\n{item.get('content', '')}"
    if _OWN_TICKET.search(text):
        return  # a Sentinel ticket is not evidence of its own cause
    change = item.get("itemtype") == "Change"
    label = f"{'changement' if change else 'ticket'} n° {item.get('id')} « {item.get('title')} »"
    names_us = any(name in text.lower() for name in names)
    if (change or (is_widip and _CHANGE.search(text))) and names_us and ev.signals["widip_change"] is None:
        ev.signals["widip_change"] = label
        ev.add("glpi", f"changement WIDIP récent : {label}, mis à jour le {item.get('date_mod')}.")
    elif not is_widip and not change and _WORKS.search(text) and ev.signals["client_works"] is None:
        ev.signals["client_works"] = label
        ev.add("glpi", f"travaux annoncés par le client : {label} du {item.get('date')}.")


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
    power_sensor, temperature_sensor = s.pop("power_sensor_alarm", None), s.pop("temperature_sensor_alarm", None)
    s["ups_on_battery"] = bool(_UPS.search(texts) or power_sensor) or any(m.get("role") == "ups" for m in members)
    s["temperature"] = bool(_TEMPERATURE.search(texts) or temperature_sensor) or any(
        m.get("role") == "sensor" for m in members)
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
