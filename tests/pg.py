"""Throw-away PostgreSQL databases for tests. Depends on psycopg2 only.

    from tests.pg import temporary_database

    with temporary_database() as dsn:
        ...  # a fresh, empty database; dropped afterwards even if connections are still open

The admin DSN (a role allowed to CREATE DATABASE) defaults to ``TICKSTOCK_TEST_ADMIN_DSN``, else
``postgresql://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def database_dsn(admin_dsn: str, dbname: str) -> str:
    """``admin_dsn`` pointing at ``dbname`` instead, in the same form: a URL stays a URL (the
    service's configuration only accepts ``postgresql://`` URLs), ``key=value`` stays so."""
    if "://" in admin_dsn:
        parts = urlsplit(admin_dsn)
        return urlunsplit(parts._replace(path="/" + dbname))
    return psycopg2.extensions.make_dsn(admin_dsn, dbname=dbname)


@contextmanager
def temporary_database(
    admin_dsn: str = os.environ.get("TICKSTOCK_TEST_ADMIN_DSN", DEFAULT_ADMIN_DSN),
) -> Iterator[str]:
    """Create ``tickstock_test_<random hex>``, yield its DSN, then DROP it ``WITH (FORCE)``
    (PostgreSQL 13+), which also ends connections a test forgot to close."""
    name = f"tickstock_test_{secrets.token_hex(6)}"
    _admin(admin_dsn, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_dsn(admin_dsn, name)
    finally:
        _admin(admin_dsn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(admin_dsn: str, statement: sql.Composable) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction block: autocommit.
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()
