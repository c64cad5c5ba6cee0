"""A minute split across sessions ends as one bar holding every tick (issue 7, item 7); a complete
part is the whole truth of its minute (a replay of a stored day replaces it, never adds to it).

Bars are written as parts keyed by (symbol, minute, session) and the minute's ``ohlcv_1min`` row is
re-made from its parts in the same transaction: the complete part written last if any, else the
merge of the partial parts (parts.py).
"""

from __future__ import annotations

import itertools
import threading
import time
from msgspec.structs import replace  # Bar is a frozen Struct
from decimal import Decimal

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.postgres.helpers import run_sql
from tickstock.adapters.postgres import PostgresStore, WriteResult, migrate
from tickstock.adapters.postgres import parts, rows
from tickstock.bars import MinuteBarAggregator, merge_parts
from tickstock.messages.bars import Bar
from tickstock.messages.ticks import Tick

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = 1_728_309_600  # 2024-10-07 14:00:00 UTC, a minute start
S1 = "11111111-1111-4111-8111-111111111111"
S2 = "22222222-2222-4222-8222-222222222222"


def tick(ts: float, price: float, volume: int, symbol: str = "AAPL") -> Tick:
    return Tick(symbol, float(price), volume, float(ts), float(ts))


# One minute of AAPL: 10 ticks, the stop/start of a session at T0 + 30.
TICKS = [
    tick(T0 + 1.5, 100.10, 300), tick(T0 + 7.0, 100.40, 120), tick(T0 + 12.0, 99.80, 500),
    tick(T0 + 21.0, 100.95, 80), tick(T0 + 29.9, 100.20, 1000),
    tick(T0 + 31.0, 100.30, 250), tick(T0 + 38.0, 101.25, 40), tick(T0 + 44.0, 99.55, 900),
    tick(T0 + 52.0, 100.05, 60), tick(T0 + 58.5, 100.15, 700),
]
STOP_START = T0 + 30.0


def session_parts(ticks=TICKS, cut=STOP_START) -> tuple[Bar, Bar]:
    """The bar of the session that stopped at ``cut`` and of the one that started then."""
    first = MinuteBarAggregator(2.0, now=T0 - 600, session_id=S1)
    second = MinuteBarAggregator(2.0, now=cut, session_id=S2)
    for t in ticks:
        (first if t.timestamp < cut else second).add(t)
    [a] = first.close_all(now=cut)
    [b] = second.close_all()
    return a, b


def whole_bar(ticks=TICKS) -> Bar:
    agg = MinuteBarAggregator(2.0)
    for t in ticks:
        agg.add(t)
    [bar] = agg.close_all()
    return bar


def stored(sql, symbol: str = "AAPL", start: int = T0):
    got = sql("SELECT open, high, low, close, volume FROM ohlcv_1min WHERE symbol = %s "
              "AND timestamp = to_timestamp(%s)", (symbol, start))
    return got[0] if got else None


def expected(bar: Bar):
    return (Decimal(repr(bar.open)), Decimal(repr(bar.high)), Decimal(repr(bar.low)),
            Decimal(repr(bar.close)), bar.volume)


def test_parts_of_two_sessions_merge_to_one_bar_holding_every_tick(store: PostgresStore, sql) -> None:
    a, b = session_parts()
    assert a.partial and b.partial  # each session saw only part of the minute
    assert store.upsert_bars([a]) == WriteResult(1, [])
    assert stored(sql) == expected(a)
    assert store.upsert_bars([b]) == WriteResult(1, [])

    whole = whole_bar()
    assert stored(sql) == expected(whole)
    assert stored(sql) == (Decimal("100.1"), Decimal("101.25"), Decimal("99.55"), Decimal("100.15"),
                           sum(t.volume for t in TICKS))
    # The measured incident: the second part no longer replaces the first.
    assert stored(sql)[4] != b.volume
    parts_rows = sql("SELECT session_id::text, volume, first_tick_at, last_tick_at FROM ohlcv_1min_parts "
                     "ORDER BY first_tick_at")
    assert [(r[0], r[1]) for r in parts_rows] == [(S1, a.volume), (S2, b.volume)]
    assert parts_rows[0][2].timestamp() == T0 + 1.5 and parts_rows[1][3].timestamp() == T0 + 58.5


def test_rewriting_the_same_part_does_not_count_it_twice(store: PostgresStore, sql) -> None:
    a, b = session_parts()
    store.upsert_bars([a, b])
    once = stored(sql)
    assert store.upsert_bars([a]) == WriteResult(1, [])        # a retry
    assert store.upsert_bars([b, a, b]) == WriteResult(3, [])  # a replay, with a repeat in one batch
    assert stored(sql) == once == expected(whole_bar())
    assert sql("SELECT count(*) FROM ohlcv_1min_parts") == [(2,)]


