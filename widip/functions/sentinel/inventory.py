"""The estate: which site, client, GLPI entity, operator and line each monitored device belongs to.

Without it a device's site was the whole Observium location (room included) and its operator a guess
from the alert text. One CSV row per device (`widip inventory import FILE.csv`; PUT /inventory/devices
takes the same rows as a JSON list, PUT /inventory/devices/{hostname} one device):

    hostname,device_id,site,sub_location,client,glpi_entity_id,widip,role,operator,service_ref,technology

A row with no hostname declares an operator line of the site without any device behind it (a line
ops know of before its router is monitored): site, client, operator, service_ref and technology.
Rows upsert clients (by name), sites (by name), operator lines (by service_ref) and devices (by
hostname). `sync_observium` (`widip inventory sync`) enriches it: every Observium device not yet
mapped is added from its location (site + sub-location, client), its type (role) and, when GLPI knows
an entity named like the client, that entity; rows ops imported or PUT are never overwritten. A device not in the inventory still works with what its alert says: its location is parsed
into site + sub-location ("EHPAD X - Ville / local technique RDC") and its client is the part before
" - "; such devices are listed by `unmapped` for ops to map.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

from psycopg import Connection

from widip.errors import Invalid, NotFound
from widip.functions import db

ROLES = ("access", "firewall", "switch", "wifi", "ups", "sensor", "core", "server", "other")
COLUMNS = ("hostname", "device_id", "site", "sub_location", "client", "glpi_entity_id", "widip", "role",
           "operator", "service_ref", "technology")
MAX_ROWS = 50_000
MAX_ENTITY_ID = 2_147_483_647  # GLPI ids are 32-bit integers
_SUB_SEPARATOR = " / "
_CLIENT_SEPARATOR = " - "

DEVICE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["site", "client"],
    "properties": {
        "device_id": {"type": ["string", "integer", "null"], "maxLength": 64},
        "site": {"type": "string", "minLength": 1, "maxLength": 255},
        "sub_location": {"type": ["string", "null"], "maxLength": 255},
        "client": {"type": "string", "minLength": 1, "maxLength": 255},
        "glpi_entity_id": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_ENTITY_ID},
        "widip": {"type": "boolean"},
        "role": {"enum": list(ROLES)},
        "operator": {"type": ["string", "null"], "maxLength": 64},
        "service_ref": {"type": ["string", "null"], "maxLength": 64},
        "technology": {"type": ["string", "null"], "maxLength": 32},
    },
}
#: One row of a bulk load: a device (hostname) or, without hostname, an operator line of the site.
ROW_SCHEMA = {**DEVICE_SCHEMA, "properties": {
    "hostname": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[^\s/?#]+$"},
    **DEVICE_SCHEMA["properties"]}}
#: Fields that only make sense for a device, refused on a line row (no hostname).
DEVICE_ONLY = ("device_id", "sub_location", "role")


def parse_location(location: str | None) -> tuple[str | None, str | None, str | None]:
    """(site, sub-location, client) from an Observium location "<client> - <place> / <room>"."""
    text = " ".join((location or "").split())
    if not text or text.lower() in ("unknown", "n/a", "-"):
        return None, None, None
    site, _, room = text.partition(_SUB_SEPARATOR)
    site = site.strip() or text
    client = site.split(_CLIENT_SEPARATOR, 1)[0].strip() or site
    return site, room.strip() or None, client


def import_csv(conn: Connection, path: str | Path, *, source: str = "import") -> dict:
    """Load a CSV file (see module doc); Invalid naming the first bad line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror}") from None
    return import_rows(conn, parse_csv(text), source=source)


def parse_csv(text: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("hostname", "site", "client") if c not in (reader.fieldnames or ())]
    if missing:
        raise Invalid(f"inventory CSV: missing column(s) {', '.join(missing)}")
    rows = []
    for line, row in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            raise Invalid(f"inventory CSV: more than {MAX_ROWS} rows")
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        rows.append({"_where": f"line {line}", **{k: (row.get(k) or "").strip() or None for k in COLUMNS}})
    return rows


