"""In-memory GLPI 10: items, rights and the ticket rules the legacy REST API enforces.

The HTTP layer (simulators/glpi.py) only parses requests and shapes responses; everything a real
GLPI would decide (session validity, profile rights, ticket status moves, "already solved",
followups without text) is decided here and raised as `GlpiError(status, code, message)`, which
the HTTP layer turns into GLPI's two-element error array. Text is stored as given (raw HTML);
GLPI 10's entity encoding is applied on output by the HTTP layer.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from collections import Counter
from datetime import datetime, timedelta

NO_RIGHT = "You don't have permission to perform this action."
ITEMTYPES = ("Entity", "ITILCategory", "User", "UserEmail", "Ticket", "Ticket_User", "ITILFollowup",
             "ITILSolution", "Group_Ticket", "TicketTask", "Document_Item", "Change")
#: Fields GLPI never discloses through the API.
UNDISCLOSED = {"password", "api_token", "personal_token", "password_forget_token"}
#: Profile name → itemtype → rights letters (r read, c create, u update, d delete).
PROFILES = {
    "Super-Admin": {t: "rcud" for t in ITEMTYPES},
    "Observer": {t: "r" for t in ITEMTYPES if t not in ("User", "UserEmail")},
}
PROFILE_IDS = {"Super-Admin": 4, "Observer": 2}
STATUS_META = {"notold": {1, 2, 3, 4}, "notclosed": {1, 2, 3, 4, 5}, "process": {2, 3}, "old": {5, 6},
               "all": {1, 2, 3, 4, 5, 6}}
ROOT_NAME = "Entité racine"


class GlpiError(Exception):
    """A refusal GLPI would answer with `[code, message]` and this HTTP status."""

    def __init__(self, status: int, code: str, message):
        super().__init__(f"{status} {code}")
        self.status, self.code, self.message = status, code, message


def now_text(delta_minutes: float = 0) -> str:
    """GLPI's date format, server local time."""
    return (datetime.now() - timedelta(minutes=delta_minutes)).strftime("%Y-%m-%d %H:%M:%S")


def compute_priority(urgency: int, impact: int) -> int:
    """GLPI's default urgency × impact matrix, close enough: the rounded mean."""
    return max(1, min(5, int((int(urgency) + int(impact)) / 2 + 0.5)))