def test_a_part_rewritten_with_more_ticks_replaces_itself(store: PostgresStore, sql) -> None:
    """The same session writing its minute again (e.g. a bar re-sent after a revision) replaces
    its own part; the other session's part stays."""
    a, b = session_parts()
    store.upsert_bars([a, b])
    bigger_a = Bar(a.symbol, a.start, a.open, a.high, a.low, a.close, a.volume + 5, a.tick_count + 1,
                   a.session_id, a.first_tick_at, a.last_tick_at, a.partial)
    store.upsert_bars([bigger_a])
    assert stored(sql)[4] == a.volume + 5 + b.volume


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_order_of_arrival_of_parts_does_not_matter(fresh_dsn: str, order) -> None:
    migrate(fresh_dsn)
    # Three sessions: the minute cut at :20 and :40; one part arrives as a spill line without session.
    cut1, cut2 = T0 + 20.0, T0 + 40.0
    aggs = [MinuteBarAggregator(2.0, session_id=sid) for sid in (S1, "", S2)]
    for t in TICKS:
        aggs[0 if t.timestamp < cut1 else 1 if t.timestamp < cut2 else 2].add(t)
    parts_ = [replace(agg.close_all()[0], partial=True) for agg in aggs]  # each saw a third of the minute
    with PostgresStore(fresh_dsn) as store:
        for i in order:
            assert store.upsert_bars([parts_[i]]) == WriteResult(1, [])
        store.upsert_bars([parts_[i] for i in reversed(order)])  # and all again in one batch
    got = run_sql(fresh_dsn, "SELECT open, high, low, close, volume FROM ohlcv_1min")
    assert got == [expected(whole_bar())]


def test_a_bar_without_session_is_the_nil_part(store: PostgresStore, sql) -> None:
    old = Bar("AAPL", T0, 1.0, 2.0, 0.5, 1.5, 10, partial=True)  # a spill line written before session_id existed
    store.upsert_bars([old])
    assert sql("SELECT session_id::text, first_tick_at, last_tick_at FROM ohlcv_1min_parts") == [
        (rows.NIL_SESSION, None, None)]
    # A session id that is not a UUID still names one part of its own (never a refused bar).
    odd = Bar("AAPL", T0, 1.0, 3.0, 0.5, 2.5, 5, session_id="not-a-uuid", first_tick_at=T0 + 59.0,
              last_tick_at=T0 + 59.5, partial=True)
    assert store.upsert_bars([odd]) == WriteResult(1, [])
    assert store.upsert_bars([odd]) == WriteResult(1, [])
    # Unknown tick times count as the whole minute: the old part opens; odd's last tick is before
    # the minute's end, so the old part also closes.
    assert stored(sql) == (Decimal("1.0"), Decimal("3.0"), Decimal("0.5"), Decimal("1.5"), 15)


def test_fk_refused_bar_fails_alone_and_leaves_no_part(fresh_dsn: str) -> None:
    migrate(fresh_dsn)
    run_sql(fresh_dsn, """
        CREATE TABLE symbols (symbol VARCHAR(20) PRIMARY KEY);
        INSERT INTO symbols VALUES ('AAPL'), ('MSFT');
        ALTER TABLE ohlcv_1min ADD FOREIGN KEY (symbol) REFERENCES symbols(symbol);
    """)
    a, b = session_parts()
    unknown = Bar("ZZZZ", T0, 1.0, 1.0, 1.0, 1.0, 7, 1, S1, T0 + 1.0, T0 + 1.0)
    msft = Bar("MSFT", T0, 5.0, 6.0, 4.0, 5.5, 9, 2, S2, T0 + 3.0, T0 + 50.0)
    with PostgresStore(fresh_dsn) as store:
        result = store.upsert_bars([a, unknown, msft, b])
        assert result.written == 3 and len(result.rejected) == 1
        assert result.written + len(result.rejected) == 4
        [(refused, reason)] = result.rejected
        assert refused == unknown and "23503" in reason
        # Still usable, and a second write of the good parts changes nothing.
        assert store.upsert_bars([a, b, msft]) == WriteResult(3, [])
    assert run_sql(fresh_dsn, "SELECT symbol, volume FROM ohlcv_1min ORDER BY symbol") == [
        ("AAPL", sum(t.volume for t in TICKS)), ("MSFT", 9)]
    assert run_sql(fresh_dsn, "SELECT symbol, count(*) FROM ohlcv_1min_parts GROUP BY symbol ORDER BY symbol") == [
        ("AAPL", 2), ("MSFT", 1)]


