"""French mail templates: plain functions returning (subject, body) as plain text.

Each template only formats; it never sends and never decides who receives it (that is
`widip.functions.integrations.mail.MailClient`, with its recipient allowlist). One-line values (device names,
tool names, people) are flattened to a single line so nothing from an alert payload or a model can
smuggle a header through the subject. Bodies are plain text; the client escapes them if sent as
HTML. No template ever takes a password: the reset mail carries a one-time link only.
"""

from __future__ import annotations

from typing import Iterable, Mapping

SIGNATURE = "--\nWIDIP Automatisation\nCe message a été envoyé automatiquement, merci de ne pas y répondre directement."

#: The line used when a ticket could not be created because GLPI is down (the outbox will retry).
TICKET_PENDING = "ticket en attente (GLPI indisponible)"


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


def _bullets(items: Iterable[str] | str | None) -> str:
    if not items:
        return "- Aucune action recommandée."
    if isinstance(items, str):
        items = [items]
    return "\n".join(f"- {_line(item, 300)}" for item in items)


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


def incident_notification(device: str, *, responsabilite: str, severite: str, resume: str,
                          actions: Iterable[str] | str | None = None,
                          ticket_id: int | str | None = None) -> tuple[str, str]:
    """Team notification of a Sentinel diagnosis; `ticket_id` None means GLPI was down (ticket pending)."""
    device, severite = _line(device, 80), _line(severite, 20)
    ticket = f"ticket GLPI n° {_line(ticket_id, 20)}" if ticket_id not in (None, "") else TICKET_PENDING
    subject = f"[WIDIP] Incident {severite} : {device}"
    body = _body(
        "Bonjour,",
        f"Un incident a été diagnostiqué sur l'équipement {device}.",
        f"- Responsabilité : {_line(responsabilite, 80)}\n- Sévérité : {severite}\n- Suivi : {ticket}",
        "Résumé :\n" + str(resume).strip(),
        "Actions recommandées :\n" + _bullets(actions),
    )
    return subject, body


def password_reset_link(display_name: str, link: str, expires_minutes: int) -> tuple[str, str]:
    """Mail to the verified requester with a one-time link to the temporary password (never the password)."""
    body = _body(
        f"Bonjour {_line(display_name, 80)},",
        "Suite à votre demande, le mot de passe de votre compte a été réinitialisé.",
        f"Votre mot de passe temporaire est consultable une seule fois via ce lien :\n{_line(link, 500)}",
        f"Ce lien expire dans {int(expires_minutes)} minutes et ne peut être ouvert qu'une fois. "
        "Ce mot de passe est temporaire : changez-le à la première connexion.",
        "Si vous n'êtes pas à l'origine de cette demande, contactez immédiatement le support WIDIP.",
    )
    return "[WIDIP] Réinitialisation de votre mot de passe", body


def account_unlock_confirmation(display_name: str, username: str) -> tuple[str, str]:
    """Confirmation to the requester that their locked account was unlocked (password unchanged)."""
    body = _body(
        f"Bonjour {_line(display_name, 80)},",
        f"Votre compte {_line(username, 80)} a été déverrouillé. "
        "Vous pouvez de nouveau vous connecter avec votre mot de passe habituel.",
        "Si le blocage se reproduit, ou si vous n'êtes pas à l'origine de cette demande, "
        "contactez le support WIDIP.",
    )
    return "[WIDIP] Votre compte a été déverrouillé", body


def approval_needed(*, tool: str, level: str, request_id: str, requested_by: str, reason: str,
                    link: str | None = None) -> tuple[str, str]:
    """Notification to approvers that a SAFEGUARD request waits for a human decision."""
    tool, level = _line(tool, 80), _line(level, 10)
    body = _body(
        "Bonjour,",
        "Une action demande votre validation avant exécution.",
        f"- Outil : {tool}\n- Niveau : {level}\n- Demande n° : {_line(request_id, 80)}\n"
        f"- Demandée par : {_line(requested_by, 120)}",
        "Motif :\n" + str(reason).strip(),
        f"Pour approuver ou refuser : {_line(link, 500)}" if link else "",
        "Sans décision, la demande expirera automatiquement.",
    )
    return f"[WIDIP] Validation requise : {tool} ({level})", body


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
