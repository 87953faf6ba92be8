"""The access matrix applied to tool calls: what a human (or an assistant acting for one) may reach.

Enforced at the one tool layer, whoever calls (HTTP, WIBOT, MCP later): `refusal` is checked when a
call is proposed (a GLPI tool without `acces_glpi` is refused and audited), `check_target` before
the handler runs (the ticket, account or device named in the arguments must belong to one of the
user's clients and, for tickets, categories), and `filter_result` before the result is stored,
returned or shown to a model (lists lose the items outside the user's scope). System work (Sentinel,
Assist without a human behind it) has no rights row and is not filtered: `rights` is None.
"""

from __future__ import annotations

import re
from typing import Any

from widip.errors import NotFound, PolicyDenied
from widip.functions.access_matrix import AccessRights, access_for

#: Tools that need a matrix flag, by system.
FLAG_FOR_SYSTEM = {"glpi": "acces_glpi"}
#: GLPI tools whose `ticket_id` argument names a ticket that must be in scope before anything runs.
_TICKET_TARGET = {"glpi_get_ticket_details", "glpi_add_ticket_followup", "glpi_close_ticket", "glpi_assign_ticket",
                  "glpi_update_ticket", "glpi_delete_ticket"}
_AD_TARGET = {"ad_check_user", "ad_get_user_info", "ad_unlock_account", "ad_reset_password", "ad_disable_account"}
_DEVICE_TARGET = {"observium_get_device", "observium_get_device_ports", "observium_get_device_sensors"}
_OU = re.compile(r"(?i)\bOU=((?:\\.|[^,])+)")
OUT_OF_SCOPE = "hors du périmètre de l'utilisateur (clients ou catégories autorisés dans la matrice d'accès)"


def rights_for(conn, user_id: int | None) -> AccessRights | None:
    """The rights a call runs with: None for system work, the user's row (or nothing) otherwise."""
    if user_id is None:
        return None
    try:
        return access_for(conn, user_id)
    except NotFound:  # the user was deleted: nothing is allowed
        return AccessRights()


def refusal(tool_name: str, system: str, rights: AccessRights | None) -> str | None:
    """Why the matrix forbids this tool outright (a flag is off), or None."""
    flag = FLAG_FOR_SYSTEM.get(system)
    if rights is None or flag is None or getattr(rights, flag):
        return None
    return f"{tool_name}: la matrice d'accès n'accorde pas {flag} à cet utilisateur"


def _names(full_name: str | None) -> list[str]:
    """A GLPI complete name and each of its segments ("Root > EHPAD Les Tilleuls")."""
    if not full_name:
        return []
    return [full_name, *(part.strip() for part in full_name.split(">"))]


def _any_allowed(check, names: list[str]) -> bool:
    return any(check(name) for name in names)


def ticket_in_scope(ticket: dict, glpi, rights: AccessRights) -> bool:
    client_ok = rights.allows_client("*") or _any_allowed(rights.allows_client,
                                                           _names(glpi.entity_name(ticket.get("entity_id") or 0)))
    category_ok = rights.allows_category("*") or _any_allowed(
        rights.allows_category, _names(glpi.category_name(ticket["category_id"]) if ticket.get("category_id") else None))
    return client_ok and category_ok


def glpi_user_in_scope(user: dict, rights: AccessRights) -> bool:
    return rights.allows_client("*") or _any_allowed(rights.allows_client, _names(user.get("entity_name")))


def ad_user_in_scope(account: dict | None, rights: AccessRights) -> bool:
    if not account or not account.get("dn"):
        return rights.allows_client("*") or not (account or {}).get("exists", True)
    return rights.allows_client("*") or _any_allowed(
        rights.allows_client, [m.replace("\\", "") for m in _OU.findall(account["dn"])])


def device_in_scope(device: dict, rights: AccessRights) -> bool:
    return rights.allows_client("*") or _any_allowed(rights.allows_client,
                                                     [n for n in (device.get("client"), device.get("site")) if n])


def check_target(tool_name: str, arguments: dict, clients, rights: AccessRights | None) -> None:
    """Raise PolicyDenied when the ticket, account, device or entity named in the arguments is out of scope."""
    if rights is None or (rights.allows_client("*") and rights.allows_category("*")):
        return
    if tool_name in _TICKET_TARGET:
        ticket = clients.glpi.get_ticket(arguments["ticket_id"]).to_dict()
        allowed = ticket_in_scope(ticket, clients.glpi, rights)
    elif tool_name == "glpi_get_user":
        allowed = glpi_user_in_scope(clients.glpi.get_user(arguments["user_id"]).to_dict(), rights)
    elif tool_name == "glpi_search_recent_works":
        allowed = rights.allows_client("*") or _any_allowed(rights.allows_client,
                                                             _names(clients.glpi.entity_name(arguments["entity_id"])))
    elif tool_name == "glpi_create_ticket" and arguments.get("entity") is not None:
        allowed = rights.allows_client("*") or _any_allowed(rights.allows_client,
                                                             _names(clients.glpi.entity_name(arguments["entity"])))
    elif tool_name in _AD_TARGET:
        allowed = ad_user_in_scope(clients.active_directory.check_user(arguments["username"]).to_dict(), rights)
    elif tool_name in _DEVICE_TARGET:
        allowed = device_in_scope(clients.observium.get_device(arguments["device"]).to_dict(), rights)
    else:
        return
    if not allowed:
        raise PolicyDenied(f"{tool_name}: {OUT_OF_SCOPE}")


def filter_result(tool_name: str, result: Any, clients, rights: AccessRights | None) -> Any:
    """The result without what lies outside the user's clients and categories."""
    if rights is None or (rights.allows_client("*") and rights.allows_category("*")):
        return result
    if tool_name == "glpi_search_new_tickets":
        return [t for t in result if ticket_in_scope(t, clients.glpi, rights)]
    if tool_name == "glpi_search_recent_works":
        return {kind: [t for t in items if ticket_in_scope(t, clients.glpi, rights)] for kind, items in result.items()}
    if tool_name == "glpi_search_client":
        return [u for u in result if glpi_user_in_scope(u, rights)]
    if tool_name == "ad_find_user_by_mail" and result and not ad_user_in_scope(result, rights):
        return None
    if tool_name == "observium_list_devices":
        return [d for d in result if device_in_scope(d, rights)]
    if tool_name == "observium_list_alerts":
        visible = {d["id"] for d in (x.to_dict() for x in clients.observium.list_devices()) if device_in_scope(d, rights)}
        return [a for a in result if a.get("device_id") in visible]
    return result
