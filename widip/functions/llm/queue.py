"""LLM scheduling without the broker: priority classes, the LLM job registry, queue positions.

Priority classes come from `policy/priorities.toml` (seed: proactif_sentinel 1000 >
proactif_notificateur 900 > assist 500 > wibot 100). Each class has its own Dramatiq queue
(`llm.p0`…`llm.p3`) because Redis has no global priority: an actor priority only orders messages a
worker already prefetched (docs/architecture.md). Remote providers use `llm-remote`.

LLM jobs carry only `(kind, job_id)`; the handler registered for `kind` (by widip/wiring.py) loads
what it needs. This module never imports dramatiq: the actors in `widip/actors/llm.py` call
`run_llm_job` and send the `job_table.NextStep`s it returns through the one door. Positions are read from the Redis broker's own keys (layout in
`dramatiq/brokers/redis/dispatch.lua`): `dramatiq:<queue>` is the list of waiting message ids and
`dramatiq:__acks__.<worker>.<queue>` the set a worker fetched but has not acked yet (prefetched or
running).
"""

from __future__ import annotations

import functools
import logging
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from widip.config import PROJECT_ROOT
from widip.errors import ConfigError, Invalid

logger = logging.getLogger(__name__)

DEFAULT_PRIORITIES_PATH = PROJECT_ROOT / "policy" / "priorities.toml"
REMOTE_QUEUE = "llm-remote"
#: The seed's gateway names its callers "proactif_sentinel", "proactif_notificateur", "assist", "wibot".
SEED_SOURCE_PREFIX = "proactif_"
SEED_PROACTIVE_CLASSES = ("sentinel", "notificateur")
#: Dramatiq's Redis broker namespace and heartbeat timeout (its defaults, which widip keeps).
BROKER_NAMESPACE = "dramatiq"
BROKER_HEARTBEAT_TIMEOUT_MS = 60_000
#: Guess for one LLM call before any was measured (Qwen 2.5 14B answers in seconds, not ms).
DEFAULT_CALL_SECONDS = 10.0
#: Weight of the newest call in the moving average of call durations.
AVERAGE_WEIGHT = 0.2
AVERAGE_KEY = "llm:avg_call_ms:{lane}"


@dataclass(frozen=True)
class PriorityClass:
    """One LLM priority class: a persona or gateway source, its queue and Dramatiq priority."""

    name: str
    seed_priority: int
    queue: str
    dramatiq_priority: int

    def to_dict(self) -> dict:
        return {"name": self.name, "seed_priority": self.seed_priority, "queue": self.queue,
                "dramatiq_priority": self.dramatiq_priority}


# --- classes ------------------------------------------------------------------------------------

def load_classes(path: Path = DEFAULT_PRIORITIES_PATH) -> dict[str, PriorityClass]:
    """Classes by name, highest priority first; raise ConfigError on a malformed file."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"cannot read {path}: {exc}"]) from exc
    classes = []
    for name, entry in (data.get("classes") or {}).items():
        try:
            classes.append(PriorityClass(name=name.lower(), seed_priority=int(entry["seed_priority"]),
                                         queue=str(entry["queue"]),
                                         dramatiq_priority=int(entry["dramatiq_priority"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError([f"{path}: class {name!r} needs seed_priority, queue, dramatiq_priority"]) from exc
    if not classes:
        raise ConfigError([f"{path}: no [classes.*] defined"])
    _check_queues(classes, path)
    classes.sort(key=lambda c: (-c.seed_priority, c.dramatiq_priority))
    return {c.name: c for c in classes}


def _check_queues(classes: list[PriorityClass], path) -> None:
    by_queue: dict[str, int] = {}
    for cls in classes:
        if not cls.queue.startswith("llm.p"):
            raise ConfigError([f"{path}: class {cls.name!r} queue must be llm.pN, got {cls.queue!r}"])
        if by_queue.setdefault(cls.queue, cls.dramatiq_priority) != cls.dramatiq_priority:
            raise ConfigError([f"{path}: queue {cls.queue} is given two Dramatiq priorities"])


@functools.lru_cache(maxsize=1)
def classes() -> dict[str, PriorityClass]:
    """The deployed classes (read once per process)."""
    return load_classes()


def class_for(name: str) -> PriorityClass:
    """The class of a persona ("sentinel") or a gateway source ("proactif_sentinel"); Invalid if unknown."""
    key = (name or "").strip().lower()
    aliases = _source_aliases()
    if key not in aliases:
        raise Invalid(f"source: unknown source {name!r}; expected one of {', '.join(aliases)}")
    return classes()[aliases[key]]


def _source_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for name in classes():
        aliases[name] = name
        if name in SEED_PROACTIVE_CLASSES:
            aliases[SEED_SOURCE_PREFIX + name] = name
    return aliases


def queue_priorities() -> dict[str, int]:
    """Local-GPU queue name → Dramatiq priority, most urgent first."""
    out: dict[str, int] = {}
    for cls in sorted(classes().values(), key=lambda c: c.dramatiq_priority):
        out.setdefault(cls.queue, cls.dramatiq_priority)
    return out


def queue_for(persona_or_source: str, *, remote: bool) -> str:
    """`llm-remote` for remote providers, else the class's GPU queue."""
    cls = class_for(persona_or_source)
    return REMOTE_QUEUE if remote else cls.queue


