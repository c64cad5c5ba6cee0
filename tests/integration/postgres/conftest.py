"""Fixtures for the PostgreSQL adapter's integration tests: throw-away databases, never a real one.

``migrated_dsn`` is one migrated database for the whole run; ``dsn`` empties the tables the store
writes before each test so tests do not see each other's rows. Tests that change the schema
(foreign keys, pre-existing dashboard tables, concurrent migration) use ``fresh_dsn`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.postgres.helpers import CACHE_ENTRIES_DDL, run_sql
from tests.pg import temporary_database
from tickstock.adapters.postgres import PostgresStore, migrate

WRITTEN_TABLES = (
    "ohlcv_1min",
    "intraday_patterns",
    "intraday_indicators",
    "streaming_sessions",
    "streaming_health_metrics",
    "ohlcv_1min_parts",
    "tickstock_written_rows",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs a live PostgreSQL server")


@pytest.fixture(scope="session")
def migrated_dsn() -> Iterator[str]:
    with temporary_database() as dsn:
        migrate(dsn)
        yield dsn


@pytest.fixture
def dsn(migrated_dsn: str) -> str:
    run_sql(migrated_dsn, CACHE_ENTRIES_DDL)
    run_sql(migrated_dsn, f"TRUNCATE {', '.join(WRITTEN_TABLES)}, cache_entries RESTART IDENTITY")
    return migrated_dsn


@pytest.fixture
def fresh_dsn() -> Iterator[str]:
    """An empty, NOT migrated database of its own."""
    with temporary_database() as dsn:
        yield dsn


@pytest.fixture
def store(dsn: str) -> Iterator[PostgresStore]:
    s = PostgresStore(dsn)
    yield s
    s.close()


@pytest.fixture
def sql(dsn: str) -> Callable[..., list[tuple[Any, ...]]]:
    """``sql(statement, params)`` against the test database, outside the store."""
    return lambda statement, params=None: run_sql(dsn, statement, params)
