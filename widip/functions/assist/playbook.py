"""The Assist playbook: classify a support ticket by French keywords and run the standard sequence.

RESET_MDP        ticket → requester's AD account (by the GLPI requester's e-mail, never a name in the
                 text) → reset → one-time link → mail to the requester → close the ticket
DEBLOCAGE_COMPTE ticket → requester's AD account → unlock (only if locked) → mail → close
CREATION_COMPTE, AUTRE, or anything unexpected → private follow-up escalating to a technician

The ticket text only picks the category; every identifier the tools receive comes from GLPI and
AD results. Each step is a tool call through the SAFEGUARD gate like any model's.
"""

from __future__ import annotations

import re
from typing import Sequence

from widip.functions.llm.base import Completion, Message
from widip.functions.llm.rules import answer, call, last_user_text, register_playbook, results_since_user

CATEGORIES = ("RESET_MDP", "DEBLOCAGE_COMPTE", "CREATION_COMPTE", "AUTRE")
_KEYWORDS = (
    ("CREATION_COMPTE", r"cr[ée]ation (de|d'un) compte|nouve(au|l) compte|cr[ée]er (un|le) compte|nouvel(le)? "
                        r"(arrivant|arrivante|salari[ée]e?|aide-soignante?)"),
    ("DEBLOCAGE_COMPTE", r"bloqu[ée]|verrouill[ée]|d[ée]bloqu|d[ée]verrouill|locked|lock[ée]"),
    ("RESET_MDP", r"mot de passe|mdp|password|r[ée]initialis|oubli[ée]"),
)
_ESCALATION = {
    "CREATION_COMPTE": "Demande de création de compte : à traiter par un technicien (validation RH requise).",
    "AUTRE": "Demande hors du périmètre d'Assist : escaladée à un technicien.",
}


def classify(text: str) -> str:
    lowered = (text or "").lower()
    for category, pattern in _KEYWORDS:
        if re.search(pattern, lowered):
            return category
    return "AUTRE"


def _ticket_id(messages: Sequence[Message]) -> int | None:
    match = re.search(r"ticket\D{0,20}(\d{1,9})", last_user_text(messages), flags=re.I)
    return int(match.group(1)) if match else None


def _escalate(ticket_id: int, reason: str, offered: set[str]) -> Completion:
    if "glpi_add_ticket_followup" in offered:
        return call("glpi_add_ticket_followup", {"ticket_id": ticket_id, "is_private": True,
                                                 "content": f"[Assist] {reason}"})
    return answer(f"Escalade : {reason}")


def assist_playbook(messages: Sequence[Message], offered: set[str], json_schema: dict | None) -> Completion:
    ticket_id = _ticket_id(messages)
    results = dict(results_since_user(messages))
    if ticket_id is None:
        return answer("Aucun numéro de ticket à traiter.")
    ticket = results.get("glpi_get_ticket_details")
    if ticket is None:
        return call("glpi_get_ticket_details", {"ticket_id": ticket_id})
    if "glpi_add_ticket_followup" in results:
        return answer(f"Ticket {ticket_id} escaladé à un technicien.")
    if "glpi_close_ticket" in results:
        return answer(f"Ticket {ticket_id} traité et clos.")
    if not isinstance(ticket, dict) or "error" in ticket:
        return answer(f"Ticket {ticket_id} illisible : rien n'a été fait.")
    category = classify(f"{ticket.get('title', '')}\n{ticket.get('content', '')}")
    if category in _ESCALATION:
        return _escalate(ticket_id, _ESCALATION[category], offered)
    email = next((r.get("email") for r in ticket.get("requesters", []) if r.get("email")), None)
    if not email:
        return _escalate(ticket_id, "demandeur sans adresse e-mail vérifiée : identité à confirmer.", offered)
    if "ad_find_user_by_mail" not in results:
        return call("ad_find_user_by_mail", {"email": email})
    account = results["ad_find_user_by_mail"]
    if not isinstance(account, dict) or not account.get("username") or "error" in account:
        return _escalate(ticket_id, f"aucun compte Active Directory unique pour {email}.", offered)
    return _next_action(category, ticket_id, email, account, results, offered)


def _next_action(category: str, ticket_id: int, email: str, account: dict, results: dict, offered: set[str]):
    username = account["username"]
    for tool, outcome in results.items():
        if isinstance(outcome, dict) and "error" in outcome and len(outcome) == 1:
            return _escalate(ticket_id, f"échec de {tool} : {outcome['error']}", offered)
    if category == "RESET_MDP":
        if "ad_reset_password" not in results:
            return call("ad_reset_password", {"username": username})
        if "mysecret_create_secret" not in results:
            return call("mysecret_create_secret", {"secret_handle": results["ad_reset_password"]["secret_handle"]})
        link = results["mysecret_create_secret"]["secret_ref"]  # the mail tool puts the clear link here
        subject = f"[WIDIP] Réinitialisation de votre mot de passe (ticket {ticket_id})"
        body = (f"Bonjour,\n\nVotre mot de passe a été réinitialisé. Consultez-le une seule fois via ce lien : "
                f"{link}\nVous devrez le changer à la première connexion.\n\nL'équipe support WIDIP")
        solution = "Mot de passe réinitialisé ; lien à usage unique envoyé au demandeur."
    else:
        if not account.get("locked"):
            return _escalate(ticket_id, f"le compte {username} n'est pas verrouillé : diagnostic à faire.", offered)
        if "ad_unlock_account" not in results:
            return call("ad_unlock_account", {"username": username})
        subject = f"[WIDIP] Votre compte est déverrouillé (ticket {ticket_id})"
        body = "Bonjour,\n\nVotre compte a été déverrouillé, vous pouvez vous reconnecter.\n\nL'équipe support WIDIP"
        solution = "Compte déverrouillé ; le demandeur a été prévenu."
    if "smtp_send_email" not in results:
        return call("smtp_send_email", {"to": [email], "subject": subject, "body": body})
    return call("glpi_close_ticket", {"ticket_id": ticket_id, "solution": solution})


register_playbook("assist", assist_playbook)
