"""`widip sentinel replay`: recorded deliveries re-sent over HTTP with their timing compressed by --speed, each new to
the deployment (its time restamped) unless --keep-times; bad files are refused naming the line. And the clock."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from simulators.base import serve
from tests.test_sentinel_pipeline import body_for
from widip import deps as actor_deps
from widip.errors import Invalid
from widip.functions import clock
from widip.functions.sentinel import replay
from widip.http.app import build_context, create_app

TOKEN = "obs-secret"


@pytest.fixture
def served(integrated_settings, stub_broker):
    settings = integrated_settings.with_overrides(webhook_token=TOKEN, llm_provider="rules")
    actor_deps.configure(settings)
    server = serve(create_app(build_context(settings)))
    yield server.url + "/webhook/widip-alertes"
    server.stop()


def recording(tmp_path, entries) -> str:
    path = tmp_path / "week.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in entries) + "\n", encoding="utf-8")
    return str(path)


def test_a_replay_keeps_the_relative_timing_divided_by_the_speed_and_every_delivery_is_new(served, tmp_path, conn):
    first, second = body_for(1), body_for(2)  # both notified at T0 (their ALERT_UNIXTIME)
    start = float(first["ALERT_UNIXTIME"])
    path = recording(tmp_path, [{"at": start, "body": first}, {"at": start + 6, "body": second}, second])
    started = time.monotonic()
    report = replay.replay_file(path, url=served, token=TOKEN, speed=3)
    elapsed = time.monotonic() - started
    assert report["statuses"] == {"200": 3} and report["errors"] == []
    assert 1.8 <= elapsed < 6  # 6 s of recording at speed 3
    assert conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"] == 3  # restamped: none de-duplicated
    again = replay.replay_file(path, url=served, token=TOKEN, speed=100, keep_times=True)
    assert again["statuses"] == {"200": 3}
    assert conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"] == 5  # recorded times: 2 distinct


def test_a_bad_recording_is_refused_naming_its_line_and_errors_are_reported(served, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"at": 1, "body": body_for(1)}) + "\nnot json\n", encoding="utf-8")
    with pytest.raises(Invalid, match="line 2: not JSON"):
        replay.load(path)
    refused = recording(tmp_path, [{"at": 1, "body": {"ALERT_STATE": "ALERT"}}])
    report = replay.replay_file(refused, url=served, token=TOKEN, speed=1)
    assert report["statuses"] == {"400": 1} and "ALERT_ID is missing" in report["errors"][0]


def test_the_clock_can_be_pinned_shifted_and_released():
    moment = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
    clock.set_now(moment)
    try:
        assert clock.now() == moment
        clock.shift(timedelta(minutes=5))
        assert clock.now() == moment + timedelta(minutes=5)
    finally:
        clock.set_now(None)
    assert abs((clock.now() - datetime.now(timezone.utc)).total_seconds()) < 5
