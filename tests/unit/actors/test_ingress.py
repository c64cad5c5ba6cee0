"""TickIngressActor: decoding, folding and clock-driven closing, driven step by step.

The actor is built but not started; the test plays the receive thread by calling ``_step`` (one
loop iteration) and plays the actor thread by calling ``on_receive``. The feed is scripted, the
clock is a fake, routes/persistence/supervisor are recording mailboxes, and the aggregator is real.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tickstock.actors.ingress import TickIngressActor
from tickstock.adapters.redis.feed import FeedDisconnected
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.messages.bars import Bar
from tickstock.actors.ingress import IngressStats
from tickstock.messages.commands import (
    BarClosed, BarsClosed, ChildFailed, ChildReport, Drain, GetStats, Open, PersistBars, Quarantine, RouteSymbol,
    SymbolDiscovered,
)
from tickstock.messages.ticks import encode_tick

from .fakes import M, FakeClock, FakeFeed, Recorder, wait_until

pytestmark = pytest.mark.timeout(10)


def tick(symbol: str, price: float, ts: float, volume: int = 100) -> bytes:
    return encode_tick(symbol, price, volume, ts)


def make(symbols=("AAPL", "MSFT"), accept_new_symbols=False, start=M + 5, grace=2.0, script=(), connected=True,
         report_interval=1.0, analysis=None):
    clock = FakeClock(start)
    feed = FakeFeed(script, connected=connected)
    routes = {s: Recorder(s) for s in symbols}
    persistence = Recorder("persistence")
    supervisor = Recorder("supervisor")
    aggregator = MinuteBarAggregator(grace, now=clock())
    actor = TickIngressActor(
        supervisor, "sid", lambda: feed, routes, persistence, aggregator,
        accept_new_symbols=accept_new_symbols, clock=clock, report_interval=report_interval, analysis=analysis,
    )
    actor._feed = feed  # what open() does, without starting the receive thread
    return SimpleNamespace(actor=actor, feed=feed, clock=clock, routes=routes, persistence=persistence,
                           supervisor=supervisor, aggregator=aggregator)


def step_at(env, t: float, *batches) -> None:
    """Run one receive-loop iteration at clock ``t``, the feed delivering ``batches``."""
    env.clock.set(t)
    env.feed.script.extend(batches)
    env.actor._step()


def bars_to(recorder: Recorder) -> list[Bar]:
    return [m.bar for m in recorder.of_type(BarClosed)]


def ohlcv(bar: Bar) -> tuple:
    return (bar.symbol, bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.tick_count)


def told(recorder: Recorder) -> list:
    """What was told to the supervisor, the periodic ``ChildReport`` aside."""
    return [m for m in recorder.messages if not isinstance(m, ChildReport)]


# -- folding and closing by the clock ----------------------------------------------------------


def test_bar_closes_by_the_clock_with_no_further_tick_and_is_delivered_once():
    env = make()
    step_at(env, M + 31, [tick("AAPL", 100.0, M + 10, 10), tick("AAPL", 101.0, M + 20, 5),
                          tick("AAPL", 99.5, M + 30, 1), tick("MSFT", 300.0, M + 15, 7)])
    assert env.actor.aggregator.forming_count() == 2
    step_at(env, M + 61.9)  # the minute has ended but grace (2 s) has not passed
    assert env.routes["AAPL"].messages == [] and env.persistence.messages == []

    step_at(env, M + 62.0)  # deadline M+60+2 reached: closes without any new tick
    [aapl] = env.routes["AAPL"].messages
    assert aapl.closed_at == M + 62.0
    assert ohlcv(aapl.bar) == ("AAPL", M, 100.0, 101.0, 99.5, 99.5, 16, 3)
    [msft] = env.routes["MSFT"].messages
    assert ohlcv(msft.bar) == ("MSFT", M, 300.0, 300.0, 300.0, 300.0, 7, 1)
    [batch] = env.persistence.messages
    assert isinstance(batch, PersistBars)
    assert sorted(b.symbol for b in batch.bars) == ["AAPL", "MSFT"]
    assert set(batch.bars) == {aapl.bar, msft.bar}

    step_at(env, M + 90)  # nothing forming: nothing more is delivered
    assert len(env.routes["AAPL"].messages) == 1 and len(env.persistence.messages) == 1
    stats = env.actor.on_receive(GetStats())
    assert stats.bars_closed == 2 and stats.forming == 0


def test_each_minute_closes_in_order_and_only_its_own_bars():
    env = make(symbols=("AAPL",))
    step_at(env, M + 50, [tick("AAPL", 10.0, M + 40)])
    step_at(env, M + 61, [tick("AAPL", 11.0, M + 60.5)])  # next minute, before M's deadline
    assert env.routes["AAPL"].messages == []
    step_at(env, M + 62.5)
    assert [b.start for b in bars_to(env.routes["AAPL"])] == [M]
    step_at(env, M + 122.0)
    assert [b.start for b in bars_to(env.routes["AAPL"])] == [M, M + 60]
    assert [len(m.bars) for m in env.persistence.messages] == [1, 1]


# -- bad input -----------------------------------------------------------------------------------


def test_malformed_payloads_are_counted_per_reason_and_skipped():
    env = make(symbols=("AAPL",))
    batch = [
        tick("AAPL", 100.0, M + 10),
        b"not json at all",
        b'{"symbol": "AAPL", "price": 1.0, "volume": 1}',          # no timestamp
        tick("AAPL", -1.0, M + 11),                                 # bad price
        tick("aapl", 100.0, M + 12),                                # lower-case ticker
        tick("AAPL", 100.0, M + 13, volume=-5),                     # negative volume
        tick("AAPL", 100.0, M - 10 * 3600),                          # 10 h away: absurd timestamp
        b'{"symbol": "AAPL", "price": "x", "volume": 1, "timestamp": 1}',
        tick("AAPL", 102.0, M + 20),
    ]
    step_at(env, M + 21, batch)
    stats = env.actor.on_receive(GetStats())
    assert stats.rejected == {"malformed_json": 1, "missing_field": 1, "bad_price": 1, "bad_symbol": 1,
                              "bad_volume": 1, "bad_timestamp": 1, "wrong_type": 1}
    assert stats.received == len(batch)
    assert stats.folded == 2
    step_at(env, M + 62)
    [bar] = bars_to(env.routes["AAPL"])
    assert (bar.open, bar.close, bar.tick_count) == (100.0, 102.0, 2)


def test_ticks_for_unknown_symbols_are_counted_and_ignored_without_dynamic_symbols():
    env = make(symbols=("AAPL",), accept_new_symbols=False)
    step_at(env, M + 20, [tick("TSLA", 200.0, M + 10), tick("AAPL", 100.0, M + 11), tick("TSLA", 201.0, M + 12)])
    stats = env.actor.on_receive(GetStats())
    assert stats.unknown_symbols == 2
    assert stats.folded == 1 and stats.forming == 1
    assert "TSLA" not in stats.last_seen
    assert told(env.supervisor) == []
    step_at(env, M + 62)
    [batch] = env.persistence.of_type(PersistBars)
    assert [b.symbol for b in batch.bars] == ["AAPL"]


def test_new_symbol_is_announced_once_and_its_bar_held_until_routed():
    env = make(symbols=("AAPL",), accept_new_symbols=True)
    step_at(env, M + 20, [tick("NVDA", 500.0, M + 10), tick("AAPL", 100.0, M + 11), tick("NVDA", 501.0, M + 12)])
    step_at(env, M + 30, [tick("NVDA", 502.0, M + 25)])
    assert told(env.supervisor) == [SymbolDiscovered("NVDA")]
    assert env.actor.on_receive(GetStats()).unknown_symbols == 0

    step_at(env, M + 62)
    assert [b.symbol for b in bars_to(env.routes["AAPL"])] == ["AAPL"]
    [batch] = env.persistence.of_type(PersistBars)
    assert sorted(b.symbol for b in batch.bars) == ["AAPL", "NVDA"]  # persisted even though held

    nvda = Recorder("NVDA")
    env.clock.set(M + 63)
    env.actor.on_receive(RouteSymbol("NVDA", nvda))  # the session started its actor
    [held] = nvda.messages
    assert ohlcv(held.bar) == ("NVDA", M, 500.0, 502.0, 500.0, 502.0, 300, 3)

    step_at(env, M + 70, [tick("NVDA", 510.0, M + 65)])
    step_at(env, M + 122)
    assert [b.start for b in bars_to(nvda)] == [M, M + 60]  # later bars go straight to the route
    assert told(env.supervisor) == [SymbolDiscovered("NVDA")]


# -- lateness ------------------------------------------------------------------------------------


def test_late_tick_for_a_closed_minute_is_counted_not_delivered():
    env = make(symbols=("AAPL",))
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 10)])
    step_at(env, M + 62)
    assert len(env.routes["AAPL"].messages) == 1
    step_at(env, M + 63, [tick("AAPL", 999.0, M + 59), tick("AAPL", 101.0, M + 62.5)])
    stats = env.actor.on_receive(GetStats())
    assert stats.late == 1
    assert stats.folded == 2  # the first tick and the one of the open minute
    step_at(env, M + 122)
    bars = bars_to(env.routes["AAPL"])
    assert [(b.start, b.high) for b in bars] == [(M, 100.0), (M + 60, 101.0)]  # 999 never merged


def test_tick_read_by_the_drain_before_a_close_is_not_late():
    env = make(symbols=("AAPL",))
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 10)])
    # The deadline has passed; the blocking read finds nothing, the drain read before the close
    # finds a tick that reached the socket before the deadline.
    step_at(env, M + 63, [], [tick("AAPL", 105.0, M + 59.9)])
    assert env.feed.read_calls[-2:] == [0.0, 0.0]
    [message] = env.routes["AAPL"].messages
    assert (message.bar.close, message.bar.high, message.bar.tick_count) == (105.0, 105.0, 2)
    assert env.actor.on_receive(GetStats()).late == 0


def test_tick_read_while_the_deadline_passes_is_folded_before_the_close():
    env = make(symbols=("AAPL",))
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 10)])

    def arrives_while_waiting():
        env.clock.set(M + 62.1)  # the deadline passes while the read is blocked
        return [tick("AAPL", 99.0, M + 61.8)]  # a tick of minute M+60, and one of M
    first_read = len(env.feed.read_calls)
    step_at(env, M + 61.9, lambda: arrives_while_waiting() + [tick("AAPL", 98.0, M + 59.95)])
    assert env.feed.read_calls[first_read] == pytest.approx(0.1)  # blocked at most until the deadline
    [message] = env.routes["AAPL"].messages
    assert message.closed_at == M + 62.1
    assert (message.bar.start, message.bar.low, message.bar.tick_count) == (M, 98.0, 2)
    stats = env.actor.on_receive(GetStats())
    assert stats.late == 0 and stats.forming == 1


def test_a_bar_due_by_the_end_of_the_read_that_folded_it_is_delivered_not_dropped():
    """Nothing forming before the read (no deadline), and the tick's minute is due by the time the
    read returns: the close after the read delivers its bar (it used to be closed and dropped)."""
    env = make(symbols=("AAPL",))
    step_at(env, M + 20)  # quiet: nothing forming, the watermark moves to M's start

    def arrives_while_waiting():
        env.clock.set(M + 62.1)  # the deadline of M passes while the read is blocked
        return [tick("AAPL", 100.0, M + 59.5)]
    step_at(env, M + 61.0, arrives_while_waiting)
    [message] = env.routes["AAPL"].messages
    assert (message.bar.start, message.bar.tick_count, message.closed_at) == (M, 1, M + 62.1)
    [batch] = env.persistence.of_type(PersistBars)
    assert batch.bars == (message.bar,)
    stats = env.actor.on_receive(GetStats())
    assert stats.folded == 1 and stats.bars_closed == 1 and stats.forming == 0


def test_tick_whose_minute_closed_by_the_clock_while_idle_is_late():
    env = make(symbols=("AAPL",))
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 10)])
    step_at(env, M + 62)
    for t in (M + 130, M + 190, M + 200):  # feed silent: minute M+60 ends (deadline M+122)
        step_at(env, t)
    step_at(env, M + 200.5, [tick("AAPL", 101.0, M + 70)])  # minute M+60, 78 s after its deadline
    step_at(env, M + 201)
    stats = env.actor.on_receive(GetStats())
    assert stats.late == 1
    assert [b.start for b in bars_to(env.routes["AAPL"])] == [M]


# -- Drain, stats, feed loss --------------------------------------------------------------------


def test_drain_closes_forming_bars_and_delivers_them():
    env = make()
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 10), tick("MSFT", 300.0, M + 15)])
    env.clock.set(M + 25)
    stats = env.actor.on_receive(Drain(timeout=2))
    [aapl] = env.routes["AAPL"].messages
    [msft] = env.routes["MSFT"].messages
    assert aapl.closed_at == M + 25 and aapl.bar.start == M and msft.bar.start == M
    [batch] = env.persistence.of_type(PersistBars)
    assert set(batch.bars) == {aapl.bar, msft.bar}
    assert stats.bars_closed == 2 and stats.forming == 0 and stats.folded == 2
    assert env.feed.close_calls >= 1 and stats.redis_connected is False
    # The drained minute is closed: a straggler afterwards is late, not a second bar.
    env.actor._ingest([tick("AAPL", 101.0, M + 24)], M + 26)
    assert env.actor.on_receive(GetStats()).late == 1
    assert env.actor.aggregator.forming_count() == 0


def test_drain_with_nothing_forming_tells_nothing():
    env = make()
    stats = env.actor.on_receive(Drain())
    assert stats.bars_closed == 0
    assert env.persistence.messages == [] and all(r.messages == [] for r in env.routes.values())


def test_get_stats_snapshot():
    env = make()
    env.clock.set(M + 10.5)
    env.actor._ingest([tick("AAPL", 100.0, M + 10), tick("AAPL", 100.5, M + 10.25),
                       tick("MSFT", 300.0, M + 9.5), b"{bad"], env.clock())
    env.clock.set(M + 12)
    env.actor._ingest([tick("MSFT", 301.0, M + 11)], env.clock())
    stats = env.actor.on_receive(GetStats())
    assert stats.received == 5
    assert stats.folded == 4
    assert stats.late == 0
    assert stats.rejected == {"malformed_json": 1}
    assert stats.lag_count == 4
    assert stats.lag_sum == pytest.approx(0.5 + 0.25 + 1.0 + 1.0)
    assert stats.last_seen == {"AAPL": M + 10.5, "MSFT": M + 12}
    assert stats.last_tick_at == M + 12
    assert stats.forming == 2 and stats.bars_closed == 0
    assert stats.redis_connected is True and stats.reconnects == 0
    stats.last_seen["AAPL"] = 0  # a snapshot: mutating it does not touch the actor
    assert env.actor.on_receive(GetStats()).last_seen["AAPL"] == M + 10.5


def test_lost_feed_is_reconnected_while_bars_keep_closing_by_the_clock():
    env = make(symbols=("AAPL",))
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 10)])
    step_at(env, M + 30, FeedDisconnected("server closed the connection"))
    assert env.feed.connected is False
    env.feed.connect_errors.append(FeedDisconnected("connection refused"))

    step_at(env, M + 62.5)  # reconnect fails; the bar still closes by the clock
    assert env.feed.connect_calls == 1 and env.feed.connected is False
    [closed] = env.routes["AAPL"].messages
    assert closed.bar.start == M and closed.closed_at == M + 62.5
    assert len(env.persistence.of_type(PersistBars)) == 1

    step_at(env, M + 62.6)  # inside the back-off: no new attempt
    assert env.feed.connect_calls == 1

    step_at(env, M + 64)  # back-off over: connect is called again and succeeds
    assert env.feed.connect_calls == 2 and env.feed.connected is True
    step_at(env, M + 70, [tick("AAPL", 101.0, M + 69)])
    stats = env.actor.on_receive(GetStats())
    assert stats.reconnects == 1 and stats.redis_connected is True
    assert stats.folded == 2 and stats.forming == 1


# -- the started actor (real receive thread, fake feed and clock) -------------------------------


def start_ingress(env_kwargs=None, **feed_kwargs):
    env = make(connected=False, **(env_kwargs or {}))
    env.feed.idle_sleep = 0.005
    env.feed.script.extend(feed_kwargs.get("script", ()))
    ref = TickIngressActor.start(
        env.supervisor, "sid", lambda: env.feed, env.routes, env.persistence, env.aggregator,
        clock=env.clock,
    )
    return env, ref


def test_started_ingress_opens_the_feed_folds_on_its_thread_and_drains():
    env, ref = start_ingress(script=[[tick("AAPL", 100.0, M + 4), tick("MSFT", 300.0, M + 3)]])
    assert ref.ask(Open(), timeout=2) is True
    assert env.feed.connect_calls == 1
    assert wait_until(lambda: ref.ask(GetStats(), timeout=2).folded == 2)
    stats = ref.ask(Drain(timeout=2), timeout=5)
    assert stats.bars_closed == 2
    assert [b.symbol for b in bars_to(env.routes["AAPL"])] == ["AAPL"]
    assert env.feed.close_calls >= 1
    ref.stop()


def test_open_raises_when_the_feed_refuses():
    env, ref = start_ingress()
    env.feed.connect_errors.append(FeedDisconnected("AUTH refused"))
    with pytest.raises(FeedDisconnected):
        ref.ask(Open(), timeout=2)
    assert ref.ask(GetStats(), timeout=2).redis_connected is False


def test_receive_loop_crash_is_reported_to_the_supervisor():
    env, ref = start_ingress(script=[RuntimeError("decoder exploded")])
    ref.ask(Open(), timeout=2)
    assert wait_until(lambda: env.supervisor.of_type(ChildFailed))
    [failed] = env.supervisor.of_type(ChildFailed)
    assert failed.child == "ingress" and "decoder exploded" in failed.error
    assert ref.is_alive()  # the actor itself lives on until the session restarts it
    ref.stop()


# -- reports to the supervisor --------------------------------------------------------------------


def test_counters_are_pushed_every_report_interval_from_the_receive_loop():
    env = make(symbols=("AAPL",), report_interval=5.0)
    step_at(env, M + 10, [tick("AAPL", 100.0, M + 9)] * 500)  # one report, however many ticks
    [first] = env.supervisor.of_type(ChildReport)
    assert first.child == "ingress" and isinstance(first.stats, IngressStats)
    assert first.stats.received == 0  # made at the start of the loop iteration
    for t in (M + 11, M + 12, M + 14.9):
        step_at(env, t, [tick("AAPL", 100.0, t - 1)])
    assert len(env.supervisor.of_type(ChildReport)) == 1
    step_at(env, M + 15)
    reports = env.supervisor.of_type(ChildReport)
    assert len(reports) == 2 and reports[1].stats.received == 503 and reports[1].stats.folded == 503


def test_the_running_receive_thread_reports_with_the_incarnation():
    env, ref = start_ingress()
    ref.ask(Open(incarnation=4), timeout=2)
    assert wait_until(lambda: env.supervisor.of_type(ChildReport))
    env.feed.script.append([tick("AAPL", 100.0, M + 4)])
    assert wait_until(lambda: ref.ask(GetStats(), timeout=2).folded == 1)
    env.clock.advance(1.0)  # one report_interval later on the actor's clock
    assert wait_until(lambda: any(r.stats.folded == 1 for r in env.supervisor.of_type(ChildReport)))
    assert all(r.incarnation == 4 for r in env.supervisor.of_type(ChildReport))
    ref.stop()


# -- a lost subscription: the gap, the disconnected time -----------------------------------------------


def record_gaps(aggregator) -> list:
    calls: list = []
    mark_gap = aggregator.mark_gap

    def recording(since, until):
        calls.append((since, until))
        mark_gap(since, until)
    aggregator.mark_gap = recording
    return calls


def test_a_resubscription_marks_the_gap_and_counts_the_time_disconnected():
    env = make(symbols=("AAPL",))
    gaps = record_gaps(env.aggregator)
    step_at(env, M + 65, [tick("AAPL", 100.0, M + 64)])  # the subscription last delivered at M+65
    step_at(env, M + 70, FeedDisconnected("connection lost: reset by peer"))
    stats = env.actor.on_receive(GetStats())
    assert stats.disconnected_since == M + 70 and stats.redis_connected is False
    env.feed.connect_errors.append(FeedDisconnected("connection refused"))
    step_at(env, M + 71)  # the first attempt fails: still disconnected since M+70
    assert env.actor.on_receive(GetStats()).disconnected_since == M + 70 and gaps == []
    step_at(env, M + 73)  # re-subscribed
    assert gaps == [(M + 65, M + 73)]
    stats = env.actor.on_receive(GetStats())
    assert stats.disconnected_since is None and stats.disconnected_seconds == pytest.approx(3.0)
    assert stats.reconnects == 1 and stats.redis_connected is True

    step_at(env, M + 100, [tick("AAPL", 101.0, M + 99)])
    step_at(env, M + 122)  # minute M+60 had a gap: partial
    step_at(env, M + 150, [tick("AAPL", 102.0, M + 149)])
    step_at(env, M + 182)  # minute M+120 did not
    assert [(b.start, b.partial) for b in bars_to(env.routes["AAPL"])] == [(M + 60, True), (M + 120, False)]


def test_disconnected_seconds_add_up_over_several_losses():
    env = make(symbols=("AAPL",))
    for lost, back in ((M + 10, M + 12), (M + 20, M + 25)):
        step_at(env, lost, FeedDisconnected("server closed the connection"))
        step_at(env, back)
    stats = env.actor.on_receive(GetStats())
    assert stats.reconnects == 2 and stats.disconnected_seconds == pytest.approx(7.0)


def test_an_aggregator_without_mark_gap_is_fine():
    class OldAggregator(MinuteBarAggregator):
        mark_gap = None

    env = make(symbols=("AAPL",))
    env.actor.aggregator = OldAggregator(2.0, now=M + 5)
    step_at(env, M + 10, FeedDisconnected("server closed the connection"))
    step_at(env, M + 11)
    assert env.actor.on_receive(GetStats()).reconnects == 1


# -- the close analysis ------------------------------------------------------------------------------


class Ordered(Recorder):
    """A mocked mailbox that also writes its name into a list shared with others (the order told)."""

    def __init__(self, name: str, order: list) -> None:
        super().__init__(name)
        self.order = order

    def tell(self, message) -> None:
        self.order.append(self.name)
        super().tell(message)


def test_the_close_analysis_is_told_every_close_s_bars_in_one_message_first_quarantined_ones_excepted():
    order: list[str] = []
    analysis = Ordered("analysis", order)
    env = make(accept_new_symbols=True, analysis=analysis)
    env.routes = {s: Ordered(s, order) for s in env.routes}
    env.actor.routes = dict(env.routes)
    env.actor.on_receive(Quarantine("AAPL"))
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 10), tick("MSFT", 300.0, M + 11), tick("NVDA", 50.0, M + 12)])
    step_at(env, M + 62)
    [closed] = analysis.of_type(BarsClosed)
    # NVDA's actor is still being started (its bar is held for it), yet the analysis has it at once
    assert sorted(b.symbol for b in closed.bars) == ["MSFT", "NVDA"] and closed.closed_at == M + 62
    assert set(closed.bars) <= set(env.persistence.of_type(PersistBars)[0].bars)
    assert order == ["analysis", "MSFT"]
    step_at(env, M + 70, [tick("MSFT", 301.0, M + 69)])
    step_at(env, M + 122)
    assert [[b.start for b in m.bars] for m in analysis.of_type(BarsClosed)] == [[M, M], [M + 60]]


# -- quarantine --------------------------------------------------------------------------------------


def test_a_quarantined_symbol_is_stored_and_counted_but_not_routed():
    env = make(accept_new_symbols=True)
    env.actor.on_receive(Quarantine("AAPL"))
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 10), tick("MSFT", 300.0, M + 11), tick("AAPL", 101.0, M + 12)])
    step_at(env, M + 62)
    assert env.routes["AAPL"].messages == []
    assert [b.symbol for b in bars_to(env.routes["MSFT"])] == ["MSFT"]
    [batch] = env.persistence.of_type(PersistBars)
    assert sorted(b.symbol for b in batch.bars) == ["AAPL", "MSFT"]  # still stored
    assert told(env.supervisor) == []  # not "discovered" again
    stats = env.actor.on_receive(GetStats())
    assert stats.quarantined == {"AAPL": 1} and stats.quarantined_ticks == {"AAPL": 2}
    assert stats.unknown_symbols == 0


def test_bars_held_for_a_symbol_being_started_count_when_it_is_quarantined():
    env = make(symbols=(), accept_new_symbols=True)
    step_at(env, M + 20, [tick("NVDA", 500.0, M + 10)])
    step_at(env, M + 62)  # held: its actor is being started
    env.actor.on_receive(Quarantine("NVDA"))  # ... and failed past its budget
    stats = env.actor.on_receive(GetStats())
    assert stats.quarantined == {"NVDA": 1}
    assert env.actor._pending == {}  # nothing left to hand to a route


def test_routing_a_quarantined_symbol_again_lifts_the_quarantine():
    env = make(symbols=("AAPL",))
    env.actor.on_receive(Quarantine("AAPL"))
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 10)])
    step_at(env, M + 62)
    fresh = Recorder("AAPL-2")
    env.actor.on_receive(RouteSymbol("AAPL", fresh))
    step_at(env, M + 70, [tick("AAPL", 101.0, M + 69)])
    step_at(env, M + 122)
    assert [b.start for b in bars_to(fresh)] == [M + 60]
    stats = env.actor.on_receive(GetStats())
    assert stats.quarantined == {} and stats.quarantined_ticks == {}


def test_quarantine_reaches_the_running_receive_thread():
    env, ref = start_ingress()
    ref.ask(Open(), timeout=2)
    ref.tell(Quarantine("AAPL"))
    env.feed.script.append([tick("AAPL", 100.0, M + 4), tick("MSFT", 300.0, M + 3)])
    assert wait_until(lambda: ref.ask(GetStats(), timeout=2).quarantined_ticks == {"AAPL": 1})
    stats = ref.ask(Drain(timeout=2), timeout=5)
    assert stats.quarantined == {"AAPL": 1}
    assert env.routes["AAPL"].messages == [] and len(bars_to(env.routes["MSFT"])) == 1
    [batch] = env.persistence.of_type(PersistBars)
    assert sorted(b.symbol for b in batch.bars) == ["AAPL", "MSFT"]
    ref.stop()


# -- gaps: why the subscription went, how long, how many ticks (an estimate) ---------------------------

from tickstock.actors.ingress import FeedGap  # noqa: E402
from tickstock.adapters.redis.disconnects import DisconnectCause  # noqa: E402

SLOW_WORDS = "dropped by Redis for a slow reader (output buffer limit)"


def flow(env, start: float, seconds: int, per_second: int) -> None:
    """``per_second`` ticks delivered at each whole second from ``start`` on."""
    for k in range(seconds):
        t = start + k
        step_at(env, t, [tick("AAPL", 100.0, t - 0.1)] * per_second)


def test_a_slow_reader_disconnect_is_counted_as_a_gap_with_its_reason_length_and_estimate():
    env = make(symbols=("AAPL",))
    flow(env, M + 5, 3, 1_000)  # reads at M+5, M+6, M+7; a report (rate mark) before each read
    step_at(env, M + 7.4, FeedDisconnected("server closed the connection", reason="output_buffer_limit"))
    stats = env.actor.on_receive(GetStats())
    assert stats.feed_gaps == 0 and stats.disconnected_since == M + 7.4  # a gap is counted once re-subscribed
    step_at(env, M + 10.2)  # re-subscribed
    stats = env.actor.on_receive(GetStats())
    [gap] = stats.recent_gaps
    assert (gap.lost_at, gap.resubscribed_at) == (M + 7, M + 10.2)  # lost_at: the last data received
    assert gap.seconds == pytest.approx(3.2)
    assert gap.reason == "output_buffer_limit" and gap.words == SLOW_WORDS
    assert gap.detail == "server closed the connection"
    # 1,000 ticks published per second (by their own times), the reader keeping up: rate x gap
    assert gap.reader_behind_seconds == pytest.approx(0.0)
    assert gap.ticks_lost_estimate == round(1_000 * 3.2)
    assert stats.feed_gaps == 1 and stats.feed_gaps_by_reason == {"output_buffer_limit": 1}
    assert stats.feed_gap_seconds == pytest.approx(3.2) and stats.ticks_lost_estimate == 3_200
    assert stats.last_gap_reason == "output_buffer_limit"


def test_the_gap_is_reported_to_the_supervisor_at_once():
    env = make(symbols=("AAPL",), report_interval=30.0)
    flow(env, M + 5, 2, 100)
    reports = len(env.supervisor.of_type(ChildReport))
    step_at(env, M + 6.5, FeedDisconnected("server closed the connection", reason="output_buffer_limit"))
    step_at(env, M + 6.6)  # re-subscribed
    step_at(env, M + 6.7)  # the next loop iteration reports, not 30 s later
    [*_, last] = env.supervisor.of_type(ChildReport)
    assert len(env.supervisor.of_type(ChildReport)) == reports + 1
    assert last.stats.feed_gaps == 1 and last.stats.recent_gaps[0].reason == "output_buffer_limit"


class ExplainingFeed(FakeFeed):
    """A feed that, like RedisTickFeed, says on the reconnect why the previous connection went."""

    def __init__(self, cause: DisconnectCause, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cause = cause

    def disconnect_cause(self):
        return self.cause


def test_a_reader_behind_the_source_counts_what_was_published_after_its_newest_tick():
    env = make(symbols=("AAPL",))
    step_at(env, M + 5, [tick("AAPL", 100.0, M + 4.9)] * 100)     # lag 0.1 s: keeping up
    step_at(env, M + 6, [tick("AAPL", 100.0, M + 5.5)] * 1_000)   # lag 0.5 s
    step_at(env, M + 7, [tick("AAPL", 100.0, M + 6.0)] * 1_000)   # lag 1.0 s: falling behind
    step_at(env, M + 7.2, FeedDisconnected("server closed the connection", reason="output_buffer_limit"))
    step_at(env, M + 7.3)
    [gap] = env.actor.on_receive(GetStats()).recent_gaps
    # published at 1,000 ticks per 0.5 s of their own time (read at half that); the reader was
    # 0.9 s further behind than its usual 0.1 s: lost = 2,000/s x (0.3 s gap + 0.9 s behind)
    assert gap.seconds == pytest.approx(0.3) and gap.reader_behind_seconds == pytest.approx(0.9)
    assert gap.ticks_lost_estimate == round(2_000 * 1.2)


def test_the_feeds_diagnosis_at_the_reconnect_names_the_gap():
    env = make(symbols=("AAPL",))
    cause = DisconnectCause("output_buffer_limit", "server closed the connection; 5.0 MiB were still in flight",
                            confirmed=True, discarded_messages_estimate=1_800)
    env.feed = ExplainingFeed(cause, script=env.feed.script)
    env.actor._feed = env.feed
    flow(env, M + 5, 3, 500)
    step_at(env, M + 7.5, FeedDisconnected("server closed the connection", reason="server_closed"))
    step_at(env, M + 8)
    [gap] = env.actor.on_receive(GetStats()).recent_gaps
    assert gap.reason == "output_buffer_limit" and gap.confirmed is True  # the server's word wins
    assert gap.detail == cause.detail and gap.words == SLOW_WORDS
    # by tick times the discarded backlog is inside the window (published after the newest tick)
    assert gap.ticks_lost_estimate == round(500 * 1.0)


def test_without_tick_times_the_receive_rate_and_the_discarded_backlog_make_the_estimate():
    env = make(symbols=("AAPL",))  # ZZZZ has no route: received, never folded, so no tick times
    env.feed = ExplainingFeed(DisconnectCause("output_buffer_limit", "evidence", False, 1_800),
                              script=env.feed.script)
    env.actor._feed = env.feed
    for t in (M + 5, M + 6, M + 7):
        step_at(env, t, [tick("ZZZZ", 1.0, t)] * 500)
    step_at(env, M + 7.5, FeedDisconnected("server closed the connection", reason="server_closed"))
    step_at(env, M + 8)
    [gap] = env.actor.on_receive(GetStats()).recent_gaps
    # 1,000 received from the mark at M+6 to the last data at M+7, over a 1 s gap, + the backlog
    assert gap.ticks_lost_estimate == 1_000 * 1 + 1_800


def test_other_reasons_are_counted_under_their_own_label():
    env = make(symbols=("AAPL",))
    flow(env, M + 5, 2, 10)
    step_at(env, M + 7, FeedDisconnected("connection lost: reset by peer"))  # no reason given
    step_at(env, M + 8)
    step_at(env, M + 9, FeedDisconnected("no reply to PING", reason="half_open"))
    step_at(env, M + 10)
    stats = env.actor.on_receive(GetStats())
    assert stats.feed_gaps_by_reason == {"connection_lost": 1, "half_open": 1}
    assert [g.words for g in stats.recent_gaps] == ["lost (network error)",
                                                    "lost: no answer to PING (half-open connection)"]
    assert stats.last_gap_reason == "half_open"


def test_without_a_rate_before_the_gap_the_loss_is_unknown_not_zero():
    env = make(symbols=("AAPL",))
    step_at(env, M + 5, [tick("AAPL", 100.0, M + 4.9)] * 50)  # one read, right after the first mark
    step_at(env, M + 5.1, FeedDisconnected("server closed the connection", reason="output_buffer_limit"))
    step_at(env, M + 6)
    stats = env.actor.on_receive(GetStats())
    assert stats.recent_gaps[0].ticks_lost_estimate is None
    assert stats.ticks_lost_estimate == 0 and stats.feed_gaps == 1


def test_failed_reconnects_make_one_gap_from_the_last_data_to_the_resubscription():
    env = make(symbols=("AAPL",))
    flow(env, M + 5, 2, 100)
    step_at(env, M + 6.5, FeedDisconnected("server closed the connection", reason="server_restart"))
    env.feed.connect_errors.extend([FeedDisconnected("connection refused"), FeedDisconnected("connection refused")])
    for t in (M + 7, M + 8, M + 9, M + 10, M + 12):
        step_at(env, t)
    stats = env.actor.on_receive(GetStats())
    [gap] = stats.recent_gaps
    # refused at M+7 and M+8 (back-off 0.5 s, 1 s), re-subscribed at M+9
    assert (gap.lost_at, gap.resubscribed_at, gap.reason) == (M + 6, M + 9, "server_restart")
    assert stats.feed_gaps == 1 and stats.reconnects == 1 and env.feed.connect_calls == 3
    assert gap.seconds == pytest.approx(3.0) and gap.ticks_lost_estimate == 100 * 3


def test_the_rate_window_never_spans_an_earlier_gap():
    env = make(symbols=("AAPL",))
    flow(env, M + 5, 3, 1_000)
    step_at(env, M + 7.5, FeedDisconnected("x", reason="output_buffer_limit"))
    step_at(env, M + 60)  # re-subscribed after a long gap
    step_at(env, M + 60.5, [tick("AAPL", 100.0, M + 60.4)] * 10)
    step_at(env, M + 61, FeedDisconnected("x", reason="output_buffer_limit"))
    step_at(env, M + 62)
    first, second = env.actor.on_receive(GetStats()).recent_gaps
    assert second.lost_at == M + 60.5
    # 10 ticks over the 0.5 s since the re-subscription, not 3,010 over a minute
    assert second.ticks_lost_estimate == round(10 / 0.5 * 1.5)


def test_only_the_latest_gaps_are_kept_but_all_are_counted():
    env = make(symbols=("AAPL",))
    for k in range(20):
        step_at(env, M + 5 + k, FeedDisconnected("x", reason="server_closed"))
        step_at(env, M + 5.5 + k)
    stats = env.actor.on_receive(GetStats())
    assert stats.feed_gaps == 20 and len(stats.recent_gaps) == 16
    assert stats.recent_gaps[-1].resubscribed_at == M + 24.5
    assert all(isinstance(g, FeedGap) for g in stats.recent_gaps)


def test_started_ingress_reports_a_slow_reader_gap_to_the_supervisor():
    env, ref = start_ingress()
    ref.ask(Open(), timeout=2)
    env.feed.script.extend([[tick("AAPL", 100.0, M + 4)],
                            FeedDisconnected("server closed the connection", reason="output_buffer_limit")])
    assert wait_until(lambda: any(r.stats.feed_gaps == 1 for r in env.supervisor.of_type(ChildReport)))
    [report] = [r for r in env.supervisor.of_type(ChildReport) if r.stats.feed_gaps == 1][:1]
    assert report.stats.feed_gaps_by_reason == {"output_buffer_limit": 1}
    assert report.stats.redis_connected is True  # reconnected at once
    ref.stop()


# -- read pacing: a slow feed is read in batches, never past a close -------------------------------


class RecordingStop:
    """Stands in for the receive loop's stop event: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def wait(self, timeout=None) -> bool:
        self.waits.append(timeout)
        return False

    def is_set(self) -> bool:
        return False