def test_concurrent_writers_of_one_minute_do_not_lose_a_part(store: PostgresStore, dsn: str, sql) -> None:
    """A second writer waits for the first (advisory lock per minute) and merges what it wrote:
    without the lock its merge, from a snapshot taken before the first committed, would
    overwrite the minute with its own part only."""
    a, b = session_parts()
    first = psycopg2.connect(dsn)
    try:
        with first.cursor() as cur:  # writer 1: part written and merged, not committed yet
            cur.execute("SET TIME ZONE 'UTC'")
            row = rows.bar_part_row(a)
            parts.BarParts().prepare(cur, [row])
            parts.BarParts().execute(cur, [row])
        done = threading.Event()
        errors: list[BaseException] = []

        def second() -> None:
            try:
                store.upsert_bars([b])
            except BaseException as exc:
                errors.append(exc)
            done.set()

        thread = threading.Thread(target=second)
        thread.start()
        # Writer 2 must be waiting for writer 1 (on whatever lock) before writer 1 commits.
        deadline = time.monotonic() + 10
        while not sql("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                      "AND application_name = 'tickstock' AND wait_event_type = 'Lock'"):
            assert time.monotonic() < deadline and not done.is_set(), "second writer never waited"
            time.sleep(0.02)
        first.commit()
        thread.join(10)
        assert errors == []
    finally:
        first.close()
    assert stored(sql) == expected(whole_bar())


SESSIONS = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(1, 5)]
minute_counter = itertools.count(1)


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ticks=st.lists(
        st.tuples(st.integers(0, 59_999), st.integers(1, 100_000), st.integers(0, 10_000), st.integers(0, 3)),
        min_size=1, max_size=30, unique_by=lambda t: t[0],
    ),
    order=st.randoms(use_true_random=False),
)
def test_stored_bar_is_the_merge_of_its_parts_whatever_the_split_and_order(store: PostgresStore, sql, ticks, order) -> None:
    start = T0 + 60 * next(minute_counter)  # a fresh minute per example
    aggs = [MinuteBarAggregator(0.0, session_id=sid) for sid in SESSIONS]
    all_ticks = MinuteBarAggregator(0.0)
    for ms, cents, volume, session in ticks:
        t = tick(start + ms / 1000, cents / 100, volume, "PROP")
        aggs[session].add(t)
        all_ticks.add(t)
    parts_ = [replace(bar, partial=True) for agg in aggs for bar in agg.close_all()]  # sessions sharing the minute
    order.shuffle(parts_)
    for part in parts_:
        assert store.upsert_bars([part]).written == 1
    [whole] = all_ticks.close_all()
    assert stored(sql, "PROP", start) == expected(merge_parts(parts_)) == expected(whole)


def test_parts_table_has_the_designed_columns_and_key(migrated_dsn: str) -> None:
    cols = dict(run_sql(migrated_dsn, "SELECT column_name, data_type FROM information_schema.columns "
                                      "WHERE table_name = 'ohlcv_1min_parts'"))
    assert cols == {
        "symbol": "character varying", "timestamp": "timestamp with time zone", "session_id": "uuid",
        "open": "numeric", "high": "numeric", "low": "numeric", "close": "numeric", "volume": "bigint",
        "first_tick_at": "timestamp with time zone", "last_tick_at": "timestamp with time zone",
        "written_at": "timestamp with time zone", "partial": "boolean",
    }
    pk = run_sql(migrated_dsn, """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = 'ohlcv_1min_parts'::regclass AND i.indisprimary ORDER BY a.attnum""")
    assert [r[0] for r in pk] == ["symbol", "timestamp", "session_id"]


def test_a_bar_with_an_impossible_tick_time_is_refused_alone(store: PostgresStore, sql) -> None:
    good = Bar("AAPL", T0, 1.0, 1.0, 1.0, 1.0, 5, 1, S1, T0 + 1.0, T0 + 1.0)
    nan_time = Bar("MSFT", T0, 1.0, 1.0, 1.0, 1.0, 5, 1, S1, float("nan"), T0 + 1.0)
    far = Bar("NVDA", T0, 1.0, 1.0, 1.0, 1.0, 5, 1, S1, T0 + 1.0, 1e18)
    result = store.upsert_bars([nan_time, good, far])
    assert result.written == 1 and [b for b, _ in result.rejected] == [nan_time, far]
    assert "not finite" in result.rejected[0][1] and "out of range" in result.rejected[1][1]
    assert sql("SELECT symbol FROM ohlcv_1min_parts") == [("AAPL",)]
