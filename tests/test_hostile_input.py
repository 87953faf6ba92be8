"""The outside probe's malformed-body catalogue, sent to every endpoint that reads a body, anonymously and
as an N4 administrator: each answer is a 4xx JSON {"title", "description"}, no traceback is logged, and
a refused tool call is still audited. Plus the probe's other 5xx: the two SAFEGUARD config routes, a
maintenance window ending in the past, a float accreditation, blank query values."""

import json
import logging

import pytest
from falcon.testing import TestClient

from widip import deps as actor_deps
from widip.http.app import build_context, create_app

WEBHOOK_TOKEN = "webhook-secret-for-tests"
#: What the probe sent: deep nesting (RecursionError), NUL bytes and lone surrogates (PostgreSQL
#: cannot store them), invalid UTF-8, numbers where text is expected, floats where integers are.
CATALOGUE = {
    "deep array": b"[" * 100_000 + b"]" * 100_000,
    "deep object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "moderately deep": b'{"a":' * 200 + b"1" + b"}" * 200,
    "NUL in every text": None,  # built per operation from its schema
    "lone surrogate": None,
    "invalid utf-8": b'{"comment": "\xff\xfe"}',
    "float for integer": None,
    "not an object": b"[1, 2, 3]",
    "bare string": b'"\\u0000"',
}


@pytest.fixture
def api(integrated_settings, stub_broker):
    settings = integrated_settings.with_overrides(webhook_token=WEBHOOK_TOKEN)
    actor_deps.configure(settings)
    return TestClient(create_app(build_context(settings)))


def body_operations(api):
    doc = api.simulate_get("/openapi.json").json
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if "requestBody" in op:
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                yield method, path, schema


def concrete(path: str) -> str:
    """Path parameters filled with values that exist: id 1, a real tool name."""
    return "/".join(("glpi_get_ticket_details" if part in ("{name}", "{tool}") else "1")
                    if part.startswith("{") else part for part in path.split("/"))


def poisoned(schema: dict, text: str, number) -> bytes:
    """A body with every declared string property set to `text` and every integer one to `number`."""
    props = schema.get("properties") or {"comment": {}, "username": {}, "message": {}}
    body = {}
    for name, prop in props.items():
        kind = prop.get("type")
        body[name] = number if kind == "integer" else text
    return json.dumps(body).encode()


def test_every_body_reading_endpoint_answers_the_catalogue_with_a_4xx_and_logs_no_traceback(
        api, people, caplog):
    caplog.set_level(logging.WARNING)
    ops = list(body_operations(api))
    assert len(ops) >= 19  # the probe counted 19 endpoints reading a body
    failures = []
    for method, path, schema in ops:
        url = concrete(path)
        for name, body in CATALOGUE.items():
            if name == "NUL in every text":
                body = poisoned(schema, "a\u0000b", 1)
            elif name == "lone surrogate":
                body = poisoned(schema, "\ud800x", 1)
            elif name == "float for integer":
                if not any(p.get("type") == "integer" for p in (schema.get("properties") or {}).values()):
                    continue  # nothing to send a float for: the body may well be valid
                body = poisoned(schema, "texte", 2.0)
            for headers in (people.admin.headers, {}):
                query = f"token={WEBHOOK_TOKEN}" if "webhook" in url else ""
                result = getattr(api, f"simulate_{method}")(url, body=body, query_string=query,
                                                            headers={**headers, "Content-Type": "application/json"})
                ok = 400 <= result.status_code < 500 and result.json and result.json.get("title")
                if not ok or "Traceback" in result.text:
                    failures.append((method, url, name, bool(headers), result.status_code, result.text[:100]))
    assert not failures, f"{len(failures)} bad answers: {failures[:6]}"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize("text", ["a\u0000b", "\udc00", "x\ud83d"])
