"""Bars closed by event time (``session.clock: event``): tickstock.clock.EventTime and the
aggregator's event-time start, pure and driven by a ManualClock.

The replay guarantee is a property here: the same ticks fed live (the wall clock stepping through
the day, ticks arriving on time) and replayed (any batching, event time) give the same bars.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.clock import DEFAULT_IDLE_AFTER_SECONDS, EventTime, ManualClock
from tickstock.messages.bars import Bar
from tickstock.messages.ticks import Tick

FUZZ = settings(database=None, deadline=None, max_examples=150)
GRACE = 2.0
# A minute of a past trading day (2025-03-12T14:30:00Z, the open): event time, far from the wall.
D = int(datetime(2025, 3, 12, 14, 30, tzinfo=timezone.utc).timestamp())
WALL = D + 200 * 86_400  # the replay runs months later


def tick(ts: float, price: float = 100.0, volume: int = 1, symbol: str = "AAPL") -> Tick:
    return Tick(symbol=symbol, price=float(price), volume=volume, timestamp=float(ts), received_at=float(WALL))


def event_env(idle_after: float = DEFAULT_IDLE_AFTER_SECONDS):
    wall = ManualClock(WALL)
    return wall, EventTime(wall.now, idle_after), MinuteBarAggregator(GRACE, now=None)


def replay_read(agg: MinuteBarAggregator, ev: EventTime, ticks: list[Tick], at: float) -> list[Bar]:
    """What the ingress does with one read in event time: fold, observe the last tick, close."""
    for t in ticks:
        agg.add(t)
    ev.observe(ticks[-1].timestamp, at)
    return agg.close_due(ev.now())


# --------------------------------------------------------------------------- EventTime


def test_watermark_is_none_before_the_first_tick_and_never_moves_backwards():
    wall, ev, _ = event_env()
    assert ev.watermark is None and ev.now() is None and ev.silent_for() == 0.0
    ev.observe(D + 10, WALL)
    ev.observe(D + 5, WALL)  # an earlier tick observed later
    assert ev.watermark == D + 10 and ev.now() == D + 10
    ev.observe(D + 12.5, WALL)
    assert ev.watermark == D + 12.5


def test_now_is_the_watermark_while_silence_is_shorter_than_idle_after():
    wall, ev, _ = event_env(idle_after=5.0)
    ev.observe(D + 30, WALL)
    wall.advance(4.999)
    assert ev.now() == D + 30
    assert ev.silent_for() == pytest.approx(4.999)


def test_after_idle_after_event_time_runs_with_the_wall_clock_from_the_last_tick():
    wall, ev, _ = event_env(idle_after=5.0)
    ev.observe(D + 30, WALL)
    wall.advance(5.0)
    assert ev.now() == D + 35  # the whole silence, not the silence beyond idle_after
    wall.advance(27.0)
    assert ev.now() == D + 62
    assert ev.now(extrapolate=False) == D + 30  # the watermark alone


def test_the_silence_is_not_committed_ticks_after_it_bring_now_back_to_the_watermark():
    wall, ev, _ = event_env(idle_after=5.0)
    ev.observe(D + 30, WALL)
    wall.advance(40)
    assert ev.now() == D + 70
    ev.observe(D + 31, wall.now())  # the replay resumes where it paused
    assert ev.now() == D + 31 and ev.watermark == D + 31


def test_observe_without_a_wall_time_reads_the_wall_clock():
    wall, ev, _ = event_env(idle_after=1.0)
    wall.advance(100)
    ev.observe(D)
    wall.advance(0.5)
    assert ev.now() == D  # silent 0.5 s since the observe, not 100.5 s


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_idle_after_must_be_a_finite_duration(bad):
    with pytest.raises(ValueError):
        EventTime(ManualClock(WALL).now, bad)


def test_a_non_finite_tick_time_is_refused():
    _, ev, _ = event_env()
    with pytest.raises(ValueError):
        ev.observe(math.inf, WALL)
    assert ev.watermark is None


# --------------------------------------------------------------------------- closing by event time


def test_a_bar_closes_when_the_watermark_passes_its_minute_end_plus_grace_not_before():
    wall, ev, agg = event_env()
    assert replay_read(agg, ev, [tick(D + 10, 1.0), tick(D + 50, 2.0)], WALL) == []
    assert replay_read(agg, ev, [tick(D + 61.9, 3.0)], WALL) == []  # minute over, grace not
    [bar] = replay_read(agg, ev, [tick(D + 62.0, 4.0)], WALL)  # end + grace reached
    assert (bar.start, bar.open, bar.close, bar.tick_count, bar.partial) == (D, 1.0, 2.0, 2, False)
    assert agg.forming_count() == 1 and agg.next_deadline() == D + 120 + GRACE


def test_the_wall_clock_alone_closes_nothing_while_ticks_keep_coming():
    wall, ev, agg = event_env()
    replay_read(agg, ev, [tick(D + 10)], WALL)
    for k in range(1, 20):  # a slow replay: hours of wall time, reads every 4 s, event time barely moves
        wall.advance(4.0)
        assert replay_read(agg, ev, [tick(D + 10 + k * 0.1)], wall.now()) == []
    assert agg.forming_count() == 1


def test_one_read_spanning_minutes_closes_them_all_oldest_first_with_every_tick():
    wall, ev, agg = event_env()
    ticks = [tick(D + s, 100.0 + s) for s in range(0, 185, 5)]
    bars = replay_read(agg, ev, ticks, WALL)
    assert [(b.start, b.tick_count) for b in bars] == [(D, 12), (D + 60, 12)]  # D+120's deadline: D+182
    assert agg.late_ticks == 0


def test_a_tick_of_a_minute_closed_by_event_time_is_late_and_not_merged():
    wall, ev, agg = event_env()
    replay_read(agg, ev, [tick(D + 10, 1.0)], WALL)
    [bar] = replay_read(agg, ev, [tick(D + 63, 2.0)], WALL)
    assert agg.add(tick(D + 59, 999.0)) is False  # in a later read than the one that passed D+62
    assert agg.late_ticks == 1 and bar.high == 1.0
    assert replay_read(agg, ev, [tick(D + 64)], WALL) == []


def test_a_tick_within_grace_of_the_latest_is_not_late():
    wall, ev, agg = event_env()
    replay_read(agg, ev, [tick(D + 10, 1.0), tick(D + 61.5, 5.0)], WALL)
    [bar] = replay_read(agg, ev, [tick(D + 59.9, 2.0), tick(D + 62.5, 6.0)], WALL)  # out of order by 1.6 s
    assert (bar.close, bar.tick_count) == (2.0, 2) and agg.late_ticks == 0


def test_out_of_order_ticks_in_one_read_hold_event_time_back_never_forward():
    """The read's LAST tick is observed: a later one earlier in the read does not count, so a bar
    can only close later than the true latest tick would say, never earlier."""
    wall, ev, agg = event_env()
    assert replay_read(agg, ev, [tick(D + 10), tick(D + 65), tick(D + 40)], WALL) == []
    assert ev.watermark == D + 40
    [bar] = replay_read(agg, ev, [tick(D + 66)], WALL)
    assert bar.tick_count == 2


def test_idle_silence_closes_the_last_minute_complete_once_event_time_passes_its_deadline():
    wall, ev, agg = event_env(idle_after=5.0)
    replay_read(agg, ev, [tick(D + 10), tick(D + 59.5)], WALL)
    wall.advance(4.9)
    assert agg.close_due(ev.now()) == []  # a hiccup, not the end
    wall.advance(0.1)  # silent 5 s: event time D+64.5 >= D+62
    [bar] = agg.close_due(ev.now())
    assert bar.start == D and bar.partial is False and bar.tick_count == 2


def test_idle_silence_at_speed_one_closes_a_quiet_minute_when_live_would():
    wall, ev, agg = event_env(idle_after=5.0)
    replay_read(agg, ev, [tick(D + 10)], WALL)  # the minute's only tick, 52 s before its end
    wall.advance(51.9)
    assert agg.close_due(ev.now()) == []  # event time D+61.9: live would not close it either
    wall.advance(0.1)
    assert [b.start for b in agg.close_due(ev.now())] == [D]


def test_close_all_at_event_time_marks_a_minute_not_fully_replayed_partial():
    wall, ev, agg = event_env()
    replay_read(agg, ev, [tick(D + 10), tick(D + 61, symbol="MSFT")], WALL)
    bars = agg.close_all(ev.now())  # a stop while event time is D+61: minute D over, D+60 not
    assert [(b.start, b.partial) for b in bars] == [(D, False), (D + 60, True)]


# --------------------------------------------------------------------------- the replay's start


def test_start_at_none_accepts_a_past_day_that_the_wall_start_would_make_late():
    live = MinuteBarAggregator(GRACE, now=WALL)
    assert live.add(tick(D + 10)) is False
    replay = MinuteBarAggregator(GRACE, now=WALL)
    replay.start_at(None)
    assert replay.started_at is None and replay.open_from == 0
    assert replay.add(tick(D + 10)) is True


@pytest.mark.parametrize("first, partial", [(0.0, False), (0.4, False), (GRACE, False), (GRACE + 0.1, True), (30, True)])
def test_the_replays_first_minute_is_partial_unless_it_starts_within_grace(first, partial):
    agg = MinuteBarAggregator(GRACE, now=None)
    agg.add(tick(D + first + 1))
    agg.add(tick(D + first))
    assert agg.earliest_tick_at() == D + first
    agg.start_at(agg.earliest_tick_at() - GRACE)  # what the ingress does after the first read
    [bar] = agg.close_due(D + 60 + GRACE)
    assert bar.partial is partial


def test_start_at_is_refused_once_a_bar_closed_or_a_tick_was_late():
    agg = MinuteBarAggregator(GRACE, now=None)
    agg.add(tick(D + 1))
    agg.start_at(D - 1)  # before anything was decided: fine, even twice
    agg.start_at(D)
    agg.close_due(D + 60 + GRACE)
    with pytest.raises(ValueError):
        agg.start_at(None)
    late = MinuteBarAggregator(GRACE, now=D + 120)
    assert late.add(tick(D)) is False
    with pytest.raises(ValueError):
        late.start_at(None)
    flushed = MinuteBarAggregator(GRACE, now=None)
    flushed.add(tick(D))
    flushed.close_all()
    with pytest.raises(ValueError):
        flushed.start_at(None)


def test_earliest_tick_at_is_none_with_nothing_forming():
    agg = MinuteBarAggregator(GRACE, now=None)
    assert agg.earliest_tick_at() is None
    agg.add(tick(D + 70, symbol="MSFT"))
    agg.add(tick(D + 30))
    assert agg.earliest_tick_at() == D + 30


# --------------------------------------------------------------------------- replay == live


def live_bars(arrivals: list[tuple[float, Tick]], start: float) -> list[Bar]:
    """Live: each tick arrives at its arrival time; the wall clock closes bars at their deadline."""
    clock = ManualClock(start)
    agg = MinuteBarAggregator(GRACE, now=clock.now())
    bars: list[Bar] = []
    for arrive, t in arrivals:
        while (deadline := agg.next_deadline()) is not None and deadline <= arrive:
            clock.set(max(clock.now(), deadline))
            bars += agg.close_due(clock.now())
        clock.set(max(clock.now(), arrive))
        assert agg.add(t)
        bars += agg.close_due(clock.now())
    clock.advance(3600)
    return bars + agg.close_due(clock.now())


def replayed_bars(ticks: list[Tick], cuts: list[int]) -> tuple[list[Bar], float]:
    """Replay: the same ticks in the same order at any speed, read in batches cut at ``cuts``;
    event time closes bars, then the feed falls silent. Returns the bars and the replay's start."""
    wall = ManualClock(WALL)
    ev = EventTime(wall.now)
    agg = MinuteBarAggregator(GRACE, now=wall.now())
    agg.start_at(None)  # as the ingress does in event time
    bars: list[Bar] = []
    edges = [0, *sorted(set(c for c in cuts if 0 < c < len(ticks))), len(ticks)]
    for i, (a, b) in enumerate(zip(edges, edges[1:])):
        batch = ticks[a:b]
        for t in batch:
            assert agg.add(t)
        if i == 0:
            start = agg.earliest_tick_at() - GRACE
            agg.start_at(start)
        ev.observe(batch[-1].timestamp, wall.advance(0.001))
        bars += agg.close_due(ev.now())
    wall.advance(3600)  # the replay ended
    return bars + agg.close_due(ev.now()), start


