"""Bars as parts of their minute: session id, first/last tick times, ``partial``, ``mark_gap``,
and the merge rule (``merge_parts``) that makes one bar of the parts of several sessions."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tickstock.bars import MinuteBarAggregator, merge_parts
from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.messages.ticks import Tick

FUZZ = settings(database=None, deadline=None, max_examples=300)

M = int(datetime(2026, 3, 10, 14, 30, tzinfo=timezone.utc).timestamp())
GRACE = 2.0
SID = "3f2c9a1e-0000-4000-8000-000000000001"


def tick(ts: float, price: float = 100.0, volume: int = 1, symbol: str = "AAPL") -> Tick:
    return Tick(symbol=symbol, price=float(price), volume=volume, timestamp=float(ts), received_at=float(ts))


def by_start(bars: list[Bar]) -> dict[int, Bar]:
    assert len({b.start for b in bars}) == len(bars), bars
    return {b.start: b for b in bars}


# --------------------------------------------------------------------------- stamps


def test_bars_carry_session_id_and_first_last_tick_times_by_timestamp():
    a = MinuteBarAggregator(GRACE, now=M, session_id=SID)
    # Arrival order differs from timestamp order: first/last follow the tick timestamps.
    for ts, price in [(M + 30.5, 2.0), (M + 3.25, 1.0), (M + 59.75, 3.0), (M + 10, 4.0)]:
        a.add(tick(ts, price))
    [bar] = a.close_due(M + 60 + GRACE)
    assert bar.session_id == SID
    assert (bar.first_tick_at, bar.last_tick_at) == (M + 3.25, M + 59.75)
    assert (bar.open, bar.close) == (1.0, 3.0)
    assert bar.partial is False


def test_defaults_keep_old_constructors_working():
    bar = Bar("AAPL", M, 1.0, 2.0, 0.5, 1.5, 10)
    assert (bar.session_id, bar.first_tick_at, bar.last_tick_at, bar.partial) == ("", None, None, False)
    a = MinuteBarAggregator(GRACE)
    a.add(tick(M + 1))
    [bar] = a.close_all()
    assert bar.session_id == "" and bar.partial is False


# --------------------------------------------------------------------------- partial from the start


def test_mid_minute_start_makes_only_the_running_minutes_partial():
    start = M + 20.0
    a = MinuteBarAggregator(GRACE, now=start, session_id=SID)
    a.add(tick(M + 25))
    a.add(tick(M + 60 + 5))
    bars = by_start(a.close_all())
    assert bars[M].partial is True
    assert bars[M + 60].partial is False


def test_start_exactly_at_second_zero_is_not_partial():
    a = MinuteBarAggregator(GRACE, now=M)
    a.add(tick(M + 0.0))
    a.add(tick(M + 59))
    [bar] = a.close_due(M + 60 + GRACE)
    assert bar.partial is False


def test_start_inside_the_grace_window_previous_minute_is_partial():
    # Started at M+1 with grace 2: minute M-60 is still open (late ticks of it are accepted), but
    # its ticks before the start were never seen.
    a = MinuteBarAggregator(GRACE, now=M + 1.0)
    assert a.add(tick(M - 1)) is True
    a.add(tick(M + 30))
    bars = by_start(a.close_all())
    assert bars[M - 60].partial is True
    assert bars[M].partial is True  # M had begun 1 s before the start


def test_without_start_time_nothing_is_partial():
    a = MinuteBarAggregator(GRACE)
    a.add(tick(M + 30))
    assert [b.partial for b in a.close_all()] == [False]
    assert a.started_at is None


# --------------------------------------------------------------------------- mark_gap


def test_gap_marks_forming_and_later_forming_minutes_it_overlaps():
    a = MinuteBarAggregator(GRACE, now=M)
    a.add(tick(M + 10))  # minute M forming before the gap is declared
    a.mark_gap(M + 50, M + 125)  # overlaps M, M+60, M+120
    for minute in (M + 60, M + 120, M + 180):
        a.add(tick(minute + 30))  # M+60 and M+120 form only after the gap was declared
    bars = by_start(a.close_all())
    assert [bars[m].partial for m in (M, M + 60, M + 120, M + 180)] == [True, True, True, False]


def test_gap_does_not_change_a_bar_already_closed():
    a = MinuteBarAggregator(GRACE, now=M)
    a.add(tick(M + 10))
    [closed] = a.close_due(M + 60 + GRACE)
    a.mark_gap(M + 20, M + 70)
    a.add(tick(M + 90))
    [later] = a.close_all()
    assert closed.partial is False
    assert later.start == M + 60 and later.partial is True


@pytest.mark.parametrize(
    "since, until, partial_minutes",
    [
        (M + 60.0, M + 60.0, {M + 60}),            # an instant at a minute start: that minute only
        (M + 59.999, M + 59.999, {M}),             # an instant inside M
        (M + 30, M + 60.0, {M, M + 60}),           # closed interval: touching M+60's start counts
        (M - 600, M - 61, set()),                  # before every minute that forms
    ],
)
def test_gap_interval_is_closed(since, until, partial_minutes):
    a = MinuteBarAggregator(0.0, now=M - 600)
    for minute in (M - 60, M, M + 60, M + 120):
        a.add(tick(minute + 30))
    a.mark_gap(since, until)
    bars = by_start(a.close_all())
    assert {m for m, b in bars.items() if b.partial and m >= M - 60} == partial_minutes


@pytest.mark.parametrize("since, until", [(M + 10, M), (math.nan, M), (M, math.inf)])
def test_gap_must_be_a_finite_ordered_interval(since, until):
    with pytest.raises(ValueError):
        MinuteBarAggregator(GRACE, now=M).mark_gap(since, until)


def test_gaps_of_closed_minutes_are_forgotten():
    a = MinuteBarAggregator(0.0, now=M)
    a.mark_gap(M + 5, M + 10)
    a.close_due(M + 600)
    assert a._gaps == []
    a.mark_gap(M + 20, M + 30)  # wholly in closed minutes: nothing to remember
    assert a._gaps == []


def test_close_all_with_now_marks_minutes_not_yet_ended():
    a = MinuteBarAggregator(GRACE, now=M)
    a.add(tick(M + 59))       # minute M ended at M+60, still inside the grace window
    a.add(tick(M + 61))       # minute M+60 is cut at M+61.5
    bars = by_start(a.close_all(now=M + 61.5))
    assert bars[M].partial is False
    assert bars[M + 60].partial is True


# --------------------------------------------------------------------------- properties


@FUZZ
@given(
    start_offset=st.floats(min_value=-180, max_value=300, allow_nan=False),
    gaps=st.lists(st.tuples(st.floats(-200, 400), st.floats(0, 120)), max_size=3),
    offsets=st.lists(st.floats(min_value=-120, max_value=400, allow_nan=False), min_size=1, max_size=40),
)
def test_partial_exactly_when_started_within_or_a_gap_overlaps(start_offset, gaps, offsets):
    """A bar is partial iff its minute began before the start or overlaps a declared gap."""
    started = M + start_offset
    a = MinuteBarAggregator(GRACE, now=started)
    intervals = [(M + s, M + s + length) for s, length in gaps]
    for since, until in intervals:
        a.mark_gap(since, until)
    for off in offsets:
        a.add(tick(M + off))
    for bar in a.close_due(M + 200) + a.close_all():
        expected = bar.start < started or any(
            bar.start <= until and since < bar.start + BAR_SECONDS for since, until in intervals
        )
        assert bar.partial is expected, (bar, started, intervals)


tick_specs = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=4 * 60_000 - 1),        # ms offset: 4 minutes
        st.floats(min_value=1, max_value=1000, allow_nan=False),    # price
        st.integers(min_value=0, max_value=10_000),                 # volume
        st.booleans(),                                              # which session saw it
    ),
    min_size=1, max_size=60, unique_by=lambda t: t[0],              # distinct tick timestamps
)


@FUZZ
@given(specs=tick_specs, order=st.randoms(use_true_random=False))
def test_parts_of_two_sessions_merge_to_the_bar_of_all_ticks(specs, order):
    """However the ticks of a minute are split between two sessions, merging the two sessions'
    parts (in any order) gives the bar one session would have built from every tick."""
    ticks = [tick(M + ms / 1000, price, volume) for ms, price, volume, _ in specs]
    whole = MinuteBarAggregator(0.0)
    a = MinuteBarAggregator(0.0, session_id="00000000-0000-4000-8000-00000000000a")
    b = MinuteBarAggregator(0.0, session_id="00000000-0000-4000-8000-00000000000b")
    for t, (_, _, _, in_a) in zip(ticks, specs):
        whole.add(t)
        (a if in_a else b).add(t)
    expected = by_start(whole.close_all())
    parts: dict[int, list[Bar]] = {}
    for bar in a.close_all() + b.close_all():
        parts.setdefault(bar.start, []).append(bar)
    assert set(parts) == set(expected)
    for minute, minute_parts in parts.items():
        order.shuffle(minute_parts)
        merged = merge_parts(minute_parts)
        want = expected[minute]
        assert (merged.open, merged.high, merged.low, merged.close, merged.volume, merged.tick_count) == (
            want.open, want.high, want.low, want.close, want.volume, want.tick_count)
        assert (merged.first_tick_at, merged.last_tick_at) == (want.first_tick_at, want.last_tick_at)


def test_merge_without_tick_times_uses_the_minute_bounds_then_session_order():
    old = Bar("AAPL", M, 10.0, 12.0, 9.0, 11.0, 100)                       # a pre-parts spill row
    new = Bar("AAPL", M, 20.0, 21.0, 19.0, 20.5, 50, 3, SID, M + 5, M + 50)
    merged = merge_parts([new, old])
    # Unknown times count as the whole minute: old opens (M <= M+5) and closes (M+60 >= M+50).
    assert (merged.open, merged.close, merged.high, merged.low, merged.volume) == (10.0, 11.0, 21.0, 9.0, 150)
    assert merge_parts([new]) == new


def test_merge_refuses_nothing_or_different_bars():
    with pytest.raises(ValueError):
        merge_parts([])
    with pytest.raises(ValueError):
        merge_parts([Bar("AAPL", M, 1, 1, 1, 1, 1), Bar("AAPL", M + 60, 1, 1, 1, 1, 1)])
