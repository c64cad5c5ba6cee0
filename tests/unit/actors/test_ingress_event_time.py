"""TickIngressActor in event time (``session.clock: event``, a replay), driven step by step.

As in test_ingress.py: the actor is built but not started, the test plays the receive thread
(``_step``) and the actor thread (``on_receive``); the feed is scripted, the wall clock a fake, the
aggregator and the event time real. The ticks are of a past trading day, months before the wall
clock: live they would all be rejected as absurdly far from now.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from tickstock.actors.ingress import TickIngressActor
from tickstock.actors.plan import SessionPlan
from tickstock.actors.wiring import ProductionFactory
from tickstock.adapters.redis.feed import FeedDisconnected
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.clock import EventTime
from tickstock.config import ConfigError, Settings, load_settings
from tickstock.messages.bars import Bar
from tickstock.messages.commands import BarClosed, Drain, GetStats, PersistBars
from tickstock.messages.ticks import encode_tick

from .fakes import FakeClock, FakeFeed, Recorder

pytestmark = pytest.mark.timeout(10)

GRACE = 2.0
IDLE = 5.0
D = int(datetime(2025, 3, 12, 14, 30, tzinfo=timezone.utc).timestamp())  # a past day's open
WALL = D + 200 * 86_400  # the replay runs 200 days later


def tick(symbol: str, price: float, ts: float, volume: int = 100) -> bytes:
    return encode_tick(symbol, price, volume, ts)


class CountingEventTime(EventTime):
    """An EventTime that counts its observations (what the ingress adds per read)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.observed: list[float] = []

    def observe(self, tick_time: float, seen_at: float | None = None) -> None:
        self.observed.append(tick_time)
        super().observe(tick_time, seen_at)


def make(symbols=("AAPL", "MSFT"), start=WALL, max_skew=3600.0, event_time=None):
    clock = FakeClock(start)
    feed = FakeFeed()
    routes = {s: Recorder(s) for s in symbols}
    persistence = Recorder("persistence")
    supervisor = Recorder("supervisor")
    aggregator = MinuteBarAggregator(GRACE, now=clock())  # as the session builds it: the wall's now
    event_time = event_time or CountingEventTime(clock, IDLE)
    actor = TickIngressActor(supervisor, "sid", lambda: feed, routes, persistence, aggregator,
                             max_skew_seconds=max_skew, clock=clock, event_time=event_time)
    actor._feed = feed
    return SimpleNamespace(actor=actor, feed=feed, clock=clock, routes=routes, persistence=persistence,
                           supervisor=supervisor, aggregator=aggregator, event_time=event_time)


def step_at(env, t: float, *batches) -> None:
    """One receive-loop iteration at wall time ``t``, the feed delivering ``batches``."""
    env.clock.set(t)
    env.feed.script.extend(batches)
    env.actor._step()


def bars_to(recorder: Recorder) -> list[Bar]:
    return [m.bar for m in recorder.of_type(BarClosed)]


def stats(env):
    return env.actor.on_receive(GetStats())


# -- closing by event time -------------------------------------------------------------------------


def test_a_past_days_ticks_are_folded_where_the_wall_clock_would_reject_them():
    env = make()
    step_at(env, WALL + 0.1, [tick("AAPL", 100.0, D + 1), tick("MSFT", 300.0, D + 2)])
    s = stats(env)
    assert (s.folded, s.rejected, s.late, s.forming) == (2, {}, 0, 2)
    assert env.actor.clock_mode == "event" and s.event_time == D + 2
    live = TickIngressActor(Recorder(), "sid", lambda: env.feed, {"AAPL": Recorder()}, Recorder(),
                            MinuteBarAggregator(GRACE, now=WALL), clock=FakeClock(WALL))
    assert live.clock_mode == "wall"
    live._ingest([tick("AAPL", 100.0, D + 1)], WALL)
    assert live.rejected == {"bad_timestamp": 1}


