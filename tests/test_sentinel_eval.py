"""The Sentinel scenario set (tests/data/sentinel_scenarios.json) through the real pipeline, as bench/sentinel_eval.py
prints it: every diagnosis schema-valid, responsibility right on ≥ 90 % of incidents, one diagnosis per incident."""

from __future__ import annotations

import json

from bench import sentinel_eval
from tests.test_sentinel_pipeline import env  # noqa: F401 - fixture


def test_the_scenario_set_has_at_least_thirty_sequences_with_expectations():
    data = sentinel_eval.load()
    assert len(data["scenarios"]) >= 30
    assert all(s["events"] and "incidents" in s["expect"] for s in data["scenarios"])
    responsibilities = {i["responsibility"] for s in data["scenarios"] for i in s["expect"]["incidents"]}
    assert responsibilities == {"WIDIP", "CLIENT", "OPERATEUR", "INCONNU"}


def test_the_eval_meets_its_targets_with_the_rules_provider(env, phibee, glpi, observium, capsys):
    report = sentinel_eval.evaluate(env, phibee.state, glpi.state, observium.state, verbose=True)
    figures = "\n".join(report.lines())
    print(figures)
    valid, total = report.schema_valid
    assert total > 0 and valid == total
    assert report.accuracy >= 0.90, figures + "\n" + capsys.readouterr().out
    assert report.diagnoses_per_incident == 1.0
    assert report.passed >= len(report.outcomes) - 2, json.dumps(
        {o.name: o.problems for o in report.outcomes if not o.passed}, ensure_ascii=False, indent=1)
    assert report.unknown <= 2  # INCONNU only where nothing decides (the unmapped device)
