"""Every connection of the store sets statement_timeout and lock_timeout: a locked table makes a
write fail with the psycopg2 error instead of hanging, and the store works again afterwards."""

from __future__ import annotations

import time

import psycopg2
import psycopg2.errors
import pytest

from tickstock.adapters.postgres import PostgresStore, WriteResult
from tickstock.messages.bars import Bar

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T0 = 1_728_309_600
SID = "11111111-1111-4111-8111-111111111111"


def bars(n: int = 3, volume: int = 10) -> list[Bar]:
    return [Bar("AAPL", T0 + 60 * i, 1.0, 2.0, 0.5, 1.5, volume, 1, SID, T0 + 60 * i + 1, T0 + 60 * i + 2)
            for i in range(n)]


def locked(dsn: str, table: str) -> psycopg2.extensions.connection:
    """A connection holding ``table`` in ACCESS EXCLUSIVE mode until it is rolled back."""
    holder = psycopg2.connect(dsn)
    with holder.cursor() as cur:
        cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return holder


def session_settings(store: PostgresStore) -> tuple[str, str]:
    with store._transaction() as conn, conn.cursor() as cur:
        cur.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')")
        return cur.fetchone()


def test_defaults_are_set_on_the_connection(dsn: str) -> None:
    with PostgresStore(dsn) as store:
        assert session_settings(store) == ("10s", "5s")
    with PostgresStore(dsn, statement_timeout_seconds=2.5, lock_timeout_seconds=0.25) as store:
        assert session_settings(store) == ("2500ms", "250ms")
    with PostgresStore(dsn, statement_timeout_seconds=0, lock_timeout_seconds=0) as store:
        assert session_settings(store) == ("0", "0")  # 0 disables


@pytest.mark.parametrize("table", ["ohlcv_1min", "ohlcv_1min_parts"])
def test_a_locked_table_fails_the_write_within_lock_timeout(dsn: str, sql, table: str) -> None:
    store = PostgresStore(dsn, lock_timeout_seconds=1.0, statement_timeout_seconds=30.0)
    store.ping()  # connected before the lock: the wait is the write's, not the connect's
    holder = locked(dsn, table)
    try:
        began = time.monotonic()
        with pytest.raises(psycopg2.OperationalError) as caught:
            store.upsert_bars(bars())
        waited = time.monotonic() - began
        assert caught.value.pgcode == "55P03"  # lock_not_available, not the 30 s statement timeout
        assert isinstance(caught.value, psycopg2.errors.LockNotAvailable)
        assert waited < 20  # it did not hang (generous: lock_timeout is 1 s)
    finally:
        holder.rollback()
        holder.close()
    # Nothing of the failed batch was committed, and the same store writes again.
    assert sql("SELECT count(*) FROM ohlcv_1min_parts") == [(0,)]
    assert store.upsert_bars(bars()) == WriteResult(3, [])
    assert sql("SELECT count(*), sum(volume) FROM ohlcv_1min") == [(3, 30)]
    store.close()


def test_statement_timeout_cancels_a_write_that_waits_too_long(dsn: str, sql) -> None:
    store = PostgresStore(dsn, lock_timeout_seconds=0, statement_timeout_seconds=1.0)
    store.ping()
    holder = locked(dsn, "intraday_patterns")
    try:
        from tickstock.messages.records import PatternRecord
        with pytest.raises(psycopg2.errors.QueryCanceled) as caught:
            store.insert_patterns([PatternRecord("AAPL", "Doji", 0.9, T0 + 61.0)])
        assert caught.value.pgcode == "57014"
        assert sql("SELECT count(*) FROM tickstock_written_rows") == [(0,)]  # its ledger id too
    finally:
        holder.rollback()
        holder.close()
    assert store.insert_patterns([PatternRecord("AAPL", "Doji", 0.9, T0 + 61.0)]) == WriteResult(1, [])
    store.close()


def test_a_timeout_keeps_the_connection(dsn: str) -> None:
    """A statement refused by lock_timeout is rolled back; the connection is reused, not reopened."""
    store = PostgresStore(dsn, lock_timeout_seconds=0.5)
    store.ping()
    backend = store._conn.get_backend_pid()
    holder = locked(dsn, "ohlcv_1min")
    try:
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            store.upsert_bars(bars(1))
    finally:
        holder.rollback()
        holder.close()
    store.ping()
    assert store._conn.get_backend_pid() == backend
    store.close()


@pytest.mark.parametrize("kwargs", [{"lock_timeout_seconds": -1}, {"statement_timeout_seconds": float("nan")},
                                    {"connect_timeout": -0.5}])
def test_bad_timeouts_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        PostgresStore("postgresql://postgres@127.0.0.1:5432/postgres", **kwargs)
