"""Migrations: ordered, recorded, applied once even when several processes race, never silently edited."""

import multiprocessing
import shutil

import pytest

from widip.config import PROJECT_ROOT
from widip.functions import db


def _fresh_database(conn, name="mig"):
    conn.execute(f'CREATE DATABASE "{name}"')


def test_every_migration_applies_to_an_empty_database_with_pgvector(database_url, conn):
    applied = conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
    files = [p.name for p in db.migration_files(PROJECT_ROOT / "sql")]
    assert [r["name"] for r in applied] == files
    assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone()
    assert db.migrate(database_url, PROJECT_ROOT / "sql") == []


def _run(url, sql_dir, queue):
    queue.put(db.migrate(url, sql_dir))


def test_two_concurrent_runs_apply_each_migration_once(servers, tmp_path):
    import psycopg

    from tests.conftest import _with_database

    with psycopg.connect(servers["admin_url"], autocommit=True) as admin:
        admin.execute('DROP DATABASE IF EXISTS "mig_race" WITH (FORCE)')
        admin.execute('CREATE DATABASE "mig_race"')
    url = _with_database(servers["admin_url"], "mig_race")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    runners = [ctx.Process(target=_run, args=(url, PROJECT_ROOT / "sql", queue)) for _ in range(2)]
    for r in runners:
        r.start()
    results = [queue.get(timeout=60) for _ in runners]
    for r in runners:
        r.join(30)
    files = [p.name for p in db.migration_files(PROJECT_ROOT / "sql")]
    assert sorted(results[0] + results[1]) == sorted(files)  # each applied by exactly one runner
    with db.connect(url) as conn:
        count = conn.execute("SELECT count(*) AS n FROM schema_migrations").fetchone()["n"]
    assert count == len(files)


def test_a_changed_applied_migration_is_refused(database_url, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(PROJECT_ROOT / "sql", sql_dir)
    first = sorted(sql_dir.glob("*.sql"))[-1]
    first.write_text(first.read_text() + "\n-- edited after release\n")
    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        db.migrate(database_url, sql_dir)


def test_a_new_migration_file_is_applied_and_recorded(database_url, conn, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(PROJECT_ROOT / "sql", sql_dir)
    (sql_dir / "999_probe.sql").write_text("CREATE TABLE probe (id int);")
    assert db.migrate(database_url, sql_dir) == ["999_probe.sql"]
    assert conn.execute("SELECT to_regclass('probe') AS t").fetchone()["t"] == "probe"


def test_a_failing_migration_leaves_nothing_half_applied(database_url, conn, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(PROJECT_ROOT / "sql", sql_dir)
    (sql_dir / "999_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    with pytest.raises(Exception):
        db.migrate(database_url, sql_dir)
    assert conn.execute("SELECT to_regclass('half') AS t").fetchone()["t"] is None
    assert not conn.execute("SELECT 1 FROM schema_migrations WHERE name = '999_broken.sql'").fetchone()
