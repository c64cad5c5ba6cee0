"""Patterns and indicators written by COPY through a staging table (batch.StagedCopy): the values,
order, write-once and per-row isolation of the parameterised INSERT it replaced."""

from __future__ import annotations

import math
import random

import psycopg2
import psycopg2.errors
import pytest

from tickstock.adapters.postgres import PostgresStore, WriteResult, copy_rows, rows
from tickstock.adapters.postgres.batch import write_batch
from tickstock.adapters.postgres.store import INSERT_INDICATORS, INSERT_PATTERNS
from tickstock.messages.records import IndicatorRecord, PatternRecord, indicator_row_id, pattern_row_id

pytestmark = pytest.mark.integration

T0 = 1_728_309_600
SID = "8b0f0c8e-2f0a-4a53-9d86-1c4b8a3d5e71"
AWKWARD = ["back\\slash", "tab\there", "new\nline", "cr\rhere", "\\N", "quote'\"", "Zürich €😀", "", " "]


def indicator(symbol: str, kind: str = "RSI", bar_start: int = T0, **changes) -> IndicatorRecord:
    fields = dict(symbol=symbol, indicator_type=kind, value=55.5, calculation_timestamp=bar_start + 60.2,
                  value_data={"value": 55.5}, expiration_timestamp=bar_start + 3660.2, metadata={"session_id": SID})
    fields.update(changes)
    fields.setdefault("row_id", indicator_row_id(SID, repr(symbol), repr(kind), bar_start))
    return IndicatorRecord(**fields)


def pattern(symbol: str, pattern_type: str = "Doji", **changes) -> PatternRecord:
    fields = dict(symbol=symbol, pattern_type=pattern_type, confidence=0.85, detection_timestamp=T0 + 60.4,
                  pattern_data={"body_ratio": 0.05}, expiration_timestamp=T0 + 3660.4, levels=(1.5, 2.5),
                  metadata={"session_id": SID})
    fields.update(changes)
    fields.setdefault("row_id", pattern_row_id(SID, repr(symbol), repr(pattern_type), T0))
    return PatternRecord(**fields)


def test_text_and_json_with_copy_special_characters_round_trip(store: PostgresStore, sql) -> None:
    records = [pattern(text, text, timeframe=text, pattern_data={text: text, "list": [text]},
                       metadata={"k": {text: [text, 1.5]}}) for text in AWKWARD]
    assert store.insert_patterns(records) == WriteResult(len(records), [])
    stored = sql("SELECT symbol, pattern_type, timeframe, pattern_data, metadata FROM intraday_patterns ORDER BY id")
    assert stored == [(r.symbol, r.pattern_type, r.timeframe, r.pattern_data, r.metadata) for r in records]


# What the parameterised INSERT stored (rows.py's conversions, psycopg2's adaptation), as text, so
# that NUMERIC scale and JSONB spelling count too (Decimal("1.0") == Decimal("1") would not).
OLD_INDICATOR = ("SELECT %s::text, (%s::numeric)::text, %s::jsonb::text, %s::timestamptz, %s::timestamptz, "
                 "%s::jsonb::text, %s::text")
NEW_INDICATOR = ("SELECT symbol, value::text, value_data::text, calculation_timestamp, expiration_timestamp, "
                 "metadata::text, timeframe FROM intraday_indicators ORDER BY id")
OLD_PATTERN = ("SELECT %s::text, %s::text, (%s::numeric)::text, %s::jsonb::text, %s::timestamptz, %s::timestamptz, "
               "%s::numeric[]::text, %s::jsonb::text, %s::text")
NEW_PATTERN = ("SELECT symbol, pattern_type, confidence::text, pattern_data::text, detection_timestamp, "
               "expiration_timestamp, levels::text, metadata::text, timeframe FROM intraday_patterns ORDER BY id")


def old_indicator(sql, r: IndicatorRecord) -> tuple:
    return sql(OLD_INDICATOR, (r.symbol, rows.finite_or_none(r.value, "v"), rows.json_text(r.value_data),
                               rows.utc(r.calculation_timestamp), rows.utc_or_none(r.expiration_timestamp),
                               rows.json_text(r.metadata), r.timeframe))[0]


def old_pattern(sql, r: PatternRecord) -> tuple:
    return sql(OLD_PATTERN, (r.symbol, r.pattern_type, rows.finite(r.confidence, "c"), rows.json_text(r.pattern_data),
                             rows.utc(r.detection_timestamp), rows.utc_or_none(r.expiration_timestamp),
                             [rows.finite(v, "l") for v in r.levels], rows.json_text(r.metadata), r.timeframe))[0]


TIMES = [T0 + 60.412345, T0 + 0.0000005, T0 + 0.0000015, -86_400.0000025, 0.5, -62_135_596_800,
         253_402_300_799.5, 4_102_444_800.123457]  # ties round to even; year 1, 9999, 2100
