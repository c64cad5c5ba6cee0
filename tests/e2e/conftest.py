import pytest

from tests.e2e.harness import delete_keys_of_configs, prefixes_made
from tests.pg import query, temporary_database  # noqa: F401 (query: the e2e tests import it from here)


@pytest.fixture(autouse=True)
def _no_keys_left_behind():
    """What a test's services wrote under the prefixes made during the test is deleted once it is
    over. Prefixes made outside a test (runs launched ahead, still running) are left to the end."""
    mark = prefixes_made()
    yield
    delete_keys_of_configs(since=mark)


@pytest.fixture(autouse=True, scope="session")
def _no_keys_left_at_the_end():
    """Every prefix handed out in the session, once every launched run has finished."""
    yield
    delete_keys_of_configs()


@pytest.fixture
def database():
    """A migrated database of the test's own, dropped afterwards."""
    with temporary_database() as dsn:
        from tickstock.adapters.postgres import migrate

        migrate(dsn)
        yield dsn
