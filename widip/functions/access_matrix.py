"""The WIBOT access matrix (seed 001 "Matrice d'Accès CSV"): which data each user's assistant may touch.

Ops edit `policy/access_matrix.csv`; `import_access_matrix` loads it idempotently. Admins may also
edit a row through the API. A CSV line wins when it changed since the last import; an unchanged
line does not undo an admin's later API edit. Users without a row get nothing (deny by default).
This module decides nothing about SAFEGUARD levels; it only answers "may this user see X".
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from widip.errors import Invalid, NotFound
from widip.functions.identity import USERNAME_PATTERN, get_user, record_audit

logger = logging.getLogger(__name__)

FLAGS = ("acces_glpi", "acces_base_docs", "acces_contrats", "acces_confidential")
LISTS = ("clients_autorises", "categories_tickets")
CSV_COLUMNS = ("username", *FLAGS, *LISTS)
#: Separator between items of a list cell ("EHPAD Les Tilleuls;Clinique du Parc").
LIST_SEPARATOR = ";"
#: A list holding only this item allows everything.
WILDCARD = "*"
_TRUE = {"true", "1", "yes", "oui", "y", "o", "x"}
_FALSE = {"false", "0", "no", "non", "n", ""}
_IMPORT_LOCK = "widip:access_matrix:import"


@dataclass(frozen=True)
class AccessRights:
    acces_glpi: bool = False
    acces_base_docs: bool = False
    acces_contrats: bool = False
    acces_confidential: bool = False
    clients_autorises: tuple[str, ...] = ()
    categories_tickets: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {**{f: getattr(self, f) for f in FLAGS}, **{f: list(getattr(self, f)) for f in LISTS}}

    @classmethod
    def from_dict(cls, data: dict) -> "AccessRights":
        return cls(**{f: bool(data.get(f, False)) for f in FLAGS},
                   **{f: _clean_items(data.get(f) or ()) for f in LISTS})

    @classmethod
    def from_row(cls, row: dict) -> "AccessRights":
        return cls(**{f: row[f] for f in FLAGS}, **{f: tuple(row[f]) for f in LISTS})

    def allows_client(self, client: str) -> bool:
        return _allows(self.clients_autorises, client)

    def allows_category(self, category: str) -> bool:
        return _allows(self.categories_tickets, category)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ImportReport:
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    #: Usernames in the CSV with no account yet (rows are kept; they apply once the account exists).
    unknown_users: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged,
                "deleted": self.deleted, "unknown_users": list(self.unknown_users)}


def _allows(items: tuple[str, ...], value: str) -> bool:
    wanted = (value or "").strip().casefold()
    return any(item == WILDCARD or item.casefold() == wanted for item in items)


def _clean_items(items) -> tuple[str, ...]:
    cleaned = (str(i).strip() for i in items)
    return tuple(dict.fromkeys(i for i in cleaned if i))


def default_path(settings) -> Path:
    return Path(settings.policy_dir) / "access_matrix.csv"


def access_for(conn, user_id: int) -> AccessRights:
    """The user's rights (all false / empty when the matrix has no row); NotFound for no such user."""
    return access_for_username(conn, get_user(conn, user_id).username)


def access_for_username(conn, username: str) -> AccessRights:
    row = conn.execute("SELECT * FROM access_matrix WHERE username = %s", (username,)).fetchone()
    return AccessRights.from_row(row) if row else AccessRights()


def set_access(conn, user_id: int, rights: AccessRights, *, actor: str) -> AccessRights:
    """An admin's edit through the API: replaces the user's row."""
    username = get_user(conn, user_id).username
    _upsert(conn, username, rights, source="api", csv_digest=None, actor=actor, keep_digest=True)
    record_audit(conn, actor, "access.set", f"user:{username}", rights.to_dict())
    logger.info("access matrix row for %s set by %s", username, actor)
    return rights