@FUZZ
@given(
    steps=st.lists(st.tuples(st.integers(1, 4_000), st.sampled_from(["AAPL", "MSFT", "BRK.B"]),
                             st.integers(1, 500), st.integers(0, 1000), st.integers(0, 1_900)),
                   min_size=1, max_size=200),
    first=st.integers(0, 59_000),
    cuts=st.lists(st.integers(0, 120), max_size=20),
)
# A tick of the minute's last second reaching the service 1.5 s late, after one of the next minute:
# live it is on time (before the deadline); the replay must not close its minute early either.
@example(steps=[(1_300, "AAPL", 1, 1, 1_500), (1_000, "MSFT", 2, 1, 0), (500, "AAPL", 3, 1, 0)], first=59_800, cuts=[1])
def test_a_replay_at_any_batching_gives_the_bars_of_live(steps, first, cuts):
    """A recorded feed: ticks reach the service up to 1.9 s after their own time (less than grace),
    so out of time order around minute ends. Live (the wall clock closing bars, a session started
    as the replay's start rule says) and the replay of the same ticks in their arrival order, cut
    into reads anywhere, give identical bars, partial flags included, and no late tick."""
    arrivals, ts = [], D + first / 1000.0
    for step_ms, symbol, cents, volume, latency_ms in steps:
        arrivals.append((ts + latency_ms / 1000.0, tick(ts, 100 + cents / 100.0, volume, symbol)))
        ts += step_ms / 1000.0
    arrivals.sort(key=lambda a: a[0])  # the order they reached the service (and the recording)
    ticks = [t for _, t in arrivals]
    key = lambda b: (b.start, b.symbol)  # noqa: E731
    for reads in (cuts, range(len(ticks))):  # random reads, and one read per tick
        replay, start = replayed_bars(ticks, list(reads))
        live = live_bars(arrivals, start)
        assert sorted(live, key=key) == sorted(replay, key=key)
        assert sum(b.tick_count for b in replay) == len(ticks)
