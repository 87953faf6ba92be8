"""French mail templates: plain functions returning (subject, body) as plain text.

Each template only formats; it never sends and never decides who receives it (that is
`widip.functions.integrations.mail.MailClient`, with its recipient allowlist). One-line values (device names,
tool names, people) are flattened to a single line so nothing from an alert payload or a model can
smuggle a header through the subject. Bodies are plain text; the client escapes them if sent as
HTML. The Sentinel incident mail is written by `widip/functions/sentinel/texts.py`.
"""

from __future__ import annotations

from typing import Mapping

SIGNATURE = "--\nWIDIP Automatisation\nCe message a été envoyé automatiquement, merci de ne pas y répondre directement."

def _line(value: object, limit: int = 120) -> str:
    """One printable line: CR/LF/tabs become spaces, long values are cut (subjects stay short)."""
    text = " ".join(str(value if value is not None else "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _details(details: str | Mapping[str, object] | None) -> str:
    if not details:
        return "Aucun détail supplémentaire."
    if isinstance(details, Mapping):
        return "\n".join(f"- {_line(key, 60)} : {_line(value, 300)}" for key, value in details.items())
    return str(details).strip()


def _body(*paragraphs: str) -> str:
    return "\n\n".join(p for p in paragraphs if p) + "\n\n" + SIGNATURE + "\n"


def device_down_alert(device: str, duration_minutes: int,
                      details: str | Mapping[str, object] | None = None) -> tuple[str, str]:
    """Alert for a device that has been unreachable for `duration_minutes` (Sentinel, seed threshold 20 min)."""
    device, minutes = _line(device, 80), int(duration_minutes)
    subject = f"[WIDIP] Alerte : équipement {device} injoignable depuis {minutes} min"
    body = _body(
        "Bonjour,",
        f"L'équipement {device} est injoignable depuis {minutes} minutes.",
        "Détails :\n" + _details(details),
        "Merci de vérifier l'équipement et la liaison du site concerné.",
    )
    return subject, body


def glpi_down_alert(*, failures: int | None = None, last_error: str | None = None,
                    since: str | None = None) -> tuple[str, str]:
    """Alert sent once (de-duplicated 5 min) when the GLPI health check finds GLPI down."""
    facts = []
    if since:
        facts.append(f"- Indisponible depuis : {_line(since)}")
    if failures is not None:
        facts.append(f"- Échecs consécutifs du contrôle de santé : {int(failures)}")
    if last_error:
        facts.append(f"- Dernière erreur : {_line(last_error, 300)}")
    body = _body(
        "Bonjour,",
        "Le contrôle de santé ne parvient plus à joindre GLPI.",
        "\n".join(facts),
        "Pendant l'indisponibilité, la création et la mise à jour des tickets sont suspendues ; "
        "les actions en attente seront rejouées automatiquement au rétablissement.",
    )
    return "[WIDIP] Alerte : GLPI indisponible", body


def glpi_recovery_alert(*, down_minutes: int | None = None) -> tuple[str, str]:
    """Recovery notice sent when GLPI answers again after a down alert."""
    duration = f" après environ {int(down_minutes)} minutes d'indisponibilité" if down_minutes is not None else ""
    body = _body(
        "Bonjour,",
        f"GLPI répond de nouveau normalement{duration}.",
        "Les tickets et mises à jour mis en attente pendant l'incident vont être traités automatiquement.",
    )
    return "[WIDIP] Rétablissement : GLPI de nouveau disponible", body


def action_executed_notice(*, tool: str, level: str, call_id: str, requested_by: str, outcome: str,
                           reason: str) -> tuple[str, str]:
    """Notification to approvers that an L2 action ran (it runs first, humans are told after)."""
    tool, level = _line(tool, 80), _line(level, 10)
    body = _body(
        "Bonjour,",
        "Une action de niveau L2 a été exécutée automatiquement ; elle vous est signalée pour contrôle.",
        f"- Outil : {tool}\n- Niveau : {level}\n- Appel : {_line(call_id, 80)}\n"
        f"- Demandée par : {_line(requested_by, 120)}\n- Résultat : {_line(outcome, 40)}",
        "Motif :\n" + str(reason).strip(),
        "Le détail figure dans le journal SAFEGUARD.",
    )
    return f"[WIDIP] Action exécutée : {tool} ({level})", body
