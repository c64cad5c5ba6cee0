"""tickstock.chart.data.assemble: stored rows -> what the chart shows."""

from __future__ import annotations

from msgspec.structs import replace

import msgspec

from tests.unit.chart.synthetic import bars, indicator, indicators, pattern
from tickstock.chart.data import Marker, assemble


def test_bars_ordered_and_one_per_minute():
    series = bars(n=5)
    again = msgspec.structs.replace(series[2], close=999.0)
    data = assemble("AAPL", "x", [series[4], series[0], series[2], series[1], series[3], again], [], [])
    assert [b.start for b in data.bars] == [b.start for b in series]
    assert data.bars[2].close == 999.0  # a repeated start keeps the last given


def test_a_marker_per_detection_at_its_bar():
    series = bars(n=10)
    data = assemble("AAPL", "x", series, [pattern(series[3], "Doji", 0.9), pattern(series[3], "Hammer", 0.7),
                                          pattern(series[8], "Doji", 0.6)], [])
    assert [(m.index, m.name, m.confidence) for m in data.markers] == [(3, "Doji", 0.9), (3, "Hammer", 0.7), (8, "Doji", 0.6)]
    assert data.markers[0].label == "Doji 90%"


def test_the_same_detection_stored_twice_is_one_marker_with_the_highest_confidence():
    series = bars(n=5)
    other = "1d2e3f40-0000-4000-8000-000000000000"
    data = assemble("AAPL", "x", series, [pattern(series[1], "Doji", 0.6), pattern(series[1], "Doji", 0.8, other)], [])
    assert [(m.index, m.confidence) for m in data.markers] == [(1, 0.8)]


def test_another_timeframe_is_marked_and_labelled_with_it():
    series = bars(n=10)
    data = assemble("AAPL", "x", series, [pattern(series[5], "Doji", 0.8, timeframe="5min"),
                                          pattern(series[5], "Doji", 0.8)], [])
    assert sorted(m.label for m in data.markers) == ["Doji 80%", "Doji 80% 5min"]
    assert Marker(0, 0, "Doji", None, "1min").label == "Doji"


def test_unplaced_and_unreadable_detections_are_counted_not_drawn():
    series = bars(n=5)
    outside = pattern(bars(n=10)[7], "Doji")
    broken = replace(pattern(series[0], "Doji"), pattern_data={"bar_timestamp": "soon"})
    missing = replace(pattern(series[0], "Hammer"), pattern_data={})
    data = assemble("AAPL", "x", series, [outside, broken, missing], [])
    assert data.markers == () and data.unplaced == 1 and data.unreadable == 2


def test_indicator_series_aligned_to_the_bars():
    series = bars(n=30)
    data = assemble("AAPL", "x", series, [], indicators(series) + [indicator(series[29], "MACD", 1.0, 12)])
    assert [s.name for s in data.overlays] == ["SMA 20"] and [s.name for s in data.panel] == ["RSI 14"]
    sma, rsi = data.overlays[0], data.panel[0]
    assert len(sma.values) == len(rsi.values) == 30
    assert sma.values[:19] == (None,) * 19 and sma.count == 11
    assert sma.values[19] == sum(b.close for b in series[:20]) / 20
    assert rsi.count == 16 and rsi.values[13] is None and rsi.values[14] is not None
    assert data.ignored == ("MACD",)


def test_the_latest_calculation_of_a_bar_wins():
    series = bars(n=3)
    late = indicator(series[1], "RSI", 80.0, 14, calculated_delay=30)
    early = indicator(series[1], "RSI", 20.0, 14, calculated_delay=1)
    assert assemble("AAPL", "x", series, [], [late, early]).panel[0].values == (None, 80.0, None)


def test_indicator_values_of_another_timeframe_are_not_mixed_into_the_1_minute_series():
    series = bars(n=3)
    five = replace(indicator(series[0], "RSI", 90.0, 14), timeframe="5min")
    data = assemble("AAPL", "x", series, [], [indicator(series[0], "RSI", 40.0, 14), five])
    assert data.panel[0].values == (40.0, None, None) and data.ignored == ("RSI (5min)",)
