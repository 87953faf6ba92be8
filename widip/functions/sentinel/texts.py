"""The French texts a technician reads: GLPI ticket, team mail, ticket follow-ups."""

from __future__ import annotations

RESPONSIBILITY_LABELS = {"WIDIP": "WIDIP (infrastructure hébergeur)", "CLIENT": "client (site ou équipement local)",
                         "OPERATEUR": "opérateur d'accès (Phibee)", "INCONNU": "indéterminée"}
SOURCE_LABELS = {"llm": "agent Sentinel", "cache": "diagnostic en cache (moins de 20 min)",
                 "rules": "règles automatiques (mode dégradé)", "existing": "agent Sentinel"}
URGENCY = {"critique": 5, "majeure": 4, "mineure": 3}
MAX_LISTED = 200


def who(incident: dict) -> str:
    return incident["client"] or incident["site"] or incident["primary_hostname"]


def device_line(member: dict) -> str:
    parts = [member["hostname"] + (f" ({member['ip_address']})" if member["ip_address"] else "")]
    if member["site"]:
        parts.append(member["site"])
    if member["condition"] and member["condition"] != "-":
        parts.append(member["condition"][:300])
    return "- " + " — ".join(parts)


def devices_block(members: list[dict]) -> str:
    lines = [device_line(m) for m in members[:MAX_LISTED]]
    if len(members) > MAX_LISTED:
        lines.append(f"- … et {len(members) - MAX_LISTED} autre(s)")
    return "\n".join(lines)


def ticket_title(incident: dict, members: list[dict], diagnosis: dict) -> str:
    count = len(members)
    what = f"{members[0]['hostname']} injoignable" if count == 1 else f"{count} équipements injoignables"
    kind = "Instabilité" if incident["kind"] == "flapping" else diagnosis["severity"].capitalize()
    return f"[Sentinel] {kind} – {who(incident)} : {what}"[:250]


def ticket_body(incident: dict, members: list[dict], diagnosis: dict, source: str | None) -> str:
    lines = [f"Incident {incident['tracking_id']} détecté par Sentinel (supervision Observium).", "",
             f"Diagnostic : {diagnosis['summary']}",
             f"Responsabilité : {RESPONSIBILITY_LABELS.get(diagnosis['responsibility'], diagnosis['responsibility'])}",
             f"Sévérité : {diagnosis['severity']}", ""]
    if diagnosis["evidence"]:
        lines += ["Constats :"] + [f"- {e}" for e in diagnosis["evidence"]] + [""]
    if diagnosis["recommended_actions"]:
        lines += ["Actions recommandées :"] + [f"- {a}" for a in diagnosis["recommended_actions"]] + [""]
    lines += [f"Équipements concernés ({len(members)}) :", devices_block(members), ""]
    sites = list(dict.fromkeys(m["site"] for m in members if m["site"]))
    if len(sites) > 1:
        lines.append(f"Sites ({len(sites)}) : " + ", ".join(sites[:20]) + (" …" if len(sites) > 20 else ""))
    if incident["site"] or incident["client"]:
        lines.append(f"Site : {incident['site'] or '-'} — client : {incident['client'] or '-'}")
    lines.append(f"Origine du diagnostic : {SOURCE_LABELS.get(source or 'llm', source)}.")
    return "\n".join(lines)


def mail_subject(incident: dict, diagnosis: dict) -> str:
    return (f"[WIDIP Sentinel] {diagnosis['severity'].capitalize()} – {who(incident)} – "
            f"incident {incident['tracking_id']}")[:240]


def mail_body(incident: dict, members: list[dict], diagnosis: dict, *, ticket_id: int | None, pending: str | None) -> str:
    if ticket_id:
        ticket = f"Ticket GLPI : n° {ticket_id}."
    elif pending == "glpi_down":
        ticket = ("Ticket GLPI : en attente — GLPI est indisponible (mode dégradé). Le ticket sera créé "
                  "automatiquement dès le retour de GLPI.")
    elif pending == "approval":
        ticket = "Ticket GLPI : en attente de validation SAFEGUARD."
    elif pending == "failed":
        ticket = "Ticket GLPI : la création automatique a échoué — merci de créer le ticket manuellement."
    else:
        ticket = "Ticket GLPI : en cours de création."
    return "\n".join([
        "Bonjour,", "",
        f"Sentinel a détecté un incident ({incident['tracking_id']}) : {len(members)} équipement(s) injoignable(s)"
        + (f" chez {who(incident)}" if incident["client"] or incident["site"] else "") + ".", "",
        f"Diagnostic : {diagnosis['summary']}",
        f"Responsabilité : {RESPONSIBILITY_LABELS.get(diagnosis['responsibility'], diagnosis['responsibility'])}",
        f"Sévérité : {diagnosis['severity']}", "", ticket, "",
        "Équipements :", devices_block(members[:30]) + (f"\n- … ({len(members) - 30} de plus)" if len(members) > 30 else ""),
        "", "Actions recommandées :", *[f"- {a}" for a in diagnosis["recommended_actions"]], "",
        "— WIBOT Sentinel"])


def additions_followup(members: list[dict]) -> str:
    return (f"{len(members)} équipement(s) supplémentaire(s) rattaché(s) à cet incident (même site, client ou "
            "opérateur, dans la fenêtre de corrélation) :\n" + devices_block(members))


def flapping_followup(incident: dict) -> str:
    return ("Instabilité détectée : l'équipement alterne coupures et rétablissements. L'incident reste ouvert "
            "sous ce ticket ; les rétablissements suivants ne donnent pas lieu à un nouveau ticket.")


def recovery_followup(incident: dict, members: list[dict]) -> str:
    return (f"Rétablissement : tous les équipements de l'incident {incident['tracking_id']} répondent de nouveau "
            f"({len(members)} équipement(s)). Vérifiez la cause avant de résoudre le ticket.")


def alert_mail_details(device: dict, minutes: int) -> str:
    return (f"L'équipement {device['hostname']}"
            + (f" ({device['site']})" if device.get("site") else "")
            + f" est injoignable depuis {minutes} minutes d'après Observium"
            + (f" (cause : {device['status_reason']})" if device.get("status_reason") else "") + ".")
