"""Active Directory tools: account checks, unlock, password reset (secret handle only), disable."""

from __future__ import annotations

from widip.functions.integrations.ad_names import EMAIL_PATTERN, SAM_ACCOUNT_PATTERN
from widip.functions.tools.registry import Tool, obj

USERNAME = {"type": "string", "pattern": SAM_ACCOUNT_PATTERN, "maxLength": 20,
            "description": "sAMAccountName du compte Active Directory"}


def _reset(clients, args, ctx):
    """The result carries a single-use secret handle, never the password itself."""
    return clients.active_directory.reset_password(args["username"])


TOOLS = [
    Tool("ad_check_user", "active_directory",
         "Vérifie un compte Active Directory : existe, activé, verrouillé, e-mail, groupes, compte privilégié. "
         "Checks an AD account's state.",
         obj({"username": USERNAME}, ("username",)),
         lambda c, a, ctx: c.active_directory.check_user(a["username"]), read_only=True),
    Tool("ad_find_user_by_mail", "active_directory",
         "Trouve le compte Active Directory dont l'adresse e-mail est donnée (celle du demandeur GLPI vérifié). "
         "Finds the AD account whose e-mail is given; null when none.",
         obj({"email": {"type": "string", "pattern": EMAIL_PATTERN, "maxLength": 254}}, ("email",)),
         lambda c, a, ctx: c.active_directory.find_user_by_mail(a["email"]), read_only=True),
    Tool("ad_get_user_info", "active_directory",
         "Fiche détaillée d'un compte Active Directory (service, fonction, téléphone). An AD account's details.",
         obj({"username": USERNAME}, ("username",)),
         lambda c, a, ctx: c.active_directory.get_user_info(a["username"]), read_only=True),
    Tool("ad_unlock_account", "active_directory",
         "Déverrouille un compte Active Directory verrouillé (comptes privilégiés ou désactivés refusés). "
         "Unlocks a locked AD account; privileged or disabled accounts are refused.",
         obj({"username": USERNAME}, ("username",)),
         lambda c, a, ctx: c.active_directory.unlock_account(a["username"])),
    Tool("ad_reset_password", "active_directory",
         "Réinitialise le mot de passe d'un compte Active Directory : un mot de passe fort est généré, "
         "à changer à la prochaine connexion. Le résultat ne contient qu'une référence secrète à usage unique "
         "(secret_handle) à transmettre à mysecret_create_secret, jamais le mot de passe. "
         "Resets an AD password; returns only a single-use secret handle.",
         obj({"username": USERNAME}, ("username",)), _reset, on_unknown_outcome="ask_human"),
    Tool("ad_disable_account", "active_directory",
         "Désactive un compte Active Directory. Action réservée aux humains. Disables an AD account (humans only).",
         obj({"username": USERNAME}, ("username",)),
         lambda c, a, ctx: c.active_directory.disable_account(a["username"])),
]