def actor_name(queue: str) -> str:
    """"llm.p0" → "llm_p0", "llm-remote" → "llm_remote"."""
    return queue.replace(".", "_").replace("-", "_")


# --- job registry -------------------------------------------------------------------------------

#: handler(job_id, deps) -> steps to enqueue next; `deps` has .settings, .pool and .redis.
Handler = Callable[[str, object], Sequence | None]
_handlers: dict[str, Handler] = {}
#: Kinds whose handler never writes the outbox: their job skips the relay's PostgreSQL round trip,
#: which would sit between two GPU calls.
_outbox_free: set[str] = set()


def register_llm_job(kind: str, handler: Handler, *, writes_outbox: bool = True) -> None:
    """Make `kind` runnable on the LLM queues (widip/wiring.py registers every kind)."""
    existing = _handlers.get(kind)
    if existing is not None and existing is not handler:
        raise ValueError(f"LLM job kind {kind!r} is already registered to {existing!r}")
    _handlers[kind] = handler
    if not writes_outbox:
        _outbox_free.add(kind)


def writes_outbox(kind: str) -> bool:
    """Whether a job of `kind` may leave outbox rows to relay (unknown kinds: yes)."""
    return kind not in _outbox_free


def run_llm_job(kind: str, job_id: str, deps) -> list:
    """Run the handler registered for `kind`; LookupError if none is (a deployment mistake)."""
    handler = _handlers.get(kind)
    if handler is None:
        raise LookupError(f"no LLM job handler registered for kind {kind!r} (known: {sorted(_handlers)})")
    return list(handler(job_id, deps) or ())


# --- positions and waits ------------------------------------------------------------------------

def queue_position(redis, queue: str, entry_id: str | None, *, namespace: str = BROKER_NAMESPACE,
                   now_ms: int | None = None) -> int:
    """How many LLM jobs should start before the queue entry `entry_id` (the Redis message id).

    Counts, in `queue` and every more urgent queue: messages waiting in Redis ahead of ours and
    messages live workers fetched but have not acked (running or prefetched). A job in progress on
    a less urgent queue is not counted (it cannot be told apart from a prefetched one). Our own
    message, once fetched, does not count itself. On `llm-remote` only that queue is looked at.
    """
    queues = [queue] if queue == REMOTE_QUEUE else _queues_up_to(queue)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    workers = [w.decode() if isinstance(w, bytes) else w for w in redis.zrangebyscore(
        f"{namespace}:__heartbeats__", now_ms - BROKER_HEARTBEAT_TIMEOUT_MS, "+inf")]
    pipe = redis.pipeline(transaction=False)
    for name in queues:
        pipe.llen(f"{namespace}:{name}")
    for worker in workers:
        for name in queues:
            pipe.scard(f"{namespace}:__acks__.{worker}.{name}")
    if entry_id:
        pipe.lpos(f"{namespace}:{queue}", entry_id)
        for worker in workers:
            pipe.sismember(f"{namespace}:__acks__.{worker}.{queue}", entry_id)
    replies = pipe.execute()
    lengths, rest = replies[:len(queues)], replies[len(queues):]
    fetched = sum(rest[:len(workers) * len(queues)])
    ahead = sum(lengths[:-1]) + fetched
    if not entry_id:
        return ahead + lengths[-1]
    own_index, mine_fetched = rest[len(workers) * len(queues)], rest[len(workers) * len(queues) + 1:]
    if own_index is not None:
        return ahead + int(own_index)
    return max(0, ahead - (1 if any(mine_fetched) else 0))


def _queues_up_to(queue: str) -> list[str]:
    """GPU queues at least as urgent as `queue`, most urgent first, `queue` last."""
    ordered = list(queue_priorities())
    if queue not in ordered:
        raise ValueError(f"{queue!r} is not an LLM queue")
    return ordered[:ordered.index(queue) + 1]


def lane(queue: str) -> str:
    """"remote" for llm-remote, else "local" (the GPU): call durations are averaged per lane."""
    return "remote" if queue == REMOTE_QUEUE else "local"


def average_call_seconds(redis, lane_name: str) -> float:
    raw = redis.get(average_key(lane_name))
    try:
        return float(raw) / 1000 if raw is not None else DEFAULT_CALL_SECONDS
    except ValueError:
        return DEFAULT_CALL_SECONDS


def record_call_duration(redis, lane_name: str, seconds: float) -> None:
    """Fold one measured call into the lane's moving average (the seed's `processing_time_ms`)."""
    key = average_key(lane_name)
    redis.set(key, fold_average(redis.get(key), seconds))


def average_key(lane_name: str) -> str:
    return AVERAGE_KEY.format(lane=lane_name)


def fold_average(previous_ms, seconds: float) -> str:
    """The new moving average (ms, as stored) after a call of `seconds`; `previous_ms` may be None."""
    sample_ms = seconds * 1000
    try:
        average = sample_ms if previous_ms is None else (
            (1 - AVERAGE_WEIGHT) * float(previous_ms) + AVERAGE_WEIGHT * sample_ms)
    except ValueError:
        average = sample_ms
    return f"{average:.1f}"


def estimated_wait_seconds(redis, queue: str, position: int) -> float:
    """Seconds before a job at `position` starts: jobs ahead × the lane's average call time."""
    if position <= 0:
        return 0.0
    return round(position * average_call_seconds(redis, lane(queue)), 1)
