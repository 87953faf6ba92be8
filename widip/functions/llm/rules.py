"""The rules provider: deterministic playbooks that do useful work with no LLM at all (docs/architecture.md).

It is the embedded default and the degraded mode. It speaks the same interface as a model —
transcript and offered tools in, text or tool calls out — so its tool calls go through the same
SAFEGUARD gate. It only ever calls tools it was offered, and reads user text as data: it extracts
an intent and identifiers, nothing more.

Playbooks are chosen by the persona named in the system prompt ("Persona : wibot"). Other
playbooks (Sentinel's diagnosis, Assist's sequences) are registered by widip/wiring.py.
"""

from __future__ import annotations

import json
import re
from typing import Callable, Sequence

from widip.functions.llm.base import Completion, Message, ToolCall, ToolSpec, new_tool_call_id

Playbook = Callable[[Sequence[Message], set[str], dict | None], Completion]
_PLAYBOOKS: dict[str, Playbook] = {}
_PERSONA = re.compile(r"Persona\s*:\s*([a-z]+)")
#: Confidence reported for an intent read from an explicit request (L1 tools need 0.80).
CLEAR_INTENT = 0.85
_STOPWORDS = {"le", "la", "les", "de", "du", "des", "mot", "passe", "compte", "pour", "moi", "mon", "son", "sa",
              "réinitialise", "reinitialise", "réinitialiser", "reset", "déverrouille", "deverrouille", "débloque",
              "debloque", "unlock", "the", "password", "of", "please", "stp", "merci", "utilisateur", "user", "l",
              "d", "un", "une", "et", "a", "à", "bloqué", "bloque", "peux", "tu", "vous", "pouvez"}


def register_playbook(persona: str, playbook: Playbook) -> None:
    _PLAYBOOKS[persona] = playbook


def answer(text: str, confidence: float | None = None) -> Completion:
    return Completion(text=text, tool_calls=(), provider="rules", model="rules", confidence=confidence)


def call(name: str, arguments: dict, confidence: float | None = CLEAR_INTENT) -> Completion:
    return Completion(text="", tool_calls=(ToolCall(new_tool_call_id(), name, arguments),), provider="rules",
                      model="rules", confidence=confidence)


def last_user_text(messages: Sequence[Message]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def results_since_user(messages: Sequence[Message]) -> list[tuple[str, object]]:
    """(tool name, parsed result) for each tool result after the last user message, in order."""
    position = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    out = []
    for message in messages[position + 1:]:
        if message.role == "tool":
            try:
                out.append((message.name or "", json.loads(message.content)))
            except ValueError:
                out.append((message.name or "", message.content))
    return out


class RulesProvider:
    name = "rules"
    local = False

    def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec] = (), *, want_confidence: bool = False,
                 timeout: float | None = None, json_schema: dict | None = None) -> Completion:
        system = "\n".join(m.content for m in messages if m.role == "system")
        match = _PERSONA.search(system)
        persona = match.group(1) if match else "wibot"
        playbook = _PLAYBOOKS.get(persona, wibot_playbook)
        return playbook(messages, {t.name for t in tools}, json_schema)


_LOGIN = r"([A-Za-z][A-Za-z0-9._-]{1,19})"
#: Where a login may be named explicitly: "compte jdupont", "(jdupont)", "de jdupont", "login: jdupont".
_LOGIN_FORMS = (
    re.compile(r"\b(?:compte|utilisateur|login|identifiant|user|account|sam)\s*:?\s*" + _LOGIN, re.I),
    re.compile(r"\(\s*" + _LOGIN + r"\s*\)"),
    re.compile(r"\b(?:de|du|pour|of|for)\s+" + _LOGIN, re.I),
)


def _username(text: str) -> str | None:
    """The one login the request names explicitly, or None (then the assistant asks).

    Free text is data: a name is taken only from an explicit form, and two different candidates
    mean "ask", never "guess" — the approver should not be the only guard against a wrong target.
    """
    found = []
    for form in _LOGIN_FORMS:
        for match in form.finditer(text):
            word = match.group(1).lower()
            if word not in _STOPWORDS and word not in found:
                found.append(word)
        if found:
            break
    return found[0] if len(found) == 1 else None


_ASK_LOGIN = ("Pour quel compte exactement ? Donnez l'identifiant Active Directory, par exemple "
              "« réinitialise le mot de passe du compte jdupont ».")


