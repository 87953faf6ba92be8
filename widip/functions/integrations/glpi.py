"""GLPI client over the legacy REST API (`apirest.php`), GLPI 9.5 / 10 / 11.

One session token is opened lazily (App-Token + `Authorization: user_token …`), shared by all
threads, and renewed once, transparently, when GLPI answers 401 ERROR_SESSION_TOKEN_INVALID (PHP
sessions expire server-side). Collections and searches are fetched page by page through `range`
until the requested limit. Errors go through `http_client.send`: 4xx → `Rejected` carrying GLPI's
code (`ERROR_ITEM_NOT_FOUND`, `ERROR_GLPI_ADD`…), 5xx/timeouts/refusals → `Unavailable`.
Dates are GLPI server local time ("YYYY-MM-DD HH:MM:SS"); we assume the same timezone as GLPI.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

import httpx

from widip.errors import ConfigError, Invalid, Rejected, Unavailable
from widip.functions.integrations.glpi_types import (
    ASSIGNED, REQUESTER, STATUS_LABELS, Followup, Ping, Ticket, User, WorkItem, as_html, decode_text,
    followup_from_item, ticket_from_item, user_from_item, work_from_row,
)
from widip.functions.integrations.http_client import describe_error, make_client, send

logger = logging.getLogger(__name__)

SYSTEM = "glpi"
#: Ticket fields update_ticket may change; anything else (entity, requester, deletion…) is refused.
UPDATABLE_FIELDS = frozenset({"status", "urgency", "impact", "priority", "itilcategories_id", "name", "content",
                              "locations_id"})
_INT_FIELDS = UPDATABLE_FIELDS - {"name", "content"}
#: User search options: login, realname, firstname, email, phone, mobile.
_USER_TEXT_OPTIONS = (1, 34, 9, 5, 6, 11)
DEFAULT_PAGE_SIZE = 50
#: Change statuses that mean it will not happen: 13 cancelled, 14 refused (CommonITILObject).
_CHANGE_ABANDONED = frozenset({13, 14})
#: Search columns of a work item: name, status, opening date, last update, description (2, the id, is always shown).
_WORK_COLUMNS = {f"forcedisplay[{i}]": option for i, option in enumerate((1, 12, 15, 19, 21), start=1)}

__all__ = ["GlpiClient", "Ticket", "User", "Followup", "Ping", "STATUS_LABELS", "UPDATABLE_FIELDS"]


def _session_expired(response: httpx.Response) -> bool:
    return response.status_code == 401 and describe_error(response)[0] == "ERROR_SESSION_TOKEN_INVALID"


def _criteria_params(criteria: list[dict], prefix: str = "criteria") -> list[tuple[str, str]]:
    """[{"field": 12, ...}, {"link": "AND", "criteria": [...]}] → PHP-style query pairs."""
    pairs: list[tuple[str, str]] = []
    for i, criterion in enumerate(criteria):
        for key, value in criterion.items():
            if key == "criteria":
                pairs += _criteria_params(value, f"{prefix}[{i}][criteria]")
            else:
                pairs.append((f"{prefix}[{i}][{key}]", str(value)))
    return pairs


class GlpiClient:
    """The GLPI operations WIDIP uses (the seed's MCP_GLPI operations plus create/find/delete)."""

    def __init__(self, base_url: str, app_token: str | None, user_token: str, *, timeout: float = 10.0,
                 verify: bool | str = True, page_size: int = DEFAULT_PAGE_SIZE, transport=None):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if app_token:
            headers["App-Token"] = app_token
        self._http = make_client(base_url.rstrip("/") + "/", timeout=timeout, verify=verify, headers=headers,
                                 transport=transport)
        self._user_token = user_token
        self._page_size = max(1, page_size)
        self._session: str | None = None
        self._lock = threading.Lock()
        self._entity_names: dict[int, str] = {}
        self._category_names: dict[int, str] = {}

    @classmethod
    def from_settings(cls, settings) -> "GlpiClient":
        """From GLPI_URL (the API URL, or the GLPI root: `/apirest.php` is then appended) and tokens."""
        if not settings.glpi_url or not settings.glpi_user_token:
            raise ConfigError(["GLPI_URL and GLPI_USER_TOKEN must be set to use GLPI"])
        return cls(api_url(settings.glpi_url), settings.glpi_app_token, settings.glpi_user_token,
                   timeout=settings.integration_timeout_seconds, verify=settings.ca_file or True)

    def __enter__(self) -> "GlpiClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Kill the GLPI session (best effort) and release connections."""
        with self._lock:
            token, self._session = self._session, None
        if token:
            try:
                send(self._http, SYSTEM, "GET", "killSession", headers={"Session-Token": token})
            except Exception as exc:  # noqa: BLE001 - closing must not fail the caller
                logger.info("glpi killSession failed: %s", exc)
        self._http.close()

    # --- session and transport -------------------------------------------------------------

    def _open_session(self) -> str:
        response = send(self._http, SYSTEM, "GET", "initSession",
                        headers={"Authorization": f"user_token {self._user_token}"})
        token = (_body(response) or {}).get("session_token")
        if not token:
            raise Rejected(SYSTEM, "initSession returned no session_token", status_code=response.status_code)
        logger.info("glpi session opened")
        return token

    def _token(self, stale: str | None = None) -> str:
        """The shared session token; opened once, renewed only if it is still the `stale` one."""
        with self._lock:
            if self._session is None or self._session == stale:
                self._session = self._open_session()
            return self._session

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        token = self._token()
        response = send(self._http, SYSTEM, method, path, headers={"Session-Token": token},
                        reject_statuses=lambda r: not _session_expired(r), **kwargs)
        if _session_expired(response):
            logger.info("glpi session expired; opening a new one")
            response = send(self._http, SYSTEM, method, path, headers={"Session-Token": self._token(stale=token)},
                            **kwargs)
        return response

    def _paged(self, path: str, params: list[tuple[str, str]], limit: int) -> list[dict]:
        """Rows of a collection or search, following 206 pages with `range` up to `limit` rows."""
        rows: list[dict] = []
        start = 0
        while len(rows) < limit:
            size = min(self._page_size, limit - len(rows))
            response = self._call("GET", path, params=params + [("range", f"{start}-{start + size - 1}")])
            body = _body(response)
            page = (body.get("data") or []) if isinstance(body, dict) else (body or [])
            rows += page
            total = _total(response.headers.get("Content-Range"))
            if response.status_code != 206 or not page or total is None or start + len(page) >= total:
                break
            start += len(page)
        return rows[:limit]

    def _search(self, itemtype: str, criteria: list[dict], limit: int, **options) -> list[dict]:
        params = _criteria_params(criteria) + [("forcedisplay[0]", "2")]
        params += [(k, str(v)) for k, v in options.items()]
        return self._paged(f"search/{itemtype}", params, limit)

    def _create(self, itemtype: str, data: dict) -> int:
        return int(_body(self._call("POST", f"{itemtype}/", json={"input": data}))["id"])

    # --- operations --------------------------------------------------------------------------

    def ping(self) -> Ping:
        """Cheap authenticated round trip (getMyProfiles); opens the session if needed."""
        started = time.perf_counter()
        body = _body(self._call("GET", "getMyProfiles"))
        names = tuple(str(p.get("name")) for p in body.get("myprofiles", []) if isinstance(p, dict))
        return Ping(latency_ms=round((time.perf_counter() - started) * 1000, 1), profiles=names)

    def search_new_tickets(self, minutes_since: int, limit: int = 50) -> list[Ticket]:
        """Tickets still New (status 1) opened in the last `minutes_since` minutes, oldest first."""
        if minutes_since <= 0 or not 1 <= limit <= 500:
            raise Invalid("minutes_since must be > 0 and limit between 1 and 500")
        since = (datetime.now() - timedelta(minutes=minutes_since)).strftime("%Y-%m-%d %H:%M:%S")
        rows = self._search("Ticket", [
            {"field": 12, "searchtype": "equals", "value": 1},
            {"link": "AND", "field": 15, "searchtype": "morethan", "value": since},
        ], limit, sort=15, order="ASC")
        tickets = []
        for ticket_id in _ids(rows):
            try:
                tickets.append(self._ticket(ticket_id))
            except Rejected as exc:  # deleted between the search and the read
                if exc.code != "ERROR_ITEM_NOT_FOUND":
                    raise
        return tickets

    def search_recent_works(self, entity_id: int, days: int = 3, limit: int = 50) -> dict[str, list[WorkItem]]:
        """An entity's open tickets (any status short of solved) and changes (but cancelled or refused) updated
        in the last `days`: announced works, maintenance, firmware or configuration pushes. Two searches,
        no per-item read, so it fits in a diagnosis budget."""
        if not 1 <= days <= 31 or not 1 <= limit <= 200:
            raise Invalid("days must be between 1 and 31 and limit between 1 and 200")
        since = (datetime.now() - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")
        recent = [{"field": 80, "searchtype": "equals", "value": int(entity_id)},
                  {"link": "AND", "field": 19, "searchtype": "morethan", "value": since}]
        tickets = self._search("Ticket", recent + [{"link": "AND", "field": 12, "searchtype": "equals",
                                                    "value": "notold"}], limit, sort=19, order="DESC", **_WORK_COLUMNS)
        changes = self._search("Change", recent, limit, sort=19, order="DESC", **_WORK_COLUMNS)
        return {"tickets": [work_from_row("Ticket", row, int(entity_id)) for row in tickets],
                "changes": [item for item in (work_from_row("Change", row, int(entity_id)) for row in changes)
                            if item.status not in _CHANGE_ABANDONED]}

    def get_ticket(self, ticket_id: int) -> Ticket:
        """The ticket alone (no requesters or followups)."""
        return self._ticket(ticket_id)

    def _ticket(self, ticket_id: int) -> Ticket:
        item = _body(self._call("GET", f"Ticket/{int(ticket_id)}", params={"get_hateoas": "false"}))
        return ticket_from_item(item)

    def get_ticket_details(self, ticket_id: int) -> Ticket:
        """Ticket with its followups (oldest first) and requesters (with their e-mail addresses)."""
        ticket_id = int(ticket_id)
        item = _body(self._call("GET", f"Ticket/{ticket_id}", params={"get_hateoas": "false"}))
        followups = [followup_from_item(f) for f in
                     self._paged(f"Ticket/{ticket_id}/ITILFollowup", [("sort", "id"), ("order", "ASC")], 1000)]
        actors = self._paged(f"Ticket/{ticket_id}/Ticket_User", [], 500)
        requesters = [self._requester(a) for a in actors if int(a.get("type", 0)) == REQUESTER]
        assigned = [int(a["users_id"]) for a in actors if int(a.get("type", 0)) == ASSIGNED]
        return ticket_from_item(item, requesters=requesters, followups=followups, assigned=assigned)

    def _requester(self, actor: dict) -> User:
        user_id = int(actor.get("users_id") or 0)
        alternative = decode_text(actor.get("alternative_email")) or None
        if user_id == 0:  # anonymous requester known only by e-mail (mail collector)
            return User(id=0, login="", email=alternative, emails=(alternative,) if alternative else ())
        try:
            return self.get_user(user_id)
        except Rejected as exc:
            if exc.status_code not in (403, 404):
                raise
            logger.warning("glpi requester %s unreadable (%s); keeping only the id", user_id, exc.code)
            return User(id=user_id, login="", email=alternative)

    def add_ticket_followup(self, ticket_id: int, content: str, is_private: bool = False) -> Followup:
        """Add a followup (plain text, converted to GLPI HTML); returns it with its new id."""
        if not content or not content.strip():
            raise Invalid("a GLPI followup needs a description")
        followup_id = self._create("ITILFollowup", {
            "itemtype": "Ticket", "items_id": int(ticket_id), "content": as_html(content),
            "is_private": int(bool(is_private)), "requesttypes_id": 1})
        return Followup(id=followup_id, ticket_id=int(ticket_id), content=content.strip(), is_private=bool(is_private))

    def close_ticket(self, ticket_id: int, solution: str) -> Ticket:
        """Post a solution (GLPI moves the ticket to Solved, or Closed with immediate auto-close).

        A ticket already Solved/Closed is returned unchanged, so a repeated call is harmless.
        """
        current = self._ticket(ticket_id)
        if current.status >= 5:
            logger.info("glpi ticket %s already %s; no solution added", current.id, current.status_label)
            return current
        self._create("ITILSolution", {"itemtype": "Ticket", "items_id": int(ticket_id),
                                      "content": as_html(solution or "Résolu."), "solutiontypes_id": 0})
        return self._ticket(ticket_id)

    def search_client(self, query: str, limit: int = 10) -> list[User]:
        """Users matching a name, login, e-mail or phone (every word must match one of those fields)."""
        words = (query or "").split()
        if not words:
            raise Invalid("search_client needs a name, an e-mail or a phone number")
        if len(words) == 1 and "@" in words[0]:
            criteria = [{"field": 5, "searchtype": "contains", "value": f"^{words[0]}$"}]
        else:
            criteria = [{**({"link": "AND"} if i else {}), "criteria": [
                {**({"link": "OR"} if j else {}), "field": option, "searchtype": "contains", "value": word}
                for j, option in enumerate(_USER_TEXT_OPTIONS)]} for i, word in enumerate(words)]
        rows = self._search("User", criteria, limit, sort=1, order="ASC")
        return [self.get_user(user_id) for user_id in _ids(rows)]

    def get_user(self, user_id: int) -> User:
        """A user with all its e-mail addresses (default first) and its entity's name."""
        item = _body(self._call("GET", f"User/{int(user_id)}", params={"get_hateoas": "false"}))
        email_rows = self._paged(f"User/{int(user_id)}/UserEmail", [], 100)
        email_rows.sort(key=lambda r: (-int(r.get("is_default") or 0), int(r.get("id") or 0)))
        emails = [decode_text(r.get("email")) for r in email_rows if r.get("email")]
        return user_from_item(item, emails, self._entity_name(int(item.get("entities_id") or 0)))

    def entity_name(self, entity_id: int) -> str | None:
        """An entity's complete name ("Root > EHPAD Les Tilleuls"), cached; None if unknown."""
        return self._entity_name(int(entity_id))

    def category_name(self, category_id: int) -> str | None:
        """An ITIL category's complete name ("Compte utilisateur > Mot de passe"), cached; None if unknown."""
        return self._complete_name("ITILCategory", int(category_id), self._category_names)

    def _entity_name(self, entity_id: int) -> str | None:
        return self._complete_name("Entity", entity_id, self._entity_names)

    def _complete_name(self, itemtype: str, item_id: int, cache: dict[int, str]) -> str | None:
        if item_id not in cache:
            try:
                item = _body(self._call("GET", f"{itemtype}/{item_id}", params={"get_hateoas": "false"}))
            except Rejected:
                return None
            cache[item_id] = decode_text(item.get("completename") or item.get("name"))
        return cache[item_id]

    def assign_ticket(self, ticket_id: int, user_id: int) -> int:
        """Assign a technician (Ticket_User type 2); returns the actor row id, existing or new."""
        for actor in self._paged(f"Ticket/{int(ticket_id)}/Ticket_User", [], 500):
            if int(actor.get("type", 0)) == ASSIGNED and int(actor.get("users_id", 0)) == int(user_id):
                return int(actor["id"])
        return self._create("Ticket_User", {"tickets_id": int(ticket_id), "users_id": int(user_id),
                                            "type": ASSIGNED, "use_notification": 1})

    def assign_group(self, ticket_id: int, group_id: int) -> int:
        """Assign a group (Group_Ticket type 2); returns the row id, existing or new."""
        for row in self._paged(f"Ticket/{int(ticket_id)}/Group_Ticket", [], 500):
            if int(row.get("type", 0)) == ASSIGNED and int(row.get("groups_id", 0)) == int(group_id):
                return int(row["id"])
        return self._create("Group_Ticket", {"tickets_id": int(ticket_id), "groups_id": int(group_id),
                                             "type": ASSIGNED})

    def get_ticket_html(self, ticket_id: int) -> str:
        """The description as GLPI stores it (HTML, entities decoded): what a reader's browser would hide."""
        item = _body(self._call("GET", f"Ticket/{int(ticket_id)}", params={"get_hateoas": "false"}))
        raw = str(item.get("content") or "")
        return raw if "<" in raw else decode_text(raw)

    def update_ticket(self, ticket_id: int, fields: dict) -> Ticket:
        """Change a few safe ticket fields (UPDATABLE_FIELDS); returns the ticket as GLPI now has it."""
        unknown = sorted(set(fields) - UPDATABLE_FIELDS)
        if unknown or not fields:
            raise Invalid(f"update_ticket accepts only {sorted(UPDATABLE_FIELDS)}; refused: {unknown}")
        data = {}
        for key, value in fields.items():
            if key in _INT_FIELDS:
                try:
                    data[key] = int(value)
                except (TypeError, ValueError):
                    raise Invalid(f"{key} must be an integer") from None
            else:
                data[key] = as_html(str(value)) if key == "content" else str(value)
        if "status" in data and data["status"] not in STATUS_LABELS:
            raise Invalid("status must be between 1 and 6")
        self._call("PUT", f"Ticket/{int(ticket_id)}", json={"input": data})
        return self._ticket(ticket_id)

    def create_ticket(self, title: str, content: str, urgency: int = 3, category: int | None = None,
                      entity: int | None = None, requester: int | None = None) -> int:
        """Open an incident; returns its id. Put an idempotency marker in `content` (see find_tickets_by_marker)."""
        if not title or not title.strip() or not content or not content.strip():
            raise Invalid("a GLPI ticket needs a title and a description")
        if not 1 <= int(urgency) <= 5:
            raise Invalid("urgency must be between 1 and 5")
        data = {"name": title.strip()[:255], "content": as_html(content), "urgency": int(urgency), "type": 1,
                "requesttypes_id": 1}
        if category is not None:
            data["itilcategories_id"] = int(category)
        if entity is not None:
            data["entities_id"] = int(entity)
        if requester is not None:
            data["_users_id_requester"] = int(requester)
        ticket_id = self._create("Ticket", data)
        logger.info("glpi ticket %s created", ticket_id)
        return ticket_id

    def find_tickets_by_marker(self, marker: str) -> list[int]:
        """Ids of (non-trashed) tickets whose description contains `marker`, checked exactly."""
        if not marker or len(marker.strip()) < 6:
            raise Invalid("marker too short to be unique")
        rows = self._search("Ticket", [{"field": 21, "searchtype": "contains", "value": marker}], 50)
        found = []
        for ticket_id in _ids(rows):  # LIKE treats _ and % as wildcards: confirm on the text itself
            try:
                if marker in self._ticket(ticket_id).content:
                    found.append(ticket_id)
            except Rejected as exc:
                if exc.code != "ERROR_ITEM_NOT_FOUND":
                    raise
        return found

    def find_entity(self, name: str) -> int | None:
        """The id of the entity named exactly `name` (case-insensitive), or None."""
        if not name or not name.strip():
            return None
        rows = self._search("Entity", [{"field": 1, "searchtype": "contains", "value": name.strip()}], 20)
        wanted = name.strip().lower()
        return next((int(r["2"]) for r in rows if decode_text(str(r.get("1", ""))).strip().lower() == wanted), None)

    def delete_ticket(self, ticket_id: int) -> bool:
        """Move a ticket to the trash (not purged: a human can restore it)."""
        self._call("DELETE", f"Ticket/{int(ticket_id)}")
        return True


def _body(response: httpx.Response):
    """The JSON body; anything else (a proxy's HTML page) means GLPI is not really answering."""
    try:
        return response.json()
    except ValueError:
        raise Unavailable(SYSTEM, f"non-JSON answer (HTTP {response.status_code})",
                          status_code=response.status_code) from None


def api_url(url: str) -> str:
    """`https://glpi.example` → `https://glpi.example/apirest.php`; API URLs (`…/apirest.php`, `…/api`) unchanged."""
    url = url.rstrip("/")
    path = httpx.URL(url).path.rstrip("/")
    return url if path.endswith(".php") or path.endswith("/api") else url + "/apirest.php"


def _ids(rows: list[dict]) -> list[int]:
    return [int(r["2"]) for r in rows if isinstance(r, dict) and str(r.get("2", "")).isdigit()]


def _total(content_range: str | None) -> int | None:
    """Total from `Content-Range: 0-49/230`."""
    if not content_range or "/" not in content_range:
        return None
    try:
        return int(content_range.rsplit("/", 1)[1])
    except ValueError:
        return None
