"""Reads: recent bars, definitions, and universes from the dashboard's cache_entries."""

from __future__ import annotations

import json

import pytest

from tests.integration.postgres.helpers import run_sql
from tickstock.adapters.postgres import PostgresStore, UniverseNotFound, migrate
from tickstock.messages.bars import Bar

pytestmark = pytest.mark.integration

T0 = 1_728_309_600


def test_load_recent_bars_limit_and_order(store: PostgresStore) -> None:
    aapl = [Bar("AAPL", T0 + 60 * i, 100 + i, 101 + i, 99 + i, 100.25 + i, 10 * i) for i in range(10)]
    msft = [Bar("MSFT", T0 + 60 * i, 400.5, 401.0, 400.0, 400.75, 7) for i in range(3)]
    # Written newest first, to prove the order comes from the query, not from insertion.
    store.upsert_bars(list(reversed(aapl)) + msft)

    result = store.load_recent_bars(["AAPL", "MSFT", "NONE", "AAPL"], 4)
    assert list(result) == ["AAPL", "MSFT", "NONE"]
    assert result["AAPL"] == aapl[-4:]  # the 4 most recent, oldest first; tick_count is 0
    assert result["MSFT"] == msft
    assert result["NONE"] == []
    assert all(type(b.close) is float and type(b.volume) is int for b in result["AAPL"])

    assert store.load_recent_bars(["AAPL"], 0) == {"AAPL": []}
    assert store.load_recent_bars([], 5) == {}
    with pytest.raises(ValueError):
        store.load_recent_bars(["AAPL"], -1)


def test_recent_bars_stream_symbol_by_symbol_in_the_order_asked_across_chunks(store: PostgresStore) -> None:
    names = ["MSFT", "AAPL", "NVDA", "AMZN", "META"]
    bars = {n: [Bar(n, T0 + 60 * i, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, i) for i in range(5)] for n in names}
    store.upsert_bars([b for n in names if n != "NVDA" for b in reversed(bars[n])])  # NVDA has none

    streamed = list(store.iter_recent_bars(names, 3, symbols_per_query=2))  # three queries
    assert [symbol for symbol, _ in streamed] == ["MSFT", "AAPL", "AMZN", "META"]
    assert all(got == bars[symbol][-3:] for symbol, got in streamed)


def test_a_recent_bars_stream_left_early_leaves_the_store_usable(store: PostgresStore) -> None:
    store.upsert_bars([Bar(n, T0, 1.0, 1.0, 1.0, 1.0, 1) for n in ("AAPL", "MSFT", "NVDA")])
    stream = store.iter_recent_bars(["AAPL", "MSFT", "NVDA"], 5, symbols_per_query=1)
    assert next(stream)[0] == "AAPL"
    stream.close()  # the prefetched chunk is dropped, its transaction committed or rolled back
    assert list(store.load_recent_bars(["NVDA"], 5)) == ["NVDA"]
    store.ping()


def test_recent_bars_before_a_time_are_the_history_that_preceded_it(store: PostgresStore) -> None:
    """A replay of a past day primes from the bars before it, even when later days are stored."""
    aapl = [Bar("AAPL", T0 + 60 * i, 100 + i, 101 + i, 99 + i, 100.25 + i, i) for i in range(20)]
    msft = [Bar("MSFT", T0 + 60 * i, 400.5, 401.0, 400.0, 400.75, 7) for i in range(12, 20)]  # none before
    store.upsert_bars(list(reversed(aapl)) + msft)
    day = T0 + 60 * 10  # the replayed day's first minute: bars 10.. are "after" it

    assert store.load_recent_bars(["AAPL", "MSFT"], 4, before=day) == {"AAPL": aapl[6:10], "MSFT": []}
    assert store.load_recent_bars(["AAPL"], 50, before=day) == {"AAPL": aapl[:10]}  # fewer than asked
    assert store.load_recent_bars(["AAPL"], 4, before=day + 0.5)["AAPL"] == aapl[7:11]  # strictly before
    assert store.load_recent_bars(["AAPL"], 4)["AAPL"] == aapl[-4:]  # no bound: the latest, as before
    names = ["MSFT", "AAPL", "NVDA"]
    streamed = list(store.iter_recent_bars(names, 3, symbols_per_query=1, before=T0 + 60 * 15))  # three queries
    assert streamed == [("MSFT", msft[:3]), ("AAPL", aapl[12:15])]
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="before"):
            store.load_recent_bars(["AAPL"], 4, before=bad)


