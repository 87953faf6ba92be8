"""Mounts the web console (widip/console) under `/` and `/console/…`; the JSON API keeps its paths."""

from __future__ import annotations

from widip.console import pages
from widip.console.render import STATIC


#: What a console page answers besides the page itself (a French HTML or JSON error page).
_PAGE_ERRORS = {"400": "invalid form or parameter", "401": "wrong login", "403": "forbidden or missing CSRF token",
                "404": "no such page, widget or incident", "429": "too many login attempts",
                "503": "database or Redis unavailable"}


def _html(summary: str, op_id: str, params=(), post=False) -> dict:
    responses = {"200": {"description": "HTML page", "content": {"text/html": {}}},
                 "303": {"description": "redirect (to the login form without a session)"},
                 **{code: {"description": what} for code, what in _PAGE_ERRORS.items()}}
    op = {"summary": summary, "operationId": op_id, "responses": responses, "tags": ["console"]}
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    return {"post" if post else "get": op}


OPENAPI_PATHS = {
    "/": _html("The console's entry: redirects to the chat or the login form", "consoleHome"),
    "/console/login": {**_html("Login form", "consoleLoginForm"),
                       **_html("Log in (form post); sets the HttpOnly SameSite=Strict session cookie",
                               "consoleLogin", post=True)},
    "/console/logout": _html("Log out (form post with the page's CSRF token)", "consoleLogout", post=True),
    "/console/chat": _html("Chat with WIBOT", "consoleChat"),
    "/console/chat/{conversation_id}": _html("One conversation", "consoleConversation", ["conversation_id"]),
    "/console/safeguard": _html("SAFEGUARD desk: requests, deferred actions, audit, levels", "consoleSafeguard"),
    "/console/monitoring": _html("Supervision: integrations, GLPI health, queues, incidents, Assist",
                                 "consoleMonitoring"),
    "/console/incidents": _html("Incidents", "consoleIncidents"),
    "/console/incidents/{tracking_id}": _html("One incident's story", "consoleIncident", ["tracking_id"]),
    "/console/maintenance": _html("Maintenance windows", "consoleMaintenance"),
    "/console/fragments/{name}": _html("A page widget's HTML, polled every 3 s", "consoleFragment", ["name"]),
}


def register(app, ctx):
    app.add_route("/", pages.Home(ctx))
    app.add_route("/console/login", pages.Login(ctx))
    app.add_route("/console/logout", pages.Logout(ctx))
    chat = pages.Chat(ctx)
    app.add_route("/console/chat", chat)
    app.add_route("/console/chat/{conversation_id}", chat)
    app.add_route("/console/safeguard", pages.Section(ctx, "safeguard.html", "safeguard",
                                                      ("requests", "deferred", "audit", "levels")))
    app.add_route("/console/monitoring", pages.Section(ctx, "monitoring.html", "monitoring", ("supervision",)))
    app.add_route("/console/incidents", pages.Section(ctx, "incidents.html", "incidents", ("incidents",)))
    app.add_route("/console/incidents/{tracking_id}", pages.Section(ctx, "incident.html", "incidents", ("incident",)))
    app.add_route("/console/maintenance", pages.Section(ctx, "maintenance.html", "maintenance", ("windows",)))
    app.add_route("/console/fragments/{name}", pages.Fragment(ctx))
    app.add_static_route("/console/static", str(STATIC))
