"""GLPI tools: reading tickets and users, follow-ups, solutions, assignment, ticket creation."""

from __future__ import annotations

from widip.functions.tools.registry import Tool, obj

TICKET_ID = {"type": "integer", "minimum": 1, "description": "GLPI ticket number"}
USER_ID = {"type": "integer", "minimum": 1, "description": "GLPI user id"}
TEXT = {"type": "string", "minLength": 1, "maxLength": 20000}


def marker(call_id: str) -> str:
    """The idempotency marker put in a ticket we create, so a crashed call is found, not repeated."""
    return f"[widip:{call_id}]"


def _create_ticket(clients, args, ctx):
    """Create once per call id: a redelivered call finds its own marker instead of opening a twin."""
    existing = clients.glpi.find_tickets_by_marker(marker(ctx.call_id))
    if existing:
        return {"ticket_id": existing[0], "created": False}
    content = f"{args['content']}\n\n{marker(ctx.call_id)}"
    ticket_id = clients.glpi.create_ticket(args["title"], content, args.get("urgency", 3), args.get("category"),
                                           args.get("entity"), args.get("requester"))
    return {"ticket_id": ticket_id, "created": True}


TOOLS = [
    Tool("glpi_search_new_tickets", "glpi",
         "Liste les tickets GLPI au statut Nouveau ouverts depuis N minutes (les plus anciens d'abord). "
         "Lists New GLPI tickets opened in the last N minutes.",
         obj({"minutes_since": {"type": "integer", "minimum": 1, "maximum": 10080},
              "limit": {"type": "integer", "minimum": 1, "maximum": 200}}, ("minutes_since",)),
         lambda c, a, ctx: c.glpi.search_new_tickets(a["minutes_since"], a.get("limit", 50)), read_only=True),
    Tool("glpi_search_recent_works", "glpi",
         "Activité récente d'une entité GLPI : tickets non résolus et changements mis à jour depuis N jours "
         "(travaux annoncés, maintenance, firmware, configuration). "
         "An entity's open tickets and changes updated in the last N days.",
         obj({"entity_id": {"type": "integer", "minimum": 0, "maximum": 2_147_483_647},
              "days": {"type": "integer", "minimum": 1, "maximum": 14}}, ("entity_id",)),
         lambda c, a, ctx: c.glpi.search_recent_works(a["entity_id"], a.get("days", 3)), read_only=True),
    Tool("glpi_get_ticket_details", "glpi",
         "Détails d'un ticket GLPI : titre, description, statut, demandeurs (avec e-mail) et suivis. "
         "Full details of one GLPI ticket, with requesters and follow-ups.",
         obj({"ticket_id": TICKET_ID}, ("ticket_id",)),
         lambda c, a, ctx: c.glpi.get_ticket_details(a["ticket_id"]), read_only=True),
    Tool("glpi_search_client", "glpi",
         "Recherche un utilisateur GLPI par nom, identifiant, e-mail ou téléphone. "
         "Finds GLPI users by name, login, e-mail or phone.",
         obj({"query": {"type": "string", "minLength": 2, "maxLength": 200},
              "limit": {"type": "integer", "minimum": 1, "maximum": 50}}, ("query",)),
         lambda c, a, ctx: c.glpi.search_client(a["query"], a.get("limit", 10)), read_only=True),
    Tool("glpi_get_user", "glpi",
         "Fiche d'un utilisateur GLPI (identifiant, nom, e-mails, entité). One GLPI user's record.",
         obj({"user_id": USER_ID}, ("user_id",)),
         lambda c, a, ctx: c.glpi.get_user(a["user_id"]), read_only=True),
    Tool("glpi_add_ticket_followup", "glpi",
         "Ajoute un suivi à un ticket GLPI (privé = visible des techniciens seulement). "
         "Adds a follow-up to a ticket; private follow-ups are visible to technicians only.",
         obj({"ticket_id": TICKET_ID, "content": TEXT, "is_private": {"type": "boolean"}}, ("ticket_id", "content")),
         lambda c, a, ctx: c.glpi.add_ticket_followup(a["ticket_id"], a["content"], a.get("is_private", False)),
         on_unknown_outcome="ask_human"),
    Tool("glpi_close_ticket", "glpi",
         "Résout un ticket GLPI avec un texte de solution (sans effet si déjà résolu). "
         "Solves a ticket with a solution text; harmless if it is already solved.",
         obj({"ticket_id": TICKET_ID, "solution": TEXT}, ("ticket_id", "solution")),
         lambda c, a, ctx: c.glpi.close_ticket(a["ticket_id"], a["solution"])),
    Tool("glpi_assign_ticket", "glpi",
         "Attribue un ticket GLPI à un technicien. Assigns a ticket to a technician (idempotent).",
         obj({"ticket_id": TICKET_ID, "user_id": USER_ID}, ("ticket_id", "user_id")),
         lambda c, a, ctx: {"assignment_id": c.glpi.assign_ticket(a["ticket_id"], a["user_id"])}),
    Tool("glpi_assign_group", "glpi",
         "Attribue un ticket GLPI à un groupe de techniciens (ex. l'équipe comptes). "
         "Assigns a ticket to a group (idempotent).",
         obj({"ticket_id": TICKET_ID, "group_id": {"type": "integer", "minimum": 1}}, ("ticket_id", "group_id")),
         lambda c, a, ctx: {"assignment_id": c.glpi.assign_group(a["ticket_id"], a["group_id"])}),
    Tool("glpi_update_ticket", "glpi",
         "Modifie des champs d'un ticket GLPI : statut, urgence, impact, priorité, catégorie, titre. "
         "Updates safe fields of a ticket.",
         obj({"ticket_id": TICKET_ID, "fields": {
             "type": "object", "additionalProperties": False, "minProperties": 1,
             "properties": {"status": {"type": "integer", "minimum": 1, "maximum": 6},
                            "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
                            "impact": {"type": "integer", "minimum": 1, "maximum": 5},
                            "priority": {"type": "integer", "minimum": 1, "maximum": 6},
                            "itilcategories_id": {"type": "integer", "minimum": 0},
                            "name": {"type": "string", "minLength": 1, "maxLength": 255}}}},
             ("ticket_id", "fields")),
         lambda c, a, ctx: c.glpi.update_ticket(a["ticket_id"], a["fields"])),
    Tool("glpi_create_ticket", "glpi",
         "Ouvre un ticket d'incident GLPI (titre, description, urgence 1-5, catégorie, entité, demandeur). "
         "Opens a GLPI incident ticket.",
         obj({"title": {"type": "string", "minLength": 3, "maxLength": 255}, "content": TEXT,
              "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
              "category": {"type": "integer", "minimum": 0}, "entity": {"type": "integer", "minimum": 0},
              "requester": USER_ID}, ("title", "content")),
         _create_ticket, on_unknown_outcome="reconcile"),
    Tool("glpi_delete_ticket", "glpi",
         "Met un ticket GLPI à la corbeille. Réservé aux humains. Moves a ticket to the trash (humans only).",
         obj({"ticket_id": TICKET_ID}, ("ticket_id",)),
         lambda c, a, ctx: {"deleted": c.glpi.delete_ticket(a["ticket_id"])}),
]
