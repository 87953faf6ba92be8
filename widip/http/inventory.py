"""The estate over HTTP: what is mapped, what alerted unmapped, and devices' mappings (N3+, audited).

PUT /inventory/devices loads a JSON list of rows (the CSV's, see widip.functions.sentinel.inventory)
all or nothing; PUT /inventory/devices/{hostname} maps or corrects one device, e.g. one listed under
`unmapped` after it alerted.
"""

from __future__ import annotations

from widip.errors import Invalid, NotFound
from widip.functions import clock, db
from widip.functions.safeguard import audit
from widip.functions.sentinel import inventory
from widip.http.auth import require_user
from widip.http.openapi_doc import error, json_response, operation
from widip.functions.untrusted import check
from widip.http.validation import read_json

#: Rows one bulk PUT may carry (the CSV import takes more).
MAX_BULK_ROWS = 5_000
BULK_SCHEMA = {"type": "array", "minItems": 1, "maxItems": MAX_BULK_ROWS, "items": inventory.ROW_SCHEMA}
_HOST = [{"name": "hostname", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 255}}]

OPENAPI_PATHS = {
    "/inventory": {"get": operation("Counts of clients, sites, lines and devices, and devices that alerted "
                                    "without being mapped (N1+)", "getInventory",
                                    {"200": json_response("summary and unmapped devices")})},
    "/inventory/devices": {
        "put": operation("Map many devices, or declare a site's operator line (a row without hostname), all or "
                         "nothing (N3+, audited per row); a 400 names the first bad row (1-based) and field",
                         "putInventoryDevices", {
                             "200": json_response("counts of devices, sites, clients and lines loaded"),
                             "400": error("invalid row")}, body=BULK_SCHEMA)},
    "/inventory/devices/{hostname}": {
        "get": operation("One device's site, client, GLPI entity, role and line (N1+)", "getInventoryDevice", {
            "200": json_response("the mapping"), "404": error("not in the inventory")}, params=_HOST),
        "put": operation("Map or re-map one device (N3+, audited)", "putInventoryDevice", {
            "200": json_response("the mapping"), "400": error("invalid body")}, body=inventory.DEVICE_SCHEMA,
            params=_HOST),
        "delete": operation("Remove one device from the inventory (N3+, audited)", "deleteInventoryDevice", {
            "200": json_response("removed"), "404": error("not in the inventory")}, params=_HOST)},
}


class Inventory:
    def __init__(self, ctx):
        self._ctx = ctx

    def on_get(self, req, resp):
        require_user(req, 1)
        with db.transaction(self._ctx.pool) as conn:
            resp.media = {**inventory.summary(conn), "unmapped": inventory.unmapped(conn, now=clock.now())}

    def on_get_device(self, req, resp, hostname):
        require_user(req, 1)
        with db.transaction(self._ctx.pool) as conn:
            found = inventory.lookup(conn, device_id=None, hostname=_hostname(hostname))
        if found is None:
            raise NotFound(f"no device {hostname[:100]} in the inventory")
        resp.media = found

    def on_put_devices(self, req, resp):
        user = require_user(req, 3)
        body = read_json(req, {**BULK_SCHEMA, "items": {}})
        rows = []
        for number, row in enumerate(body, start=1):
            check(row, inventory.ROW_SCHEMA, what="fields", within=f"row {number}")
            rows.append({**row, "_where": f"row {number}"})
        with db.transaction(self._ctx.pool) as conn:
            report = inventory.import_rows(conn, rows, source=f"api:{user.username}")
            for row in body:
                _audit(conn, user, row)
        resp.media = report

    def on_put_device(self, req, resp, hostname):
        user = require_user(req, 3)
        body = read_json(req, inventory.DEVICE_SCHEMA)
        name = _hostname(hostname)
        with db.transaction(self._ctx.pool) as conn:
            inventory.upsert_device(conn, name, body, source=f"api:{user.username}")
            _audit(conn, user, {"hostname": name, **body})
            resp.media = inventory.lookup(conn, device_id=None, hostname=name)

    def on_delete_device(self, req, resp, hostname):
        user = require_user(req, 3)
        name = _hostname(hostname)
        with db.transaction(self._ctx.pool) as conn:
            row = inventory.delete_device(conn, name)
            audit.record(conn, actor=f"human:{user.username}", actor_user_id=user.user_id,
                         action="inventory_changed", arguments={"hostname": name}, outcome="deleted",
                         reason=f"device {name} removed from the inventory")
        resp.media = {"deleted": row}


def _audit(conn, user, row: dict) -> None:
    """One audit line per device mapped or line declared, whichever form loaded it."""
    if row.get("hostname"):
        reason = f"device {row['hostname']} mapped to {row['site']} ({row['client']})"
    else:
        reason = f"line {row.get('service_ref')} of {row.get('operator')} declared for {row['site']} ({row['client']})"
    audit.record(conn, actor=f"human:{user.username}", actor_user_id=user.user_id, action="inventory_changed",
                 arguments=row, outcome="done", reason=reason)


def _hostname(value: str) -> str:
    name = value.strip()
    if not name or len(name) > 255 or any(c.isspace() or c in "/?#" for c in name):
        raise Invalid("hostname must be a device name without spaces (at most 255 characters)")
    return name


def register(app, ctx):
    resource = Inventory(ctx)
    app.add_route("/inventory", resource)
    app.add_route("/inventory/devices", resource, suffix="devices")
    app.add_route("/inventory/devices/{hostname}", resource, suffix="device")
