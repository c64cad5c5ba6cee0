"""Session VWAP against a reference computed from the ticks themselves, its session rules (reset at
the open, premarket/after-hours/holidays/early closes left out), the typical-price fallback, and
Bar.notional through the aggregator, the write-ahead-log line and the database row."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from tickstock.adapters.postgres.rows import bar_part_row
from tickstock.analysis import AnalysisPipeline, Definition, create, lookup
from tickstock.analysis.vwap import VWAP, session_at
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.messages.bars import Bar
from tickstock.messages.spill import decode_line, encode_row
from tickstock.messages.ticks import Tick

NY = ZoneInfo("America/New_York")
FUZZ = settings(database=None, deadline=None, max_examples=60)


def ny(*args) -> float:
    return datetime(*args, tzinfo=NY).timestamp()


# Tuesday and Wednesday, 2026-03-10/11 (EDT: the open is 13:30 UTC); Friday 2025-11-28 closes at 13:00.
DAY1, DAY2 = ny(2026, 3, 10, 0, 0), ny(2026, 3, 11, 0, 0)
OPEN1, CLOSE1 = ny(2026, 3, 10, 9, 30), ny(2026, 3, 10, 16, 0)
OPEN2, CLOSE2 = ny(2026, 3, 11, 9, 30), ny(2026, 3, 11, 16, 0)


def bars_from_ticks(ticks: list[Tick]) -> list[Bar]:
    aggregator = MinuteBarAggregator(grace_seconds=2.0)
    for tick in ticks:
        assert aggregator.add(tick)
    return sorted(aggregator.close_all(), key=lambda b: b.start)


def reference(ticks: list[Tick], open_: float, until: float) -> tuple[float, int] | None:
    """sum(p*v)/sum(v) over the ticks in [open_, until), exactly rounded; None without volume."""
    inside = [t for t in ticks if open_ <= t.timestamp < until]
    volume = sum(t.volume for t in inside)
    if volume == 0:
        return None
    return math.fsum(t.price * t.volume for t in inside) / volume, volume


# A tick anywhere from 07:00 to 17:59 New York time on either day: premarket, session, after-hours.
tick_times = st.tuples(st.sampled_from([DAY1, DAY2]), st.integers(7 * 3600, 18 * 3600 - 1), st.integers(0, 999))
ticks_strategy = st.lists(
    st.builds(lambda when, price, volume: Tick("AAPL", price, volume, when[0] + when[1] + when[2] / 1000.0,
                                               when[0] + when[1]),
              tick_times, st.floats(1.0, 5000.0, allow_nan=False).map(lambda p: round(p, 2)), st.integers(0, 5000)),
    min_size=1, max_size=300,
)


@FUZZ
@given(ticks=ticks_strategy)
def test_vwap_equals_the_ticks_reference_and_resets_at_each_open(ticks: list[Tick]) -> None:
    vwap = VWAP()
    for bar in bars_from_ticks(ticks):
        results = vwap.update(bar)
        open_, close = (OPEN1, CLOSE1) if bar.start < DAY2 else (OPEN2, CLOSE2)
        expected = reference(ticks, open_, bar.end) if open_ <= bar.start < close else None
        if expected is None:  # outside the session, or no volume yet: nothing
            assert results == []
            continue
        (r,) = results
        value, volume = expected
        assert math.isclose(r.value, value, rel_tol=1e-12)
        assert r.values == {"value": r.value, "volume": volume}
        assert r.metadata["estimated_bars"] == 0
        assert r.metadata["session"] == ("2026-03-10" if bar.start < DAY2 else "2026-03-11")


def bar(start: float, price: float, volume: int, notional: float | None = None, **kw) -> Bar:
    return Bar("AAPL", int(start), price, price + 1.0, price - 1.0, price, volume, notional=notional, **kw)


def test_premarket_and_after_hours_never_leak_in() -> None:
    vwap = VWAP()
    assert vwap.update(bar(ny(2026, 3, 10, 9, 29), 500.0, 10_000, 5_000_000.0)) == []   # premarket
    (first,) = vwap.update(bar(OPEN1, 100.0, 10, 1000.0))
    assert first.value == 100.0 and first.values["volume"] == 10 and first.metadata["bars_used"] == 1
    (second,) = vwap.update(bar(OPEN1 + 60, 110.0, 30, 3300.0))
    assert second.value == 4300.0 / 40
    assert vwap.update(bar(CLOSE1, 999.0, 5, 4995.0)) == []                               # 16:00: after hours
    (next_day,) = vwap.update(bar(OPEN2, 50.0, 4, 200.0))                                 # reset at the open
    assert next_day.value == 50.0 and next_day.values["volume"] == 4 and next_day.metadata["bars_used"] == 1


def test_a_new_trading_day_resets_even_without_a_close_bar() -> None:
    vwap = VWAP()
    vwap.update(bar(CLOSE1 - 60, 100.0, 10, 1000.0))
    (r,) = vwap.update(bar(OPEN2 + 600, 200.0, 10, 2000.0))
    assert r.value == 200.0 and r.metadata["session"] == "2026-03-11"


def test_early_close_and_holidays_come_from_the_calendar() -> None:
    friday_close = ny(2025, 11, 28, 13, 0)  # the day after Thanksgiving
    vwap = VWAP()
    assert vwap.update(bar(friday_close - 60, 100.0, 10, 1000.0))
    assert vwap.update(bar(friday_close, 100.0, 10, 1000.0)) == []
    assert VWAP().update(bar(ny(2025, 11, 27, 10, 0), 100.0, 10, 1000.0)) == []  # Thanksgiving
    assert session_at(ny(2025, 11, 28, 12, 59)).early_close


def test_between_sessions_the_calendar_is_asked_once_until_the_next_open(monkeypatch) -> None:
    import tickstock.analysis.vwap as module

    asked: list[float] = []
    real = module._ask
    monkeypatch.setattr(module, "_ask", lambda t: asked.append(t) or real(t))
    vwap = VWAP()
    premarket = [bar(ny(2026, 3, 10, 8, 0) + 60 * k, 100.0, 10, 1000.0) for k in range(90)]
    assert all(vwap.update(b) == [] for b in premarket)
    assert asked == [premarket[0].start]
    assert vwap.update(bar(OPEN1, 100.0, 10, 1000.0)) and vwap.update(bar(OPEN1 + 60, 100.0, 10, 1000.0))
    assert asked == [premarket[0].start, OPEN1]


def test_bars_without_notional_count_at_typical_price() -> None:
    vwap = VWAP()
    primed = Bar("AAPL", int(OPEN1), 100.0, 103.0, 97.0, 102.0, 30)      # typical (103+97+102)/3 = 100.666..
    (r1,) = vwap.update(primed)
    assert r1.value == (103.0 + 97.0 + 102.0) / 3.0 and r1.metadata["estimated_bars"] == 1
    (r2,) = vwap.update(bar(OPEN1 + 60, 110.0, 10, 1100.0))
    assert r2.value == ((103.0 + 97.0 + 102.0) / 3.0 * 30 + 1100.0) / 40
    assert r2.metadata == {"session": "2026-03-10", "bars_used": 2, "estimated_bars": 1}


def test_no_volume_no_vwap() -> None:
    vwap = VWAP()
    assert vwap.update(bar(OPEN1, 100.0, 0, 0.0)) == []
    (r,) = vwap.update(bar(OPEN1 + 60, 101.0, 5, 505.0))
    assert r.value == 101.0


def test_vwap_by_name_and_in_a_pipeline_with_priming() -> None:
    assert lookup("vwap") is VWAP and create("VWAP").params() == {}
    pipeline = AnalysisPipeline([Definition("VWAP", "indicator", {})], symbol="AAPL")
    pipeline.prime([Bar("AAPL", int(OPEN1), 100.0, 101.0, 99.0, 100.0, 10)])  # from the database: no notional
    out = pipeline.on_bar(bar(OPEN1 + 60, 110.0, 10, 1100.0))
    (r,) = out.indicators
    assert r.name == "VWAP" and r.value == 105.0 and r.metadata["estimated_bars"] == 1


def test_notional_survives_the_wal_line_and_is_not_a_database_column() -> None:
    b = bar(OPEN1, 100.0, 10, 1000.5, session_id="s1", tick_count=3)
    assert decode_line(encode_row(b)) == b
    old_line = b'{"kind": "Bar", "row": {"symbol": "A", "start": 60, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1}}\n'
    assert decode_line(old_line).notional is None
    assert len(bar_part_row(b)) == 11 and 1000.5 not in bar_part_row(b)
    assert Bar("AAPL", 60, 1.0, 2.0, 0.5, 1.5, 10).notional is None  # how the store builds a read-back bar
