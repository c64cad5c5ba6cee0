"""close_parts: a close's parts ready to go out (wire JSON as the publisher encodes, rows as persistence
derives), one per timeframe as each is analysed, then the close's rows; and LocalAnalysis over it."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest

from tickstock.actors.analysis_output import (
    AnalysisSpec, ClosePart, CloseRows, LocalAnalysis, OutputSettings, close_events, close_parts,
)
from tickstock.actors.publisher import encode_for_redis
from tickstock.analysis import Definition, create
from tickstock.analysis.close_analysis import CloseAnalysis
from tickstock.analysis.talib_batch import TalibBatch
from tickstock.config import ChannelSettings
from tickstock.messages.bars import Bar
from tickstock.messages.records import IndicatorRecord, PatternRecord, event_records

SID = "5b1d0c7e-0000-4000-8000-00000000000c"
T0 = 1_741_786_200  # 2025-03-12 13:30 UTC
SYMBOLS = ("AAA", "BBB")
OUTPUT = OutputSettings(SID, ChannelSettings(), 0.5, 3600.0, 1800.0)


def definition(name: str, params: dict[str, Any], timeframes: tuple[str, ...]) -> Definition:
    component = create(name, params)
    return Definition(component.name, component.kind, params, timeframes=timeframes)


EMA = definition("EMA", {"timeperiod": 3}, ("1min", "5min"))
DOJI = definition("CDLDOJI", {}, ("1min",))


def analysis() -> CloseAnalysis:
    return CloseAnalysis({"1min": [EMA, DOJI], "5min": [EMA]}, SYMBOLS)


def bar(symbol: str, minute: int) -> Bar:
    close = 100.0 + (minute % 7) * 0.3 + (5.0 if symbol == "BBB" else 0.0)
    o = close if minute % 4 == 3 else close - 0.4  # a doji every fourth minute
    return Bar(symbol, T0 + 60 * minute, o, close + 1.0, o - 1.0, close, 100, 3, SID)


class Ticking:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.t = float(T0 + 3600)

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def test_each_part_is_the_publisher_s_encoding_of_the_events_of_that_timeframe_then_the_rows_of_all() -> None:
    ours, twin = analysis(), analysis()
    clock, twin_clock = Ticking(), Ticking()
    patterns = indicators = 0
    for minute in range(20):
        bars = [bar(s, minute) for s in SYMBOLS]
        closed_at = T0 + 60 * minute + 62
        items = list(close_parts(ours, bars, closed_at, clock, OUTPUT))
        expected_events = [close_events(part, SID, twin_clock(), closed_at) for part in twin.close_in_parts(bars)]
        assert [type(i) for i in items] == [ClosePart] * len(expected_events) + [CloseRows]
        for part, events in zip(items, expected_events):
            assert part.entries == encode_for_redis(events, OUTPUT.channels, OUTPUT.high_confidence)
            assert part.patterns == [e.pattern for e in events if hasattr(e, "pattern")]
            assert part.indicators == sum(1 for e in events if hasattr(e, "indicator"))
            patterns += len(part.patterns)
            indicators += part.indicators
        rows = event_records([e for events in expected_events for e in events], OUTPUT.pattern_ttl,
                             OUTPUT.indicator_ttl)
        assert items[-1] == CloseRows([r for r in rows if type(r) is PatternRecord],
                                      [r for r in rows if type(r) is IndicatorRecord])
    assert patterns > 0 and indicators > 0


def test_a_part_is_handed_out_before_the_next_timeframe_is_analysed_and_stamped_when_it_was(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[Any] = []
    step = TalibBatch.step
    monkeypatch.setattr(TalibBatch, "step", lambda self, bars: log.append(f"step {bars[0].start}") or step(self, bars))
    a, clock = analysis(), Ticking()
    for s in SYMBOLS:  # primed: the 5-minute EMA has a value at the first 5-minute close
        a.prime(s, [bar(s, m) for m in range(-30, 0)])
    for minute in range(4):
        list(close_parts(a, [bar(s, minute) for s in SYMBOLS], T0 + 60 * minute + 62, clock, OUTPUT))
    log.clear()
    for item in close_parts(a, [bar(s, 4) for s in SYMBOLS], T0 + 302, clock, OUTPUT):
        log.append(item)
    assert [x if isinstance(x, str) else type(x).__name__ for x in log] == [
        f"step {T0 + 240}", f"step {T0 + 240}", "ClosePart", f"step {T0}", "ClosePart", "CloseRows"]
    one_minute, five_minute = log[2], log[4]
    assert one_minute.entries[0][1] != five_minute.entries[0][1]
    assert b'"timeframe":"1min"' in one_minute.entries[0][1] and b'"timeframe":"5min"' in five_minute.entries[0][1]
    # each part read the clock when it was analysed: the 5-minute values are a second later
    stamp = [e[1].split(b'"timestamp":"')[1][:24] for e in (one_minute.entries[0], five_minute.entries[0])]
    assert stamp[0] < stamp[1]


def test_an_empty_close_is_one_empty_part_and_no_rows() -> None:
    items = list(close_parts(analysis(), [], T0, Ticking(), OUTPUT))
    assert items == [ClosePart([], [], 0, [], 0), CloseRows([], [])]


def test_the_spec_builds_the_analysis_it_describes() -> None:
    spec = AnalysisSpec({"1min": [EMA, DOJI], "5min": [EMA]}, SYMBOLS, OUTPUT, max_failures=2,
                        analyse_partial_bars=True)
    built = spec.build()
    assert (built.symbols, built.definitions, built.broken) == (SYMBOLS, 3, [])
    assert {b.max_failures for batches in built._batches.values() for b in batches} == {2}
    partial = msgspec.structs.replace(bar("AAA", 0), partial=True)
    assert built.on_close([partial]).partial_skipped == 0  # analyse_partial_bars reached it
    assert dataclasses.replace(spec, analyse_partial_bars=False).build().on_close([partial]).partial_skipped == 1


def test_local_analysis_is_the_analysis_on_this_thread() -> None:
    local = LocalAnalysis(AnalysisSpec({"1min": [EMA, DOJI], "5min": [EMA]}, SYMBOLS, OUTPUT, clock=Ticking()))
    local.start()
    assert (local.broken, local.definitions, local.symbols) == ([], 3, SYMBOLS)
    local.add("NEW")
    assert "NEW" in local and local.symbols == (*SYMBOLS, "NEW")
    assert local.prime("NEW", [bar("NEW", m) for m in range(-5, 0)]) == []
    local.live_from(T0)
    items = list(local.close([bar(s, 0) for s in (*SYMBOLS, "NEW")], T0 + 62))
    assert isinstance(items[-1], CloseRows) and {r.symbol for r in items[-1].indicators} == {"NEW"}  # primed
    local.stop()
