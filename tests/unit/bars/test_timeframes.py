"""5/15/60-minute bars from 1-minute bars (tickstock/bars/timeframes.py).

The main check builds the same day twice from one set of ticks: ticks -> MinuteBarAggregator ->
Resampler, against a reference that groups the ticks directly by interval, with 60-minute intervals
worked out in New York time from the day's known open and close (not from the calendar the resampler
uses). Days: a regular one and the day after Thanksgiving (13:00 early close).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.bars.timeframes import (
    HIGHER_TIMEFRAMES, Resampler, SessionTable, TimeframeBar, timeframe_seconds,
)
from tickstock.market import MarketCalendar
from tickstock.messages.bars import Bar
from tickstock.messages.ticks import Tick

pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray:DeprecationWarning")

NY = ZoneInfo("America/New_York")
HOUR = 3600
# (date, close in New York time): a regular day and the day after Thanksgiving.
REGULAR = (dt.date(2024, 11, 27), dt.time(16, 0))
EARLY = (dt.date(2024, 11, 29), dt.time(13, 0))
MARGIN = 45 * 60  # ticks from 45 minutes before the open to 45 minutes after the close


def ny(date: dt.date, at: dt.time) -> int:
    return int(dt.datetime.combine(date, at, tzinfo=NY).timestamp())


@pytest.fixture(scope="module")
def sessions() -> SessionTable:
    calendar = MarketCalendar(ny(dt.date(2024, 11, 28), dt.time(12)))
    return SessionTable.from_calendar(calendar, ny(dt.date(2024, 11, 20), dt.time(0)),
                                      ny(dt.date(2024, 12, 6), dt.time(0)))


def test_the_table_holds_the_calendars_sessions(sessions):
    windows = dict((dt.datetime.fromtimestamp(o, NY).date(), (o, c)) for o, c in sessions.windows)
    assert windows[REGULAR[0]] == (ny(REGULAR[0], dt.time(9, 30)), ny(REGULAR[0], dt.time(16)))
    assert windows[EARLY[0]] == (ny(EARLY[0], dt.time(9, 30)), ny(EARLY[0], dt.time(13)))
    assert dt.date(2024, 11, 28) not in windows  # Thanksgiving


# -- the reference: ticks grouped directly by interval -------------------------------------------


def reference_interval(t: float, timeframe: str, day) -> tuple[int, int]:
    """The interval holding instant ``t``, from first principles."""
    if timeframe != "60min":
        n = timeframe_seconds(timeframe)
        start = int(t // n * n)
        return start, start + n
    date, close_time = day
    when = dt.datetime.fromtimestamp(t, NY)
    open_, close = (dt.datetime.combine(date, at, tzinfo=NY) for at in (dt.time(9, 30), close_time))
    if open_ <= when < close:  # hours from the open; the last one ends at the close
        start = open_ + dt.timedelta(hours=(when - open_) // dt.timedelta(hours=1))
        return int(start.timestamp()), int(min(start + dt.timedelta(hours=1), close).timestamp())
    # Outside the session: hours from :30, cut at the close (before) and the open (after).
    start = when.replace(minute=30, second=0, microsecond=0)
    if when.minute < 30:
        start -= dt.timedelta(hours=1)
    end = start + dt.timedelta(hours=1)
    if when >= close:
        start = max(start, close)
    else:
        end = min(end, open_)
    return int(start.timestamp()), int(end.timestamp())


def reference_bars(ticks: list[Tick], timeframe: str, day) -> dict[int, dict]:
    groups: dict[tuple[int, int], list[Tick]] = defaultdict(list)
    for tick in ticks:
        groups[reference_interval(tick.timestamp, timeframe, day)].append(tick)
    out = {}
    for (start, end), group in groups.items():
        group.sort(key=lambda k: k.timestamp)
        out[start] = dict(end=end, open=group[0].price, high=max(k.price for k in group),
                          low=min(k.price for k in group), close=group[-1].price,
                          volume=sum(k.volume for k in group), tick_count=len(group),
                          first_tick_at=group[0].timestamp, last_tick_at=group[-1].timestamp,
                          notional=sum(k.price * k.volume for k in group))
    return out


def minute_bars(ticks: list[Tick]) -> list[Bar]:
    """The production path: the aggregator, closing each minute as time passes it."""
    aggregator = MinuteBarAggregator(grace_seconds=0.0)
    bars: list[Bar] = []
    for tick in sorted(ticks, key=lambda k: k.timestamp):
        bars += aggregator.close_due(tick.timestamp)
        assert aggregator.add(tick)
    return bars + aggregator.close_all()


def tick_lists(day):
    date, close_time = day
    first = ny(date, dt.time(9, 30)) - MARGIN
    span = ny(date, close_time) + MARGIN - first
    # Boundaries are where mistakes hide: the last and first seconds of every 5-minute interval.
    edges = [s for b in range(300, span, 300) for s in (b - 1, b) if s < span]
    offset = st.one_of(st.integers(0, span - 1), st.sampled_from(edges))
    tick = st.tuples(offset, st.integers(1, 50_000), st.integers(0, 5_000), st.integers(0, 999))
    return st.lists(tick, min_size=1, max_size=300, unique_by=lambda k: k[0]).map(
        lambda raw: [Tick("AAPL", cents / 100, volume, first + off + milli / 1000, first + off)
                     for off, cents, volume, milli in raw])


def check_day(ticks: list[Tick], day, sessions: SessionTable) -> None:
    resampler = Resampler("AAPL", HIGHER_TIMEFRAMES, sessions)
    minutes = minute_bars(ticks)
    closed_by: dict[str, dict[int, tuple[TimeframeBar, int | None]]] = {tf: {} for tf in HIGHER_TIMEFRAMES}
    for bar in minutes:
        for closed in resampler.on_bar(bar):
            assert closed.bar.start not in closed_by[closed.timeframe], "a bar closed twice"
            closed_by[closed.timeframe][closed.bar.start] = (closed, bar.start)
    end_of_day = ny(day[0], day[1]) + MARGIN + HOUR
    for closed in resampler.close_through(end_of_day):
        closed_by[closed.timeframe][closed.bar.start] = (closed, None)
    assert resampler.close_through(end_of_day) == ()  # nothing left forming
    with_ticks = {m.start for m in minutes}
    first_minute = minutes[0].start

    for tf in HIGHER_TIMEFRAMES:
        expected = reference_bars(ticks, tf, day)
        got = closed_by[tf]
        assert sorted(got) == sorted(expected), tf
        for start, ref in expected.items():
            closed, by = got[start]
            b = closed.bar
            assert (closed.timeframe, closed.end) == (tf, ref["end"])
            assert (b.symbol, b.open, b.high, b.low, b.close) == ("AAPL", ref["open"], ref["high"], ref["low"],
                                                                  ref["close"])
            assert (b.volume, b.tick_count) == (ref["volume"], ref["tick_count"])
            assert (b.first_tick_at, b.last_tick_at) == (ref["first_tick_at"], ref["last_tick_at"])
            assert b.notional == pytest.approx(ref["notional"], rel=1e-12, abs=1e-9)
            assert closed.minutes == len({m for m in with_ticks if start <= m < ref["end"]})
            # Closed with the 1-minute bar that ends the interval; else late, with the next bar
            # (or at the end of the day).
            last_minute = ref["end"] - 60
            if last_minute in with_ticks:
                assert (by, closed.late) == (last_minute, False)
            else:
                later = [m for m in sorted(with_ticks) if m > last_minute]
                assert (by, closed.late) == (later[0] if later else None, True)
            # Only the first interval can be partial: the minutes before the first bar are unknown.
            assert b.partial == (start < first_minute), (tf, start)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_regular_day_matches_ticks_grouped_by_interval(sessions, data):
    check_day(data.draw(tick_lists(REGULAR)), REGULAR, sessions)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_early_close_day_matches_ticks_grouped_by_interval(sessions, data):
    check_day(data.draw(tick_lists(EARLY)), EARLY, sessions)


def test_every_minute_of_the_early_close_day(sessions):
    """One tick per second all day: every interval full, each closed by its own last minute."""
    date, close = EARLY
    first = ny(date, dt.time(9, 30)) - MARGIN
    ticks = [Tick("AAPL", 100 + (s % 97) / 10, 1 + s % 7, first + s + 0.5, first + s)
             for s in range(ny(date, close) + MARGIN - first)]
    check_day(ticks, EARLY, sessions)


# -- 60 minutes: aligned to the session's open --------------------------------------------------


def hours_of_day(sessions: SessionTable, date: dt.date, close: dt.time) -> list[tuple[str, str]]:
    resampler = Resampler("AAPL", ["60min"], sessions)
    out = []
    t, end = ny(date, dt.time(9, 30)), ny(date, close)
    while t < end:
        for closed in resampler.on_bar(Bar("AAPL", t, 1.0, 1.0, 1.0, 1.0, 1)):
            out.append(tuple(f"{dt.datetime.fromtimestamp(x, NY):%H:%M}" for x in (closed.bar.start, closed.end)))
        t += 60
    return out


@pytest.mark.parametrize("date", [dt.date(2024, 7, 1), dt.date(2024, 12, 2)])  # summer (EDT), winter (EST)
def test_60min_bars_start_at_the_open_and_the_last_ends_at_the_close(date):
    calendar = MarketCalendar(ny(date, dt.time(12)))
    table = SessionTable.from_calendar(calendar, ny(date, dt.time(0)), ny(date, dt.time(23)))
    assert hours_of_day(table, date, dt.time(16)) == [
        ("09:30", "10:30"), ("10:30", "11:30"), ("11:30", "12:30"), ("12:30", "13:30"), ("13:30", "14:30"),
        ("14:30", "15:30"), ("15:30", "16:00")]


def test_60min_on_an_early_close_ends_with_a_half_hour_closed_at_1pm(sessions):
    assert hours_of_day(sessions, EARLY[0], dt.time(13)) == [
        ("09:30", "10:30"), ("10:30", "11:30"), ("11:30", "12:30"), ("12:30", "13:00")]


def test_60min_outside_sessions_is_on_the_half_hour_grid_cut_at_the_close_and_open(sessions):
    date = EARLY[0]
    for at, expected in [(dt.time(13, 5), ("13:00", "13:30")), (dt.time(13, 30), ("13:30", "14:30")),
                         (dt.time(9, 10), ("08:30", "09:30")), (dt.time(12, 59), ("12:30", "13:00"))]:
        start, end = sessions.hour(ny(date, at))
        assert (f"{dt.datetime.fromtimestamp(start, NY):%H:%M}", f"{dt.datetime.fromtimestamp(end, NY):%H:%M}") \
            == expected, at
    # Without a table: the same :30 grid, never cut.
    resampler = Resampler("AAPL", ["60min"])
    [closed] = resampler.on_bar(Bar("AAPL", ny(date, dt.time(14, 29)), 1.0, 1.0, 1.0, 1.0, 1))
    assert (closed.bar.start, closed.end) == (ny(date, dt.time(13, 30)), ny(date, dt.time(14, 30)))


def test_a_session_table_rejects_what_it_cannot_use():
    with pytest.raises(ValueError, match="minute-aligned"):
        SessionTable([(0, 90)])
    with pytest.raises(ValueError, match="open before it closes"):
        SessionTable([(120, 60)])
    with pytest.raises(ValueError, match="overlaps"):
        SessionTable([(0, 600), (300, 900)])
    with pytest.raises(ValueError, match="covers"):
        SessionTable([], (600, 600))


def test_a_minute_outside_the_covered_span_is_looked_up_from_the_source():
    day = 86_400
    asked = []

    def source(t):
        asked.append(t)
        base = int(t) - int(t) % day
        return SessionTable([(base + 48_600, base + 61_200)], (base, base + day), source)  # 13:30-17:00 UTC

    table = SessionTable([(48_600, 72_000)], (0, day), source)
    assert table.hour(72_000 - 60) == (70_200, 72_000)  # covered: its own close
    later = 100 * day + 61_200 - 60
    assert table.hour(later) == (100 * day + 59_400, 100 * day + 61_200)  # the source's day, cut at its close
    assert asked == [later] and table.extensions == 1 and table.covers == ((0, day), (100 * day, 101 * day))
    table.hour(later - 3600)
    assert table.hour(72_000 - 60) == (70_200, 72_000)  # the first span still answers for its own time
    table.hour(later - 7200)
    assert asked == [later]  # both covered now: history and live far apart never rebuild back and forth


def test_the_spans_a_table_takes_are_bounded():
    day = 86_400

    def source(t):
        base = int(t) - int(t) % day
        return SessionTable([], (base, base + day))

    table = SessionTable([], (0, day), source)
    for k in range(1, SessionTable.MAX_SPANS):
        table.hour(k * day)
    assert table.extensions == SessionTable.MAX_SPANS - 1 and table.source_error is None
    table.hour(1000 * day)
    assert "spans held" in table.source_error and len(table.covers) == SessionTable.MAX_SPANS


def test_a_failing_source_leaves_the_grid_and_is_not_asked_again():
    calls = []

    def source(t):
        calls.append(t)
        raise LookupError("no calendar that far")

    table = SessionTable([(48_600, 72_000)], (0, 86_400), source)
    far = 500 * 86_400 + 48_600
    assert table.hour(far) == (far, far + 3600)  # :30 grid (48,600 s is 13:30 UTC)
    assert table.hour(far + 60) == (far, far + 3600)
    assert len(calls) == 1 and "no calendar that far" in table.source_error
    assert table.hour(72_000 - 60) == (70_200, 72_000)  # what it covers still answers


def test_a_source_that_does_not_cover_the_minute_is_a_failure_too():
    table = SessionTable([], (0, 86_400), lambda t: SessionTable([], (0, 86_400)))
    table.hour(10 * 86_400)
    assert "covers" in table.source_error and table.extensions == 0


# -- closing, partial bars, stale and bad input ------------------------------------------------

T0 = 1_700_000_000 - 1_700_000_000 % HOUR  # an hour start, UTC: 5/15-minute grid aligned


def b(minute: int, partial=False, notional: float | None = 10.0, **kw) -> Bar:
    fields = dict(open=1.0, high=2.0, low=0.5, close=1.5, volume=10, tick_count=2)
    fields.update(kw)
    return Bar("AAPL", T0 + 60 * minute, fields["open"], fields["high"], fields["low"], fields["close"],
               fields["volume"], fields["tick_count"], "s1", None, None, partial, notional)


def test_a_bar_closes_with_its_last_minute_and_not_before():
    r = Resampler("AAPL", ["5min"])
    assert [r.on_bar(b(m)) for m in range(4)] == [[], [], [], []]
    [closed] = r.on_bar(b(4))
    assert (closed.bar.start, closed.end, closed.minutes, closed.late) == (T0, T0 + 300, 5, False)


def test_a_missing_last_minute_closes_the_bar_late_with_the_next_bar_or_by_time():
    r = Resampler("AAPL", ["5min", "15min"])
    for m in (0, 1, 2):
        assert r.on_bar(b(m)) == []
    # Minutes 3 and 4 had no ticks: the 5-minute bar closes with minute 6, late, holding 3 minutes.
    [closed] = r.on_bar(b(6))
    assert (closed.timeframe, closed.bar.start, closed.minutes, closed.late) == ("5min", T0, 3, True)
    # close_through(t) closes what has ended by t, and only that.
    assert r.close_through(T0 + 599) == ()
    [closed] = r.close_through(T0 + 600)
    assert (closed.timeframe, closed.bar.start, closed.minutes, closed.late) == ("5min", T0 + 300, 1, True)
    assert r.close_through(T0 + 899) == ()
    [closed] = r.close_through(T0 + 900)
    assert (closed.timeframe, closed.bar.start, closed.minutes, closed.late) == ("15min", T0, 4, True)
    assert r.close_through(T0 + 10_000) == ()


def test_folding_takes_first_open_extremes_last_close_and_sums():
    r = Resampler("AAPL", ["5min"])
    r.on_bar(b(0, open=5.0, high=6.0, low=4.0, close=5.5, volume=3, tick_count=1, notional=16.5))
    r.on_bar(b(2, open=5.5, high=9.0, low=4.5, close=8.0, volume=4, tick_count=2, notional=30.0))
    [closed] = r.on_bar(b(4, open=8.0, high=8.5, low=3.0, close=3.5, volume=5, tick_count=3, notional=20.0))
    bar = closed.bar
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.tick_count) == (5.0, 9.0, 3.0, 3.5, 12, 6)
    assert bar.notional == 66.5 and bar.session_id == "s1" and not bar.partial


def test_notional_is_unknown_when_any_minute_lacks_it():
    r = Resampler("AAPL", ["5min"])
    r.on_bar(b(0))
    r.on_bar(b(1, notional=None))  # e.g. a bar read back from ohlcv_1min
    [closed] = r.on_bar(b(4))
    assert closed.bar.notional is None


def test_the_first_interval_is_partial_unless_its_first_minute_was_fed():
    r = Resampler("AAPL", ["5min"])
    r.on_bar(b(2))
    [first] = r.on_bar(b(4))
    assert first.bar.partial
    [second] = r.on_bar(b(9))  # minutes 5-8 quiet: the later interval is complete
    assert not second.bar.partial
    r = Resampler("AAPL", ["5min"])
    r.on_bar(b(0))
    [whole] = r.on_bar(b(4))
    assert not whole.bar.partial


def test_a_partial_minute_makes_its_higher_bars_partial():
    r = Resampler("AAPL", ["5min", "15min"])
    for m in range(15):
        closed = r.on_bar(b(m, partial=(m == 7)))
        for c in closed:
            assert c.bar.partial == (c.bar.start <= T0 + 420 < c.end), (c.timeframe, c.bar.start)


def test_observed_from_marks_the_unobserved_stretch_partial():
    """History up to minute 1, then a session that starts receiving at minute 3: minutes 2 (and the
    start of 3) nobody saw, so the intervals they belong to are partial; later ones are not."""
    r = Resampler("AAPL", ["5min", "15min"])
    r.on_bar(b(0))
    r.on_bar(b(1))
    r.observed_from(T0 + 180.5)
    [five] = r.on_bar(b(4))
    assert five.bar.partial
    [five] = r.on_bar(b(9))
    assert not five.bar.partial
    closed = r.on_bar(b(14))
    assert [(c.timeframe, c.bar.partial) for c in closed] == [("5min", False), ("15min", True)]


def test_observed_from_with_no_gap_marks_nothing():
    r = Resampler("AAPL", ["5min"])
    r.on_bar(b(0))
    r.on_bar(b(1))
    r.observed_from(T0 + 120)  # receiving from exactly where history ends
    [closed] = r.on_bar(b(4))
    assert not closed.bar.partial


def test_observed_from_before_any_bar_makes_the_interval_it_starts_in_partial():
    r = Resampler("AAPL", ["5min"])
    r.observed_from(T0 + 300)  # a session starting exactly on a 5-minute boundary
    [closed] = r.on_bar(b(9))
    assert (closed.bar.start, closed.bar.partial) == (T0 + 300, False)
    r = Resampler("AAPL", ["5min"])
    r.observed_from(T0 + 320)  # ... or 20 seconds into one, then a quiet minute
    [closed] = r.on_bar(b(9))
    assert closed.bar.partial


def test_a_bar_not_after_the_last_is_ignored_and_counted():
    r = Resampler("AAPL", ["5min"])
    r.on_bar(b(3))
    assert r.on_bar(b(3)) == () and r.on_bar(b(1)) == ()
    assert r.stale_bars == 2
    [closed] = r.on_bar(b(4))
    assert closed.minutes == 2


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="'1min'"):
        Resampler("AAPL", ["1min"])
    with pytest.raises(ValueError, match="'2min'"):
        Resampler("AAPL", ["5min", "2min"])
    with pytest.raises(ValueError, match="at least one"):
        Resampler("AAPL", [])
    r = Resampler("AAPL", ["5min"])
    with pytest.raises(ValueError, match="'MSFT'"):
        r.on_bar(Bar("MSFT", T0, 1.0, 1.0, 1.0, 1.0, 1))
    with pytest.raises(ValueError, match="minute-aligned"):
        r.on_bar(Bar("AAPL", T0 + 30, 1.0, 1.0, 1.0, 1.0, 1))
    with pytest.raises(ValueError, match="unknown timeframe"):
        timeframe_seconds("1h")


def test_timeframes_come_back_in_ascending_order_whatever_was_asked():
    r = Resampler("AAPL", ["60min", "5min", "15min", "5min"])
    assert r.timeframes == ("5min", "15min", "60min")
    closed = []
    for m in range(30, 90):  # T0 + 30 min is a :30 boundary on the 60-minute grid
        closed += r.on_bar(b(m))
    assert [c.timeframe for c in closed[-3:]] == ["5min", "15min", "60min"]
    assert math.isclose(closed[-1].end - closed[-1].bar.start, HOUR)


def test_fold_returns_what_on_bar_closes_per_timeframe_in_order():
    start = 1_795_737_600  # a multiple of 3,600: the 5 and 15-minute grid lines up from here
    bars = [Bar("AAPL", start + 60 * i, 1.0 + i, 2.0 + i, 0.5, 1.5 + i, 10) for i in range(31)]
    one_by_one = Resampler("AAPL", ("5min", "15min"))
    expected: dict[str, list[Bar]] = {"5min": [], "15min": []}
    for bar in bars:
        for c in one_by_one.on_bar(bar):
            expected[c.timeframe].append(c.bar)
    folded = Resampler("AAPL", ("5min", "15min")).fold(bars)
    assert folded == expected
    assert len(folded["5min"]) == 6 and len(folded["15min"]) == 2  # 30 whole minutes folded
    assert Resampler("AAPL", ("60min",)).fold(bars[:3]) == {"60min": []}  # every timeframe, even empty
