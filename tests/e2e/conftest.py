import pytest

from tests.e2e.harness import delete_keys_of_configs
from tests.pg import query, temporary_database  # noqa: F401 (query: the e2e tests import it from here)


@pytest.fixture(autouse=True)
def _no_keys_left_behind():
    """What a test's services wrote under its prefixes is deleted once the test is over."""
    yield
    delete_keys_of_configs()


@pytest.fixture
def database():
    """A migrated database of the test's own, dropped afterwards."""
    with temporary_database() as dsn:
        from tickstock.adapters.postgres import migrate

        migrate(dsn)
        yield dsn
