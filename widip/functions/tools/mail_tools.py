"""Mail tools: connection test, mail to allowed recipients, device-down alert to the on-call team."""

from __future__ import annotations

from widip.functions.integrations import secret_links
from widip.functions.tools.registry import Tool, obj

EMAIL = {"type": "string", "format": "email", "maxLength": 254,
         "pattern": r"^[^@\s<>,;\r\n]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$"}


def _message_id(ctx) -> str:
    """One Message-ID per call, so a redelivered send is recognisable as the same mail."""
    return f"widip-{ctx.call_id}"


def _send_email(c, a, ctx):
    """Secret-link references (secret_ref) in the body become the clear link here, and only here."""
    body = secret_links.expand_for_mail(c.secret_links, a["body"], a["to"], ctx.verified_requester)
    return c.mail.send_email(a["to"], a["subject"], body, verified_requester=ctx.verified_requester,
                             message_id=_message_id(ctx))


TOOLS = [
    Tool("smtp_test_connection", "smtp",
         "Vérifie la connexion au serveur de messagerie (TLS, authentification). Checks the SMTP relay.",
         obj({}), lambda c, a, ctx: c.mail.test_connection(), read_only=True),
    Tool("smtp_send_email", "smtp",
         "Envoie un e-mail texte à des destinataires autorisés (domaines internes, équipe d'astreinte, "
         "ou le demandeur vérifié du ticket). Sends a plain-text mail to allowed recipients only.",
         obj({"to": {"type": "array", "items": EMAIL, "minItems": 1, "maxItems": 10},
              "subject": {"type": "string", "minLength": 1, "maxLength": 250, "pattern": r"^[^\r\n]*$"},
              "body": {"type": "string", "minLength": 1, "maxLength": 20000}}, ("to", "subject", "body")),
         _send_email,
         on_unknown_outcome="ask_human"),
    Tool("smtp_send_alert", "smtp",
         "Envoie l'alerte « équipement injoignable » à l'équipe d'astreinte. Sends the device-down alert mail.",
         obj({"device": {"type": "string", "minLength": 1, "maxLength": 255},
              "duration_minutes": {"type": "integer", "minimum": 0, "maximum": 525600},
              "details": {"type": "string", "maxLength": 5000}}, ("device", "duration_minutes")),
         lambda c, a, ctx: c.mail.send_alert(a["device"], a["duration_minutes"], a.get("details"),
                                             message_id=_message_id(ctx)),
         on_unknown_outcome="ask_human"),
]