def test_a_read_that_brought_few_ticks_is_followed_by_a_pause_of_read_pace():
    env = make()
    env.actor._read_pace = 0.01
    env.actor._stopping = stop = RecordingStop()
    step_at(env, M + 20, [tick("AAPL", 100.0, M + 19)])
    assert stop.waits == [pytest.approx(0.01)] and env.actor.paced_reads == 1
    step_at(env, M + 21)  # nothing came: the loop had waited on the socket itself, no pause
    assert stop.waits == [pytest.approx(0.01)]


def test_a_read_that_brought_many_ticks_is_not_paced():
    env = make()
    env.actor._read_pace = 0.01
    env.actor._stopping = stop = RecordingStop()
    step_at(env, M + 20, [tick("AAPL", 100.0 + i / 100, M + 19) for i in range(256)])
    assert stop.waits == [] and env.actor.paced_reads == 0


def test_the_pause_never_runs_past_the_next_close():
    env = make(grace=2.0)
    env.actor._read_pace = 0.01
    env.actor._stopping = stop = RecordingStop()
    step_at(env, M + 30, [tick("AAPL", 100.0, M + 29)])  # the minute's deadline is M + 62
    env.clock.set(M + 61.996)
    env.feed.script.append([tick("AAPL", 100.5, M + 59)])
    env.actor._step()
    assert stop.waits[-1] == pytest.approx(0.004, abs=1e-6)  # cut to the deadline, not the full 10 ms