def _upsert(conn, username: str, rights: AccessRights, *, source: str, csv_digest: str | None, actor: str,
            keep_digest: bool = False) -> None:
    values = rights.to_dict()
    digest_sql = "access_matrix.csv_digest" if keep_digest else "EXCLUDED.csv_digest"
    conn.execute(
        "INSERT INTO access_matrix (username, acces_glpi, acces_base_docs, acces_contrats, acces_confidential,"
        " clients_autorises, categories_tickets, source, csv_digest, updated_by)"
        " VALUES (%(username)s, %(acces_glpi)s, %(acces_base_docs)s, %(acces_contrats)s, %(acces_confidential)s,"
        " %(clients_autorises)s, %(categories_tickets)s, %(source)s, %(csv_digest)s, %(actor)s)"
        " ON CONFLICT (username) DO UPDATE SET acces_glpi = EXCLUDED.acces_glpi,"
        " acces_base_docs = EXCLUDED.acces_base_docs, acces_contrats = EXCLUDED.acces_contrats,"
        " acces_confidential = EXCLUDED.acces_confidential, clients_autorises = EXCLUDED.clients_autorises,"
        " categories_tickets = EXCLUDED.categories_tickets, source = EXCLUDED.source,"
        f" csv_digest = {digest_sql}, updated_by = EXCLUDED.updated_by, updated_at = now()",
        {**values, "username": username, "source": source, "csv_digest": csv_digest, "actor": actor})


# --- CSV -------------------------------------------------------------------------------------


def parse_csv(text: str, *, where: str = "access_matrix.csv") -> dict[str, AccessRights]:
    """Rows by username. The identifier column may be named `username` or (as in the seed) `user_id`;
    list cells use ';' between items; booleans accept true/false, 1/0, oui/non. Raises Invalid
    naming the line and column at fault."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = ["username" if h == "user_id" else h for h in header]
    missing = [c for c in CSV_COLUMNS if c not in reader.fieldnames]
    if missing:
        raise Invalid(f"{where}: missing column(s) {', '.join(missing)}")
    rows: dict[str, AccessRights] = {}
    for line_no, raw in enumerate(reader, start=2):
        if not any((v or "").strip() for k, v in raw.items() if k is not None):
            continue
        username = (raw["username"] or "").strip().lower()
        if not USERNAME_PATTERN.fullmatch(username):
            raise Invalid(f"{where} line {line_no}: username {raw['username']!r} is not a valid login")
        if username in rows:
            raise Invalid(f"{where} line {line_no}: {username} appears twice")
        flags = {f: _parse_flag(raw[f], f"{where} line {line_no}, column {f}") for f in FLAGS}
        lists = {f: _clean_items((raw[f] or "").split(LIST_SEPARATOR)) for f in LISTS}
        rows[username] = AccessRights(**flags, **lists)
    return rows


def _parse_flag(value: str | None, where: str) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise Invalid(f"{where}: {value!r} is not a boolean (true/false, oui/non, 1/0)")


def import_access_matrix(conn, path: Path | str) -> ImportReport:
    """Load the CSV into `access_matrix`. Idempotent: a second run with the same file changes nothing.
    CSV-sourced rows missing from the file are deleted; rows an admin created through the API for
    users absent from the file are kept."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"access matrix file {path} does not exist") from None
    wanted = parse_csv(text, where=path.name)
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_IMPORT_LOCK,))
    existing = {r["username"]: r for r in conn.execute("SELECT username, source, csv_digest FROM access_matrix")}
    inserted = updated = unchanged = 0
    for username, rights in wanted.items():
        digest = rights.digest()
        current = existing.get(username)
        if current is not None and current["csv_digest"] == digest:
            unchanged += 1
            continue
        _upsert(conn, username, rights, source="csv", csv_digest=digest, actor=f"csv:{path.name}")
        if current is None:
            inserted += 1
        else:
            updated += 1
    stale = [u for u, r in existing.items() if u not in wanted and r["source"] == "csv"]
    if stale:
        conn.execute("DELETE FROM access_matrix WHERE username = ANY(%s) AND source = 'csv'", (stale,))
    known = {r["username"] for r in conn.execute("SELECT username FROM users WHERE username = ANY(%s)",
                                                 (list(wanted),))}
    report = ImportReport(inserted=inserted, updated=updated, unchanged=unchanged, deleted=len(stale),
                          unknown_users=tuple(sorted(set(wanted) - known)))
    if inserted or updated or stale:
        record_audit(conn, f"csv:{path.name}", "access.import", "access_matrix", report.to_dict())
    logger.info("access matrix imported from %s: %s", path, report.to_dict())
    if report.unknown_users:
        logger.warning("access matrix names users without an account: %s", ", ".join(report.unknown_users))
    return report
