"""Throw-away PostgreSQL databases, for the test suite and the benchmark. Depends on psycopg2 only.

    with temporary_database(admin_dsn, prefix="tickstock_test") as dsn:
        ...  # a fresh, empty database; dropped afterwards even if connections are still open
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions
from psycopg2 import sql


def database_dsn(admin_dsn: str, dbname: str) -> str:
    """``admin_dsn`` pointing at ``dbname`` instead, in the same form: a URL stays a URL (the
    service's configuration only accepts ``postgresql://`` URLs), ``key=value`` stays so."""
    if "://" in admin_dsn:
        return urlunsplit(urlsplit(admin_dsn)._replace(path="/" + dbname))
    return psycopg2.extensions.make_dsn(admin_dsn, dbname=dbname)


@contextmanager
def temporary_database(admin_dsn: str, prefix: str) -> Iterator[str]:
    """Create ``<prefix>_<random hex>``, yield its DSN, then DROP it ``WITH (FORCE)`` (PostgreSQL
    13+), which also ends connections left open. ``admin_dsn`` is a role allowed to CREATE DATABASE."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    _admin(admin_dsn, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_dsn(admin_dsn, name)
    finally:
        _admin(admin_dsn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(admin_dsn: str, statement: sql.Composable) -> None:
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction block
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()
