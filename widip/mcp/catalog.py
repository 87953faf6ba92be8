"""What an MCP caller is and which tools it is offered, with the descriptions and hints MCP shows.

A user's session token acts as that user; a service token needs scope `mcp:tools` and acts as the
`mcp` persona, whose levels live in policy/safeguard.toml. The offer is also what the gate enforces
(`offered` in calls.propose), so a tool missing from `tools/list` cannot be called by name either.
"""

from __future__ import annotations

from dataclasses import dataclass

from widip.functions.agent.personas import access_rights, matrix_allows
from widip.functions.callers import Caller
from widip.functions import db, identity
from widip.functions.identity import Authenticated
from widip.functions.safeguard import gate
from widip.functions.safeguard.policy import Policy, level_for
from widip.functions.tools import Tool, all_tools

SCOPE = "mcp:tools"
PERSONA = "mcp"
#: The one tool that is not in the registry: the outcome of an earlier call.
STATUS_TOOL = "widip_call_status"

#: What happens when this caller calls, in French then English (from the gate's decision).
_OUTCOME_TEXT = {
    gate.RUN: ("s'exécute immédiatement", "runs immediately"),
    gate.NOTIFY: ("s'exécute, puis les approbateurs sont prévenus", "runs, then approvers are notified"),
    gate.APPROVAL: ("attend l'approbation d'un humain (N{approve} ou plus)",
                    "waits for a human approver (N{approve} or above)"),
}


def mcp_caller(found: Authenticated) -> Caller:
    """The caller an MCP request acts as: the user themselves, or the `mcp` persona for a service token
    holding scope `mcp:tools` (any other service token stays a service, which the gate refuses)."""
    caller = found.caller
    if caller.kind == "service" and SCOPE in caller.scopes:
        return Caller(kind="ai", username=caller.username, persona=PERSONA, scopes=caller.scopes)
    return caller


def caller_for_token(pool, token: str) -> Caller | None:
    """The MCP caller a bearer token stands for, checked now (revoked or expired: None); a string that
    is not shaped like a widip token is refused without a query."""
    if not identity.could_be_token(token):
        return None
    with db.transaction(pool) as conn:
        found = identity.authenticate_token(conn, token)
    return mcp_caller(found) if found is not None else None


@dataclass(frozen=True)
class Offer:
    tool: Tool
    level: str
    outcome: str


def offered_tools(conn, caller: Caller, policy: Policy) -> list[Offer]:
    """Registry tools this caller may call through MCP: never L4 (humans schedule those in the
    console), never one the user's access matrix forbids (as for WIBOT), never one the gate would
    refuse outright (an N0 user, a service without the scope)."""
    rights = access_rights(conn, caller.user_id if caller.is_human else caller.on_behalf_of)
    offers = []
    for tool in all_tools():
        level = level_for(conn, tool.name, caller.persona)
        if level == "L4" or not matrix_allows(rights, tool):
            continue
        decision = gate.decide(level, caller, policy)
        if decision.outcome in _OUTCOME_TEXT:
            offers.append(Offer(tool, level, decision.outcome))
    return offers


def annotations(offer: Offer) -> dict:
    """MCP tool hints from the level: L0 reads (safe to repeat), L1 only annotates, L2+ changes things."""
    read_only = offer.level == "L0"
    return {"title": offer.tool.name.replace("_", " "), "readOnlyHint": read_only,
            "destructiveHint": offer.level in ("L2", "L3"), "idempotentHint": read_only, "openWorldHint": True}


def description(offer: Offer, policy: Policy) -> str:
    """The registry's description plus what SAFEGUARD does with this caller's call, in French and English."""
    french, english = (text.format(approve=policy.approve.get(offer.level, 3))
                       for text in _OUTCOME_TEXT[offer.outcome])
    return (f"{offer.tool.description}\n\nSAFEGUARD {offer.level} : {french}. / "
            f"SAFEGUARD {offer.level}: {english}.")


@dataclass(frozen=True)
class View:
    """A read-only resource: a URI template served by one L0 registry tool, through the same gate."""

    name: str
    uri_template: str
    tool: str
    argument: str
    description: str

    def arguments(self, uri: str) -> dict | None:
        """The tool arguments for a URI of this template, or None if it is not one."""
        prefix = self.uri_template.split("{")[0]
        if not uri.startswith(prefix) or not uri[len(prefix):]:
            return None
        value = uri[len(prefix):]
        return {self.argument: int(value) if value.isdigit() else value}


VIEWS = (
    View("ticket", "widip://glpi/tickets/{ticket_id}", "glpi_get_ticket_details", "ticket_id",
         "Un ticket GLPI (titre, description, demandeurs, suivis). / One GLPI ticket with its follow-ups."),
    View("device", "widip://observium/devices/{device}", "observium_get_device", "device",
         "Un équipement Observium (statut, site, client). / One Observium device's state."),
)


def view_for(uri: str) -> tuple[View, dict] | None:
    for view in VIEWS:
        arguments = view.arguments(uri)
        if arguments is not None:
            return view, arguments
    return None


STATUS_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["call_id"],
    "properties": {
        "call_id": {"type": "string", "maxLength": 64,
                    "description": "L'identifiant d'appel rendu par un outil widip. / "
                                   "The call id a widip tool returned."},
        "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 120, "default": 0,
                         "description": "Attendre jusqu'à N s que l'appel se termine (progression envoyée). / "
                                        "Wait up to N s for the call to finish (progress is sent)."},
    },
}
STATUS_DESCRIPTION = (
    "Donne l'état et le résultat d'un appel d'outil widip (par exemple une action en attente d'approbation). / "
    "Returns the status and result of an earlier widip tool call (for example one awaiting approval).")
