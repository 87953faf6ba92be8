"""The one table of jobs: every actor a message may name, and the queue it is consumed from.

Code names work by these values — outbox rows, LLM job follow-ups, direct sends — never by a string;
actors are declared with them (`actor_name=`, `queue_name=`); and a worker checks at start that
the actors it declared and this table agree (`check`), failing loudly as Dramatiq does for a
duplicate actor. The LLM priority queues come from policy/priorities.toml, so their jobs are
derived (`llm_jobs`). Nothing here imports dramatiq: the web process enqueues from this table
without importing a single actor module.
"""

from __future__ import annotations

from dataclasses import dataclass

from widip.functions.llm import queue as llm_queue


@dataclass(frozen=True)
class Job:
    """An actor a message may name: its name and its queue."""

    name: str
    queue: str


# Tool execution and SAFEGUARD
RUN_TOOL = Job("run_tool", "tools")
NOTIFY_APPROVERS = Job("notify_approvers", "default")
SWEEP_SAFEGUARD = Job("sweep_safeguard", "ticks")
# Agent sessions
CONTINUE_SESSION = Job("continue_session", "agent")
SWEEP_SESSIONS = Job("sweep_sessions", "ticks")
# Sentinel
PROCESS_ALERT = Job("process_alert", "default")
START_DIAGNOSIS = Job("start_diagnosis", "default")
NOTIFY_INCIDENT = Job("notify_incident", "default")
SYNC_INCIDENT = Job("sync_incident", "default")
RUN_SENTINEL_TICK = Job("run_sentinel_tick", "default")
TICK_SENTINEL = Job("tick_sentinel", "ticks")
SWEEP_SENTINEL = Job("sweep_sentinel", "ticks")
# Assist
RUN_ASSIST_CYCLE = Job("run_assist_cycle", "ticks")
ASSIST_HAND_OVER = Job("assist_hand_over", "default")
# WIBOT: documentation and conversations
INGEST_DOCUMENT = Job("ingest_document", "default")
REEMBED_DOCUMENTS = Job("reembed_documents", "ticks")
PURGE_CONVERSATIONS = Job("purge_conversations", "ticks")
# Health, scheduler, housekeeping
TICK_GLPI_HEALTH = Job("tick_glpi_health", "ticks")
PROBE_GLPI_HEALTH = Job("probe_glpi_health", "ticks")
SCHEDULER_HEARTBEAT = Job("scheduler_heartbeat", "ticks")
PURGE_EXPIRED_CREDENTIALS = Job("purge_expired_credentials", "ticks")
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
