"""Percentiles and close -> event latencies computed from recorded events."""

import orjson
import pytest

from tickstock.bench.stats import (
    EventTimes, cpu_share, event_latencies, iso_seconds, parse_event, per_interval_rates, percentile, summary,
    value_at,
)
from tickstock.messages.bars import Bar
from tickstock.messages.events import IndicatorCalculated, PatternDetected
from tickstock.messages.wire import dumps

MINUTE = 1_728_300_000 - 1_728_300_000 % 60


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([3.0], 99) == 3.0
    assert percentile([5, 1, 4, 2, 3], 50) == 3       # unsorted input
    assert percentile([1, 2], 99) == 2                # two minutes: p99 is the worse
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_summary():
    assert summary([]) == {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    s = summary([10.0, 20.0, 30.0, 40.0])
    assert s == {"n": 4, "p50": 20.0, "p99": 40.0, "max": 40.0, "mean": 25.0}


def test_iso_seconds_reads_both_utc_spellings():
    assert iso_seconds("2024-10-07T11:20:00.000Z") == iso_seconds("2024-10-07T11:20:00+00:00") == 1728300000.0
    assert iso_seconds("2024-10-07T11:20:02.250Z") == 1728300002.25


def _bar():
    return Bar("NVDA", MINUTE, 125.5, 125.75, 125.45, 125.52, 250_000)


def test_parse_event_reads_the_service_wire_forms():
    closed = MINUTE + 62.0
    pattern = dumps(PatternDetected("NVDA", "Doji", 0.85, closed + 0.004, _bar(), "sid", bar_closed_at=closed).to_wire())
    indicator = dumps(IndicatorCalculated("NVDA", "RSI", 72.5, {"value": 72.5}, closed + 0.003, _bar(), "sid",
                                          {"period": 14}, bar_closed_at=closed).to_wire())
    p = parse_event(pattern, closed + 0.010)
    i = parse_event(indicator, closed + 0.020)
    assert p == EventTimes("pattern", "NVDA", "Doji", MINUTE, closed, closed + 0.010)
    assert i == EventTimes("indicator", "NVDA", "RSI", MINUTE, closed, closed + 0.020)


def test_parse_event_ignores_anything_else():
    assert parse_event(b"not json", 1.0) is None
    assert parse_event(b"[1, 2]", 1.0) is None
    assert parse_event(orjson.dumps({"type": "indicator_alert", "symbol": "A"}), 1.0) is None
    assert parse_event(orjson.dumps({"detection": {"symbol": "A", "parameters": {}}}), 1.0) is None


def ev(minute, received_after_deadline_ms, closed_lag_ms=0.0, grace=2.0):
    deadline = minute + 60 + grace
    return EventTimes("indicator", "A", "RSI", minute, deadline + closed_lag_ms / 1000,
                      deadline + received_after_deadline_ms / 1000)


def test_event_latencies_per_event_and_last_of_each_minute():
    events = [ev(MINUTE, 10), ev(MINUTE, 30, closed_lag_ms=5), ev(MINUTE, 20),
              ev(MINUTE + 60, 100), ev(MINUTE + 60, 40)]
    lat = event_latencies(events, grace=2.0)
    assert lat["from_deadline"] == pytest.approx([10, 30, 20, 100, 40], abs=1e-3)  # epoch floats: < 1 us
    assert lat["from_close"] == pytest.approx([10, 25, 20, 100, 40], abs=1e-3)
    assert lat["close_lag"] == pytest.approx([0, 5, 0, 0, 0], abs=1e-3)
    assert lat["last_per_minute"] == pytest.approx({MINUTE: 30, MINUTE + 60: 100}, abs=1e-3)
    assert lat["first_per_minute"] == pytest.approx({MINUTE: 10, MINUTE + 60: 40}, abs=1e-3)
    assert lat["events_per_minute"] == {MINUTE: 3, MINUTE + 60: 2}
    assert lat["closed_early"] == 0


def test_bars_closed_early_by_a_stop_are_left_out():
    stopped = EventTimes("pattern", "A", "Doji", MINUTE, MINUTE + 30.0, MINUTE + 30.01)
    lat = event_latencies([stopped, ev(MINUTE - 60, 12)], grace=2.0)
    assert lat["closed_early"] == 1 and lat["from_deadline"] == pytest.approx([12], abs=1e-3)


def test_an_event_without_a_close_stamp_still_counts_from_the_deadline():
    e = EventTimes("pattern", "A", "Doji", MINUTE, None, MINUTE + 62.05)
    lat = event_latencies([e], grace=2.0)
    assert lat["from_deadline"] == pytest.approx([50], abs=1e-3) and lat["from_close"] == []


def test_in_event_time_the_deadline_is_mapped_to_the_wall_clock():
    from tickstock.bench.eventtime import EventMap

    day_open = 1_741_786_200.0                 # 2025-03-12 13:30Z, replayed at 60x from wall T0
    emap = EventMap(day_open, 60.0, 1_796_000_000.0)
    minute = day_open + 60 * 100
    deadline = emap.wall_deadline(minute, 2.0)  # wall T0 + 101.0333 s
    e = EventTimes("indicator", "A", "RSI", minute, deadline + 0.004, deadline + 0.015)
    lat = event_latencies([e], grace=2.0, wall_of=emap.wall_at)
    assert lat["from_deadline"] == pytest.approx([15], abs=1e-3)
    assert lat["close_lag"] == pytest.approx([4], abs=1e-3) and lat["from_close"] == pytest.approx([11], abs=1e-3)
    assert lat["last_per_minute"] == pytest.approx({int(minute): 15}, abs=1e-3) and lat["closed_early"] == 0
    # Unmapped, the replayed minute's deadline is 2025's: the latency would read as ~1.7 years.
    assert event_latencies([e], grace=2.0)["from_deadline"][0] > 3e10
    # Closed before the mapped deadline (the stop drained it): left out, as live.
    early = EventTimes("indicator", "A", "RSI", minute, deadline - 0.5, deadline)
    assert event_latencies([early], grace=2.0, wall_of=emap.wall_at)["closed_early"] == 1


def test_cpu_share_over_a_window():
    samples = [(0.0, 0.0), (1.0, 0.5), (2.0, 1.0), (3.0, 1.9), (4.0, 2.0)]
    assert cpu_share(samples, 1.0, 3.0) == pytest.approx(0.7)
    assert cpu_share(samples, 0.0, 4.0) == pytest.approx(0.5)
    assert cpu_share(samples, 1.5, 1.9) is None
    rates = per_interval_rates(samples)
    assert [t for t, _ in rates] == [1.0, 2.0, 3.0, 4.0]
    assert [r for _, r in rates] == pytest.approx([0.5, 0.5, 0.9, 0.1])


def test_value_at():
    samples = [(1.0, 10), (2.0, 20), (3.0, 30)]
    assert value_at(samples, 0.5) is None
    assert value_at(samples, 2.5) == 20
    assert value_at(samples, 9) == 30
