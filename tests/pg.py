"""Throw-away PostgreSQL databases for tests (``tickstock.adapters.postgres.scratch``).

    from tests.pg import temporary_database

    with temporary_database() as dsn:
        ...  # a fresh, empty database; dropped afterwards even if connections are still open

The admin DSN (a role allowed to CREATE DATABASE) defaults to ``TICKSTOCK_TEST_ADMIN_DSN``, else
``postgresql://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from tickstock.adapters.postgres.scratch import temporary_database as _temporary_database

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def temporary_database(
    admin_dsn: str = os.environ.get("TICKSTOCK_TEST_ADMIN_DSN", DEFAULT_ADMIN_DSN),
) -> Iterator[str]:
    """A fresh ``tickstock_test_<hex>`` database's DSN; dropped ``WITH (FORCE)`` afterwards."""
    with _temporary_database(admin_dsn, "tickstock_test") as dsn:
        yield dsn


def query(dsn: str, sql: str, *args):
    """Every row ``sql`` (with ``args``) returns, on a connection of its own."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()
