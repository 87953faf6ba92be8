"""The Assist rules playbook: the standard sequence for a ticket intake marked "auto".

The session's first message (written by the cycle, never from ticket text) names the ticket, the
category and the verified subject. Every identifier the tools receive comes from it or from tool
results; the gate (safeguard/subject.py) refuses anything else whatever proposes it.

RESET_MDP        check → reset (clears a lockout in the same write) → read back → link → mail → close
DEBLOCAGE_COMPTE check → unlock (only if really locked) → read back → mail → close
Anything unexpected (an error, a failed read-back) → one private follow-up handing the ticket over.
"""

from __future__ import annotations

import re
from typing import Sequence

from widip.functions.llm.base import Completion, Message
from widip.functions.llm.rules import answer, call, last_user_text, results_since_user

_BRIEF = re.compile(r"^Ticket GLPI (\d+) à traiter\. Catégorie : ([A-Z_]+)\. "
                    r"Compte du demandeur vérifié : ([A-Za-z0-9._-]+) <([^<>\s]+)>\.$")


def brief(ticket_id: int, category: str, subject: str, email: str) -> str:
    """The session's first message: what the cycle verified, in a form this playbook reads back."""
    return f"Ticket GLPI {ticket_id} à traiter. Catégorie : {category}. Compte du demandeur vérifié : {subject} <{email}>."


def _escalate(ticket_id: int, reason: str, offered: set[str]) -> Completion:
    if "glpi_add_ticket_followup" in offered:
        return call("glpi_add_ticket_followup", {
            "ticket_id": ticket_id, "is_private": True,
            "content": f"[Assist] Ticket remis à un technicien, non résolu. Motif : {reason}"})
    return answer(f"Escalade : {reason}")


def reset_mail(ticket_id: int, username: str, link: str, unlocked: bool) -> tuple[str, str]:
    also = " et votre compte, qui était verrouillé, a été débloqué" if unlocked else ""
    return (f"[WIDIP] Réinitialisation de votre mot de passe (ticket {ticket_id})",
            f"Bonjour,\n\nSuite à votre ticket n° {ticket_id}, le mot de passe de votre compte Windows ({username}) "
            f"a été réinitialisé{also}.\n\nVotre nouveau mot de passe provisoire se consulte une seule fois via ce "
            f"lien : {link}\n\nVous devrez le changer dès votre première connexion : Windows vous demandera "
            "d'en choisir un nouveau.\n\nSi vous n'êtes pas à l'origine de cette demande, prévenez-nous "
            "immédiatement.\n\nL'équipe support WIDIP")


def unlock_mail(ticket_id: int, username: str) -> tuple[str, str]:
    return (f"[WIDIP] Votre compte est déverrouillé (ticket {ticket_id})",
            f"Bonjour,\n\nSuite à votre ticket n° {ticket_id}, votre compte Windows ({username}) a été déverrouillé. "
            "Vous pouvez vous reconnecter avec votre mot de passe habituel ; il n'a pas été changé.\n\n"
            "L'équipe support WIDIP")


def assist_playbook(messages: Sequence[Message], offered: set[str], json_schema: dict | None) -> Completion:
    match = _BRIEF.match(last_user_text(messages).strip())
    if match is None:
        return answer("Aucun ticket vérifié à traiter.")
    ticket_id, category, username, email = int(match.group(1)), match.group(2), match.group(3), match.group(4)
    steps = results_since_user(messages)
    done = [name for name, _ in steps]
    if "glpi_add_ticket_followup" in done:
        return answer(f"Ticket {ticket_id} remis à un technicien.")
    if "glpi_close_ticket" in done:
        return answer(f"Ticket {ticket_id} traité et clos.")
    for tool, outcome in steps:
        if not isinstance(outcome, dict) or "error" in outcome:
            error = outcome.get("error") if isinstance(outcome, dict) else outcome
            return _escalate(ticket_id, f"échec de {tool} : {error}", offered)
    checks = [r for name, r in steps if name == "ad_check_user"]
    if not checks:
        return call("ad_check_user", {"username": username})
    before = checks[0]
    if not before.get("exists") or not before.get("enabled"):
        return _escalate(ticket_id, f"le compte {username} est absent ou désactivé.", offered)
    if category == "RESET_MDP":
        return _reset(ticket_id, username, email, dict(steps), checks, offered)
    if category == "DEBLOCAGE_COMPTE":
        return _unlock(ticket_id, username, email, dict(steps), checks, offered)
    return _escalate(ticket_id, f"catégorie {category} : pas d'action automatique.", offered)


def _verified(checks: list[dict], *, reset: bool) -> bool:
    after = checks[-1]
    return len(checks) >= 2 and not after.get("locked") and (after.get("must_change_password") or not reset)


def _reset(ticket_id, username, email, results, checks, offered) -> Completion:
    if "ad_reset_password" not in results:
        return call("ad_reset_password", {"username": username})
    if len(checks) < 2:
        return call("ad_check_user", {"username": username})
    if not _verified(checks, reset=True):
        return _escalate(ticket_id, "après la réinitialisation, le compte est toujours verrouillé ou sans "
                                    "changement de mot de passe exigé : vérification échouée.", offered)
    if "mysecret_create_secret" not in results:
        return call("mysecret_create_secret", {"secret_handle": results["ad_reset_password"]["secret_handle"]})
    if "smtp_send_email" not in results:
        subject, body = reset_mail(ticket_id, username, results["mysecret_create_secret"]["secret_ref"],
                                   bool(checks[0].get("locked")))
        return call("smtp_send_email", {"to": [email], "subject": subject, "body": body})
    return call("glpi_close_ticket", {"ticket_id": ticket_id, "solution": (
        "Mot de passe réinitialisé (changement exigé à la prochaine connexion)"
        + (" et verrouillage levé" if checks[0].get("locked") else "")
        + " ; lien à usage unique envoyé à l'adresse vérifiée du demandeur.")})


def _unlock(ticket_id, username, email, results, checks, offered) -> Completion:
    if "ad_unlock_account" not in results:
        if not checks[0].get("locked"):
            return _escalate(ticket_id, f"le compte {username} n'est pas verrouillé (verrouillage expiré ou autre "
                                        "cause) : diagnostic à faire.", offered)
        return call("ad_unlock_account", {"username": username})
    if len(checks) < 2:
        return call("ad_check_user", {"username": username})
    if not _verified(checks, reset=False):
        return _escalate(ticket_id, "le compte est toujours verrouillé après le déverrouillage : "
                                    "vérification échouée.", offered)
    if "smtp_send_email" not in results:
        subject, body = unlock_mail(ticket_id, username)
        return call("smtp_send_email", {"to": [email], "subject": subject, "body": body})
    return call("glpi_close_ticket", {"ticket_id": ticket_id,
                                      "solution": "Compte déverrouillé ; le demandeur a été prévenu par e-mail."})

