"""What the GLPI client returns: small frozen records, plus the text conversions GLPI needs.

GLPI 10 returns text fields HTML-entity-encoded (`&#60;p&#62;Bonjour&#60;/p&#62;`) and ticket bodies
are rich-text HTML; people and models want plain text. `plain_text` undoes both, `as_html` does the
reverse for what we write.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass, field

from widip.functions.jsonable import json_safe

#: GLPI ticket statuses as the French UI names them.
STATUS_LABELS = {1: "Nouveau", 2: "En cours (attribué)", 3: "En cours (planifié)", 4: "En attente",
                 5: "Résolu", 6: "Clos"}
#: Ticket_User / Group_Ticket `type`.
REQUESTER, ASSIGNED, OBSERVER = 1, 2, 3

_BLOCK_END = re.compile(r"(?i)<br\s*/?>|</(p|div|li|h\d|tr|blockquote)\s*>")
_TAG = re.compile(r"<[^<>]*>")


def plain_text(value: str | None) -> str:
    """GLPI rich text (sanitised or raw HTML) as readable plain text, paragraphs kept."""
    if not value:
        return ""
    text = str(value)
    if "<" not in text:  # GLPI 10 sanitised output: the markup itself is entity-encoded
        text = html.unescape(text)
    text = _TAG.sub("", _BLOCK_END.sub("\n", text))
    text = html.unescape(text).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def decode_text(value: str | None) -> str:
    """A one-line GLPI text field (title, name, login) with its entities decoded."""
    return html.unescape(str(value)) if value else ""


def as_html(text: str) -> str:
    """Plain text as the HTML GLPI's rich-text fields expect (escaped, one <p> per paragraph)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{html.escape(p, quote=False).replace(chr(10), '<br>')}</p>" for p in paragraphs)


class _Record:
    def to_dict(self) -> dict:
        """JSON-safe dict (tuples become lists), for tool results stored as JSON."""
        return json_safe(asdict(self))


@dataclass(frozen=True)
class User(_Record):
    """A GLPI user. `email` is the default address (None if the user has none)."""

    id: int
    login: str
    firstname: str = ""
    realname: str = ""
    email: str | None = None
    phone: str = ""
    entity_id: int = 0
    mobile: str = ""
    emails: tuple[str, ...] = ()
    is_active: bool = True
    entity_name: str | None = None

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.firstname, self.realname) if p) or self.login


#: A ticket's requester is a full User (with e-mail); the alias keeps the spec's name.
UserRef = User


@dataclass(frozen=True)
class Followup(_Record):
    """One ticket follow-up; `content` is plain text."""

    id: int
    ticket_id: int
    content: str
    is_private: bool
    date: str | None = None
    author_id: int | None = None


@dataclass(frozen=True)
class Ticket(_Record):
    """A ticket with plain-text content; requesters and followups are filled by get_ticket_details."""

    id: int
    title: str
    content: str
    status: int
    status_label: str
    urgency: int
    priority: int
    entity_id: int
    category_id: int
    date: str | None
    requesters: tuple[User, ...] = ()
    followups: tuple[Followup, ...] = ()
    assigned_user_ids: tuple[int, ...] = ()
    is_deleted: bool = False


@dataclass(frozen=True)
class WorkItem(_Record):
    """An open ticket or a change from an entity's recent activity (search columns only, content plain text)."""

    itemtype: str
    id: int
    title: str
    content: str
    status: int
    entity_id: int
    date: str | None
    date_mod: str | None


@dataclass(frozen=True)
class Ping(_Record):
    """Result of a health probe: how long GLPI took to answer an authenticated call."""

    latency_ms: float
    profiles: tuple[str, ...] = field(default=())


def ticket_from_item(item: dict, requesters=(), followups=(), assigned=()) -> Ticket:
    status = int(item.get("status") or 0)
    return Ticket(
        id=int(item["id"]), title=decode_text(item.get("name")), content=plain_text(item.get("content")),
        status=status, status_label=STATUS_LABELS.get(status, str(status)),
        urgency=int(item.get("urgency") or 0), priority=int(item.get("priority") or 0),
        entity_id=int(item.get("entities_id") or 0), category_id=int(item.get("itilcategories_id") or 0),
        date=item.get("date"), requesters=tuple(requesters), followups=tuple(followups),
        assigned_user_ids=tuple(assigned), is_deleted=bool(item.get("is_deleted")))


def work_from_row(itemtype: str, row: dict, entity_id: int) -> WorkItem:
    """A search row (keys are option ids: 1 name, 2 id, 12 status, 15 date, 19 date_mod, 21 content)."""
    return WorkItem(itemtype=itemtype, id=int(row["2"]), title=decode_text(row.get("1")),
                    content=plain_text(row.get("21"))[:2000], status=int(row.get("12") or 0), entity_id=entity_id,
                    date=row.get("15"), date_mod=row.get("19"))


def followup_from_item(item: dict) -> Followup:
    return Followup(id=int(item["id"]), ticket_id=int(item.get("items_id") or 0),
                    content=plain_text(item.get("content")), is_private=bool(int(item.get("is_private") or 0)),
                    date=item.get("date"), author_id=item.get("users_id"))


def user_from_item(item: dict, emails: list[str], entity_name: str | None = None) -> User:
    return User(
        id=int(item["id"]), login=decode_text(item.get("name")), firstname=decode_text(item.get("firstname")),
        realname=decode_text(item.get("realname")), email=emails[0] if emails else None,
        phone=decode_text(item.get("phone")), entity_id=int(item.get("entities_id") or 0),
        mobile=decode_text(item.get("mobile")), emails=tuple(emails),
        is_active=bool(int(item.get("is_active", 1) or 0)), entity_name=entity_name)