def import_rows(conn: Connection, rows: list[dict], *, source: str = "import") -> dict:
    """Upsert every row in one transaction (the caller's); a report of what was loaded.

    A row's `_where` ("line 3", "row 2") prefixes its errors, so a refusal names the row and field.
    """
    report = {"devices": 0, "sites": set(), "clients": set(), "lines": set()}
    for row in rows:
        where = f"{row['_where']}: " if row.get("_where") else ""
        data = _normalise(row, where)
        if row.get("hostname"):
            upsert_device(conn, row["hostname"], data, source=source)
            report["devices"] += 1
        else:
            _check_line_row(data, where)
            upsert_site(conn, data)
        report["sites"].add(data["site"].lower())
        report["clients"].add(data["client"].lower())
        if data.get("service_ref"):
            report["lines"].add(data["service_ref"])
    return {k: (len(v) if isinstance(v, set) else v) for k, v in report.items()}


def _check_line_row(data: dict, where: str) -> None:
    """A row without hostname must declare a line, and only a line."""
    if not data.get("service_ref"):
        raise Invalid(f"{where}hostname is required (leave it empty only to declare a site's operator line "
                      "with operator and service_ref)")
    extra = [name for name in DEVICE_ONLY if data.get(name) not in (None, "") and not (name == "role" and
                                                                                      data[name] == "other")]
    if extra:
        raise Invalid(f"{where}{', '.join(extra)} need(s) a hostname (a row without hostname declares a line)")


def upsert_site(conn: Connection, data: dict) -> int:
    """Upsert the client, the site and, when `data` names one, the site's operator line; the site id."""
    client_id = conn.execute(
        "INSERT INTO clients (name, glpi_entity_id, widip) VALUES (%s, %s, %s) ON CONFLICT (lower(name)) DO UPDATE "
        "SET glpi_entity_id = coalesce(EXCLUDED.glpi_entity_id, clients.glpi_entity_id), "
        "widip = clients.widip OR EXCLUDED.widip, updated_at = now() RETURNING id",
        (data["client"], data.get("glpi_entity_id"), bool(data.get("widip")))).fetchone()["id"]
    site_id = conn.execute(
        "INSERT INTO sites (name, client_id) VALUES (%s, %s) ON CONFLICT (lower(name)) DO UPDATE "
        "SET client_id = EXCLUDED.client_id, updated_at = now() RETURNING id", (data["site"], client_id)).fetchone()["id"]
    if data.get("service_ref"):
        conn.execute(
            "INSERT INTO operator_lines (service_ref, site_id, operator, technology) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (service_ref) DO UPDATE SET site_id = EXCLUDED.site_id, operator = EXCLUDED.operator, "
            "technology = coalesce(EXCLUDED.technology, operator_lines.technology), updated_at = now()",
            (data["service_ref"], site_id, data["operator"].lower(), data.get("technology")))
    return site_id


def upsert_device(conn: Connection, hostname: str, data: dict, *, source: str = "api") -> dict:
    """Create or replace one device's mapping (client, site and line upserted on the way)."""
    data = _normalise(data, "")
    site_id = upsert_site(conn, data)
    device_id = str(data["device_id"]) if data.get("device_id") not in (None, "") else None
    if device_id:  # an Observium id moves with its device: free it from a stale row first
        conn.execute("UPDATE inventory_devices SET device_id = NULL WHERE device_id = %s AND lower(hostname) <> "
                     "lower(%s)", (device_id, hostname))
    return conn.execute(
        "INSERT INTO inventory_devices (hostname, device_id, site_id, sub_location, role, service_ref, source) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (lower(hostname)) DO UPDATE SET "
        "device_id = coalesce(EXCLUDED.device_id, inventory_devices.device_id), site_id = EXCLUDED.site_id, "
        "sub_location = EXCLUDED.sub_location, role = EXCLUDED.role, service_ref = EXCLUDED.service_ref, "
        "source = EXCLUDED.source, updated_at = now() RETURNING *",
        (hostname.strip(), device_id, site_id, data.get("sub_location"), data.get("role") or "other",
         data.get("service_ref"), source)).fetchone()


