"""The connection pool survives the database dropping its connections (restart, idle kill)."""

from widip.functions import db


def test_a_connection_the_server_killed_is_replaced_before_a_request_gets_it(database_url):
    pool = db.make_pool(database_url, min_size=1, max_size=1)
    try:
        with db.transaction(pool) as conn:
            first = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        with db.connect(database_url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000) AS ok", (first,)).fetchone()["ok"]
        with db.transaction(pool) as conn:
            second = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        assert second != first
    finally:
        pool.close()
