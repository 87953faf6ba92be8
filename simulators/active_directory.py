"""Active Directory stand-in: a real LDAP/LDAPS server (ldaptor + Twisted) over a small demo domain.

    python -m simulators.active_directory --port 3389 --ldaps-port 3636 --control-port 8089 --tls-dir var/tls

serves DC=widip,DC=local to every process of the demo; widip connects with
AD_SERVER=ldaps://localhost:3636, AD_USER=svc-widip@widip.local and WIDIP_CA_FILE=var/tls/ca.pem.
The HTTP control app (`make_app`) exposes `/_sim/users`, `/_sim/writes`, `/_sim/calls`, `/_sim/fault`.
Tests use `start_server(State().seed_demo())` from simulators/ldap_server.py in-process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys

import falcon

from simulators.ad_directory import UAC_DONT_EXPIRE_PASSWORD, Directory, norm_dn, to_filetime
from simulators.ldap_server import LdapServerHandle, start_server

__all__ = ["State", "make_app", "start_server", "LdapServerHandle", "main",
           "DEMO_SERVICE_USER", "DEMO_SERVICE_PASSWORD", "DEMO_BASE_DN", "DEMO_PASSWORDS"]

logger = logging.getLogger(__name__)

DEMO_BASE_DN = "DC=widip,DC=local"
DEMO_SERVICE_USER = "svc-widip@widip.local"
DEMO_SERVICE_PASSWORD = "Svc-Widip-Demo-2026!"
#: Current passwords of the demo users, so a demo or test can log in as them.
DEMO_PASSWORDS = {
    "jdupont": "Tilleuls-Printemps-24", "mmartin": "Parc-Hiver-2025!", "agarcia": "Glycines#Ete2025",
    "sleroy": "Ancienne-Salariee-1", "adm.widip": "Adm-Widip-Secret-99", "n3.tech": "N3-Tech-Secret-77",
    "it.parc": "It-Parc-Secret-55", "svc-backup": "Svc-Backup-Demo-2026!",
}


class State(Directory):
    """The directory of the demo domain; `seed_demo()` tells the help-desk story."""

    def seed_demo(self, service_user: str = DEMO_SERVICE_USER,
                  service_password: str = DEMO_SERVICE_PASSWORD) -> "State":
        """Load the demo domain; the help-desk service account is `service_user` (DN, UPN or name)."""
        users = f"CN=Users,{self.base_dn}"
        self.add(users, {"objectClass": ["top", "container"], "cn": "Users"})
        self.add(f"CN=Builtin,{self.base_dn}", {"objectClass": ["top", "builtinDomain"], "cn": "Builtin"})
        clients = self.add_ou("Clients")
        groups = self.add_ou("Groups")
        service = self.add_ou("Service Accounts")
        staff = self.add_ou("WIDIP")
        tilleuls = self.add_ou("EHPAD Les Tilleuls", clients)
        parc = self.add_ou("Clinique du Parc", clients)
        glycines = self.add_ou("EHPAD Les Glycines", clients)

        domain_admins = self.add_group("Domain Admins")
        self.add_group("Enterprise Admins")
        self.add_group("Administrators", f"CN=Builtin,{self.base_dn}")
        it_admins = self.add_group("GG_IT_Admins", groups)
        self.entry(domain_admins).get("member").append(it_admins)  # nested: GG_IT_Admins ⊂ Domain Admins
        soignants = self.add_group("GG_Soignants", groups)
        vpn = self.add_group("GG_VPN", groups)

        p = DEMO_PASSWORDS
        name, parent = self._service_location(service_user, service)
        self.add_user(name, name, parent, password=service_password, operator=True,
                      description="Compte de service WIDIP (réinitialisation, déverrouillage)",
                      userAccountControl=0x200 | UAC_DONT_EXPIRE_PASSWORD)
        self.add_user("svc-backup", "svc-backup", service, password=p["svc-backup"],
                      description="Compte de service sauvegarde", userAccountControl=0x200 | UAC_DONT_EXPIRE_PASSWORD)
        self.add_user("Administrator", "Administrator", users, password="Administrator-Demo-1!", admin_count=True,
                      groups=[domain_admins])
        self.add_user("krbtgt", "krbtgt", users, enabled=False, admin_count=True)
        self.add_user("Guest", "Guest", users, enabled=False)
        self.add_user("adm.widip", "Admin WIDIP", staff, password=p["adm.widip"], admin_count=True,
                      mail="adm.widip@widip.fr", groups=[domain_admins])
        self.add_user("n3.tech", "Technicien N3", staff, password=p["n3.tech"], mail="n3.tech@widip.fr",
                      groups=[it_admins])
        self.add_user("jdupont", "Jean Dupont", tilleuls, password=p["jdupont"], mail="jdupont@ehpad-tilleuls.fr",
                      department="Soins", title="Infirmier", telephoneNumber="+33 4 78 00 11 22",
                      groups=[soignants, vpn])
        self.add_user("sleroy", "Sophie Leroy", tilleuls, password=p["sleroy"], mail="sleroy@ehpad-tilleuls.fr",
                      enabled=False, description="Partie le 31/03 — compte désactivé", department="Administration")
        self.add_user("mmartin", "Marie Martin", parc, password=p["mmartin"], mail="mmartin@clinique-parc.fr",
                      locked=True, department="Accueil", title="Secrétaire médicale", groups=[vpn])
        self.add_user("it.parc", "Informatique Parc", parc, password=p["it.parc"], mail="informatique@clinique-parc.fr",
                      groups=[domain_admins], description="Référent informatique de la clinique")
        self.add_user("agarcia", "Anne Garcia", glycines, password=p["agarcia"], mail="agarcia@ehpad-glycines.fr",
                      department="Cuisine", title="Cheffe de cuisine", groups=[soignants])
        return self

    def _service_location(self, service_user: str, default_parent: str) -> tuple[str, str]:
        """(name, parent DN) for the service account; OUs named in a DN are created if missing."""
        if "=" not in service_user:
            return service_user.split("@")[0].split("\\")[-1], default_parent
        name, parent = _split_dn(service_user)
        chain, current = [], parent
        while current and norm_dn(current) != norm_dn(self.base_dn) and norm_dn(current) not in self.entries:
            chain.append(current)
            current = _split_dn(current)[1]
        for dn in reversed(chain):
            self.add(dn, {"objectClass": ["top", "organizationalUnit"], "ou": _split_dn(dn)[0]})
        return name, parent


def _split_dn(dn: str) -> tuple[str, str]:
    first, _, rest = dn.partition(",")
    return first.partition("=")[2].strip(), rest.strip()


def _user_view(state: State, dn: str) -> dict:
    entry = state.entry(dn)
    return {
        "dn": entry.dn, "sAMAccountName": entry.first("sAMAccountName"), "mail": entry.first("mail") or None,
        "userAccountControl": int(entry.first("userAccountControl", "0")),
        "lockoutTime": int(entry.first("lockoutTime", "0")), "pwdLastSet": int(entry.first("pwdLastSet", "0")),
        "badPwdCount": int(entry.first("badPwdCount", "0")), "adminCount": int(entry.first("adminCount", "0")),
        "locked": state.is_locked(entry), "memberOf": state.groups_of(entry.dn),
    }


class _Users:
    def __init__(self, state: State):
        self._state = state

    def on_get(self, req, resp):
        with self._state.lock:
            resp.media = [_user_view(self._state, e.dn) for e in self._state.entries.values() if e.is_user()]

    def on_get_one(self, req, resp, sam):
        with self._state.lock:
            entry = self._state.find_user(sam)
            if entry is None:
                raise falcon.HTTPNotFound()
            resp.media = _user_view(self._state, entry.dn)

    def on_post_lock(self, req, resp, sam):
        """Lock an account as if it had typed its password wrong too often (demo replays)."""
        with self._state.lock:
            entry = self._state.find_user(sam)
            if entry is None:
                raise falcon.HTTPNotFound()
            entry.set("lockoutTime", [str(to_filetime(self._state.clock()))])
            entry.set("badPwdCount", [str(self._state.lockout_threshold)])
            resp.media = _user_view(self._state, entry.dn)


class _Log:
    def __init__(self, state: State, name: str):
        self._state, self._name = state, name

    def on_get(self, req, resp):
        with self._state.lock:
            resp.media = list(getattr(self._state, self._name))

    def on_delete(self, req, resp):
        with self._state.lock:
            getattr(self._state, self._name).clear()
        resp.status = falcon.HTTP_204


class _Fault:
    def __init__(self, state: State):
        self._state = state

    def on_post(self, req, resp):
        """{"delay_seconds": 5} or {"result_code": 52, "ops": ["modify"]}."""
        self._state.fault = dict(req.get_media() or {})
        resp.media = self._state.fault

    def on_delete(self, req, resp):
        self._state.fault = {}
        resp.status = falcon.HTTP_204


def make_app(state: State | None = None) -> falcon.App:
    """The HTTP control app of the stand-in (the directory itself speaks LDAP, see start_server)."""
    state = state if state is not None else State().seed_demo()
    app = falcon.App()
    users = _Users(state)
    app.add_route("/_sim/users", users)
    app.add_route("/_sim/users/{sam}", users, suffix="one")
    app.add_route("/_sim/users/{sam}/lock", users, suffix="lock")
    app.add_route("/_sim/writes", _Log(state, "writes"))
    app.add_route("/_sim/calls", _Log(state, "calls"))
    app.add_route("/_sim/fault", _Fault(state))
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in as its own process (demo): LDAP, LDAPS and the HTTP control app."""
    from twisted.internet import reactor

    from simulators.base import option, parse_args, serve
    from simulators.ldap_server import listen
    from simulators.tls import load_or_generate

    args = parse_args(__doc__.splitlines()[0], 3389, argv,
                      option("--ldaps-port", type=int, default=3636), option("--control-port", type=int, default=0),
                      option("--tls-dir", default="var/tls"),
                      option("--service-user", default=os.environ.get("AD_USER") or DEMO_SERVICE_USER,
                             help="DN, UPN or name of the help-desk service account (default: $AD_USER)"),
                      option("--service-password", default=os.environ.get("AD_PASSWORD") or DEMO_SERVICE_PASSWORD,
                             help="its password (default: $AD_PASSWORD)"),
                      option("--empty", action="store_true", help="start without the demo users"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    state = State() if args.empty else State().seed_demo(args.service_user, args.service_password)
    tls = load_or_generate(args.tls_dir)
    handle = listen(state, host=args.host, port=args.port, ldaps_port=args.ldaps_port, tls=tls)
    control = serve(make_app(state), host=args.host, port=args.control_port)
    print(json.dumps({"ldap_url": handle.ldap_url, "ldaps_url": handle.ldaps_url, "ca_file": tls.ca_file,
                      "control_url": control.url, "base_dn": state.base_dn,
                      "service_user": args.service_user}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.run()
    control.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