def test_a_bar_closes_when_a_later_read_passes_its_end_plus_grace_with_wall_time_as_closed_at():
    env = make()
    step_at(env, WALL + 0.1, [tick("AAPL", 100.0, D + 0.5), tick("AAPL", 101.0, D + 50)])  # from the open
    step_at(env, WALL + 0.2, [tick("MSFT", 300.0, D + 61.9)])
    assert env.routes["AAPL"].messages == []  # the minute is over, its grace is not
    step_at(env, WALL + 0.3, [tick("MSFT", 301.0, D + 62.0)])
    [closed] = env.routes["AAPL"].messages
    assert (closed.bar.start, closed.bar.open, closed.bar.close, closed.bar.partial) == (D, 100.0, 101.0, False)
    assert closed.closed_at == WALL + 0.3  # when the service closed it: the wall clock
    [batch] = env.persistence.of_type(PersistBars)
    assert [b.symbol for b in batch.bars] == ["AAPL"]


def test_the_wall_clock_alone_closes_nothing_while_the_replay_is_slower_than_idle():
    env = make()
    step_at(env, WALL, [tick("AAPL", 100.0, D + 30)])
    for k in range(1, 40):  # hours of wall time pass, reads every 4 s (under the idle threshold)
        step_at(env, WALL + 4 * k, [tick("AAPL", 100.0, D + 30 + k * 0.5)])
    assert env.routes["AAPL"].messages == [] and stats(env).forming == 1


def test_one_read_spanning_minutes_closes_each_in_order_with_every_one_of_its_ticks():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0 + s, D + s) for s in range(0, 240, 4)])
    bars = bars_to(env.routes["AAPL"])
    assert [(b.start, b.tick_count) for b in bars] == [(D, 15), (D + 60, 15), (D + 120, 15)]
    assert stats(env).late == 0 and stats(env).forming == 1


def test_a_tick_is_late_when_an_earlier_read_passed_its_minutes_end_plus_grace():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + 10)])
    step_at(env, WALL + 0.01, [tick("AAPL", 101.0, D + 62.5)])
    step_at(env, WALL + 0.02, [tick("AAPL", 999.0, D + 59.0), tick("AAPL", 102.0, D + 63)])
    assert stats(env).late == 1
    step_at(env, WALL + 0.03, [tick("AAPL", 103.0, D + 125)])
    assert [(b.start, b.high) for b in bars_to(env.routes["AAPL"])] == [(D, 100.0), (D + 60, 102.0)]


def test_ticks_within_grace_of_the_latest_in_a_later_read_are_on_time():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + 10), tick("AAPL", 101.0, D + 61.0)])
    step_at(env, WALL + 0.01, [tick("AAPL", 99.0, D + 59.9)])  # 1.1 s behind the latest: not late
    step_at(env, WALL + 0.02, [tick("AAPL", 102.0, D + 62.0)])
    [bar] = bars_to(env.routes["AAPL"])
    assert (bar.close, bar.low, bar.tick_count) == (99.0, 99.0, 2) and stats(env).late == 0


def test_event_time_is_fed_once_per_read_with_the_reads_last_decoded_tick():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + s / 100) for s in range(500)] + [b"not json"])
    assert env.event_time.observed == [D + 4.99]  # one observation for 501 payloads
    step_at(env, WALL + 0.1, [b"junk"])  # nothing decoded: nothing observed
    assert env.event_time.observed == [D + 4.99]


def test_out_of_order_within_a_read_holds_event_time_back_it_never_closes_early():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + 10), tick("AAPL", 101.0, D + 65), tick("AAPL", 102.0, D + 40)])
    assert stats(env).event_time == D + 40 and env.routes["AAPL"].messages == []
    step_at(env, WALL + 0.01, [tick("AAPL", 103.0, D + 66)])
    assert [b.tick_count for b in bars_to(env.routes["AAPL"])] == [2]


