"""Documentation tool (read-only): passages of WIDIP's runbooks and documents, with citation ids."""

from __future__ import annotations

from widip.functions.tools.registry import Tool, obj

TOOLS = [
    Tool("docs_search", "docs",
         "Recherche dans la documentation WIDIP (procédures, runbooks, contrats selon tes droits) et renvoie les "
         "passages pertinents avec leur titre, leur section et un identifiant de citation à citer entre crochets. "
         "Searches WIDIP's documentation; returns passages with citation ids.",
         obj({"query": {"type": "string", "minLength": 2, "maxLength": 500,
                        "description": "la question ou les mots-clés, en français"},
              "limit": {"type": "integer", "minimum": 1, "maximum": 10}}, ("query",)),
         lambda c, a, ctx: c.docs.search(a["query"], ctx.principal_user_id, limit=a.get("limit", 5)),
         read_only=True),
]
