"""A complete part of a minute is the whole truth of that minute (parts.py): replaying a day already
stored replaces it bar for bar instead of doubling its volumes; partial parts (a restart
mid-minute) still merge; a row stored without parts (another producer, seeded history) is never
added to."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from tests.integration.postgres.helpers import run_sql
from tickstock.adapters.postgres import PostgresStore, WriteResult, migrate
from tickstock.adapters.postgres import parts
from tickstock.adapters.postgres.parts import STORED_ROW_SESSION
from tickstock.bars import MinuteBarAggregator
from tickstock.messages.bars import Bar
from tickstock.messages.ticks import Tick

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = 1_728_309_600  # 2024-10-07 14:00:00 UTC, a minute start
LIVE = "11111111-1111-4111-8111-111111111111"
RESTART = "22222222-2222-4222-8222-222222222222"
REPLAY = "33333333-3333-4333-8333-333333333333"
AGAIN = "44444444-4444-4444-8444-444444444444"


def tick(ts: float, price: float, volume: int, symbol: str = "AAPL") -> Tick:
    return Tick(symbol, float(price), volume, float(ts), float(ts))


def day_ticks(minutes: int = 5) -> list[Tick]:
    """Three ticks a minute; minute 2 has ticks on both sides of :30 (where a restart cuts it)."""
    out = []
    for m in range(minutes):
        start = T0 + 60 * m
        out += [tick(start + 5.0, 100.0 + m, 100 + m), tick(start + 25.0, 101.5 + m, 40),
                tick(start + 50.0, 99.5 + m, 7 * (m + 1))]
    return out


def session_bars(ticks: list[Tick], session_id: str, since: float | None = None,
                 until: float | None = None) -> list[Bar]:
    """The bars a session receiving from ``since`` to ``until`` stores (partial where it was cut)."""
    agg = MinuteBarAggregator(2.0, now=since if since is not None else T0 - 600, session_id=session_id)
    for t in ticks:
        if (since is None or t.timestamp >= since) and (until is None or t.timestamp < until):
            agg.add(t)
    return agg.close_all(now=until)


def rows(dsn: str) -> dict[int, tuple]:
    return {int(ts.timestamp()): (o, h, lo, c, v) for ts, o, h, lo, c, v in run_sql(
        dsn, "SELECT timestamp, open, high, low, close, volume FROM ohlcv_1min WHERE symbol = 'AAPL'")}


def values(bar: Bar) -> tuple:
    return (Decimal(repr(bar.open)), Decimal(repr(bar.high)), Decimal(repr(bar.low)), Decimal(repr(bar.close)),
            bar.volume)


def test_replaying_a_stored_day_replaces_it_bar_for_bar_instead_of_doubling(store: PostgresStore, dsn: str) -> None:
    ticks = day_ticks()
    cut = T0 + 2 * 60 + 30.0
    live = session_bars(ticks, LIVE, until=cut) + session_bars(ticks, RESTART, since=cut)  # a restart mid-minute 2
    store.upsert_bars(live)
    whole = {b.start: values(b) for b in session_bars(ticks, "whole")}
    assert rows(dsn) == whole  # the restart's two partial parts of minute 2 sum to the whole minute

    replay = session_bars(ticks, REPLAY)  # the day replayed (e.g. from ohlcv_1min): every minute complete
    assert not any(b.partial for b in replay)
    assert store.upsert_bars(replay) == WriteResult(len(replay), [])
    assert rows(dsn) == whole  # not doubled
    assert store.upsert_bars(session_bars(ticks, AGAIN)).written == len(replay)  # and replayed once more
    assert rows(dsn) == whole
    assert sum(r[4] for r in rows(dsn).values()) == sum(t.volume for t in ticks)

    # A replay of other data for the day (a corrected CSV) is the new truth of each minute it holds.
    corrected = [Bar("AAPL", T0 + 60, 1.0, 2.0, 0.5, 1.5, 9, 1, REPLAY, T0 + 61.0, T0 + 62.0)]
    store.upsert_bars(corrected)
    assert rows(dsn)[T0 + 60] == values(corrected[0]) and rows(dsn)[T0] == whole[T0]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_complete_part_outweighs_partial_parts_whatever_the_order(fresh_dsn: str, order) -> None:
    migrate(fresh_dsn)
    ticks = day_ticks(1)
    a = session_bars(ticks, LIVE, until=T0 + 30.0)[0]
    b = session_bars(ticks, RESTART, since=T0 + 30.0)[0]
    c = session_bars(ticks, REPLAY)[0]
    assert (a.partial, b.partial, c.partial) == (True, True, False)
    parts = (a, b, c)
    with PostgresStore(fresh_dsn) as s:
        for i in order:
            s.upsert_bars([parts[i]])
    assert rows(fresh_dsn) == {T0: values(c)}
    assert run_sql(fresh_dsn, "SELECT count(*) FROM ohlcv_1min_parts") == [(3,)]  # every part is kept


def test_the_complete_part_written_last_wins_and_an_identical_rewrite_does_not_change_that(
        store: PostgresStore, dsn: str) -> None:
    first = Bar("AAPL", T0, 10.0, 11.0, 9.0, 10.5, 100, 3, LIVE, T0 + 1.0, T0 + 59.0)
    second = Bar("AAPL", T0, 20.0, 21.0, 19.0, 20.5, 200, 3, REPLAY, T0 + 1.0, T0 + 59.0)
    store.upsert_bars([first])
    store.upsert_bars([second])
    assert rows(dsn) == {T0: values(second)}
    store.upsert_bars([first])  # a retry, or an old write-ahead log replayed: nothing changed
    assert rows(dsn) == {T0: values(second)}
    changed = Bar("AAPL", T0, 30.0, 31.0, 29.0, 30.5, 300, 4, LIVE, T0 + 1.0, T0 + 59.5)
    store.upsert_bars([changed])  # the same session's part rewritten with other values: written last
    assert rows(dsn) == {T0: values(changed)}
    # Two complete parts of one minute in one batch (a log holding two sessions): the later one.
    store.upsert_bars([second, first])
    assert rows(dsn) == {T0: values(first)}


def test_a_row_stored_without_parts_is_replaced_by_a_complete_part_never_added_to(store: PostgresStore,
                                                                                  dsn: str, sql) -> None:
    seeded = Bar("AAPL", T0, 100.0, 101.5, 99.5, 100.5, 1234)
    sql("INSERT INTO ohlcv_1min (symbol, timestamp, open, high, low, close, volume) "
        "VALUES ('AAPL', to_timestamp(%s), 100.0, 101.5, 99.5, 100.5, 1234)", (T0,))
    same = Bar("AAPL", T0, 100.0, 101.5, 99.5, 100.5, 1234, 5, REPLAY, T0 + 0.05, T0 + 59.0)
    store.upsert_bars([same])  # the seeded minute replayed complete (simulate --replay-db)
    assert rows(dsn) == {T0: values(seeded)}  # not 2468
    assert sql("SELECT session_id::text, partial, volume FROM ohlcv_1min_parts ORDER BY written_at") == [
        (STORED_ROW_SESSION, False, 1234), (REPLAY, False, 1234)]
    other = Bar("AAPL", T0, 50.0, 52.0, 49.0, 51.0, 77, 2, AGAIN, T0 + 1.0, T0 + 58.0)
    store.upsert_bars([other])
    assert rows(dsn) == {T0: values(other)}


def test_a_partial_part_leaves_a_row_stored_without_parts_as_it_was(store: PostgresStore, dsn: str, sql) -> None:
    sql("INSERT INTO ohlcv_1min (symbol, timestamp, open, high, low, close, volume) "
        "VALUES ('AAPL', to_timestamp(%s), 100.0, 101.5, 99.5, 100.5, 1234), "
        "('AAPL', to_timestamp(%s), 100.5, 101.0, 100.0, 100.25, 500)", (T0, T0 + 60))
    before = rows(dsn)
    # A replay starting mid-minute: its first bar is partial; the seeded minute is the whole truth.
    [cut] = session_bars(day_ticks(1), REPLAY, since=T0 + 20.0)
    assert cut.partial
    assert store.upsert_bars([cut]) == WriteResult(1, [])
    assert rows(dsn) == before
    assert sql("SELECT count(*) FROM ohlcv_1min_parts WHERE timestamp = to_timestamp(%s)", (T0 + 60,)) == [(0,)]


def test_parts_written_before_the_flag_count_as_partial(store: PostgresStore, dsn: str, sql) -> None:
    """Migration 006's default: a part written without the flag merges as parts always did."""
    for sid, volume, first in ((LIVE, 10, 1.0), (RESTART, 20, 31.0)):
        sql("INSERT INTO ohlcv_1min_parts (symbol, timestamp, session_id, open, high, low, close, volume, "
            "first_tick_at, last_tick_at) VALUES ('AAPL', to_timestamp(%s), %s::uuid, 1, 2, 0.5, 1.5, %s, "
            "to_timestamp(%s), to_timestamp(%s))", (T0, sid, volume, T0 + first, T0 + first + 20))
    assert sql("SELECT bool_and(partial) FROM ohlcv_1min_parts") == [(True,)]
    [late] = session_bars([tick(T0 + 55.0, 1.25, 5)], AGAIN, since=T0 + 52.0)  # a third partial part
    store.upsert_bars([late])
    assert rows(dsn)[T0][4] == 35


def test_adopting_and_merging_probe_the_keys_never_scan_the_tables(store: PostgresStore, dsn: str, sql) -> None:
    """Per written minute, one primary-key probe per table: cost independent of the history stored
    (ohlcv_1min holds years in production)."""
    symbols = [f"S{i:03d}" for i in range(200)]
    store.upsert_bars([Bar(s, T0 + 60 * m, 1.0, 2.0, 0.5, 1.5, 10, 1, LIVE, None, None) for s in symbols
                       for m in range(30)])
    sql("ANALYZE ohlcv_1min")
    sql("ANALYZE ohlcv_1min_parts")
    keys = (symbols, [float(T0 + 60 * 31)] * len(symbols))
    for statement, params in ((parts.ADOPT_STORED_ROWS_SQL, (parts.STORED_ROW_SESSION, *keys)),
                              (parts.MERGE_MINUTES_SQL, keys)):
        plan = "\n".join(r[0] for r in sql("EXPLAIN " + statement, params))
        assert "Seq Scan" not in plan and "Index" in plan, plan