# -- the end of a replay: silence, Drain -----------------------------------------------------------


def test_silence_past_idle_closes_the_last_minute_complete():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + 0.5), tick("AAPL", 101.0, D + 59.6)])
    step_at(env, WALL + IDLE - 0.1)  # a publisher's hiccup: nothing moves
    assert env.routes["AAPL"].messages == []
    step_at(env, WALL + IDLE)  # the replay ended: event time D+64.6 passed D+62
    [closed] = env.routes["AAPL"].messages
    assert closed.bar.partial is False and closed.bar.tick_count == 2 and closed.closed_at == WALL + IDLE


def test_drain_at_event_time_cuts_an_unfinished_minute_partial_and_keeps_a_finished_one():
    env = make()
    step_at(env, WALL, [tick("AAPL", 100.0, D + 1), tick("MSFT", 300.0, D + 60.5)])  # AAPL's minute over
    env.clock.set(WALL + 1.0)
    s = env.actor.on_receive(Drain(timeout=2))
    [aapl] = env.routes["AAPL"].messages
    [msft] = env.routes["MSFT"].messages
    assert (aapl.bar.start, aapl.bar.partial) == (D, False)
    assert (msft.bar.start, msft.bar.partial) == (D + 60, True)  # stopped at D+60.5 of it
    assert aapl.closed_at == WALL + 1.0 and s.forming == 0 and s.bars_closed == 2


def test_drain_after_the_idle_silence_finds_the_last_minute_complete():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + 1), tick("AAPL", 100.0, D + 58)])
    env.clock.set(WALL + 30)  # stopped long after the replay ended: event time D+88
    env.actor.on_receive(Drain(timeout=2))
    [closed] = env.routes["AAPL"].messages
    assert closed.bar.partial is False


def test_drain_with_no_tick_ever_delivers_nothing():
    env = make()
    env.clock.set(WALL + 100)
    s = env.actor.on_receive(Drain(timeout=2))
    assert s.bars_closed == 0 and s.event_time is None and env.persistence.messages == []


# -- the replay's start, lag, skew -----------------------------------------------------------------


@pytest.mark.parametrize("first, partial", [(0.3, False), (GRACE, False), (15.0, True)])
def test_the_first_minute_is_partial_only_when_the_replay_starts_past_its_first_grace_seconds(first, partial):
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + first + 1), tick("AAPL", 100.0, D + first)])
    step_at(env, WALL + 0.01, [tick("AAPL", 100.0, D + 62.5)])
    [bar] = bars_to(env.routes["AAPL"])
    assert bar.partial is partial and env.aggregator.started_at == D + first - GRACE


def test_the_processing_lag_is_not_measured_in_event_time():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + 1)] * 10)
    s = stats(env)
    assert (s.lag_sum, s.lag_count) == (0.0, 0)  # 200 days of "lag" would be nonsense in health
    assert s.last_tick_at == WALL and s.last_seen == {"AAPL": WALL}  # health's figures: wall clock


def test_a_read_ending_in_the_wall_clocks_future_does_not_move_event_time():
    env = make(symbols=("AAPL",), max_skew=3600.0)
    step_at(env, WALL, [tick("AAPL", 100.0, D + 10)])
    step_at(env, WALL + 0.1, [tick("AAPL", 100.0, D + 20), tick("AAPL", 100.0, WALL + 7200)])
    s = stats(env)
    assert s.event_time == D + 10 and s.event_time_refused == 1
    assert env.routes["AAPL"].messages == []  # nothing closed by the absurd tick
    step_at(env, WALL + 0.2, [tick("AAPL", 100.0, D + 62)])
    [bar] = bars_to(env.routes["AAPL"])
    assert bar.start == D and bar.tick_count == 2


# -- a lost subscription in event time ---------------------------------------------------------------


