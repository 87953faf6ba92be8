"""Test harness: real PostgreSQL (pgvector) and Valkey for the whole session, a clean database per test.

The servers are the embedded ones (or those named by WIDIP_TEST_DATABASE_URL / WIDIP_TEST_REDIS_URL).
Every test gets its own database cloned from a migrated template (fast, and nothing leaks between
tests) and an emptied Redis. Actors use the StubBroker in this process; end-to-end tests start real
`dramatiq` and `gunicorn` processes on the Redis broker (see tests/stack.py).
"""

from __future__ import annotations

import itertools
import shutil
import os
import tempfile
from pathlib import Path

# The StubBroker must be chosen before any actor module is imported.
os.environ["WIDIP_BROKER"] = "stub"
os.environ.setdefault("dramatiq_prom_db", tempfile.mkdtemp(prefix="widip-prom-"))
# Sentinel holds a new incident before diagnosing it (30 s in production) so an outage's devices share
# one ticket; in-process tests wait for that hold in real time, so it is short here.
os.environ.setdefault("SENTINEL_HOLD_SECONDS", "4")

import psycopg  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402

from widip import embedded  # noqa: E402
from widip.config import PROJECT_ROOT, Settings  # noqa: E402
from widip.functions import db  # noqa: E402
import widip.worker  # noqa: E402,F401 - this process is also the (stub) worker: every actor, handlers registered

pytest_plugins = ["tests.sims"]

TEMPLATE = "widip_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def servers():
    """Session-wide PostgreSQL admin URL and Redis URL."""
    pg_url, redis_url = os.environ.get("WIDIP_TEST_DATABASE_URL"), os.environ.get("WIDIP_TEST_REDIS_URL")
    started = None
    if not (pg_url and redis_url):
        # Not under pytest's basetemp: concurrent pytest runs rotate those directories away.
        base = Path(tempfile.mkdtemp(prefix="widip-test-"))
        base.chmod(0o755)
        started = embedded.start(base, persist=False, database="postgres")
        pg_url, redis_url = started.database_url, started.redis_url
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    template_url = _with_database(pg_url, TEMPLATE)
    db.migrate(template_url, PROJECT_ROOT / "sql")
    from widip.functions import seeding
    with db.connect(template_url) as conn:
        seeding.seed(conn, PROJECT_ROOT / "policy")
    yield {"admin_url": pg_url, "redis_url": redis_url, "embedded": started}
    if started:
        started.stop()
        shutil.rmtree(base, ignore_errors=True)


def _with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (handles socket-style URLs)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture
def database_url(servers):
    """A fresh, migrated database for this test, dropped afterwards."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(servers["admin_url"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield _with_database(servers["admin_url"], name)
    with psycopg.connect(servers["admin_url"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url(servers):
    """The session Valkey, emptied for this test."""
    client = redis.Redis.from_url(servers["redis_url"])
    client.flushall()
    client.close()
    return servers["redis_url"]


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def conn(database_url):
    """An autocommit connection to this test's database (dict rows)."""
    with db.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def pool(settings):
    """A connection pool on this test's database, as the service's processes use."""
    p = db.make_pool(settings.database_url)
    yield p
    p.close()


@pytest.fixture
def settings(database_url, redis_url, tmp_path):
    """Settings for this test: its own database, the emptied Redis, a private var/ dir."""
    return Settings(
        database_url=database_url, redis_url=redis_url, env="test", broker="stub",
        var_dir=tmp_path / "var", policy_dir=Path(PROJECT_ROOT / "policy"),
    )


@pytest.fixture
def stack(database_url, redis_url, tmp_path):
    """Starts real Procfile processes on this test's database and the Redis broker."""
    from tests.stack import Stack

    prom = tmp_path / "prometheus"
    prom.mkdir()
    running = Stack({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "WIDIP_ENV": "test",
                     "WIDIP_VAR_DIR": str(tmp_path / "var"), "PROMETHEUS_MULTIPROC_DIR": str(prom),
                     "dramatiq_prom_db": str(prom)}, tmp_path)
    yield running
    running.stop()


@pytest.fixture
def app_client(settings):
    """A Falcon TestClient over the app wired to this test's database and Redis (StubBroker)."""
    from falcon.testing import TestClient

    from widip.http.app import build_context, create_app

    return TestClient(create_app(build_context(settings)))


@pytest.fixture
def stub_broker(settings):
    """The StubBroker with this test's dependencies; emptied afterwards."""
    from widip import deps as actor_deps
    from widip.messaging.broker import current

    broker = current()

    actor_deps.configure(settings)
    broker.flush_all()
    yield broker
    broker.flush_all()


@pytest.fixture
def stub_worker(stub_broker):
    from dramatiq import Worker

    worker = Worker(stub_broker, worker_timeout=100)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def people(conn):
    """Users with live session tokens: admin N4, admin2 N4, approver N3, approver2 N3, tech N1 (with GLPI access)."""
    from types import SimpleNamespace

    from widip.functions import identity
    from widip.functions.access_matrix import AccessRights, set_access

    made = {}
    for name, level in (("admin", 4), ("admin2", 4), ("approver", 3), ("approver2", 3), ("tech", 1)):
        user = identity.create_user(conn, username=name, password="correct-horse-battery-staple",
                                    email=f"{name}@widip.fr", accreditation_level=level, display_name=name.title())
        set_access(conn, user.id, AccessRights(acces_glpi=True, acces_base_docs=True, clients_autorises=("*",),
                                               categories_tickets=("*",)), actor="test")
        session = identity.issue_session(conn, user.id, ttl_hours=1)
        made[name] = SimpleNamespace(id=user.id, token=session.token, level=level,
                                     headers={"Authorization": f"Bearer {session.token}"})
    return SimpleNamespace(**made)


def drain(broker, worker, rounds: int = 50) -> None:
    """Run every queued message (and what they enqueue) on the stub worker until nothing is left."""
    for _ in range(rounds):
        busy = [name for name, q in broker.queues.items() if q.qsize() or q.unfinished_tasks]
        delayed = [name for name in broker.queues if name.endswith(".DQ") and broker.queues[name].qsize()]
        if not busy and not delayed:
            return
        for name in busy:
            broker.join(name)
        worker.join()
