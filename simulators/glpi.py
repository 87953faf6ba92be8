"""A local GLPI 10 speaking the legacy REST API (`/apirest.php/...`) closely enough for our client.

Reproduces docs/integrations.md: sessions by `user_token` or Basic (tokens as headers or query
params), two-element error arrays with GLPI's codes and statuses, 201 + Location on POST, PUT/DELETE
lists, sub-item routes, `range`/Content-Range/206 on collections and search, the search engine's
criteria on the documented option ids, the ticket state machine (in glpi_state.py) and GLPI 10's
HTML-entity encoding of text unless `X-GLPI-Sanitized-Content: false`.

Test and demo hooks under `/_sim/`: `POST /_sim/seed`, `POST /_sim/seed_demo`, `POST /_sim/reset`, `GET /_sim/state`,
`GET /_sim/calls`, `POST /_sim/expire_sessions`, `POST /_sim/fault` ({"delay_seconds": x},
{"status": 503}, optional "times": n, or {"clear": true}).

Run: `python -m simulators.glpi --port 8670 --demo` → base URL http://127.0.0.1:8670/apirest.php,
app token `sim-app-token`, user token `sim-user-token`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from urllib.parse import parse_qsl

import falcon

from simulators.glpi_state import ITEMTYPES, PROFILE_IDS, STATUS_META, GlpiError, State, _int

logger = logging.getLogger(__name__)

PREFIX = "/apirest.php"
DOC_SUFFIX_CODES = {"ERROR_LOGIN_PARAMETERS_MISSING", "ERROR_APP_TOKEN_PARAMETERS_MISSING",
                    "ERROR_WRONG_APP_TOKEN_PARAMETER", "ERROR_SESSION_TOKEN_MISSING", "ERROR_BAD_ARRAY"}
SESSION_READERS = ("getMyProfiles", "getActiveProfile", "getMyEntities", "getActiveEntities",
                   "getFullSession", "getGlpiConfig", "changeActiveProfile", "changeActiveEntities")


_TICKET_FIELDS = {1: "name", 2: "id", 3: "priority", 10: "urgency", 11: "impact", 12: "status", 14: "type",
                  15: "date", 16: "closedate", 17: "solvedate", 19: "date_mod", 21: "content", 83: "locations_id"}


def _ticket_column(state: State, t: dict, option: int):
    if option in _TICKET_FIELDS:
        return t[_TICKET_FIELDS[option]]
    if option in (4, 5, 66):
        return [u["name"] for u in state.ticket_users(t["id"], {4: 1, 5: 2, 66: 3}[option])]
    if option == 7:
        return state.items["ITILCategory"].get(t["itilcategories_id"], {}).get("completename")
    if option in (24, 25):
        rows = state.items["ITILSolution" if option == 24 else "ITILFollowup"].values()
        return [r["content"] for r in rows if r["items_id"] == t["id"]]
    return state.entity_name(t["entities_id"])  # 80


def _ticket_id_column(state: State, t: dict, option: int):
    """Values `equals` compares for dropdown-like options (ids, not names)."""
    if option in (4, 5, 66):
        return [u["id"] for u in state.ticket_users(t["id"], {4: 1, 5: 2, 66: 3}[option])]
    return {7: t["itilcategories_id"], 80: t["entities_id"]}.get(option, _ticket_column(state, t, option))


def _user_column(state: State, u: dict, option: int):
    return {1: u["name"], 2: u["id"], 5: state.user_emails(u["id"]), 6: u["phone"], 8: u["is_active"],
            9: u["firstname"], 11: u["mobile"], 34: u["realname"], 80: state.entity_name(u["entities_id"])}[option]


def _entity_column(state: State, e: dict, option: int):
    return {1: e["name"], 2: e["id"], 14: e["completename"]}[option]


SEARCH = {  # itemtype → (option ids, display value, equals value)
    "Ticket": ({1, 2, 3, 4, 5, 7, 10, 11, 12, 14, 15, 16, 17, 19, 21, 24, 25, 66, 80, 83},
               _ticket_column, _ticket_id_column),
    "User": ({1, 2, 5, 6, 8, 9, 11, 34, 80}, _user_column,
             lambda s, u, o: u["entities_id"] if o == 80 else _user_column(s, u, o)),
    "Entity": ({1, 2, 14}, _entity_column, _entity_column),
    "Change": ({1, 2, 12, 15, 19, 21, 80}, _ticket_column, _ticket_id_column),
}


def parse_query(query_string: str) -> dict:
    """PHP-style nested parameters: `criteria[0][field]=12` → {"criteria": [{"field": "12"}]}."""
    root: dict = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        match = re.fullmatch(r"([^\[]+)((?:\[[^\]]*\])*)", key)
        parts = [match[1], *re.findall(r"\[([^\]]*)\]", match[2])] if match else [key]
        node = root
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1] or str(len(node))] = value
    return _listify(root)


def _listify(node):
    if not isinstance(node, dict):
        return node
    node = {k: _listify(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def _boolean(value, default: bool = False) -> bool:
    if value is None:
        return default
    return str(value).lower() in ("1", "true", "yes")


def _range(params: dict, total_default: int = 15) -> tuple[int, int]:
    raw = params.get("range", f"0-{total_default - 1}")
    match = re.fullmatch(r"(\d+)-(\d+)", str(raw))
    if not match or int(match[1]) > int(match[2]):
        raise GlpiError(400, "ERROR", "range must be in format : [start-end] with integers, "
                        "and start must be lower or equal than end")
    return int(match[1]), int(match[2])


class Api:
    """The `/apirest.php` sink: authenticate, route by path, shape GLPI's answers."""

    def __init__(self, state: State):
        self._state = state

    def __call__(self, req: falcon.Request, resp: falcon.Response, **_):
        parts = [p for p in req.path[len(PREFIX):].split("/") if p]
        route = self._route_name(req.method, parts)
        with self._state.lock:
            self._state.calls[route] += 1
            fault = dict(self._state.fault)
            if fault.get("times") is not None:
                self._state.fault["times"] = fault["times"] - 1
                if self._state.fault["times"] <= 0:
                    self._state.fault = {}
        if fault.get("delay_seconds"):
            time.sleep(float(fault["delay_seconds"]))
        if fault.get("status"):
            return self._reply(resp, int(fault["status"]), ["ERROR", "Service Unavailable (simulated fault)"])
        params = parse_query(req.query_string or "")
        try:
            body = self._body(req)
            status, payload, headers = self._dispatch(req, parts, params, body)
        except GlpiError as exc:
            message = exc.message
            if exc.code in DOC_SUFFIX_CODES and isinstance(message, str):
                message += f"; view documentation in your browser at {req.prefix}{PREFIX}/#{exc.code}"
            return self._reply(resp, exc.status, [exc.code, message])
        if req.method == "GET" and req.get_header("X-GLPI-Sanitized-Content", default="true").lower() != "false":
            payload = _sanitize(payload)
        self._reply(resp, status, payload, headers)

    @staticmethod
    def _route_name(method: str, parts: list[str]) -> str:
        shape = [("{id}" if p.isdigit() else p) for p in parts]
        return f"{method} {'/'.join(shape)}"

    @staticmethod
    def _reply(resp, status: int, payload, headers: dict | None = None) -> None:
        resp.status = status
        resp.content_type = "application/json; charset=UTF-8"
        resp.text = json.dumps(payload, ensure_ascii=False)
        for name, value in (headers or {}).items():
            resp.set_header(name, value)

    @staticmethod
    def _body(req) -> dict | list | None:
        raw = req.bounded_stream.read()
        if not raw.strip():
            return None
        if req.method == "GET":
            raise GlpiError(400, "ERROR_JSON_PAYLOAD_FORBIDDEN", "GET Request should not have json payload (http body)")
        try:
            return json.loads(raw)
        except ValueError:
            raise GlpiError(400, "ERROR_JSON_PAYLOAD_INVALID", "JSON payload seems not valid") from None

    def _dispatch(self, req, parts, params, body):
        state = self._state
        state.check_app_token(req.get_header("App-Token") or params.get("app_token"))
        if not parts:
            raise GlpiError(400, "ERROR_RESOURCE_MISSING", "resource missing")
        if parts[0] == "initSession":
            token = state.init_session(req.get_header("Authorization"), params)
            return 200, {"session_token": token}, {}
        user_id = state.session_user(req.get_header("Session-Token") or params.get("session_token"))
        if parts[0] == "killSession":
            state.kill_session(req.get_header("Session-Token") or params.get("session_token"))
            return 200, True, {}
        if parts[0] in SESSION_READERS:
            return 200, self._session_info(parts[0], user_id), {}
        if parts[0] == "search" and len(parts) == 2 and req.method == "GET":
            return self._search(req, user_id, parts[1], params)
        itemtype = parts[0]
        if itemtype not in ITEMTYPES:
            raise GlpiError(400, "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM",
                            "resource not found or not an instance of CommonDBTM")
        item_id = _int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        sub = parts[2] if len(parts) > 2 else None
        if req.method == "GET":
            return self._get(req, user_id, itemtype, item_id, sub, params)
        if req.method == "POST":
            return self._post(req, user_id, sub or itemtype, body)
        if req.method in ("PUT", "PATCH"):
            return self._write(user_id, itemtype, item_id, body, "UPDATE", state.update_item)
        if req.method == "DELETE":
            purge = _boolean(params.get("force_purge"))
            return self._write(user_id, itemtype, item_id, body, "DELETE",
                               lambda u, t, i, _data: state.delete_item(u, t, i, purge))
        raise GlpiError(405, "ERROR_METHOD_NOT_ALLOWED", "Method Not Allowed")

    def _session_info(self, what: str, user_id: int):
        state = self._state
        profile = state.profile(user_id)
        entities = [{"id": 0, "name": state.entity_name(0), "is_recursive": 1}]
        if what == "getMyProfiles":
            return {"myprofiles": [{"id": PROFILE_IDS.get(profile, 4), "name": profile, "entities": entities}]}
        if what == "getActiveProfile":
            return {"active_profile": {"id": PROFILE_IDS.get(profile, 4), "name": profile, "entities": entities}}
        if what == "getMyEntities":
            return {"myentities": [{"id": e["id"], "name": e["completename"]} for e in state.items["Entity"].values()]}
        if what == "getActiveEntities":
            return {"active_entity": {"id": 0, "active_entity_recursive": True,
                                      "active_entities": [{"id": i} for i in state.items["Entity"]]}}
        if what == "getGlpiConfig":
            return {"cfg_glpi": {"version": "10.0.16", "url_base_api": PREFIX, "list_limit": 15}}
        if what == "getFullSession":
            return {"session": {"glpiID": user_id, "glpiname": state.items["User"][user_id]["name"],
                                "glpiactiveprofile": {"name": profile}}}
        return True

    def _get(self, req, user_id, itemtype, item_id, sub, params):
        state = self._state
        if item_id is not None and sub is None:
            item = state.get_item(user_id, itemtype, item_id)
            if _boolean(params.get("get_hateoas"), True) and itemtype == "Ticket":
                base = f"{req.prefix}{PREFIX}"
                item["links"] = [{"rel": "Entity", "href": f"{base}/Entity/{item['entities_id']}"}] + [
                    {"rel": s, "href": f"{base}/Ticket/{item_id}/{s}/"}
                    for s in ("ITILFollowup", "ITILSolution", "Ticket_User", "TicketTask", "Document_Item")]
            return 200, item, {}
        if sub is not None:
            if sub not in ITEMTYPES:
                raise GlpiError(400, "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM", "resource not found")
            rows = state.list_items(user_id, sub, parent=(itemtype, item_id))
        else:
            rows = state.list_items(user_id, itemtype, is_deleted=_boolean(params.get("is_deleted")))
            for column, needle in (params.get("searchText") or {}).items():
                rows = [r for r in rows if str(needle).lower() in str(r.get(column, "")).lower()]
        sort = params.get("sort", "id")
        rows.sort(key=lambda r: (r.get(sort) is None, r.get(sort) if r.get(sort) is not None else 0),
                  reverse=str(params.get("order", "ASC")).upper() == "DESC")
        if _boolean(params.get("only_id")):
            rows = [{"id": r["id"]} for r in rows]
        return self._page(itemtype if sub is None else sub, rows, params, lambda page, cr: page)

    def _page(self, itemtype, rows, params, shape):
        """Apply `range`: Content-Range when there are rows, 206 when the page is not the whole set."""
        start, end = _range(params)
        end = min(end, start + self._state.max_range - 1)
        total = len(rows)
        if total and start >= total:
            raise GlpiError(400, "ERROR_RANGE_EXCEED_TOTAL", "Provided range exceed total count of data")
        page = rows[start:end + 1]
        headers = {"Accept-Range": f"{itemtype} {self._state.max_range}"}
        content_range = f"{start}-{start + len(page) - 1}/{total}" if total else None
        if content_range:
            headers["Content-Range"] = content_range
        status = 206 if total and start + len(page) < total else 200
        return status, shape(page, content_range), headers

    def _post(self, req, user_id, itemtype, body):
        if not isinstance(body, dict) or not isinstance(body.get("input"), (dict, list)):
            raise GlpiError(400, "ERROR_BAD_ARRAY", "input parameter must be an array of objects")
        inputs = body["input"]
        if isinstance(inputs, dict):
            new_id = self._state.add_item(user_id, itemtype, inputs)
            return 201, {"id": new_id, "message": ""}, {"Location": f"{req.prefix}{PREFIX}/{itemtype}/{new_id}"}
        results = []
        for one in inputs:
            try:
                results.append({"id": self._state.add_item(user_id, itemtype, one), "message": ""})
            except GlpiError as exc:
                results.append({"id": False, "message": exc.message or ""})
        failed = sum(1 for r in results if r["id"] is False)
        if failed == len(results):
            raise GlpiError(400, "ERROR_GLPI_ADD", results)
        if failed:
            raise GlpiError(207, "ERROR_GLPI_PARTIAL_ADD", results)
        links = ", ".join(f"{req.prefix}{PREFIX}/{itemtype}/{r['id']}" for r in results)
        return 201, results, {"Link": links}

    def _write(self, user_id, itemtype, item_id, body, verb, apply):
        """PUT and DELETE share GLPI's shape: a list of {"<id>": bool, "message": str} even for one item."""
        inputs = (body or {}).get("input") if isinstance(body, dict) else None
        if item_id is not None:
            inputs = {**(inputs if isinstance(inputs, dict) else {}), "id": item_id}
        if inputs is None or (verb == "UPDATE" and not isinstance(inputs, (dict, list))):
            raise GlpiError(400, "ERROR_BAD_ARRAY", "input parameter must be an array of objects")
        many = isinstance(inputs, list)
        results, failed = [], 0
        for one in (inputs if many else [inputs]):
            key = str(one.get("id"))
            try:
                apply(user_id, itemtype, one.get("id"), one)
                results.append({key: True, "message": ""})
            except GlpiError as exc:
                if not many:
                    raise
                failed += 1
                results.append({key: False, "message": exc.message or ""})
        if many and failed == len(results):
            raise GlpiError(400, f"ERROR_GLPI_{verb}", results)
        if failed:
            raise GlpiError(207, f"ERROR_GLPI_PARTIAL_{verb}", results)
        return 200, results, {}

    def _search(self, req, user_id, itemtype, params):
        state = self._state
        if itemtype not in SEARCH:
            raise GlpiError(400, "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM", "resource not found or not searchable")
        if not state.can(user_id, itemtype, "r"):
            raise GlpiError(403, "ERROR_RIGHT_MISSING", "You don't have permission to perform this action.")
        options, display, equals_value = SEARCH[itemtype]
        criteria = params.get("criteria") or []
        if not isinstance(criteria, list):
            raise GlpiError(400, "ERROR", "Malformed search criteria")
        forced = params.get("forcedisplay") or []
        forced = [_int(f) for f in (forced if isinstance(forced, list) else [forced])]
        columns = sorted({1, 2, 80} & options | set(forced) | set(_criteria_fields(criteria)))
        for option in columns:
            if option not in options:
                raise GlpiError(400, "ERROR", "Bad field ID in search criteria")
        sort = _int(params.get("sort"), 1)
        order = str(params.get("order", "ASC")).upper()
        deleted = _boolean(params.get("is_deleted"))
        with state.lock:
            items = [i for i in state.items[itemtype].values() if bool(i.get("is_deleted")) == deleted]
            matched = [i for i in items if _matches(state, i, criteria, display, equals_value)]
            matched.sort(key=lambda i: _sortable(display(state, i, sort if sort in options else 2)),
                         reverse=order == "DESC")
            rows = [{str(o): _collapse(display(state, i, o)) for o in columns} for i in matched]

        def shape(page, content_range):
            result = {"totalcount": len(rows), "count": len(page), "sort": [sort], "order": [order]}
            if page:
                result["data"] = page
                result["content-range"] = content_range
            return result
        return self._page(itemtype, rows, params, shape)