def delete_device(conn: Connection, hostname: str) -> dict:
    row = conn.execute("DELETE FROM inventory_devices WHERE lower(hostname) = lower(%s) RETURNING *",
                       (hostname,)).fetchone()
    if row is None:
        raise NotFound(f"no device {hostname} in the inventory")
    return row


_LOOKUP = (
    "SELECT d.hostname, d.device_id, d.sub_location, d.role, d.service_ref, s.id AS site_id, s.name AS site, "
    "c.name AS client, c.glpi_entity_id, c.widip, l.operator, l.technology "
    "FROM inventory_devices d JOIN sites s ON s.id = d.site_id JOIN clients c ON c.id = s.client_id "
    "LEFT JOIN operator_lines l ON l.service_ref = d.service_ref ")


def lookup(conn: Connection, *, device_id: str | None, hostname: str | None) -> dict | None:
    """The device's place in the estate, with its site's lines and device count; None when unmapped."""
    row = None
    if device_id:
        row = conn.execute(_LOOKUP + "WHERE d.device_id = %s", (str(device_id),)).fetchone()
    if row is None and hostname:
        row = conn.execute(_LOOKUP + "WHERE lower(d.hostname) = lower(%s)", (hostname,)).fetchone()
    if row is None:
        return None
    return {**row, **site_facts(conn, row["site_id"])}


def site_facts(conn: Connection, site_id: int) -> dict:
    lines = conn.execute("SELECT service_ref, operator, technology FROM operator_lines WHERE site_id = %s "
                         "ORDER BY service_ref", (site_id,)).fetchall()
    devices = conn.execute("SELECT hostname, device_id, role FROM inventory_devices WHERE site_id = %s ORDER BY hostname",
                           (site_id,)).fetchall()
    return {"site_lines": lines, "site_devices": devices}


def site_named(conn: Connection, name: str) -> dict | None:
    row = conn.execute("SELECT s.id AS site_id, s.name AS site, c.name AS client, c.glpi_entity_id, c.widip "
                       "FROM sites s JOIN clients c ON c.id = s.client_id WHERE lower(s.name) = lower(%s)",
                       (name,)).fetchone()
    return {**row, **site_facts(conn, row["site_id"])} if row else None


def widip_entity(conn: Connection) -> int | None:
    """The GLPI entity where WIDIP records its own changes (the client flagged `widip`)."""
    row = conn.execute("SELECT glpi_entity_id FROM clients WHERE widip AND glpi_entity_id IS NOT NULL "
                       "ORDER BY id LIMIT 1").fetchone()
    return row["glpi_entity_id"] if row else None


def summary(conn: Connection) -> dict:
    return conn.execute(
        "SELECT (SELECT count(*) FROM clients) AS clients, (SELECT count(*) FROM sites) AS sites, "
        "(SELECT count(*) FROM operator_lines) AS lines, (SELECT count(*) FROM inventory_devices) AS devices"
    ).fetchone()


def unmapped(conn: Connection, *, now: datetime, days: int = 7, limit: int = 100) -> list[dict]:
    """Devices that alerted lately and are not in the inventory (to be mapped), most alerts first."""
    rows = conn.execute(
        "SELECT a.hostname, max(a.device_id) AS device_id, count(*) AS alerts, max(a.received_at) AS last_seen "
        "FROM alerts a WHERE a.received_at > %s AND a.hostname IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM inventory_devices d WHERE lower(d.hostname) = lower(a.hostname) "
        "OR (a.device_id IS NOT NULL AND d.device_id = a.device_id)) "
        "GROUP BY a.hostname ORDER BY count(*) DESC, a.hostname LIMIT %s",
        (now - timedelta(days=days), limit)).fetchall()
    return [{**r, "last_seen": r["last_seen"].isoformat()} for r in rows]


