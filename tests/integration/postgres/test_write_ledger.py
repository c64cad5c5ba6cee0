"""Pattern, indicator and health rows are written at most once per row_id (the write ledger)."""

from __future__ import annotations

import pytest

from tests.integration.postgres.helpers import run_sql
from tickstock.adapters.postgres import PostgresStore, WriteResult, migrate
from tickstock.messages.records import (
    HealthRecord, IndicatorRecord, PatternRecord, indicator_row_id, pattern_row_id,
)

pytestmark = pytest.mark.integration

T0 = 1_728_309_600
SID = "8b0f0c8e-2f0a-4a53-9d86-1c4b8a3d5e71"


def pattern(symbol: str, pattern_type: str = "Doji", bar_start: int = T0, **changes) -> PatternRecord:
    fields = dict(
        symbol=symbol, pattern_type=pattern_type, confidence=0.85, detection_timestamp=bar_start + 60.4,
        pattern_data={"body_ratio": 0.05}, expiration_timestamp=bar_start + 3660.4, levels=(1.5,),
        metadata={"session_id": SID}, row_id=pattern_row_id(SID, symbol, pattern_type, bar_start),
    )
    fields.update(changes)
    return PatternRecord(**fields)


def indicator(symbol: str, kind: str = "RSI", bar_start: int = T0) -> IndicatorRecord:
    return IndicatorRecord(symbol, kind, 55.5, bar_start + 60.2, {"value": 55.5}, bar_start + 3660.2,
                           {"session_id": SID}, row_id=indicator_row_id(SID, symbol, kind, bar_start))


def health(at: float) -> HealthRecord:
    return HealthRecord(SID, at, "healthy", 3, 10.5, 3.0, 12.0, 1, 2, {"issues": []})


def test_the_same_pattern_batch_written_twice_gives_rows_once(store: PostgresStore, sql) -> None:
    batch = [pattern("AAPL"), pattern("MSFT"), pattern("AAPL", "Hammer")]
    assert store.insert_patterns(batch) == WriteResult(3, [], 0)
    assert store.insert_patterns(batch) == WriteResult(3, [], 3)  # all already written
    # A retried batch with one new row writes just that row.
    assert store.insert_patterns(batch + [pattern("NVDA")]) == WriteResult(4, [], 3)
    assert sql("SELECT symbol, pattern_type FROM intraday_patterns ORDER BY id") == [
        ("AAPL", "Doji"), ("MSFT", "Doji"), ("AAPL", "Hammer"), ("NVDA", "Doji")]
    assert sql("SELECT count(*) FROM tickstock_written_rows") == [(4,)]


def test_the_same_indicator_batch_written_twice_gives_rows_once(store: PostgresStore, sql) -> None:
    batch = [indicator("AAPL"), indicator("AAPL", "SMA"), indicator("AAPL", bar_start=T0 + 60)]
    assert store.insert_indicators(batch).duplicates == 0
    assert store.insert_indicators(list(reversed(batch))) == WriteResult(3, [], 3)
    assert sql("SELECT count(*) FROM intraday_indicators") == [(3,)]


def test_a_row_twice_in_one_batch_is_written_once(store: PostgresStore, sql) -> None:
    p = pattern("AAPL")
    assert store.insert_patterns([p, pattern("MSFT"), p]) == WriteResult(3, [], 1)
    assert sql("SELECT symbol FROM intraday_patterns ORDER BY id") == [("AAPL",), ("MSFT",)]


def test_records_without_a_given_row_id_are_idempotent_too(store: PostgresStore, sql) -> None:
    """A record from an old spill line has no row_id: it gets one from its content."""
    old = PatternRecord("AAPL", "Doji", 0.85, T0 + 60.4, {"body_ratio": 0.05})
    again = PatternRecord("AAPL", "Doji", 0.85, T0 + 60.4, {"body_ratio": 0.05})
    store.insert_patterns([old])
    assert store.insert_patterns([again]).duplicates == 1
    assert sql("SELECT count(*) FROM intraday_patterns") == [(1,)]


def test_a_refused_row_leaves_no_ledger_id(store: PostgresStore, sql) -> None:
    """A refused row must not block its corrected retry: its ledger id is rolled back with it."""
    bad = pattern("AAPL", pattern_type=None)  # NOT NULL violation on the server
    result = store.insert_patterns([pattern("MSFT"), bad])
    assert result.written == 1 and [r for r, _ in result.rejected] == [bad]
    assert "23502" in result.rejected[0][1]
    assert sql("SELECT row_id::text FROM tickstock_written_rows") == [(pattern("MSFT").row_id,)]
    not_a_uuid = pattern("TSLA", row_id="not-a-uuid")
    result = store.insert_patterns([not_a_uuid, pattern("NVDA")])
    assert result.written == 1 and "22P02" in result.rejected[0][1]


def test_the_same_health_record_written_twice_gives_one_row(store: PostgresStore, sql) -> None:
    assert store.insert_health(health(T0 + 10.0)) is True
    assert store.insert_health(health(T0 + 10.0)) is False
    assert store.insert_health(health(T0 + 20.0)) is True
    rows = sql("SELECT session_id::text, recorded_at, status, processing_lag_ms, payload "
               "FROM streaming_health_metrics ORDER BY id")
    assert [(r[0], r[1].timestamp(), r[2], r[3], r[4]) for r in rows] == [
        (SID, T0 + 10.0, "healthy", 12.0, {"issues": []}), (SID, T0 + 20.0, "healthy", 12.0, {"issues": []})]
    no_lag = HealthRecord(SID, T0 + 30.0, "warning", 0, 0.0, 0.0, None, 0, 0)
    assert store.insert_health(no_lag) is True
    assert sql("SELECT processing_lag_ms FROM streaming_health_metrics WHERE status = 'warning'") == [(None,)]


def test_old_ledger_ids_are_pruned_at_migrate_and_on_demand(fresh_dsn: str) -> None:
    migrate(fresh_dsn)
    run_sql(fresh_dsn, """
        INSERT INTO tickstock_written_rows (row_id, written_at) VALUES
            ('00000000-0000-4000-8000-000000000001', now() - interval '8 days'),
            ('00000000-0000-4000-8000-000000000002', now() - interval '6 days'),
            ('00000000-0000-4000-8000-000000000003', now() - interval '3 days'),
            ('00000000-0000-4000-8000-000000000004', now())""")
    assert migrate(fresh_dsn) == []  # nothing to migrate; the ledger is still pruned
    left = lambda: [r[0] for r in run_sql(fresh_dsn, "SELECT row_id::text FROM tickstock_written_rows ORDER BY 1")]
    assert left() == [f"00000000-0000-4000-8000-00000000000{i}" for i in (2, 3, 4)]
    with PostgresStore(fresh_dsn) as store:
        assert store.prune_written_rows(4 * 86_400) == 1
    assert left() == ["00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004"]


def test_migrate_does_not_hang_on_a_locked_table_and_pruning_never_fails_it(fresh_dsn: str) -> None:
    import psycopg2
    import psycopg2.errors

    migrate(fresh_dsn)
    holder = psycopg2.connect(fresh_dsn)
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            migrate(fresh_dsn, lock_timeout_seconds=0.5)
    finally:
        holder.rollback()
    try:
        with holder.cursor() as cur:  # the ledger locked: migrations fine, pruning skipped
            cur.execute("LOCK TABLE tickstock_written_rows IN ACCESS EXCLUSIVE MODE")
        assert migrate(fresh_dsn, lock_timeout_seconds=0.5) == []
    finally:
        holder.rollback()
        holder.close()
