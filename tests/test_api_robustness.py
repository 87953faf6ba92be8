"""Every documented endpoint answers malformed input with a 4xx and a message — never a 500.

A small deterministic fuzz over /openapi.json (schemathesis-style, without the dependency): for each
path and method, garbage path parameters, query parameters and bodies, as an N4 administrator and
anonymously. Each answer must be < 500, JSON, and carry no traceback.
"""

import itertools

import pytest
from falcon.testing import TestClient

from widip import deps as actor_deps
from widip.http.app import build_context, create_app

PATH_VALUES = ["0", "-1", "abc", "9" * 30, "x'; DROP TABLE users;--", "6f1c0c8e-9a53-4b0e-8f0e-000000000000"]
BODIES = [None, "{", "[]", "{}", '{"unexpected": 1}', '"text"', "null", '{"message": 12, "level": "L9"}',
          '{"title": "' + "x" * 5000 + '"}']
QUERIES = ["", "after=abc&status=zzz&limit=-5&since=yesterday&tool=%00&client=%ff"]
#: Calls that would end the admin's own session mid-test (they are covered in test_auth_http).
SKIP = {("post", "/auth/logout"), ("post", "/me/password")}


@pytest.fixture
def api(integrated_settings, stub_broker):
    client = TestClient(create_app(build_context(integrated_settings)))
    actor_deps.configure(integrated_settings)
    return client


def operations(api):
    doc = api.simulate_get("/openapi.json").json
    for path, methods in doc["paths"].items():
        for method in methods:
            if (method, path) not in SKIP:
                yield method, path


def concrete(path, value):
    parts = []
    for part in path.split("/"):
        parts.append(value if part.startswith("{") else part)
    return "/".join(parts)


def test_no_documented_endpoint_answers_garbage_with_a_5xx(api, people, redis_client):
    from widip.functions import heartbeat

    heartbeat.record_tick(redis_client)  # a healthy deployment: /ready's 503 would be a true answer
    failures = []
    for method, path in operations(api):
        values = PATH_VALUES if "{" in path else [None]
        for value, body, query, headers in itertools.product(values, BODIES, QUERIES, (people.admin.headers, {})):
            url = concrete(path, value) if value is not None else path
            result = getattr(api, f"simulate_{method}")(
                url, query_string=query, body=body, headers={**headers, "Content-Type": "application/json"})
            text = result.text
            if result.status_code >= 500 or "Traceback" in text:
                failures.append((method.upper(), url, query, (body or "")[:40], result.status_code, text[:120]))
    assert not failures, f"{len(failures)} bad answers, first ones: {failures[:5]}"


def test_error_answers_say_what_is_wrong(api, people):
    result = api.simulate_post("/tools/glpi_get_ticket_details", json={"ticket_id": "one"}, headers=people.admin.headers)
    assert result.status_code == 400
    assert result.json["title"] and "ticket_id" in result.json["description"]
