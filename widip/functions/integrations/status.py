"""Each integration's status (ok | degraded | down) from its recent call outcomes, kept in Redis.

A listener in `http_client.OUTCOME_LISTENERS` (also fed by the SMTP, LDAP and LLM clients) pushes
every outcome into a rolling window of the last WINDOW_SIZE calls per system and recomputes the
status in one Lua round trip. `circuit.is_available` reads the status for every system but GLPI
(whose status is the health probe's). A `down` status expires after DOWN_HOLD_SECONDS: with nothing
probing these systems, that expiry is the circuit's half-open state — the next call tests the system
again. The listener is cheap (one EVALSHA) and never raises; when Redis fails it pauses itself.
This module does not probe anything and never decides for GLPI.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Union

import redis

from widip.functions import metrics
from widip.functions.integrations.http_client import OUTCOME_LISTENERS

logger = logging.getLogger(__name__)

WINDOW_SIZE = 20
#: This many failures in a row (the latest calls) make a system down.
DOWN_AFTER_FAILURES = 3
#: At least this share of failed calls in the window (percent) makes a system degraded.
DEGRADED_FAILURE_PERCENT = 20
#: How long a computed status stays valid without new calls (then "unknown": usable, not ok).
DOWN_HOLD_SECONDS = 120
#: The window and the last error/success details are kept this long after the last call.
DETAILS_TTL_SECONDS = 7 * 24 * 3600
#: After a Redis error the listener stays silent this long, so a dead Redis never slows calls.
PAUSE_AFTER_REDIS_ERROR_SECONDS = 10.0
MAX_ERROR_CHARS = 300

OUTCOMES_KEY = "widip:integration:{system}:outcomes"
DETAILS_KEY = "widip:integration:{system}:details"
STATUS_KEY = "widip:integration:{system}:status"  # the key circuit.status_of reads
SYSTEMS_KEY = "widip:integration:systems"
#: The systems monitoring always lists, even before their first call.
KNOWN_SYSTEMS = ("glpi", "observium", "phibee", "smtp", "active_directory", "mysecret", "ollama", "anthropic")

# KEYS: outcomes list, details hash, status key, systems set.
# ARGV: system, "1"|"0", now (epoch s), latency_ms, error text, window, down_after, degraded %, hold s, ttl s.
_RECORD = """
local w = tonumber(ARGV[6])
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], 0, w - 1)
redis.call('EXPIRE', KEYS[1], ARGV[10])
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local failures, streak, leading = 0, 0, true
for _, v in ipairs(items) do
  if v == '0' then
    failures = failures + 1
    if leading then streak = streak + 1 end
  else
    leading = false
  end
end
local status = 'ok'
if streak >= tonumber(ARGV[7]) then
  status = 'down'
elseif streak > 0 or failures * 100 >= tonumber(ARGV[8]) * #items then
  status = 'degraded'
end
redis.call('SET', KEYS[3], status, 'EX', ARGV[9])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[2], 'last_success_at', ARGV[3], 'last_latency_ms', ARGV[4])
else
  redis.call('HSET', KEYS[2], 'last_error', ARGV[5], 'last_error_at', ARGV[3])
end
redis.call('HSET', KEYS[2], 'last_call_at', ARGV[3], 'status', status)
redis.call('HINCRBY', KEYS[2], ARGV[2] == '1' and 'calls_ok' or 'calls_error', 1)
redis.call('EXPIRE', KEYS[2], ARGV[10])
redis.call('SADD', KEYS[4], ARGV[1])
return status
"""

RedisSource = Union[redis.Redis, Callable[[], redis.Redis]]

_lock = threading.Lock()
_source: RedisSource | None = None
_script = None
_script_client: redis.Redis | None = None
_paused_until = 0.0


def safe_error(error: Exception | None) -> str:
    """A short, single-line description: the error type and our own message (never headers or bodies)."""
    if error is None:
        return ""
    message = getattr(error, "message", None) or str(error)
    return " ".join(f"{type(error).__name__}: {message}".split())[:MAX_ERROR_CHARS]


def record_outcome(client: redis.Redis, system: str, ok: bool, elapsed_seconds: float,
                   error: Exception | None = None, *, now: float | None = None) -> str:
    """Push one outcome into the system's window; return its new status (raises RedisError)."""
    script = _script_for(client)
    status = script(keys=[OUTCOMES_KEY.format(system=system), DETAILS_KEY.format(system=system),
                          STATUS_KEY.format(system=system), SYSTEMS_KEY],
                    args=[system, "1" if ok else "0", repr(now if now is not None else time.time()),
                          f"{elapsed_seconds * 1000:.1f}", safe_error(error), WINDOW_SIZE, DOWN_AFTER_FAILURES,
                          DEGRADED_FAILURE_PERCENT, DOWN_HOLD_SECONDS, DETAILS_TTL_SECONDS])
    return status.decode() if isinstance(status, bytes) else str(status)