def _intent(text: str, offered: set[str]) -> Completion | None:
    lowered = text.lower()
    ticket = re.search(r"ticket\s*(?:n[°o]\s*)?#?\s*(\d{1,9})", lowered)
    if ticket and "glpi_get_ticket_details" in offered and not re.search(r"\b(cr[ée]e|ouvr)", lowered):
        return call("glpi_get_ticket_details", {"ticket_id": int(ticket.group(1))})
    if re.search(r"mot de passe|password|réinitialis|reinitialis", lowered) and "ad_reset_password" in offered:
        user = _username(text)
        if user:
            return call("ad_reset_password", {"username": user})
        return answer(_ASK_LOGIN)
    if re.search(r"d[ée]verrouill|d[ée]bloqu|unlock", lowered) and "ad_unlock_account" in offered:
        user = _username(text)
        if user:
            return call("ad_unlock_account", {"username": user})
        return answer(_ASK_LOGIN)
    if re.search(r"\b(cr[ée]e|ouvre|ouvrir|créer)\b.*\bticket\b", lowered) and "glpi_create_ticket" in offered:
        title = re.sub(r"^.*?ticket\s*(pour|:)?\s*", "", text, flags=re.I).strip()[:120] or "Demande WIBOT"
        return call("glpi_create_ticket", {"title": title if len(title) >= 3 else "Demande WIBOT", "content": text})
    if re.search(r"(en panne|down|injoignables?|hors ligne)", lowered) and "observium_list_devices" in offered \
            and not re.search(r"(équipement|equipement|routeur|device)\s+[A-Za-z0-9]", lowered):
        return call("observium_list_devices", {"status": "down"})
    device = re.search(r"(?:équipement|equipement|routeur|switch|device|état de|etat de|statut de)\s+"
                       r"([A-Za-z0-9][A-Za-z0-9.\-_]{1,252})", text, flags=re.I)
    if device and "observium_get_device" in offered:
        return call("observium_get_device", {"device": device.group(1)})
    return None


def _summarise(tool: str, result) -> str:
    if isinstance(result, dict) and "error" in result and len(result) == 1:
        return f"L'action {tool} n'a pas abouti : {result['error']}"
    if tool == "glpi_get_ticket_details" and isinstance(result, dict):
        who = ", ".join(filter(None, (r.get("email") or r.get("login") for r in result.get("requesters", []))))
        return (f"Ticket {result.get('id')} « {result.get('title')} » : {result.get('status_label')}, "
                f"urgence {result.get('urgency')}" + (f", demandeur {who}" if who else "") + ".")
    if tool == "observium_get_device" and isinstance(result, dict):
        state = "en panne" if result.get("status") == "down" else "opérationnel"
        return f"L'équipement {result.get('hostname')} ({result.get('site') or 'site inconnu'}) est {state}."
    if tool == "observium_list_devices" and isinstance(result, list):
        if not result:
            return "Aucun équipement en panne actuellement."
        names = ", ".join(f"{d.get('hostname')} ({d.get('site') or '?'})" for d in result[:20])
        return f"{len(result)} équipement(s) en panne : {names}."
    if tool == "ad_unlock_account":
        return "Le compte a été déverrouillé."
    if tool == "mysecret_create_secret" and isinstance(result, dict):
        return (f"Mot de passe réinitialisé. Lien à usage unique (expire après {result.get('expire_views', 1)} "
                f"consultation) : {result.get('secret_ref') or result.get('secret_url')}")
    if tool == "glpi_create_ticket" and isinstance(result, dict):
        return f"Ticket GLPI {result.get('ticket_id')} créé."
    return f"Résultat de {tool} : {json.dumps(result, ensure_ascii=False, default=str)[:500]}"


_CAPABILITIES = ("Je fonctionne en mode règles : je peux consulter un ticket (« ticket 42 »), l'état d'un "
                 "équipement (« état de rtr-lyon-01 »), les équipements en panne, réinitialiser un mot de "
                 "passe ou déverrouiller un compte (après validation), créer un ticket, ou chercher dans la "
                 "documentation (« comment configurer le VPN d'un nouvel EHPAD ? »).")


def wibot_playbook(messages: Sequence[Message], offered: set[str], json_schema: dict | None) -> Completion:
    """Simple intents (ticket status, device status, reset, unlock, ticket creation) and their follow-ups."""
    from widip.functions.wibot import playbook as wibot_docs

    results = results_since_user(messages)
    if not results:
        intent = _intent(wibot_docs.resolve_reference(messages), offered)
        if intent is not None:
            return intent
        if "docs_search" in offered:
            return call("docs_search", {"query": wibot_docs.docs_query(messages)[:500]})
        return answer(_CAPABILITIES, CLEAR_INTENT)
    tool, result = results[-1]
    if tool == "docs_search":
        text = wibot_docs.docs_answer(result)
        return answer(text or f"{wibot_docs.NOT_FOUND} {_CAPABILITIES}", CLEAR_INTENT)
    if tool == "ad_reset_password" and isinstance(result, dict) and result.get("secret_handle") \
            and "mysecret_create_secret" in offered:
        return call("mysecret_create_secret", {"secret_handle": result["secret_handle"]})
    return answer(_summarise(tool, result), CLEAR_INTENT)


# Playbooks of other personas register themselves on import (Sentinel's from its own package).
