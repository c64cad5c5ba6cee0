"""Batched writes: exact values, upsert, and per-row isolation of refused rows."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from tests.integration.postgres.helpers import run_sql
from tickstock.adapters.postgres import PostgresStore, WriteResult, migrate
from tickstock.messages.bars import Bar
from tickstock.messages.records import IndicatorRecord, PatternRecord

pytestmark = pytest.mark.integration

T0 = 1_728_309_600  # 2024-10-07 14:00:00 UTC, a minute start


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def bar(symbol: str = "AAPL", start: int = T0, close: float = 257.01, volume: int = 1500) -> Bar:
    return Bar(symbol, start, 256.5, 257.25, 256.4, close, volume, tick_count=12)


def test_upsert_inserts_then_updates_the_same_key_with_exact_values(store: PostgresStore, sql) -> None:
    assert store.upsert_bars([bar()]) == WriteResult(1, [])
    assert sql("SELECT symbol, timestamp, open, high, low, close, volume FROM ohlcv_1min") == [
        ("AAPL", utc(T0), Decimal("256.5"), Decimal("257.25"), Decimal("256.4"), Decimal("257.01"), 1500)
    ]

    revised = Bar("AAPL", T0, 256.5, 257.75, 256.1, 257.33, 2100)
    assert store.upsert_bars([revised]) == WriteResult(1, [])
    assert sql("SELECT symbol, timestamp, open, high, low, close, volume FROM ohlcv_1min") == [
        ("AAPL", utc(T0), Decimal("256.5"), Decimal("257.75"), Decimal("256.1"), Decimal("257.33"), 2100)
    ]
    # The minute START is the label, second = 0, in UTC.
    assert sql("SELECT extract(second FROM timestamp AT TIME ZONE 'UTC') FROM ohlcv_1min") == [(Decimal("0"),)]


def test_same_key_twice_in_one_batch_applies_in_order(store: PostgresStore, sql) -> None:
    result = store.upsert_bars([bar(close=1.0), bar("MSFT"), bar(close=2.0), bar(close=3.0)])
    assert result == WriteResult(4, [])
    assert sql("SELECT symbol, close FROM ohlcv_1min ORDER BY symbol") == [
        ("AAPL", Decimal("3.0")), ("MSFT", Decimal("257.01"))
    ]


def test_large_batch_spans_several_pages(store: PostgresStore, sql) -> None:
    bars = [bar(f"S{i % 7}", T0 + 60 * (i // 7), close=100 + i / 100) for i in range(1234)]
    assert store.upsert_bars(bars) == WriteResult(1234, [])
    # Each float is stored as its shortest repr (100 + 0.99 is 100.99000000000001, and so stored).
    assert sql("SELECT count(*), sum(close) FROM ohlcv_1min") == [
        (1234, sum(Decimal(repr(b.close)) for b in bars))
    ]


def test_empty_batch_writes_nothing(store: PostgresStore) -> None:
    assert store.upsert_bars([]) == WriteResult(0, [])
    assert store.insert_patterns([]) == WriteResult(0, [])
    assert store.insert_indicators([]) == WriteResult(0, [])


def test_unknown_symbol_under_a_foreign_key_fails_alone(fresh_dsn: str) -> None:
    migrate(fresh_dsn)
    # The dashboard's database has this foreign key; ours does not, so the test adds it.
    run_sql(fresh_dsn, """
        CREATE TABLE symbols (symbol VARCHAR(20) PRIMARY KEY);
        INSERT INTO symbols VALUES ('AAPL'), ('MSFT'), ('NVDA');
        ALTER TABLE ohlcv_1min ADD FOREIGN KEY (symbol) REFERENCES symbols(symbol);
    """)
    unknown = bar("ZZZZ")
    batch = [bar("AAPL"), bar("MSFT"), unknown, bar("NVDA"), bar("AAPL", T0 + 60)]
    with PostgresStore(fresh_dsn) as store:
        result = store.upsert_bars(batch)
        assert result.written == 4
        assert [item for item, _ in result.rejected] == [unknown]
        assert "23503" in result.rejected[0][1] and "ForeignKeyViolation" in result.rejected[0][1]
        # The same connection is still usable after the row-by-row fallback.
        assert store.upsert_bars([bar("NVDA", T0 + 60)]) == WriteResult(1, [])
    rows = run_sql(fresh_dsn, "SELECT symbol, timestamp FROM ohlcv_1min ORDER BY symbol, timestamp")
    assert rows == [("AAPL", utc(T0)), ("AAPL", utc(T0 + 60)), ("MSFT", utc(T0)),
                    ("NVDA", utc(T0)), ("NVDA", utc(T0 + 60))]


def test_refused_rows_are_reported_in_input_order(store: PostgresStore, sql) -> None:
    too_long = bar("X" * 21)  # VARCHAR(20): refused by the server
    nan_price = bar("NANX", close=math.nan)  # refused before reaching the server
    result = store.upsert_bars([too_long, bar("AAPL"), nan_price, bar("MSFT")])
    assert result.written == 2
    assert [item for item, _ in result.rejected] == [too_long, nan_price]
    assert "22001" in result.rejected[0][1]
    assert "not finite" in result.rejected[1][1]
    assert sql("SELECT symbol FROM ohlcv_1min ORDER BY symbol") == [("AAPL",), ("MSFT",)]


def pattern(symbol: str = "NVDA", pattern_type: str = "Doji", **changes) -> PatternRecord:
    fields = dict(
        symbol=symbol, pattern_type=pattern_type, confidence=0.85,
        detection_timestamp=T0 + 60.412,
        pattern_data={"bar_timestamp": "2024-10-07T14:00:00Z", "body_ratio": 0.05},
        expiration_timestamp=T0 + 3660.412, levels=(125.5, 125.75),
        metadata={"session_id": "8b0f0c8e-2f0a-4a53-9d86-1c4b8a3d5e71"}, timeframe="1min",
    )
    fields.update(changes)
    return PatternRecord(**fields)


def test_patterns_rows_have_exact_columns(store: PostgresStore, sql) -> None:
    assert store.insert_patterns([pattern(), pattern("TSLA", "Hammer", levels=())]) == WriteResult(2, [])
    rows = sql("""SELECT symbol, pattern_type, confidence, pattern_data, detection_timestamp,
                         expiration_timestamp, levels, metadata, timeframe
                  FROM intraday_patterns ORDER BY id""")
    assert rows[0] == (
        "NVDA", "Doji", Decimal("0.85"),
        {"bar_timestamp": "2024-10-07T14:00:00Z", "body_ratio": 0.05},
        utc(T0 + 60.412), utc(T0 + 3660.412), [Decimal("125.5"), Decimal("125.75")],
        {"session_id": "8b0f0c8e-2f0a-4a53-9d86-1c4b8a3d5e71"}, "1min",
    )
    assert rows[1][:2] == ("TSLA", "Hammer") and rows[1][6] == []


def test_a_refused_pattern_fails_alone(store: PostgresStore, sql) -> None:
    no_type = pattern(pattern_type=None)  # NOT NULL violation on the server
    nan_data = pattern(pattern_data={"x": math.inf})  # not JSON: refused before the server
    result = store.insert_patterns([pattern("AAPL"), no_type, nan_data, pattern("MSFT")])
    assert result.written == 2
    assert [item for item, _ in result.rejected] == [no_type, nan_data]
    assert "23502" in result.rejected[0][1]
    assert sql("SELECT symbol FROM intraday_patterns ORDER BY id") == [("AAPL",), ("MSFT",)]


def test_indicator_rows_have_exact_columns(store: PostgresStore, sql) -> None:
    rsi = IndicatorRecord(
        symbol="TSLA", indicator_type="RSI", value=72.5, calculation_timestamp=T0 + 120.15,
        value_data={"value": 72.5}, expiration_timestamp=T0 + 3720.15,
        metadata={"period": 14, "bars_used": 15},
    )
    undefined = IndicatorRecord("TSLA", "SMA", None, T0 + 120.15)
    bad = IndicatorRecord("TSLA", "RSI", 1e400, T0)  # inf: refused alone
    result = store.insert_indicators([rsi, bad, undefined])
    assert result.written == 2 and [i for i, _ in result.rejected] == [bad]
    rows = sql("""SELECT symbol, indicator_type, value, value_data, calculation_timestamp,
                         expiration_timestamp, metadata, timeframe
                  FROM intraday_indicators ORDER BY id""")
    assert rows == [
        ("TSLA", "RSI", Decimal("72.5"), {"value": 72.5}, utc(T0 + 120.15), utc(T0 + 3720.15),
         {"period": 14, "bars_used": 15}, "1min"),
        ("TSLA", "SMA", None, {}, utc(T0 + 120.15), None, {}, "1min"),
    ]