def _criteria_fields(criteria: list) -> list[int]:
    fields = []
    for c in criteria:
        if isinstance(c, dict) and "criteria" in c:
            fields += _criteria_fields(c["criteria"] if isinstance(c["criteria"], list) else [])
        elif isinstance(c, dict) and "field" in c:
            fields.append(_int(c["field"]) if str(c["field"]).isdigit() else -1)
    return fields


def _matches(state, item, criteria, display, equals_value) -> bool:
    """GLPI's criteria with SQL precedence: AND binds tighter than OR; NOT applies to one criterion."""
    groups: list[list[bool]] = []
    for index, c in enumerate(criteria):
        if not isinstance(c, dict):
            raise GlpiError(400, "ERROR", "Malformed search criteria")
        link = str(c.get("link", "AND")).upper() if index else "AND"
        if "criteria" in c:
            value = _matches(state, item, c["criteria"] or [], display, equals_value)
        elif "field" in c and "searchtype" in c:
            value = _criterion(state, item, c, display, equals_value)
        else:
            raise GlpiError(400, "ERROR", "Malformed search criteria")
        value = not value if link.endswith("NOT") else value
        if link.startswith("OR") or not groups:
            groups.append([value])
        else:
            groups[-1].append(value)
    return any(all(g) for g in groups) if groups else True


