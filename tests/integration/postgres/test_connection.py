"""Connection failures are raised, never swallowed, and the store recovers on the next call."""

from __future__ import annotations

import psycopg2
import pytest

from tests.integration.postgres.helpers import run_sql
from tickstock.adapters.postgres import PostgresStore, WriteResult
from tickstock.messages.bars import Bar

pytestmark = pytest.mark.integration

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/tickstock"
T0 = 1_728_309_600


def test_unreachable_server_raises_operational_error() -> None:
    store = PostgresStore(UNREACHABLE, connect_timeout=2)
    with pytest.raises(psycopg2.OperationalError):
        store.ping()
    with pytest.raises(psycopg2.OperationalError):
        store.upsert_bars([Bar("AAPL", T0, 1.0, 1.0, 1.0, 1.0, 1)])
    with pytest.raises(psycopg2.OperationalError):
        store.load_recent_bars(["AAPL"], 5)
    store.close()


def test_lost_connection_is_raised_then_reopened(store: PostgresStore, sql) -> None:
    store.ping()
    # Kill the store's backend, as a server restart or a network cut would.
    killed = sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE application_name = 'tickstock' AND datname = current_database()")
    assert killed == [(True,)]

    batch = [Bar("AAPL", T0 + 60 * i, 1.0, 2.0, 0.5, 1.5, 10) for i in range(3)]
    with pytest.raises(psycopg2.OperationalError):
        store.upsert_bars(batch)
    assert sql("SELECT count(*) FROM ohlcv_1min") == [(0,)]  # nothing half-written

    assert store.upsert_bars(batch) == WriteResult(3, [])  # the caller's retry succeeds
    assert sql("SELECT count(*) FROM ohlcv_1min") == [(3,)]


def test_dsn_settings_win_over_defaults(dsn: str) -> None:
    with PostgresStore(dsn + "?application_name=custom_app") as store:
        store.ping()
        names = run_sql(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'custom_app'")
        assert names == [(1,)]
