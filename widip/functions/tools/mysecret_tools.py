"""MySecret (Password Pusher) tools: one-time secret links."""

from __future__ import annotations

from widip.functions.integrations.secret_handles import HANDLE_PATTERN
from widip.functions.tools.registry import Tool

TOOLS = [
    Tool("mysecret_create_secret", "mysecret",
         "Crée un lien secret à usage unique (MySecret) à partir d'une référence secrète (secret_handle, "
         "fournie par ad_reset_password) ou d'un texte ; le lien expire après N vues ou N jours. "
         "Creates a one-time secret link from a secret handle or a payload.",
         {"type": "object", "additionalProperties": False,
          "properties": {"secret_handle": {"type": "string", "pattern": HANDLE_PATTERN},
                         "payload": {"type": "string", "minLength": 1, "maxLength": 5000},
                         "expire_days": {"type": "integer", "minimum": 1, "maximum": 7},
                         "expire_views": {"type": "integer", "minimum": 1, "maximum": 5}},
          "oneOf": [{"required": ["secret_handle"]}, {"required": ["payload"]}]},
         lambda c, a, ctx: c.mysecret.create_secret(payload=a.get("payload"), secret_handle=a.get("secret_handle"),
                                                    expire_days=a.get("expire_days", 1),
                                                    expire_views=a.get("expire_views", 1)),
         on_unknown_outcome="ask_human"),
]