def _criterion(state, item, c, display, equals_value) -> bool:
    option, searchtype, wanted = _int(c["field"]), c["searchtype"], str(c.get("value", ""))
    if searchtype in ("equals", "notequals"):
        if option == 12 and wanted in STATUS_META:
            hit = item.get("status") in STATUS_META[wanted]
        else:
            values = _as_list(equals_value(state, item, option))
            hit = any(str(v).lower() == wanted.lower() for v in values)
        return hit if searchtype == "equals" else not hit
    values = _as_list(display(state, item, option))
    if searchtype == "contains":
        return any(_contains(v, wanted) for v in values) if wanted != "" else True
    if searchtype in ("morethan", "lessthan"):
        def compare(v):
            if v is None or v == "":
                return False
            a, b = (float(v), float(wanted)) if _numeric(v) and _numeric(wanted) else (str(v), wanted)
            return a > b if searchtype == "morethan" else a < b
        return any(compare(v) for v in values)
    raise GlpiError(400, "ERROR", f"Malformed search criteria: unknown searchtype {searchtype}")


def _contains(value, wanted: str) -> bool:
    """LIKE '%x%' with GLPI's ^/$ anchors, case-insensitive (MySQL's default collation)."""
    text = str(value if value is not None else "").lower()
    needle = wanted.lower()
    if needle.startswith("^") and needle.endswith("$") and len(needle) > 1:
        return text == needle[1:-1]
    if needle.startswith("^"):
        return text.startswith(needle[1:])
    if needle.endswith("$"):
        return text.endswith(needle[:-1])
    return needle in text


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) or bool(re.fullmatch(r"-?\d+(\.\d+)?", str(value)))


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _collapse(value):
    if isinstance(value, list):
        return None if not value else value[0] if len(value) == 1 else value
    return value


