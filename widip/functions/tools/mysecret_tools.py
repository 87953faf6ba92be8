"""MySecret (Password Pusher) tools: one-time secret links."""

from __future__ import annotations

from widip.functions.integrations import secret_links
from widip.functions.integrations.secret_handles import HANDLE_PATTERN
from widip.functions.tools.registry import Tool


def _create_secret(c, a, ctx) -> dict:
    """Push the secret; return a masked reference, never the clear link (see secret_links)."""
    link = c.mysecret.create_secret(payload=a.get("payload"), secret_handle=a.get("secret_handle"),
                                    expire_days=a.get("expire_days", 1), expire_views=a.get("expire_views", 1))
    return secret_links.reference(c.secret_links, link)


TOOLS = [
    Tool("mysecret_create_secret", "mysecret",
         "Crée un lien secret à usage unique (MySecret) à partir d'une référence secrète (secret_handle, "
         "fournie par ad_reset_password) ou d'un texte ; le lien expire après N vues ou N jours. "
         "Le résultat ne contient pas le lien en clair mais une référence (secret_ref) à placer dans le corps "
         "du mail au demandeur vérifié : le lien y est inséré à l'envoi. "
         "Creates a one-time secret link; returns a reference (secret_ref) that smtp_send_email expands.",
         {"type": "object", "additionalProperties": False,
          "properties": {"secret_handle": {"type": "string", "pattern": HANDLE_PATTERN},
                         "payload": {"type": "string", "minLength": 1, "maxLength": 5000},
                         "expire_days": {"type": "integer", "minimum": 1, "maximum": 7},
                         "expire_views": {"type": "integer", "minimum": 1, "maximum": 5}},
          "oneOf": [{"required": ["secret_handle"]}, {"required": ["payload"]}]},
         _create_secret,
         on_unknown_outcome="ask_human"),
]