def test_a_tool_call_with_unstorable_text_is_refused_with_400_and_audited(api, people, conn, text):
    body = json.dumps({"ticket_id": 1, "content": text}).encode()  # \u escapes, as a hostile client sends them
    result = api.simulate_post("/tools/glpi_add_ticket_followup", body=body, headers=people.admin.headers)
    assert result.status_code == 400 and "NUL" in result.json["description"]
    rows = conn.execute("SELECT action, outcome, args_redacted FROM safeguard_audit "
                        "WHERE tool_name = 'glpi_add_ticket_followup'").fetchall()
    assert [(r["action"], r["outcome"]) for r in rows] == [("refused", "invalid")]
    assert "\ufffd" in rows[0]["args_redacted"]["content"]


@pytest.mark.parametrize("raw", [
    '{"ALERT_ID": "1", "ALERT_STATE": "ALERT", "DEVICE_HOSTNAME": "a\\u0000b"}'.encode("utf-16"),
    '{"ALERT_ID": "1", "ALERT_STATE": "ALERT", "DEVICE_HOSTNAME": "x"}'.encode().replace(b'"x"', b'"\xed\xa0\x80"'),
], ids=["escaped NUL in UTF-16", "raw UTF-8 surrogate bytes"])
def test_unstorable_text_in_any_encoding_is_a_400_not_a_database_error(api, conn, raw):
    result = api.simulate_post("/webhook/widip-alertes", body=raw, query_string=f"token={WEBHOOK_TOKEN}",
                               headers={"Content-Type": "application/json"})
    assert result.status_code == 400 and "NUL" in result.json["description"]
    assert conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"] == 0


def test_a_tool_call_nested_too_deep_is_refused_and_audited(api, people, conn):
    result = api.simulate_post("/tools/glpi_get_ticket_details", body=b'{"a":' * 5000 + b"1" + b"}" * 5000,
                               headers=people.admin.headers)
    assert result.status_code == 400 and "nested" in result.json["description"]
    assert conn.execute("SELECT count(*) AS n FROM safeguard_audit WHERE tool_name = 'glpi_get_ticket_details' "
                        "AND action = 'refused'").fetchone()["n"] == 1


def test_the_two_safeguard_config_routes_answer_4xx_anonymously(api, people):
    assert api.simulate_get("/safeguard/config/0").status_code == 405
    assert api.simulate_put("/safeguard/config", json={"level": "L1", "reason": "why not"}).status_code == 405
    assert api.simulate_get("/safeguard/config").status_code == 401
    assert api.simulate_put("/safeguard/config/glpi_get_ticket_details",
                            json={"level": "L1", "reason": "tested"}).status_code == 401


def test_a_maintenance_window_ending_in_the_past_is_a_400(api, people):
    result = api.simulate_post("/sentinel/maintenance-windows", headers=people.admin.headers,
                               json={"scope": "device", "value": "rtr-1", "ends_at": "2020-01-01T00:00:00Z"})
    assert result.status_code == 400 and "ends_at" in result.json["description"]


def test_a_float_accreditation_is_refused_not_stored(api, people, conn):
    result = api.simulate_post("/users", headers=people.admin.headers,
                               json={"username": "floaty", "password": "correct-horse-battery-staple",
                                     "accreditation_level": 2.0})
    assert result.status_code == 400 and "accreditation_level" in result.json["description"]
    assert conn.execute("SELECT count(*) AS n FROM users WHERE username = 'floaty'").fetchone()["n"] == 0


@pytest.mark.parametrize("url", ["/safeguard/audit?since=", "/safeguard/audit?since=yesterday",
                                 "/sentinel/maintenance-windows?active=", "/sentinel/maintenance-windows?active=maybe",
                                 "/service-tokens?include_revoked=", "/service-tokens?include_revoked=2",
                                 "/safeguard/requests?status=", "/safeguard/deferred?status=nope"])
def test_blank_or_invalid_query_values_are_a_400(api, people, url):
    path, _, query = url.partition("?")
    result = api.simulate_get(path, query_string=query, headers=people.admin.headers)
    assert result.status_code == 400 and result.json["description"]