class State:
    """Everything the simulated GLPI knows; every method is safe to call from server threads."""

    def __init__(self, app_token: str | None = "sim-app-token", user_tokens: dict[str, int] | None = None,
                 autoclose_immediately: bool = True, max_range: int = 1000):
        self.lock = threading.RLock()
        self.app_token = app_token
        self.user_tokens = dict(user_tokens or {})
        self.autoclose_immediately = autoclose_immediately
        self.max_range = max_range
        self.reset(keep_tokens=True)

    def reset(self, keep_tokens: bool = False) -> None:
        """Back to an empty GLPI (root entity only): no items, sessions, counters or faults."""
        with self.lock:
            self.items: dict[str, dict[int, dict]] = {t: {} for t in ITEMTYPES}
            self._next_id: Counter = Counter()
            self.passwords: dict[str, str] = {}
            self.sessions: dict[str, int] = {}
            self.calls: Counter = Counter()
            self.fault: dict = {}
            if not keep_tokens:
                self.user_tokens = {}
            self.items["Entity"][0] = {"id": 0, "name": ROOT_NAME, "completename": ROOT_NAME,
                                       "entities_id": None, "level": 1, "comment": "", "email": "",
                                       "phonenumber": ""}

    # --- sessions and rights -------------------------------------------------------------------

    def check_app_token(self, given: str | None) -> None:
        if self.app_token is None:
            return
        if not given:
            raise GlpiError(400, "ERROR_APP_TOKEN_PARAMETERS_MISSING", "missing parameter app_token")
        if given != self.app_token:
            raise GlpiError(400, "ERROR_WRONG_APP_TOKEN_PARAMETER", "parameter app_token seems wrong")

    def init_session(self, authorization: str | None, params: dict) -> str:
        """Authenticate by `user_token` or Basic login:password; return a new session token."""
        user_token = params.get("user_token")
        login = password = None
        if authorization and authorization.lower().startswith("user_token "):
            user_token = authorization.split(" ", 1)[1].strip()
        elif authorization and authorization.lower().startswith("basic "):
            try:
                login, _, password = base64.b64decode(authorization[6:].strip()).decode().partition(":")
            except ValueError:
                login = password = None
        login, password = login or params.get("login"), password or params.get("password")
        with self.lock:
            if user_token:
                user_id = self.user_tokens.get(user_token)
                if user_id is None or not self._active_user(user_id):
                    raise GlpiError(401, "ERROR_GLPI_LOGIN_USER_TOKEN", "parameter user_token seems invalid")
            elif login and password:
                user = next((u for u in self.items["User"].values() if u["name"] == login), None)
                if user is None or self.passwords.get(login) != password or not user["is_active"]:
                    raise GlpiError(401, "ERROR_GLPI_LOGIN", "Incorrect username or password")
                user_id = user["id"]
            else:
                raise GlpiError(400, "ERROR_LOGIN_PARAMETERS_MISSING",
                                "parameter(s) login, password or user_token are missing")
            token = secrets.token_hex(13)
            self.sessions[token] = user_id
            return token

    def _active_user(self, user_id: int) -> bool:
        user = self.items["User"].get(user_id)
        return bool(user and user["is_active"] and not user["is_deleted"])

    def session_user(self, token: str | None) -> int:
        if not token:
            raise GlpiError(400, "ERROR_SESSION_TOKEN_MISSING", "parameter session_token is missing or empty")
        with self.lock:
            if token not in self.sessions:
                raise GlpiError(401, "ERROR_SESSION_TOKEN_INVALID", "session_token seems invalid")
            return self.sessions[token]

    def kill_session(self, token: str) -> None:
        with self.lock:
            self.sessions.pop(token, None)

    def expire_sessions(self) -> int:
        """What PHP session GC does to idle sessions: they are simply gone."""
        with self.lock:
            count = len(self.sessions)
            self.sessions.clear()
            return count

    def profile(self, user_id: int) -> str:
        return self.items["User"].get(user_id, {}).get("_profile", "Super-Admin")

    def can(self, user_id: int, itemtype: str, right: str) -> bool:
        return right in PROFILES.get(self.profile(user_id), {}).get(itemtype, "")

    # --- generic item access -------------------------------------------------------------------

    def new_id(self, itemtype: str) -> int:
        existing = self.items[itemtype]
        self._next_id[itemtype] = max(self._next_id[itemtype], max(existing, default=0)) + 1
        return self._next_id[itemtype]

    def public(self, item: dict) -> dict:
        return {k: v for k, v in item.items() if not k.startswith("_") and k not in UNDISCLOSED}

    def get_item(self, user_id: int, itemtype: str, item_id: int) -> dict:
        with self.lock:
            item = self.items[itemtype].get(item_id)
            if item is None:
                raise GlpiError(404, "ERROR_ITEM_NOT_FOUND", "Item not found")
            if not self.can(user_id, itemtype, "r"):
                raise GlpiError(403, "ERROR_RIGHT_MISSING", NO_RIGHT)
            return self.public(item)

    def list_items(self, user_id: int, itemtype: str, parent: tuple[str, int] | None = None,
                   is_deleted: bool = False) -> list[dict]:
        """All visible rows of `itemtype`, or the sub-items of `parent` (itemtype, id)."""
        with self.lock:
            if parent is not None and parent[1] not in self.items[parent[0]]:
                raise GlpiError(404, "ERROR_ITEM_NOT_FOUND", "Item not found")
            if not self.can(user_id, itemtype, "r"):
                raise GlpiError(403, "ERROR_RIGHT_MISSING", NO_RIGHT)
            rows = list(self.items[itemtype].values())
            if parent is not None:
                rows = [r for r in rows if _belongs(r, *parent)]
            elif "is_deleted" in (rows[0] if rows else {}):
                rows = [r for r in rows if bool(r.get("is_deleted")) == is_deleted]
            return [self.public(r) for r in rows]

    def add_item(self, user_id: int, itemtype: str, data: dict) -> int:
        """Create one item; raise GlpiError(400, ERROR_GLPI_ADD) with GLPI's reason when refused."""
        with self.lock:
            if not self.can(user_id, itemtype, "c"):
                raise GlpiError(400, "ERROR_GLPI_ADD", NO_RIGHT)
            adder = getattr(self, f"_add_{itemtype.lower()}", None)
            if adder is None:
                return self._store(itemtype, dict(data))
            return adder(user_id, dict(data))

    def update_item(self, user_id: int, itemtype: str, item_id, data: dict) -> None:
        with self.lock:
            item = self.items[itemtype].get(_int(item_id))
            if item is None:
                raise GlpiError(400, "ERROR_GLPI_UPDATE", None)  # GLPI's quirk: no message for a missing id
            if not self.can(user_id, itemtype, "u"):
                raise GlpiError(400, "ERROR_GLPI_UPDATE", NO_RIGHT)
            changes = {k: v for k, v in data.items() if k != "id" and k not in UNDISCLOSED}
            if itemtype == "Ticket":
                self._apply_ticket_update(item, changes)
            else:
                item.update(changes)

    def delete_item(self, user_id: int, itemtype: str, item_id, purge: bool) -> None:
        with self.lock:
            item = self.items[itemtype].get(_int(item_id))
            if item is None:
                raise GlpiError(400, "ERROR_GLPI_DELETE", "Item not found")
            if not self.can(user_id, itemtype, "d"):
                raise GlpiError(400, "ERROR_GLPI_DELETE", NO_RIGHT)
            if purge or "is_deleted" not in item:
                del self.items[itemtype][item["id"]]
            else:
                item["is_deleted"] = 1
                item["date_mod"] = now_text()

    def _store(self, itemtype: str, data: dict) -> int:
        data["id"] = _int(data.get("id")) or self.new_id(itemtype)
        self.items[itemtype][data["id"]] = data
        return data["id"]

    # --- ticket rules --------------------------------------------------------------------------

    def _add_ticket(self, user_id: int, data: dict) -> int:
        if not str(data.get("content") or "").strip():
            raise GlpiError(400, "ERROR_GLPI_ADD", "Mandatory fields are not filled. Please correct: Description")
        entity = _int(data.get("entities_id", 0))
        if entity not in self.items["Entity"]:
            raise GlpiError(400, "ERROR_GLPI_ADD", "Invalid entity")
        when = data.get("date") or now_text()
        urgency, impact = _int(data.get("urgency", 3)), _int(data.get("impact", 3))
        actors = {kind: _ids(data.pop(f"_users_id_{kind}", None)) for kind in ("requester", "assign", "observer")}
        if not actors["requester"]:
            actors["requester"] = [user_id]  # GLPI's default: the author is the requester
        ticket = {
            "id": None, "entities_id": entity, "name": str(data.get("name") or "")[:255], "date": when,
            "closedate": None, "solvedate": None, "takeintoaccountdate": None, "date_mod": when,
            "users_id_lastupdater": user_id, "status": 1, "users_id_recipient": user_id,
            "requesttypes_id": _int(data.get("requesttypes_id", 1)), "content": data.get("content"),
            "urgency": urgency, "impact": impact, "priority": compute_priority(urgency, impact),
            "itilcategories_id": _int(data.get("itilcategories_id", 0)), "type": _int(data.get("type", 1)),
            "global_validation": 1, "locations_id": _int(data.get("locations_id", 0)), "actiontime": 0,
            "is_deleted": 0, "date_creation": when, "time_to_resolve": None, "time_to_own": None,
        }
        if "priority" in data:
            ticket["priority"] = _int(data["priority"])
        ticket_id = self._store("Ticket", {**ticket, "id": _int(data.get("id"))})
        if not ticket["name"]:
            self.items["Ticket"][ticket_id]["name"] = _plain(ticket["content"])[:70]
        for kind, actor_type in (("requester", 1), ("assign", 2), ("observer", 3)):
            for uid in actors[kind]:
                self._add_ticket_user(user_id, {"tickets_id": ticket_id, "users_id": uid, "type": actor_type})
        if "status" in data:
            self._apply_ticket_update(self.items["Ticket"][ticket_id], {"status": data["status"]})
        return ticket_id

    def _apply_ticket_update(self, ticket: dict, changes: dict) -> None:
        if "status" in changes:
            status = _int(changes["status"])
            if status not in range(1, 7):
                raise GlpiError(400, "ERROR_GLPI_UPDATE", "Invalid status")
            changes["status"] = status
            if status >= 5 and not ticket["solvedate"]:
                changes["solvedate"] = now_text()
            if status == 6:
                changes["closedate"] = now_text()
        if ("urgency" in changes or "impact" in changes) and "priority" not in changes:
            changes["priority"] = compute_priority(changes.get("urgency", ticket["urgency"]),
                                                   changes.get("impact", ticket["impact"]))
        ticket.update(changes)
        ticket["date_mod"] = now_text()

    def _ticket(self, ticket_id, action: str = "ERROR_GLPI_ADD") -> dict:
        ticket = self.items["Ticket"].get(_int(ticket_id))
        if ticket is None:
            raise GlpiError(400, action, "Item not found")
        return ticket

    def _add_ticket_user(self, user_id: int, data: dict) -> int:
        ticket = self._ticket(data.get("tickets_id"))
        users_id, actor_type = _int(data.get("users_id")), _int(data.get("type", 1))
        if users_id not in self.items["User"] or actor_type not in (1, 2, 3):
            raise GlpiError(400, "ERROR_GLPI_ADD", "Invalid user or actor type")
        for row in self.items["Ticket_User"].values():
            if (row["tickets_id"], row["users_id"], row["type"]) == (ticket["id"], users_id, actor_type):
                raise GlpiError(400, "ERROR_GLPI_ADD", "Duplicate entry: this actor is already on the ticket")
        row_id = self._store("Ticket_User", {
            "tickets_id": ticket["id"], "users_id": users_id, "type": actor_type,
            "use_notification": _int(data.get("use_notification", 1)),
            "alternative_email": data.get("alternative_email", "")})
        if actor_type == 2 and ticket["status"] == 1:
            ticket["status"] = 2
            ticket["takeintoaccountdate"] = now_text()
        ticket["date_mod"] = now_text()
        return row_id

    def _add_itilfollowup(self, user_id: int, data: dict) -> int:
        if data.get("itemtype") != "Ticket":
            raise GlpiError(400, "ERROR_GLPI_ADD", "Bad itemtype")
        ticket = self._ticket(data.get("items_id"))
        add_close, add_reopen = _truthy(data.get("add_close")), _truthy(data.get("add_reopen"))
        content = str(data.get("content") or "")
        if not _plain(content).strip() and not add_close:
            raise GlpiError(400, "ERROR_GLPI_ADD", "You can't add a followup without description")
        solution = self._last_solution(ticket["id"])
        if add_close and ticket["status"] == 5:
            ticket.update(status=6, closedate=now_text())
            if solution:
                solution.update(status=3, date_approval=now_text(), users_id_approval=user_id)
        elif add_reopen and ticket["status"] == 5:
            ticket.update(status=2 if self._assigned(ticket["id"]) else 1, solvedate=None)
            if solution:
                solution.update(status=4, date_approval=now_text(), users_id_approval=user_id)
        elif _truthy(data.get("pending")):
            ticket["status"] = 4
        elif ticket["status"] == 4:
            ticket["status"] = 2 if self._assigned(ticket["id"]) else 1
        ticket["date_mod"] = now_text()
        return self._store("ITILFollowup", {
            "itemtype": "Ticket", "items_id": ticket["id"], "date": now_text(), "users_id": user_id,
            "users_id_editor": 0, "content": content, "is_private": _int(data.get("is_private", 0)),
            "requesttypes_id": _int(data.get("requesttypes_id", 1)), "date_mod": now_text(),
            "date_creation": now_text(), "timeline_position": 1, "sourceitems_id": 0, "sourceof_items_id": 0})

    def _add_itilsolution(self, user_id: int, data: dict) -> int:
        if data.get("itemtype") != "Ticket":
            raise GlpiError(400, "ERROR_GLPI_ADD", "Bad itemtype")
        ticket = self._ticket(data.get("items_id"))
        if ticket["status"] in (5, 6):
            raise GlpiError(400, "ERROR_GLPI_ADD",
                            "The item is already solved, did anyone pushed a solution before you?")
        closing = self.autoclose_immediately
        ticket.update(status=6 if closing else 5, solvedate=now_text(), date_mod=now_text())
        if closing:
            ticket["closedate"] = now_text()
        return self._store("ITILSolution", {
            "itemtype": "Ticket", "items_id": ticket["id"], "solutiontypes_id": _int(data.get("solutiontypes_id", 0)),
            "content": str(data.get("content") or ""), "date_creation": now_text(), "date_mod": now_text(),
            "date_approval": now_text() if closing else None, "users_id": user_id, "users_id_editor": 0,
            "users_id_approval": 0, "status": 3 if closing else 2, "itemtype_parent": None,
            "items_id_parent": 0})

    def _add_useremail(self, user_id: int, data: dict) -> int:
        if _int(data.get("users_id")) not in self.items["User"] or "@" not in str(data.get("email", "")):
            raise GlpiError(400, "ERROR_GLPI_ADD", "Invalid email address")
        return self._store("UserEmail", {"users_id": _int(data["users_id"]), "email": data["email"],
                                         "is_default": _int(data.get("is_default", 0)), "is_dynamic": 0})

    def _last_solution(self, ticket_id: int) -> dict | None:
        rows = [s for s in self.items["ITILSolution"].values() if _belongs(s, "Ticket", ticket_id)]
        return max(rows, key=lambda s: s["id"]) if rows else None

    def _assigned(self, ticket_id: int) -> bool:
        return any(r["tickets_id"] == ticket_id and r["type"] == 2 for r in self.items["Ticket_User"].values())

    # --- helpers for search and seeding ----------------------------------------------------------

    def entity_name(self, entity_id) -> str:
        return self.items["Entity"].get(_int(entity_id), {}).get("completename", "")

    def ticket_users(self, ticket_id: int, actor_type: int) -> list[dict]:
        return [self.items["User"][r["users_id"]] for r in self.items["Ticket_User"].values()
                if r["tickets_id"] == ticket_id and r["type"] == actor_type and r["users_id"] in self.items["User"]]

    def user_emails(self, user_id: int) -> list[str]:
        rows = sorted((r for r in self.items["UserEmail"].values() if r["users_id"] == user_id),
                      key=lambda r: (-r["is_default"], r["id"]))
        return [r["email"] for r in rows]

    def seed(self, payload: dict) -> dict:
        """Load entities, categories, users (with e-mails, tokens, profiles) and tickets; return new ids."""
        created: dict[str, list[int]] = {"entities": [], "categories": [], "users": [], "tickets": [], "changes": []}
        with self.lock:
            for e in payload.get("entities", []):
                parent = _int(e.get("entities_id", 0))
                name = e["name"]
                completename = f"{self.entity_name(parent)} > {name}" if parent in self.items["Entity"] else name
                created["entities"].append(self._store("Entity", {
                    "id": e.get("id"), "name": name, "completename": completename, "entities_id": parent,
                    "level": 2, "comment": e.get("comment", ""), "email": e.get("email", ""),
                    "phonenumber": e.get("phonenumber", "")}))
            for c in payload.get("categories", []):
                created["categories"].append(self._store("ITILCategory", {
                    "id": c.get("id"), "name": c["name"], "completename": c.get("completename", c["name"]),
                    "entities_id": 0, "is_recursive": 1}))
            for u in payload.get("users", []):
                created["users"].append(self._seed_user(u))
            for t in payload.get("tickets", []):
                created["tickets"].append(self._seed_ticket(t))
            for c in payload.get("changes", []):
                created["changes"].append(self._seed_change(c))
        return created

    def _seed_change(self, c: dict) -> int:
        """A Change (ITIL change management: WIDIP's planned works), stored as GLPI's columns."""
        when = now_text(float(c["minutes_ago"])) if "minutes_ago" in c else c.get("date") or now_text()
        return self._store("Change", {
            "id": c.get("id"), "name": c["name"], "content": c.get("content", ""), "status": _int(c.get("status", 1)),
            "entities_id": _int(c.get("entities_id", 0)), "date": when, "date_mod": c.get("date_mod", when),
            "date_creation": when, "urgency": 3, "impact": 3, "priority": 3, "itilcategories_id": 0,
            "is_deleted": 0})

    def _seed_user(self, u: dict) -> int:
        user_id = self._store("User", {
            "id": u.get("id"), "name": u["name"], "realname": u.get("realname", ""),
            "firstname": u.get("firstname", ""), "phone": u.get("phone", ""), "phone2": "",
            "mobile": u.get("mobile", ""), "entities_id": _int(u.get("entities_id", 0)),
            "is_active": _int(u.get("is_active", 1)), "is_deleted": 0, "authtype": 1, "comment": "",
            "profiles_id": PROFILE_IDS.get(u.get("profile", "Super-Admin"), 4), "locations_id": 0,
            "usertitles_id": 0, "usercategories_id": 0, "date_mod": now_text(), "last_login": None,
            "_profile": u.get("profile", "Super-Admin")})
        for i, email in enumerate(u.get("emails", [])):
            self._store("UserEmail", {"users_id": user_id, "email": email, "is_default": int(i == 0),
                                      "is_dynamic": 0})
        if u.get("user_token"):
            self.user_tokens[u["user_token"]] = user_id
        if u.get("password"):
            self.passwords[u["name"]] = u["password"]
        return user_id

    def _user_id(self, ref) -> int:
        if isinstance(ref, str) and not ref.isdigit():
            return next((i for i, u in self.items["User"].items() if u["name"] == ref), 0)
        return _int(ref)

    def _seed_ticket(self, t: dict) -> int:
        requester = self._user_id(t.get("requester", 0))
        entity = t.get("entities_id", self.items["User"].get(requester, {}).get("entities_id", 0))
        data = {k: v for k, v in t.items() if k in ("id", "name", "content", "urgency", "impact", "type",
                                                   "itilcategories_id", "status", "priority", "date")}
        if "minutes_ago" in t:
            data["date"] = now_text(float(t["minutes_ago"]))
        data.update(entities_id=entity, _users_id_requester=requester or None,
                    _users_id_assign=self._user_id(t.get("assign", 0)) or None)
        ticket_id = self._add_ticket(requester, data)
        for f in t.get("followups", []):
            self._add_itilfollowup(self._user_id(f.get("author", requester)), {
                "itemtype": "Ticket", "items_id": ticket_id, **{k: f[k] for k in ("content", "is_private") if k in f}})
        return ticket_id

    def seed_demo(self) -> dict:
        """Three client sites, their staff, and this morning's tickets (see DEMO)."""
        return self.seed(DEMO)

    def dump(self) -> dict:
        with self.lock:
            return {t: [self.public(i) for i in rows.values()] for t, rows in self.items.items()} | {
                "sessions": len(self.sessions), "calls": dict(self.calls), "fault": dict(self.fault)}