NUMBERS = [0.1, 1e-05, 1e16, -0.0, 123456789.123456789, 3, 2.5, 1.0]
JSONS = [{"v": 1e-05}, {"big": 1e16, "one": 1.0, "neg": -0.0}, {"big_int": 2**70}, {1: "int key", "s": "é"},
         {"nested": [{"a": [1, 2.5, None, True]}], "t": (1, 2)}, {}, [], {"k": "tab\t \\ \"q\""}]


def test_indicator_values_are_those_of_the_parameterised_insert(store: PostgresStore, sql) -> None:
    records = [indicator(f"S{i}", calculation_timestamp=t, expiration_timestamp=t + 0.25, value=v, value_data=j,
                         metadata=JSONS[-1 - i])
               for i, (t, v, j) in enumerate(zip(TIMES, NUMBERS, JSONS))]
    records.append(indicator("NONE", value=None, expiration_timestamp=None, timeframe=None))
    assert store.insert_indicators(records) == WriteResult(len(records), [])
    assert sql(NEW_INDICATOR) == [old_indicator(sql, r) for r in records]
    undefined = sql(NEW_INDICATOR)[-1]
    assert (undefined[1], undefined[4], undefined[6]) == (None, None, None)  # value, expiration, timeframe


def test_pattern_values_are_those_of_the_parameterised_insert(store: PostgresStore, sql) -> None:
    records = [pattern(f"S{i}", detection_timestamp=t, expiration_timestamp=t + 0.25, confidence=v,
                       pattern_data=j, levels=(v, -1, 1e-05)[: i % 4], metadata=JSONS[-1 - i])
               for i, (t, v, j) in enumerate(zip(TIMES, NUMBERS, JSONS))]
    records.append(pattern("NONE", expiration_timestamp=None, timeframe=None))
    assert store.insert_patterns(records) == WriteResult(len(records), [])
    assert sql(NEW_PATTERN) == [old_pattern(sql, r) for r in records]
    assert sql("SELECT levels::text FROM intraday_patterns ORDER BY id LIMIT 2") == [("{}",), ("{0.00001}",)]


def test_nan_inside_json_is_refused_alone_at_any_depth(store: PostgresStore, sql) -> None:
    deep = pattern("DEEP", pattern_data={"a": [1, {"b": (2.0, math.nan)}]})
    inf_meta = pattern("INF", metadata={"x": {"y": [math.inf]}})
    result = store.insert_patterns([pattern("AAPL"), deep, inf_meta, pattern("MSFT")])
    assert result.written == 2 and [r for r, _ in result.rejected] == [deep, inf_meta]
    assert all("JSON compliant" in reason for _, reason in result.rejected)
    assert sql("SELECT symbol FROM intraday_patterns ORDER BY id") == [("AAPL",), ("MSFT",)]


def test_serial_ids_follow_input_order(store: PostgresStore, sql) -> None:
    symbols = [f"S{i:04d}" for i in range(1500)]
    random.Random(3).shuffle(symbols)
    batch = [indicator(s) for s in symbols]
    batch.insert(700, batch[10])  # a duplicate: a second round of the batch
    result = store.insert_indicators(batch)
    assert result == WriteResult(1501, [], 1)
    assert [s for s, in sql("SELECT symbol FROM intraday_indicators ORDER BY id")] == symbols


def test_serial_ids_follow_input_order_whatever_the_join_plan(dsn: str, sql) -> None:
    """A merge join hands the rows over in row_id order: only ``ORDER BY n`` restores the input's."""
    symbols = [f"M{i:03d}" for i in range(300)]
    random.Random(5).shuffle(symbols)
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET enable_hashjoin = off; SET enable_nestloop = off")
        result = write_batch(conn, INSERT_INDICATORS, [indicator(s) for s in symbols], copy_rows.indicator_line)
        conn.commit()
    finally:
        conn.close()
    assert result == WriteResult(300, [])
    assert [s for s, in sql("SELECT symbol FROM intraday_indicators ORDER BY id")] == symbols


