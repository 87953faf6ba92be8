"""Explicit wiring, in one place: what a process registers before it serves.

Called by the entry points — `widip/worker.py` (what dramatiq and periodiq load),
`widip.http.app:create_app_from_env` (gunicorn), the CLI and the tests — and never as a side
effect of importing a module. Everything here is idempotent.
"""

from __future__ import annotations

import dramatiq

from widip.deps import deps
from widip.functions.agent import step_job
from widip.functions.assist.playbook import assist_playbook
from widip.functions.integrations import status as integration_status
from widip.functions.llm import gateway as llm_gateway, queue as llm_queue, rules
from widip.functions.sentinel import diagnosis_job
from widip.functions.sentinel.playbook import sentinel_playbook
from widip.messaging import door


def register_handlers() -> None:
    """LLM job kinds, rules playbooks, and the listener recording every integration call's outcome."""
    llm_queue.register_llm_job(llm_gateway.KIND, llm_gateway.run_gateway_request, writes_outbox=False)
    llm_queue.register_llm_job(step_job.KIND, step_job.run)
    llm_queue.register_llm_job(diagnosis_job.KIND, diagnosis_job.run)
    rules.register_playbook("sentinel", sentinel_playbook)
    rules.register_playbook("assist", assist_playbook)
    integration_status.install(lambda: deps().redis)


def wire_worker(broker: dramatiq.Broker) -> dramatiq.Broker:
    """A worker (or scheduler) whose actor modules are imported: check them, then register handlers."""
    door.check_actors(broker)
    register_handlers()
    return broker