def _belongs(row: dict, itemtype: str, item_id: int) -> bool:
    if "itemtype" in row and "items_id" in row:
        return row["itemtype"] == itemtype and row["items_id"] == item_id
    return row.get(f"{itemtype.lower()}s_id") == item_id


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _ids(value) -> list[int]:
    if value in (None, "", 0):
        return []
    return [_int(v) for v in (value if isinstance(value, list) else [value]) if _int(v)]


def _truthy(value) -> bool:
    return value not in (None, "", 0, "0", False, "false")


def _plain(html_text: str) -> str:
    return re.sub(r"<[^>]*>", "", str(html_text or ""))


_P = "<p>{}</p>".format
#: The demo story: a care home whose nurse forgot her password, a clinic doctor locked out, a new
#: care assistant to create, and a printer that no script can fix.
DEMO = {
    "entities": [
        {"id": 1, "name": "EHPAD Les Tilleuls",
         "email": "direction@ehpad-tilleuls.fr", "phonenumber": "03 88 41 20 00"},
        {"id": 2, "name": "Clinique du Parc",
         "email": "accueil@clinique-parc.fr", "phonenumber": "03 89 22 10 10"},
        {"id": 3, "name": "EHPAD Saint-Joseph",
         "email": "contact@ehpad-saintjoseph.fr", "phonenumber": "03 87 55 60 60"},
    ],
    "categories": [
        {"id": 1, "name": "Mot de passe", "completename": "Compte utilisateur > Mot de passe"},
        {"id": 2, "name": "Déblocage", "completename": "Compte utilisateur > Déblocage"},
        {"id": 3, "name": "Création", "completename": "Compte utilisateur > Création"},
        {"id": 4, "name": "Imprimante", "completename": "Matériel > Imprimante"},
    ],
    "users": [
        {"id": 2, "name": "widip-api", "realname": "API", "firstname": "WIDIP", "entities_id": 0,
         "emails": ["widip@widip.fr"], "user_token": "sim-user-token"},
        {"id": 3, "name": "admin.widip", "realname": "Roux", "firstname": "Thomas", "entities_id": 0,
         "emails": ["t.roux@widip.fr"], "phone": "03 88 00 00 01", "password": "admin-demo"},
        {"id": 4, "name": "jdupont", "realname": "Dupont", "firstname": "Jeanne", "entities_id": 1,
         "emails": ["jdupont@ehpad-tilleuls.fr"], "phone": "03 88 41 20 14", "mobile": "06 12 34 56 78"},
        {"id": 5, "name": "slefebvre", "realname": "Lefebvre", "firstname": "Sophie", "entities_id": 1,
         "emails": ["direction@ehpad-tilleuls.fr", "s.lefebvre@ehpad-tilleuls.fr"], "phone": "03 88 41 20 01"},
        {"id": 6, "name": "mmartin", "realname": "Martin", "firstname": "Marc", "entities_id": 2,
         "emails": ["mmartin@clinique-parc.fr"], "phone": "03 89 22 10 31"},
        {"id": 7, "name": "cmoreau", "realname": "Moreau", "firstname": "Claire", "entities_id": 2,
         "emails": ["cmoreau@clinique-parc.fr"], "phone": "03 89 22 10 45"},
        {"id": 8, "name": "pbernard", "realname": "Bernard", "firstname": "Paul", "entities_id": 3,
         "emails": ["pbernard@ehpad-saintjoseph.fr"], "phone": "03 87 55 60 12"},
        {"id": 9, "name": "lpetit", "realname": "Petit", "firstname": "Lucie", "entities_id": 3,
         "emails": ["lpetit@ehpad-saintjoseph.fr"], "phone": "03 87 55 60 20"},
        {"id": 10, "name": "observateur", "realname": "Lecture", "firstname": "Compte", "entities_id": 0,
         "emails": ["lecture@widip.fr"], "profile": "Observer", "user_token": "sim-readonly-token"},
    ],
    "tickets": [
        {"name": "Mot de passe oublié", "requester": "jdupont", "itilcategories_id": 1, "urgency": 4,
         "minutes_ago": 12, "content": _P("Bonjour,") + _P("J'ai oublié mon mot de passe Windows et je ne "
                                       "peux plus ouvrir le logiciel de soins. Pouvez-vous le réinitialiser ?")
                                       + _P("Merci, Jeanne Dupont &amp; l'équipe de nuit")},
        {"name": "Compte bloqué", "requester": "mmartin", "itilcategories_id": 2, "urgency": 4,
         "minutes_ago": 8, "content": _P("Mon compte est bloqué après plusieurs essais ce matin, "
                                        "je n'ai plus accès aux dossiers patients.") + _P("Marc Martin")},
        {"name": "Création de compte pour une nouvelle aide-soignante", "requester": "slefebvre",
         "itilcategories_id": 3, "urgency": 3, "minutes_ago": 25,
         "content": _P("Bonjour, une nouvelle aide-soignante, Mme Camille Roche, commence lundi.")
                    + _P("Merci de lui créer un compte avec accès au planning.")},
        {"name": "Imprimante en panne", "requester": "pbernard", "itilcategories_id": 4, "urgency": 2,
         "minutes_ago": 40, "content": _P("L'imprimante du 2<sup>e</sup> étage affiche « bourrage papier » "
                                         "mais il n'y a pas de papier coincé.")},
        {"name": "Lenteurs réseau", "requester": "lpetit", "urgency": 3, "minutes_ago": 60 * 24 * 3,
         "assign": "admin.widip", "status": 6,
         "content": _P("Le réseau était lent mardi, résolu après redémarrage du routeur.")},
    ],
}
