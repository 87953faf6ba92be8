"""Identity proofing before any automatic write: the GLPI requester and the AD account must agree on
more than an e-mail.

GLPI e-mails are editable (self-service profile, a mail collector with a spoofed From), so an address
alone proves nothing. Assist acts only when the ticket has one known, active GLPI requester whose
address no other GLPI user has, whose login is the `sAMAccountName` of the one AD account with that
address, and that account is enabled, unprivileged and in an OU Assist may manage.
"""

from __future__ import annotations

from dataclasses import dataclass

from ldap3.utils.dn import parse_dn

from widip.errors import Conflict, ServiceError


@dataclass(frozen=True)
class Proof:
    subject: str | None  # the AD sAMAccountName, None when not proven
    email: str | None
    login: str | None
    reason: str = ""  # French, why it is not proven

    @property
    def proven(self) -> bool:
        return self.subject is not None


def prove(clients, requesters, managed_ous: tuple[str, ...]) -> Proof:
    """Check the ticket's requesters against GLPI and AD; never trusts anything from the ticket text."""
    people = list(requesters)
    if len(people) != 1:
        return Proof(None, None, None, f"{len(people)} demandeurs sur le ticket : identité à confirmer")
    who = people[0]
    email, login = who.email, who.login or None

    def refused(reason: str) -> Proof:
        return Proof(None, email, login, reason)

    if not who.id or not login:
        return refused("demandeur inconnu de GLPI (adresse seule, ex. collecteur de mails) : identité non vérifiable")
    if not who.is_active:
        return refused(f"utilisateur GLPI {login} inactif")
    if not email:
        return refused(f"utilisateur GLPI {login} sans adresse e-mail")
    try:
        holders = clients.glpi.search_client(email, limit=5)
        account = clients.active_directory.find_user_by_mail(email)
    except Conflict:
        return refused(f"plusieurs comptes Active Directory portent l'adresse {email}")
    except ServiceError as exc:
        return refused(f"vérification d'identité impossible ({exc.message})")
    if any(h.id != who.id for h in holders):
        return refused(f"l'adresse {email} est aussi celle d'un autre utilisateur GLPI")
    if account is None:
        return refused(f"aucun compte Active Directory pour {email}")
    if account.username.lower() != login.lower():
        return refused(f"l'identifiant GLPI {login} ne correspond pas au compte Active Directory "
                       f"{account.username} de l'adresse {email}")
    if not account.enabled:
        return refused(f"le compte {account.username} est désactivé")
    if account.admin_count:
        return refused(f"le compte {account.username} est privilégié")
    ous = {value.lower() for kind, value, _ in parse_dn(account.dn or "") if kind.upper() == "OU"}
    if not ous & {o.lower() for o in managed_ous}:
        return refused(f"le compte {account.username} est hors des unités qu'Assist peut gérer")
    return Proof(account.username, email, login)
