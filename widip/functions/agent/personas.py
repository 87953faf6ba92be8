"""The four personas: system prompt (French), tools they may use, LLM class and time budget.

The tools a model sees are the persona's list, minus anything that is L4 for that persona (the
model is never offered what it may never do) and, for WIBOT, minus what the user's access matrix
forbids. Offering a tool decides nothing: every call still goes through the gate.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import Connection

from widip.functions.callers import Caller
from widip.functions.safeguard.policy import level_for
from widip.functions.tools import all_tools


@dataclass(frozen=True)
class Persona:
    name: str
    prompt: str
    #: Tool names offered; None means every registered tool (filtered by level and access).
    tools: tuple[str, ...] | None
    #: Seconds of active work before the session is ended with an error event.
    budget_seconds: int
    want_confidence: bool = False
    max_iterations: int = 15


_COMMON = ("Tu es un agent de WIDIP, hébergeur de données de santé pour des EHPAD et cliniques. "
           "Réponds en français, de façon brève et factuelle. N'invente jamais de résultat d'outil. ")

PERSONAS = {
    "sentinel": Persona(
        "sentinel",
        _COMMON + "Persona : sentinel. Tu diagnostiques une alerte de supervision Observium : rassemble les faits "
        "(état de l'équipement, interfaces, capteurs, ligne opérateur, incidents opérateur, travaux et changements "
        "GLPI) puis donne un diagnostic JSON.",
        ("observium_get_device", "observium_get_device_ports", "observium_get_device_sensors", "observium_list_alerts",
         "observium_list_devices", "phibee_get_line_status", "phibee_list_site_incidents", "glpi_search_client",
         "glpi_search_new_tickets", "glpi_search_recent_works"),
        budget_seconds=20),
    "notificateur": Persona(
        "notificateur",
        _COMMON + "Persona : notificateur. Tu ouvres le ticket GLPI d'un incident diagnostiqué et préviens l'équipe.",
        ("glpi_create_ticket", "glpi_add_ticket_followup", "smtp_send_email"),
        budget_seconds=15),
    "assist": Persona(
        "assist",
        _COMMON + "Persona : assist. Tu traites les tickets GLPI de support : mots de passe, comptes bloqués.",
        ("glpi_get_ticket_details", "glpi_add_ticket_followup", "glpi_close_ticket", "ad_check_user",
         "ad_find_user_by_mail", "ad_unlock_account", "ad_reset_password", "mysecret_create_secret",
         "smtp_send_email"),
        budget_seconds=120, want_confidence=True),
    "wibot": Persona(
        "wibot",
        _COMMON + "Persona : wibot. Tu assistes un technicien WIDIP. Utilise les outils pour répondre ; "
        "les actions sensibles attendront la validation d'un approbateur.",
        None, budget_seconds=300, want_confidence=True),
}

#: Which access-matrix flag a system's tools require for a user (WIBOT acts with the user's rights).
_ACCESS_FLAG = {"glpi": "acces_glpi", "docs": "acces_base_docs"}


def get_persona(name: str) -> Persona:
    return PERSONAS[name]


def visible_tools(conn: Connection, persona: Persona, caller: Caller) -> list:
    """The registered tools this persona may be offered for this caller."""
    rights = access_rights(conn, caller.on_behalf_of)
    chosen = []
    for tool in all_tools():
        if persona.tools is not None and tool.name not in persona.tools:
            continue
        if level_for(conn, tool.name, persona.name) == "L4":
            continue
        if not matrix_allows(rights, tool):
            continue
        chosen.append(tool)
    return chosen


def matrix_allows(rights: dict | None, tool) -> bool:
    """Whether a user's access-matrix rights (None: system work, no filter) allow this tool's system."""
    flag = _ACCESS_FLAG.get(tool.system)
    return rights is None or not flag or bool(rights.get(flag, False))


def access_rights(conn: Connection, user_id: int | None) -> dict | None:
    """The access matrix of the human a caller acts as or for (None for system work: no user filter)."""
    if user_id is None:
        return None
    try:
        from widip.functions.access_matrix import access_for
    except ImportError:  # identity module not deployed: fail closed on GLPI
        return {}
    try:
        return access_for(conn, user_id).to_dict()
    except Exception:  # noqa: BLE001 - no access row means no access
        return {}