def test_a_gap_is_placed_in_event_time_and_silence_while_lost_closes_nothing():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + 10)])
    step_at(env, WALL + 0.1, FeedDisconnected("server closed the connection", reason="output_buffer_limit"))
    env.feed.connect_errors.append(FeedDisconnected("connection refused"))
    step_at(env, WALL + 30)  # lost for 30 s: longer than idle, yet nothing closes
    assert env.routes["AAPL"].messages == []
    step_at(env, WALL + 31)  # re-subscribed
    assert env.routes["AAPL"].messages == [] and stats(env).feed_gaps == 1
    step_at(env, WALL + 60)  # silent after re-subscribing, the gap's end not known yet: still nothing
    assert env.routes["AAPL"].messages == []
    step_at(env, WALL + 60.1, [tick("AAPL", 101.0, D + 70)])  # the replay went on meanwhile
    step_at(env, WALL + 60.2, [tick("AAPL", 102.0, D + 190)])
    bars = bars_to(env.routes["AAPL"])
    assert [(b.start, b.partial) for b in bars] == [(D, True), (D + 60, True)]  # both inside [D+10, D+70]
    step_at(env, WALL + 60.3, [tick("AAPL", 103.0, D + 250)])
    assert [(b.start, b.partial) for b in bars_to(env.routes["AAPL"])][-1] == (D + 180, False)


def test_drain_right_after_a_gap_marks_the_minute_it_started_in_partial():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + 10)])
    step_at(env, WALL + 0.1, FeedDisconnected("server closed the connection"))
    step_at(env, WALL + 0.2)  # re-subscribed, then stopped before any tick
    env.clock.set(WALL + 100)
    env.actor.on_receive(Drain(timeout=2))
    [bar] = bars_to(env.routes["AAPL"])
    assert bar.partial is True


# -- one event time per session; the configuration ---------------------------------------------------


def test_a_restarted_ingress_keeps_the_sessions_event_time_and_does_not_move_the_start():
    env = make(symbols=("AAPL",))
    step_at(env, WALL, [tick("AAPL", 100.0, D + 10)])
    again = TickIngressActor(env.supervisor, "sid", lambda: env.feed, env.routes, env.persistence,
                             env.aggregator, clock=env.clock, event_time=env.event_time)
    again._feed = env.feed
    assert env.aggregator.started_at == D + 10 - GRACE  # not reset by the new incarnation
    env.clock.set(WALL + 0.1)
    env.feed.script.append([tick("AAPL", 101.0, D + 63)])
    again._step()
    assert [b.start for b in bars_to(env.routes["AAPL"])] == [D]


def plan(settings: Settings) -> SessionPlan:
    return SessionPlan("test:tiny", ("AAPL",), settings)


@pytest.mark.parametrize("mode", ["wall", "event"])
def test_the_factory_builds_the_ingress_with_the_configured_clock(mode):
    settings = Settings().replace(session=Settings().session.replace(clock=mode))
    factory = ProductionFactory(settings)
    aggregator = MinuteBarAggregator(GRACE, now=WALL)
    ref = factory.ingress(None, plan(settings), {}, Recorder(), aggregator)
    try:
        assert ref.proxy().clock_mode.get(timeout=2) == mode
    finally:
        ref.stop()
    if mode == "event":
        assert factory.event_time(aggregator) is factory.event_time(aggregator)  # shared by a restart
        assert factory.event_time(MinuteBarAggregator(GRACE)) is not factory.event_time(aggregator)
        assert aggregator.open_from == 0  # the replay's start comes with its ticks
    else:
        assert factory.event_time(aggregator) is None


def test_session_clock_defaults_to_wall_and_is_validated(tmp_path):
    assert Settings().session.clock == "wall"
    assert load_settings(environ={}).session.clock == "wall"
    assert load_settings(environ={"TICKSTOCK_SESSION_CLOCK": "event"}).session.clock == "event"
    path = tmp_path / "c.yaml"
    path.write_text("session:\n  clock: replay\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert err.value.key == "session.clock" and "wall, event" in str(err.value)