def _script_for(client: redis.Redis):
    global _script, _script_client
    if _script is None or _script_client is not client:
        _script, _script_client = client.register_script(_RECORD), client
    return _script


def listener(system: str, ok: bool, elapsed_seconds: float, error: Exception | None) -> None:
    """The OUTCOME_LISTENERS entry: window + status in Redis, counters in Prometheus. Never raises."""
    global _paused_until
    status = None
    try:
        if _source is not None and time.monotonic() >= _paused_until:
            client = _source() if callable(_source) and not isinstance(_source, redis.Redis) else _source
            status = record_outcome(client, system, ok, elapsed_seconds, error)
    except redis.RedisError as exc:
        _paused_until = time.monotonic() + PAUSE_AFTER_REDIS_ERROR_SECONDS
        logger.warning("integration status not recorded (Redis: %s); pausing %.0f s", type(exc).__name__,
                       PAUSE_AFTER_REDIS_ERROR_SECONDS)
    except Exception as exc:  # noqa: BLE001 - e.g. settings missing in a process that has no deps
        _paused_until = time.monotonic() + PAUSE_AFTER_REDIS_ERROR_SECONDS
        logger.debug("integration status not recorded: %s", type(exc).__name__)
    try:
        # GLPI's up/down is the health probe's to publish; its calls are still counted.
        metrics.record_integration_call(system, ok, None if system == "glpi" else status)
    except Exception:  # noqa: BLE001 - metrics must never break a call
        logger.debug("integration metric not recorded", exc_info=True)


def install(source: RedisSource) -> None:
    """Start recording outcomes into `source` (a client, or a callable returning one) in this process.

    Idempotent: the listener is registered once; a later call only changes where it writes.
    """
    global _source, _paused_until
    with _lock:
        _source, _paused_until = source, 0.0
        if listener not in OUTCOME_LISTENERS:
            OUTCOME_LISTENERS.append(listener)


def uninstall() -> None:
    """Stop recording (tests)."""
    global _source
    with _lock:
        _source = None
        while listener in OUTCOME_LISTENERS:
            OUTCOME_LISTENERS.remove(listener)


def details(client: redis.Redis, system: str) -> dict:
    """The system's recorded window and last error/success, for monitoring (status from its own key)."""
    pipe = client.pipeline(transaction=False)
    pipe.lrange(OUTCOMES_KEY.format(system=system), 0, -1)
    pipe.hgetall(DETAILS_KEY.format(system=system))
    window, info = pipe.execute()
    info = {k.decode(): v.decode() for k, v in info.items()}
    failures = sum(1 for v in window if v == b"0")
    return {
        "window_size": len(window), "window_failures": failures,
        "last_error": info.get("last_error") or None, "last_error_at": _float(info.get("last_error_at")),
        "last_success_at": _float(info.get("last_success_at")), "last_call_at": _float(info.get("last_call_at")),
        "last_latency_ms": _float(info.get("last_latency_ms")),
        "calls_ok": int(info.get("calls_ok", 0)), "calls_error": int(info.get("calls_error", 0)),
    }


def systems(client: redis.Redis) -> list[str]:
    """KNOWN_SYSTEMS plus any other system that reported an outcome."""
    seen = sorted(s.decode() for s in client.smembers(SYSTEMS_KEY))
    return list(KNOWN_SYSTEMS) + [s for s in seen if s not in KNOWN_SYSTEMS]


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None