def test_load_definitions_returns_every_row(store: PostgresStore, sql) -> None:
    sql("UPDATE pattern_definitions SET enabled = false, confidence_threshold = 0.75 WHERE name = 'Hammer'")
    try:
        patterns, indicators = store.load_definitions()
    finally:
        sql("UPDATE pattern_definitions SET enabled = true, confidence_threshold = NULL WHERE name = 'Hammer'")
    assert [p["name"] for p in patterns][:4] == ["Doji", "Hammer", "HeadShoulders", "InverseHeadShoulders"]
    assert len(patterns) == 11 and not any(p["enabled"] for p in patterns[4:])  # + 005's, disabled
    hammer = patterns[1]
    assert hammer["enabled"] is False  # no filtering here
    assert hammer["confidence_threshold"] == 0.75 and type(hammer["confidence_threshold"]) is float
    assert hammer["applicable_timeframes"] == ["intraday"]
    assert hammer["instantiation_params"] == {}
    assert {"id", "display_name", "short_description", "code_reference", "category",
            "display_order", "min_bars_required"} <= set(hammer)
    rsi = next(i for i in indicators if i["name"] == "RSI")
    assert (rsi["period"], rsi["min_bars_required"], rsi["parameters"]) == (14, 15, {"period": 14})
    assert [i["name"] for i in indicators][:2] == ["RSI", "SMA"] and len(indicators) == 9


def put_universe(sql, name: str, key: str, value: object) -> None:
    sql("INSERT INTO cache_entries (type, name, key, value) VALUES ('stock_universe', %s, %s, %s::jsonb)",
        (name, key, json.dumps(value)))


@pytest.mark.parametrize("value", [
    {"stocks": [{"ticker": "AAPL", "name": "Apple"}, {"ticker": "msft"}, {"ticker": "BRK.B"},
                {"ticker": "AAPL"}]},
    ["AAPL", "msft", "BRK.B", "aapl"],
    {"symbols": ["AAPL", "MSFT", "BRK.B"]},
    {"symbols": [{"symbol": "AAPL"}, {"symbol": "MSFT"}, {"symbol": "brk.b"}]},
], ids=["stocks", "plain-list", "symbols", "symbol-objects"])
def test_load_universe_shapes(store: PostgresStore, sql, value: object) -> None:
    put_universe(sql, "market_leaders", "top_500", value)
    assert store.load_universe("market_leaders:top_500") == ["AAPL", "MSFT", "BRK.B"]


def test_load_universe_splits_on_the_first_colon_and_ignores_other_types(store: PostgresStore, sql) -> None:
    put_universe(sql, "sector", "tech:large", ["NVDA"])
    sql("INSERT INTO cache_entries (type, name, key, value) VALUES "
        "('other_type', 'market_leaders', 'top_500', '[\"WRONG\"]')")
    assert store.load_universe("sector:tech:large") == ["NVDA"]
    with pytest.raises(UniverseNotFound):
        store.load_universe("market_leaders:top_500")


def test_missing_universe(store: PostgresStore, sql) -> None:
    put_universe(sql, "market_leaders", "top_100", ["AAPL"])
    with pytest.raises(UniverseNotFound) as info:
        store.load_universe("market_leaders:top_500")
    assert info.value.key == "market_leaders:top_500"
    store.ping()  # the store is usable afterwards


def test_unrecognised_universe_shape_names_it(store: PostgresStore, sql) -> None:
    put_universe(sql, "market_leaders", "top_500", {"tickers": ["AAPL"]})
    with pytest.raises(ValueError, match="tickers"):
        store.load_universe("market_leaders:top_500")
    with pytest.raises(ValueError, match="name:key"):
        store.load_universe("no_colon")


def test_database_without_cache_entries(fresh_dsn: str) -> None:
    migrate(fresh_dsn)
    with PostgresStore(fresh_dsn) as store:
        with pytest.raises(UniverseNotFound, match="no cache_entries table"):
            store.load_universe("market_leaders:top_500")
        store.ping()
    assert run_sql(fresh_dsn, "SELECT to_regclass('cache_entries')") == [(None,)]
