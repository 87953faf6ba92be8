"""Schemathesis against /openapi.json on a real gunicorn web process, as an N4 and anonymously: no 5xx,
and every answer conforms to the document (status code, content type, schema).

`make test` runs a bounded, deterministic pass (WIDIP_FUZZ_CASES, default 300 cases per identity, fixed
seed); `make fuzz` runs the same with ≥ 5,000. The figures are printed (pytest -s shows them).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import poll
from widip.functions import db, identity

CASES = int(os.environ.get("WIDIP_FUZZ_CASES", "300"))
SEED = int(os.environ.get("WIDIP_FUZZ_SEED", "20261202"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
#: Operations that would end the fuzzer's own session mid-run (covered by test_auth_http), and /ready,
#: whose documented 503 *is* its answer whenever a component lags (covered by test_readiness_budget).
EXCLUDED = ("logout", "changeMyPassword", "ready")
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def fuzz(url: str, report_dir: Path, headers: dict, cases: int) -> dict:
    """One schemathesis run; returns {"cases", "server_errors", "violations", "failures"} from its report."""
    operations = 60  # documented operations, roughly: spread the budget across them
    command = [str(SCHEMATHESIS), "run", f"{url}/openapi.json", "--checks", CHECKS, "--seed", str(SEED),
               "--max-examples", str(max(1, cases // operations)), "--workers", "1", "--no-shrink",
               # The coverage phase (every boundary of every schema, ~1,500 cases) only in `make fuzz`
               "--phases", "examples,fuzzing" if cases < 1000 else "examples,coverage,fuzzing",
               "--request-timeout", "10",
               "--suppress-health-check", "all", "--report", "ndjson", "--report-dir", str(report_dir),
               "--continue-on-failure", "--warnings", "off"]
    for name in EXCLUDED:
        command += ["--exclude-operation-id", name]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=3600, env={**os.environ, "NO_COLOR": "1"})
    return summarise(report_dir, run.stdout + run.stderr)


def summarise(report_dir: Path, output: str) -> dict:
    cases, failures = 0, []
    for path in report_dir.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            for kind, data in event.items():
                if kind == "ScenarioFinished" and isinstance(data, dict):
                    recorder = data.get("recorder") or {}
                    cases += len(recorder.get("cases") or {})
                    for checks in (recorder.get("checks") or {}).values():
                        failures += [c for c in checks if str(c.get("status")).lower() == "failure"]
    names = [f.get("name") for f in failures]
    return {"cases": cases, "server_errors": names.count("not_a_server_error"),
            "violations": len(names) - names.count("not_a_server_error"),
            "failures": sorted({(f.get("name"), (f.get("failure_info") or {}).get("failure", {}).get("title", ""),
                                 (f.get("failure_info") or {}).get("failure", {}).get("operation", ""))
                                for f in failures})[:20], "output": output[-3000:]}


@pytest.mark.parametrize("identity_kind", ["anonymous", "n4"])
def test_the_api_survives_schemathesis_and_answers_as_documented(stack, database_url, tmp_path, identity_kind):
    try:
        stack.start("web", "scheduler")
    except TimeoutError:  # a loaded machine imports slowly; give the web process more time
        stack.wait_http("/health", timeout=180)
    # /ready's 503 is a true answer until the scheduler's first tick: fuzz a ready deployment
    poll(lambda: stack.wait_http("/ready").status_code, lambda code: code == 200, timeout=180, interval=1)
    headers = {}
    if identity_kind == "n4":
        with db.connect(database_url, autocommit=True) as conn:
            user = identity.create_user(conn, username="fuzzer", password="correct-horse-battery-staple",
                                        accreditation_level=4)
            headers["Authorization"] = f"Bearer {identity.issue_session(conn, user.id, ttl_hours=4).token}"
    figures = fuzz(stack.url, tmp_path / f"report-{identity_kind}", headers, CASES)
    print(f"\nschemathesis {identity_kind}: {figures['cases']} cases, {figures['server_errors']} 5xx, "
          f"{figures['violations']} schema violations")
    assert figures["cases"] >= CASES * 0.5, figures["output"]
    assert figures["server_errors"] == 0 and figures["violations"] == 0, figures["failures"]
