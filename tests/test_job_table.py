"""The one door to the broker: one table of job names, checked against the actors a worker declares."""

from __future__ import annotations

import ast
import subprocess
import sys

import dramatiq
import pytest

from widip.config import PROJECT_ROOT
from widip.errors import ConfigError
from widip.functions import job_table, outbox
from widip.messaging import door
from widip.messaging.broker import current
from widip.messaging.relay import flush_outbox


def test_the_worker_declares_exactly_the_jobs_of_the_table_on_their_queues():
    broker = current()
    declared = {name: broker.get_actor(name).queue_name for name in broker.get_declared_actors()}
    assert declared == {job.name: job.queue for job in job_table.all_jobs().values()}


def test_a_worker_whose_actors_disagree_with_the_table_refuses_to_start():
    broker = dramatiq.brokers.stub.StubBroker()
    dramatiq.actor(lambda call_id: None, actor_name="run_tool", queue_name="default", broker=broker)
    dramatiq.actor(lambda: None, actor_name="stray_actor", queue_name="default", broker=broker)
    with pytest.raises(ConfigError) as refused:
        door.check_actors(broker)
    message = str(refused.value)
    assert "'run_tool' consumes 'default', the job table says 'tools'" in message
    assert "actor 'stray_actor' is not in the job table" in message
    assert "job 'continue_session' has no actor" in message


def test_an_outbox_row_reaches_its_actor_through_the_door(conn, stub_broker):
    outbox.add(conn, job_table.NOTIFY_APPROVERS, {"call_id": "c-1"}, dedup_key="notify:c-1")
    assert flush_outbox() == 1
    (message,) = [dramatiq.Message.decode(m) for m in stub_broker.queues["default"].queue]
    assert (message.actor_name, message.kwargs) == ("notify_approvers", {"call_id": "c-1"})


def test_a_row_claimed_for_inline_work_is_not_relayed(conn, stub_broker):
    outbox.add(conn, job_table.RUN_TOOL, {"call_id": "c-2"}, dedup_key="run:c-2")
    assert outbox.claim(conn, "run:c-2") is True
    assert outbox.claim(conn, "run:c-2") is False  # already taken: nobody runs it twice
    assert flush_outbox() == 0
    assert not stub_broker.queues["tools"].qsize()


def test_no_job_name_is_written_as_a_string_outside_the_job_table():
    names = set(job_table.all_jobs())
    offenders = []
    for path in (PROJECT_ROOT / "widip").rglob("*.py"):
        if path.name == "job_table.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}: {node.value!r}")
    assert offenders == []


def test_the_web_app_imports_no_actor_module():
    code = ("import sys, widip.http.app; "
            "print(sorted(m for m in sys.modules if m.startswith('widip.actors')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"WIDIP_BROKER": "stub", "PATH": "/usr/bin:/bin"}, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "[]"


def test_every_tick_is_declared_with_the_schedule_of_the_table():
    broker = current()
    declared = {name: str(broker.get_actor(name).options["periodic"]) for name in broker.get_declared_actors()
                if broker.get_actor(name).options.get("periodic")}
    assert declared == {job.name: job.cron for job in job_table.periodic_jobs()}
    assert all(job.queue == job_table.TICKS for job in job_table.periodic_jobs())
