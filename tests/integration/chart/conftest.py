"""A migrated throw-away database for the chart's integration tests, filled as the service fills it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import temporary_database
from tickstock.adapters.postgres import PostgresStore, migrate


@pytest.fixture
def database() -> Iterator[str]:
    with temporary_database() as dsn:
        migrate(dsn)
        yield dsn


@pytest.fixture
def store(database: str) -> Iterator[PostgresStore]:
    """The service's own writer, so the rows read back are exactly the rows the service writes."""
    s = PostgresStore(database)
    yield s
    s.close()
