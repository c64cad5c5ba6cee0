import pytest

from tests.pg import query, temporary_database  # noqa: F401 (query: the e2e tests import it from here)


@pytest.fixture
def database():
    """A migrated database of the test's own, dropped afterwards."""
    with temporary_database() as dsn:
        from tickstock.adapters.postgres import migrate

        migrate(dsn)
        yield dsn
