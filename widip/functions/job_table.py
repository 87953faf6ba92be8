"""The one table of jobs: every actor a message may name, its queue, and for a tick its schedule.

Code names work by these values — outbox rows, LLM job follow-ups, direct sends — never by a string;
actors are declared with them (`actor_name=`, `queue_name=`); and a worker checks at start that
the actors it declared and this table agree (`check`), failing loudly as Dramatiq does for a
duplicate actor. The LLM priority queues come from policy/priorities.toml, so their jobs are
derived (`llm_jobs`). Periodic jobs carry their cron schedule: the workers declare them with it and
the scheduler process fires them from this table alone. Nothing here imports dramatiq: the web
process enqueues from this table without importing a single actor module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from widip.functions.llm import queue as llm_queue


#: Every periodic job runs on this queue, so a backlog of real work never makes periodiq skip a tick.
TICKS = "ticks"
EVERY_MINUTE = "* * * * *"


@dataclass(frozen=True)
class Job:
    """An actor a message may name: its name, its queue, and its cron schedule when it is a tick."""

    name: str
    queue: str
    cron: str | None = None


def tick(name: str, cron: str) -> Job:
    return Job(name, TICKS, cron)


def tick_cron(interval_seconds) -> str:
    """"*/N * * * *" for WORKFLOW_INTERVAL_SECONDS rounded to whole minutes (1–60), hourly beyond."""
    try:
        minutes = max(1, round(int(interval_seconds) / 60))
    except (TypeError, ValueError):
        minutes = 5
    return EVERY_MINUTE if minutes == 1 else f"*/{minutes} * * * *" if minutes < 60 else "0 * * * *"



# Tool execution and SAFEGUARD
RUN_TOOL = Job("run_tool", "tools")
NOTIFY_APPROVERS = Job("notify_approvers", "default")
SWEEP_SAFEGUARD = tick("sweep_safeguard", EVERY_MINUTE)
# Agent sessions
CONTINUE_SESSION = Job("continue_session", "agent")
SWEEP_SESSIONS = tick("sweep_sessions", EVERY_MINUTE)
# Sentinel
PROCESS_ALERT = Job("process_alert", "default")
START_DIAGNOSIS = Job("start_diagnosis", "default")
NOTIFY_INCIDENT = Job("notify_incident", "default")
SYNC_INCIDENT = Job("sync_incident", "default")
RUN_SENTINEL_TICK = Job("run_sentinel_tick", "default")
TICK_SENTINEL = tick("tick_sentinel", tick_cron(os.environ.get("WORKFLOW_INTERVAL_SECONDS", "300")))
SWEEP_SENTINEL = tick("sweep_sentinel", EVERY_MINUTE)
SYNC_INVENTORY = tick("sync_inventory", "41 * * * *")  # new Observium devices mapped within the hour
# Assist
RUN_ASSIST_CYCLE = tick("run_assist_cycle", "*/3 * * * *")
ASSIST_HAND_OVER = Job("assist_hand_over", "default")
# WIBOT: documentation and conversations
INGEST_DOCUMENT = Job("ingest_document", "default")
REEMBED_DOCUMENTS = tick("reembed_documents", "*/10 * * * *")
PURGE_CONVERSATIONS = tick("purge_conversations", "17 3 * * *")
# Health, scheduler, housekeeping
TICK_GLPI_HEALTH = tick("tick_glpi_health", EVERY_MINUTE)
PROBE_GLPI_HEALTH = Job("probe_glpi_health", TICKS)  # the half-minute probe, sent by the tick
SCHEDULER_HEARTBEAT = tick("scheduler_heartbeat", EVERY_MINUTE)
PURGE_EXPIRED_CREDENTIALS = tick("purge_expired_credentials", "17 * * * *")
PUSH_METRICS = tick("push_metrics", EVERY_MINUTE)
# Pollable jobs and the LLM gateway
ECHO_MESSAGE = Job("echo_message", "default")
DELIVER_LLM_CALLBACK = Job("deliver_llm_callback", "default")
LLM_REMOTE = Job(llm_queue.actor_name(llm_queue.REMOTE_QUEUE), llm_queue.REMOTE_QUEUE)

FIXED_JOBS: tuple[Job, ...] = tuple(value for value in dict(globals()).values() if isinstance(value, Job))


@dataclass(frozen=True)
class NextStep:
    """Work a job handler wants enqueued after it (the actor sends it; functions never enqueue)."""

    job: Job
    args: tuple = ()
    delay_ms: int | None = None


def llm_job(queue: str) -> Job:
    """The job consuming one LLM queue (`llm.p0` → `llm_p0`, `llm-remote` → `llm_remote`)."""
    return Job(llm_queue.actor_name(queue), queue)


def llm_jobs() -> tuple[Job, ...]:
    """One job per local GPU priority queue of policy/priorities.toml, most urgent first."""
    return tuple(llm_job(queue) for queue in llm_queue.queue_priorities())


def periodic_jobs() -> tuple[Job, ...]:
    """The ticks the scheduler fires."""
    return tuple(job for job in FIXED_JOBS if job.cron)


def all_jobs() -> dict[str, Job]:
    """Every job by name."""
    return {job.name: job for job in FIXED_JOBS + llm_jobs()}


def by_name(name: str) -> Job:
    """The job called `name`; LookupError for a name that is not in the table (a programming error)."""
    try:
        return all_jobs()[name]
    except KeyError:
        raise LookupError(f"job {name!r} is not in widip/functions/job_table.py") from None


def check(declared: dict[str, str]) -> list[str]:
    """Disagreements between the table and the actors a process declared (name → queue)."""
    table = all_jobs()
    problems = [f"job {name!r} has no actor" for name in sorted(set(table) - set(declared))]
    problems += [f"actor {name!r} is not in the job table" for name in sorted(set(declared) - set(table))]
    problems += [f"actor {name!r} consumes {declared[name]!r}, the job table says {table[name].queue!r}"
                 for name in sorted(set(table) & set(declared)) if declared[name] != table[name].queue]
    return problems