def test_refused_rows_fail_alone_whether_copy_or_insert_refuses_them(store: PostgresStore, sql) -> None:
    """Refused by the COPY (not a UUID, NUL in JSON) or by the INSERT (NOT NULL): the batch falls
    back to row by row; the other rows are written, in order, and the refused leave no ledger id."""
    not_uuid = indicator("BADID", row_id="not-a-uuid")
    nul_json = indicator("NULJSON", value_data={"v": "a\x00b"})
    no_type = indicator("NOTYPE", kind=None)
    good = [indicator(f"G{i}") for i in range(5)]
    batch = [good[0], not_uuid, good[1], nul_json, good[2], no_type, good[3], good[4]]
    result = store.insert_indicators(batch)
    assert result.written == 5 and [r for r, _ in result.rejected] == [not_uuid, nul_json, no_type]
    reasons = [reason for _, reason in result.rejected]
    assert reasons[0].startswith("22P02") and reasons[1].startswith("22P05") and reasons[2].startswith("23502")
    assert sql("SELECT symbol FROM intraday_indicators ORDER BY id") == [(r.symbol,) for r in good]
    assert sorted(sql("SELECT row_id::text FROM tickstock_written_rows")) == sorted((r.row_id,) for r in good)
    assert store.insert_indicators(good) == WriteResult(5, [], 5)  # the connection is fine afterwards


def test_client_side_refusals_are_per_row(store: PostgresStore, sql) -> None:
    surrogate = indicator("\ud800")  # cannot be UTF-8
    nul_symbol = indicator("A\x00B")
    bad_time = indicator("TIME", calculation_timestamp=1e13)  # beyond the year 9999
    result = store.insert_indicators([surrogate, indicator("OK"), nul_symbol, bad_time])
    assert result.written == 1 and [r for r, _ in result.rejected] == [surrogate, nul_symbol, bad_time]
    assert sql("SELECT symbol FROM intraday_indicators") == [("OK",)]


def test_the_staging_table_is_made_again_on_a_new_connection(store: PostgresStore, sql) -> None:
    assert store.insert_indicators([indicator("A")]) == WriteResult(1, [])
    killed = sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE application_name = 'tickstock' AND datname = current_database()")
    assert killed == [(True,)]
    with pytest.raises(psycopg2.OperationalError):
        store.insert_indicators([indicator("B")])
    assert store.insert_indicators([indicator("B"), indicator("C")]) == WriteResult(2, [])  # new connection
    store.close()
    assert store.insert_patterns([pattern("P")]) == WriteResult(1, [])
    assert sql("SELECT symbol FROM intraday_indicators ORDER BY id") == [("A",), ("B",), ("C",)]


def test_a_rolled_back_transaction_leaves_a_usable_store(dsn: str, sql) -> None:
    """The transaction that created the staging table failed (here: the ledger locked past
    lock_timeout), taking the table with it: the next write on the connection makes it again."""
    holder = psycopg2.connect(dsn)
    try:
        with PostgresStore(dsn, lock_timeout_seconds=0.2) as store:
            store.ping()
            with holder.cursor() as cur:
                cur.execute("LOCK TABLE tickstock_written_rows IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                store.insert_indicators([indicator("A")])
            holder.rollback()
            assert store.insert_indicators([indicator("A")]) == WriteResult(1, [])
    finally:
        holder.close()
    assert sql("SELECT symbol FROM intraday_indicators") == [("A",)]


def test_two_executes_in_one_transaction_see_only_their_own_rows(dsn: str, sql) -> None:
    conn = psycopg2.connect(dsn)
    try:
        first = [indicator(f"F{i}") for i in range(3)]
        second = [indicator(f"S{i}") for i in range(2)] + [first[0]]
        one = write_batch(conn, INSERT_INDICATORS, first, copy_rows.indicator_line)
        two = write_batch(conn, INSERT_INDICATORS, second, copy_rows.indicator_line)
        with conn.cursor() as cur:  # and straight through the statement, twice after one prepare
            lines = [copy_rows.pattern_line(pattern(s)) for s in ("P0", "P1")]
            INSERT_PATTERNS.prepare(cur, lines)
            assert INSERT_PATTERNS.execute(cur, lines[:1]) == 1
            # With the ledger forgotten, P0 is new again: written once more, by this call's row
            # alone (the first call's staged P0 is not this call's).
            cur.execute("DELETE FROM tickstock_written_rows")
            assert INSERT_PATTERNS.execute(cur, lines) == 2
        conn.commit()
        with conn.cursor() as cur:  # the commit emptied the staging tables; they stay for the next batch
            cur.execute("SELECT (SELECT count(*) FROM pg_temp.tickstock_stage_indicators), "
                        "(SELECT count(*) FROM pg_temp.tickstock_stage_patterns)")
            assert cur.fetchone() == (0, 0)
            conn.commit()
            assert write_batch(conn, INSERT_INDICATORS, [indicator("NEXT")], copy_rows.indicator_line) == WriteResult(1, [])
        conn.rollback()
    finally:
        conn.close()
    assert (one, two) == (WriteResult(3, [], 0), WriteResult(3, [], 1))
    assert sql("SELECT symbol FROM intraday_indicators ORDER BY id") == [
        ("F0",), ("F1",), ("F2",), ("S0",), ("S1",)]
    assert sql("SELECT symbol FROM intraday_patterns ORDER BY id") == [("P0",), ("P0",), ("P1",)]
