"""The GPU mutex's safety net: a PostgreSQL session advisory lock held around each local LLM call.

The mutex itself is the deployment: one `llm` process with one thread (docs/architecture.md). If someone
scales that process, this lock keeps the GPU to `LLM_GPU_CONCURRENCY` calls at a time (default 1).
It is owner-aware and dies with its holder: the lock belongs to a PostgreSQL session, so a process
killed while holding it (SIGKILL, OOM, power loss) frees it the moment PostgreSQL notices the
dropped connection — no TTL to wait out, no lock another process could release by mistake. Waiters
block inside PostgreSQL and are granted the lock in arrival order, so no polling and no retries at
the back of a queue (which is what made Dramatiq's ConcurrentRateLimiter harmful as a GPU mutex;
docs/architecture.md).

Each thread gets its own dedicated connection (advisory locks are re-entrant within a session, so
two threads sharing one would not exclude each other). Not for anything but the GPU: the key is fixed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from typing import Iterator

import psycopg

from widip.errors import Unavailable

logger = logging.getLogger(__name__)

SYSTEM = "gpu"
#: Advisory lock key space: (GPU_LOCK_CLASS, slot). Two int4 keys never collide with the single
#: bigint key of the migration lock (PostgreSQL tells them apart by objsubid).
GPU_LOCK_CLASS = 0x57475055  # "WGPU"
APPLICATION_NAME = "widip-gpu-lock pid={pid}"
#: With several slots, how long to wait on one busy slot before trying the others again.
SLOT_WAIT_MS = 250


class GpuLock:
    """`slots` concurrent holders at most across every process sharing `database_url`.

    `acquire()` blocks up to `acquire_timeout` seconds, then raises Unavailable (the caller's job
    is retried later). `slots=0` disables the lock (every acquire succeeds at once).
    """

    def __init__(self, database_url: str, *, slots: int = 1, acquire_timeout: float = 300.0,
                 connect_timeout: float = 5.0):
        self._url = database_url
        self.slots = int(slots)
        self.acquire_timeout = float(acquire_timeout)
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._connections: list[psycopg.Connection] = []
        self._registry_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "GpuLock":
        return cls(settings.database_url, slots=settings.llm_gpu_concurrency,
                   acquire_timeout=2 * settings.llm_timeout_seconds)

    @contextlib.contextmanager
    def held(self) -> Iterator[int | None]:
        """Hold one slot for the duration of the block; yields the slot number (None if disabled)."""
        slot = self.acquire()
        try:
            yield slot
        finally:
            self.release()

    def acquire(self) -> int | None:
        if self.slots <= 0:
            return None
        if getattr(self._local, "slot", None) is not None:
            raise RuntimeError("this thread already holds the GPU lock")
        started = time.monotonic()
        try:
            slot = self._acquire_one() if self.slots == 1 else self._acquire_any(started)
        except psycopg.errors.LockNotAvailable:
            self._drop_connection()
            raise Unavailable(SYSTEM, f"GPU busy: lock not acquired within {self.acquire_timeout:.0f} s") from None
        except psycopg.Error as exc:
            self._drop_connection()
            raise Unavailable(SYSTEM, f"GPU lock: database unreachable ({type(exc).__name__})") from exc
        except BaseException:
            # Interrupted while waiting (time limit, shutdown): the server may still grant the lock
            # to this session, so end the session rather than risk holding the GPU unknowingly.
            self._drop_connection()
            raise
        self._local.slot = slot
        waited = time.monotonic() - started
        if waited > 0.05:
            logger.info("GPU lock slot %d acquired after %.2f s", slot, waited)
        return slot

    def release(self) -> None:
        slot = getattr(self._local, "slot", None)
        if slot is None:
            return
        self._local.slot = None
        try:
            row = self._connection().execute(
                "SELECT pg_advisory_unlock(%s, %s)", (GPU_LOCK_CLASS, slot)).fetchone()
            if not row[0]:
                logger.warning("GPU lock slot %d was not held at release (session lost?)", slot)
        except psycopg.Error as exc:
            # Closing the session releases the lock just the same.
            logger.warning("GPU lock release failed (%s); dropping the session", type(exc).__name__)
            self._drop_connection()

    def close(self) -> None:
        """Close every session this lock opened (releasing whatever they hold)."""
        with self._registry_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    # --- internals ------------------------------------------------------------------------------

    def _acquire_one(self) -> int:
        conn = self._connection()
        conn.execute("SELECT pg_advisory_lock(%s, 0)", (GPU_LOCK_CLASS,))
        return 0

    def _acquire_any(self, started: float) -> int:
        conn = self._connection()
        turn = 0
        while True:
            for slot in range(self.slots):
                if conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (GPU_LOCK_CLASS, slot)).fetchone()[0]:
                    return slot
            remaining_ms = int((self.acquire_timeout - (time.monotonic() - started)) * 1000)
            if remaining_ms <= 0:
                raise psycopg.errors.LockNotAvailable("GPU lock timeout")
            slot = turn % self.slots
            turn += 1
            conn.execute(f"SET lock_timeout = {min(remaining_ms, SLOT_WAIT_MS)}")
            try:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", (GPU_LOCK_CLASS, slot))
                return slot
            except psycopg.errors.LockNotAvailable:
                continue
            finally:
                conn.execute(f"SET lock_timeout = {self._timeout_ms()}")

    def _timeout_ms(self) -> int:
        return max(1, int(self.acquire_timeout * 1000))

    def _connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        conn = psycopg.connect(
            self._url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)),
            application_name=APPLICATION_NAME.format(pid=os.getpid()))
        conn.execute(f"SET lock_timeout = {self._timeout_ms()}")
        self._local.conn = conn
        with self._registry_lock:
            self._connections.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        self._local.slot = None
        if conn is not None:
            with self._registry_lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()


def lock_holders(conn) -> list[dict]:
    """Who holds GPU slots now: [{slot, backend_pid, application_name}] (tests and ops diagnostics)."""
    rows = conn.execute(
        "SELECT l.objid AS slot, l.pid AS backend_pid, a.application_name"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid AND l.objsubid = 2"
        " ORDER BY l.objid", (GPU_LOCK_CLASS,)).fetchall()
    keys = ("slot", "backend_pid", "application_name")
    return [dict(zip(keys, row)) if not isinstance(row, dict) else row for row in rows]


def holder_os_pid(application_name: str) -> int | None:
    """The OS pid of the process that opened a lock session (from its application_name)."""
    prefix = APPLICATION_NAME.split("{")[0]
    if not application_name.startswith(prefix):
        return None
    try:
        return int(application_name[len(prefix):])
    except ValueError:
        return None


class LockedProvider:
    """A local (GPU) provider whose every call holds the GPU lock; same interface as the provider."""

    def __init__(self, provider, lock: GpuLock):
        self.provider = provider
        self.lock = lock
        self.name = provider.name
        self.local = True

    def complete(self, messages, tools=(), **kwargs):
        with self.lock.held():
            return self.provider.complete(messages, tools, **kwargs)


@functools.lru_cache(maxsize=8)
def gpu_lock_for(database_url: str, slots: int, acquire_timeout: float) -> GpuLock:
    """This process's lock for a database (one session per thread), shared by every provider."""
    return GpuLock(database_url, slots=slots, acquire_timeout=acquire_timeout)


def with_gpu_lock(provider, settings):
    """`provider` itself when it is remote; wrapped so every call holds the GPU lock when local."""
    if not provider.local or isinstance(provider, LockedProvider):
        return provider
    # A holder's call lasts at most llm_timeout_seconds; wait for two of them before giving up.
    return LockedProvider(provider, gpu_lock_for(settings.database_url, settings.llm_gpu_concurrency,
                                                 2 * settings.llm_timeout_seconds))