_TYPE_ROLES = {"firewall": "firewall", "wireless": "wifi", "power": "ups", "environment": "sensor", "server": "server"}


def sync_observium(pool, clients, *, ask_glpi: bool = True) -> dict:
    """Add every Observium device the inventory lacks (see module doc); a report of what was added.

    Observium and GLPI are asked outside any transaction, so a slow answer holds no database connection
    or lock. The rows are written in one short transaction that locks the device table against imports
    and looks again: a device or site ops mapped meanwhile is kept as they mapped it.
    """
    devices = clients.observium.list_devices()
    with db.transaction(pool) as conn:
        known = _hostnames(conn)
        placed = [(device, *parse_location(device.location)) for device in devices
                  if device.hostname.lower() not in known]
        entities = _client_entities(conn)  # an entity ops gave a client wins over GLPI's, and spares asking
        asked = {client for _, site, _, client in placed if site and not site_named(conn, site)}
    for client in sorted(asked, key=str.lower):
        if ask_glpi and client.lower() not in entities:
            entities[client.lower()] = _glpi_entity(clients, client)
    added, skipped = 0, 0
    with db.transaction(pool) as conn:
        # All locks first (an import takes the same tables), then look again at what ops mapped meanwhile.
        conn.execute("LOCK TABLE clients, sites, inventory_devices IN SHARE ROW EXCLUSIVE MODE")
        present, entities = _hostnames(conn), {**entities, **_client_entities(conn)}
        for device, site, room, client in placed:
            if not site:
                skipped += 1
                continue
            if device.hostname.lower() in present:  # mapped meanwhile, or listed twice
                continue
            mapped_site = site_named(conn, site)  # a site ops placed keeps its client and entity
            name = mapped_site["client"] if mapped_site else client
            upsert_device(conn, device.hostname, {
                "device_id": str(device.id), "site": site, "sub_location": room, "client": name,
                "glpi_entity_id": entities.get(name.lower()),
                "role": _TYPE_ROLES.get(device.device_type or "", "other")}, source="observium")
            present.add(device.hostname.lower())
            added += 1
    return {"added": added, "without_location": skipped, "already_mapped": len(known)}


def _client_entities(conn: Connection) -> dict[str, int]:
    return {r["name"]: r["glpi_entity_id"] for r in conn.execute(
        "SELECT lower(name) AS name, glpi_entity_id FROM clients WHERE glpi_entity_id IS NOT NULL")}


def _hostnames(conn: Connection) -> set[str]:
    return {r["hostname"].lower() for r in conn.execute("SELECT hostname FROM inventory_devices").fetchall()}


def _glpi_entity(clients, client: str) -> int | None:
    from widip.errors import IntegrationError

    try:
        return clients.glpi.find_entity(client)
    except IntegrationError:
        return None


def _normalise(row: dict, where: str) -> dict:
    data = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
    for name in ("site", "client"):
        if not data.get(name):
            raise Invalid(f"{where}{name} is required")
    role = (data.get("role") or "other").lower()
    if role not in ROLES:
        raise Invalid(f"{where}role must be one of {', '.join(ROLES)}")
    entity = data.get("glpi_entity_id")
    if entity not in (None, ""):
        try:
            entity = int(entity)
        except (TypeError, ValueError):
            raise Invalid(f"{where}glpi_entity_id must be an integer") from None
        if not 0 <= entity <= MAX_ENTITY_ID:
            raise Invalid(f"{where}glpi_entity_id must be between 0 and {MAX_ENTITY_ID}")
    if data.get("service_ref") and not data.get("operator"):
        raise Invalid(f"{where}service_ref {data['service_ref']} needs an operator")
    widip = data.get("widip")
    if isinstance(widip, str):
        widip = widip.lower() in ("1", "true", "yes", "oui")
    return {**data, "role": role, "glpi_entity_id": entity if entity != "" else None, "widip": bool(widip),
            "operator": (data.get("operator") or None), "service_ref": (data.get("service_ref") or None)}
