import psycopg2
import pytest

from tests.pg import temporary_database


@pytest.fixture
def database():
    """A migrated database of the test's own, dropped afterwards."""
    with temporary_database() as dsn:
        from tickstock.adapters.postgres import migrate

        migrate(dsn)
        yield dsn


def query(dsn: str, sql: str, *args):
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()