def _sortable(value):
    value = _collapse(value)
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value or ""))


def _sanitize(value):
    """GLPI 10 stores text with `& < >` encoded as numeric entities and returns it so."""
    if isinstance(value, str):
        return value.replace("&", "&#38;").replace("<", "&#60;").replace(">", "&#62;")
    if isinstance(value, list):
        return [_sanitize(v) for v in value]
    if isinstance(value, dict):
        return {k: v if k == "links" else _sanitize(v) for k, v in value.items()}
    return value


class SimControl:
    """`/_sim/{action}`: seed, inspect, count calls, expire sessions, inject faults."""

    def __init__(self, state: State):
        self._state = state

    def on_get(self, req, resp, action):
        if action == "calls":
            with self._state.lock:
                resp.media = dict(self._state.calls)
        elif action == "state":
            resp.media = self._state.dump()
        else:
            raise falcon.HTTPNotFound()

    def on_post(self, req, resp, action):
        state = self._state
        body = req.get_media(default_when_empty={}) or {}
        if action == "seed":
            resp.media = state.seed(body)
        elif action == "reset":
            state.reset()
            resp.media = {"ok": True}
        elif action == "seed_demo":
            resp.media = state.seed_demo()
        elif action == "expire_sessions":
            resp.media = {"expired": state.expire_sessions()}
        elif action == "fault":
            with state.lock:
                state.fault = {} if body.get("clear") else {
                    k: body[k] for k in ("delay_seconds", "status", "times") if k in body}
                resp.media = {"fault": state.fault}
        elif action == "reset_calls":
            with state.lock:
                state.calls.clear()
            resp.media = {"ok": True}
        else:
            raise falcon.HTTPNotFound()


def make_app(state: State | None = None) -> falcon.App:
    """The simulated GLPI over `state` (a fresh empty one by default)."""
    state = state if state is not None else State()
    app = falcon.App()
    app.add_route("/_sim/{action}", SimControl(state))
    app.add_sink(Api(state), prefix=re.compile(r"^/apirest\.php(/|$)"))
    return app


def main(argv: list[str] | None = None) -> None:
    """`python -m simulators.glpi --port 8670 --demo`: serve until interrupted."""
    from simulators.base import option, run

    def build(args):
        state = State()
        if args.demo:
            state.seed_demo()
        return make_app(state)

    run("Local GLPI legacy REST simulator", 8670, build, "GLPI simulator: {url}" + PREFIX, argv,
        option("--demo", action="store_true", help="load the demo entities, users and tickets"))


if __name__ == "__main__":
    main()
