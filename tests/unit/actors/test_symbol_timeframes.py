"""SymbolActor with higher timeframes: 5/15/60-minute bars from its 1-minute bars, each analysed by
its timeframe's pipeline when it closes; recording mocks for the publisher and persistence."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from tickstock.actors.plan import SessionPlan, symbol_pipelines
from tickstock.actors.symbol import SymbolActor
from tickstock.analysis import select_definitions
from tickstock.config import Settings
from tickstock.messages.bars import Bar
from tickstock.messages.commands import BarClosed, GetStats, Open, PersistEvents, Publish
from tickstock.messages.records import indicator_row_id, pattern_row_id

from .test_symbol import rows
from tickstock.messages.wire import dumps, iso_utc

from .fakes import FakeClock, FakePipeline, PipelineOutput, Recorder, alert_result, indicator_result, pattern_result

pytestmark = pytest.mark.timeout(10)

SID = "3f2c9a1e-0000-4000-8000-000000000002"
T0 = 1_700_000_000 - 1_700_000_000 % 3600  # an hour start, UTC: on the 5- and 15-minute grids


def bar(minute: int, close: float | None = None, partial: bool = False) -> Bar:
    c = 100.0 + minute if close is None else close
    return Bar("AAPL", T0 + 60 * minute, c - 0.5, c + 1.0, c - 1.0, c, 100 + minute, 3, SID, None, None, partial)


def closed(minute: int, b: Bar | None = None) -> BarClosed:
    b = b or bar(minute)
    return BarClosed(b, b.start + 62.0)


def everything(b):
    return PipelineOutput(patterns=[pattern_result(b, "Doji", 0.9)],
                          indicators=[indicator_result(b, "SMA", b.close, {"value": b.close}, {"period": 2})])


def make(higher=None, history=(), base_outputs=None, **kwargs):
    base = FakePipeline(base_outputs)
    publisher, persistence = Recorder("publisher"), Recorder("persistence")
    kwargs.setdefault("clock", FakeClock(T0 + 3600))
    actor = SymbolActor(None, SID, "AAPL", base, publisher, persistence, history, higher=higher, **kwargs)
    return actor, base, publisher, persistence


def test_a_5min_definition_produces_5min_results_only_when_a_5_minute_bar_closes():
    five = FakePipeline(everything)
    actor, base, publisher, persistence = make({"5min": five})
    for m in range(10):
        actor.on_receive(closed(m))
        # Nothing from the 1-minute pipeline (it has no results here); the 5-minute one speaks at 4 and 9.
        assert len(publisher.messages) == (m >= 4) + (m >= 9), m
    assert len(base.seen) == 10
    assert [(b.start, b.open, b.high, b.low, b.close, b.volume, b.tick_count) for b in five.seen] == [
        (T0, 99.5, 105.0, 99.0, 104.0, 510, 15), (T0 + 300, 104.5, 110.0, 104.0, 109.0, 535, 15)]
    first = publisher.messages[0]
    assert isinstance(first, Publish)
    pattern, sma = (json.loads(dumps(e.to_wire())) for e in first.events)
    assert pattern["detection"]["timeframe"] == "5min" and sma["calculation"]["timeframe"] == "5min"
    assert pattern["detection"]["parameters"]["bar_timestamp"] == iso_utc(T0)
    assert pattern["detection"]["bar_data"] == {"open": 99.5, "high": 105.0, "low": 99.0, "close": 104.0,
                                                "volume": 510}
    assert pattern["detection"]["metadata"]["bar_closed_at"] == iso_utc(T0 + 4 * 60 + 62.0)
    assert sma["calculation"]["metadata"]["bar_timestamp"] == iso_utc(T0)
    [persist, _] = persistence.messages
    [p], [i] = rows(persist)
    assert (p.timeframe, i.timeframe) == ("5min", "5min")
    assert p.row_id == pattern_row_id(SID, "AAPL", "Doji", T0, "5min")
    assert i.row_id == indicator_row_id(SID, "AAPL", "SMA", T0, "5min")
    assert p.row_id != pattern_row_id(SID, "AAPL", "Doji", T0, "1min")  # same bar start, another row
    stats = actor.on_receive(GetStats())
    assert (stats.patterns, stats.indicators, stats.bars) == (2, 2, 10)


def test_every_timeframe_closing_on_one_minute_goes_out_in_one_publish_and_one_persist():
    pipelines = {tf: FakePipeline(everything) for tf in ("5min", "15min", "60min")}
    actor, _, publisher, persistence = make(pipelines, base_outputs=everything)
    for m in range(30, 90):  # T0 + 30 min: the :30 grid of the 60-minute bars (no calendar here)
        actor.on_receive(closed(m))
    last_publish, last_persist = publisher.messages[-1], persistence.messages[-1]
    assert [e.timeframe for e in last_publish.events] == ["1min"] * 2 + ["5min"] * 2 + ["15min"] * 2 + ["60min"] * 2
    assert [r.timeframe for r in rows(last_persist)[0]] == ["1min", "5min", "15min", "60min"]
    assert len(publisher.messages) == len(persistence.messages) == 60  # one of each per 1-minute bar
    assert [len(p.seen) for p in pipelines.values()] == [12, 4, 1]


def test_an_alert_on_a_higher_timeframe_says_which_and_a_1min_alert_is_unchanged():
    def alerting(b):
        return PipelineOutput(alerts=[alert_result()])
    actor, _, publisher, _ = make({"15min": FakePipeline(alerting)}, base_outputs=alerting)
    for m in range(15):
        actor.on_receive(closed(m))
    one = json.loads(dumps(publisher.messages[0].events[0].to_wire()))
    assert one["data"] == {"indicator": "RSI", "value": 72.5, "threshold": 70.0, "direction": "above"}
    fifteen = json.loads(dumps(publisher.messages[-1].events[-1].to_wire()))
    assert fifteen["data"]["timeframe"] == "15min"


def test_a_bar_whose_last_minute_was_quiet_is_analysed_late_with_the_next_bar():
    five = FakePipeline(everything)
    actor, _, publisher, _ = make({"5min": five})
    for m in (0, 1, 2):
        actor.on_receive(closed(m))
    assert publisher.messages == []
    actor.on_receive(closed(7))  # minutes 3-6 had no ticks
    [publish] = publisher.messages
    assert [b.start for b in five.seen] == [T0]
    assert publish.events[0].bar_closed_at == bar(7).start + 62.0


def test_a_partial_minute_is_folded_but_its_higher_bar_is_not_analysed():
    five = FakePipeline(everything)
    actor, base, publisher, _ = make({"5min": five})
    for m in range(10):
        actor.on_receive(closed(m, bar(m, partial=(m == 2))))
    assert [b.start for b in base.seen] == [T0 + 60 * m for m in range(10) if m != 2]
    assert [b.start for b in five.seen] == [T0 + 300]  # the first 5 minutes held a partial one
    assert actor.on_receive(GetStats()).partial_bars_skipped == 2  # the 1-minute bar and its 5-minute bar
    assert len(publisher.messages) == 1


def test_partial_higher_bars_are_analysed_when_configured():
    five = FakePipeline(everything)
    actor, *_ = make({"5min": five}, analyse_partial_bars=True)
    for m in range(5):
        actor.on_receive(closed(m, bar(m, partial=(m == 2))))
    [b] = five.seen
    assert b.partial


# -- priming --------------------------------------------------------------------------------------


def test_priming_fills_the_higher_timeframes_from_the_1min_history():
    five, fifteen = FakePipeline(everything), FakePipeline(everything)
    history = [bar(m) for m in range(18)]
    actor, base, publisher, persistence = make({"5min": five, "15min": fifteen}, history=history)
    assert base.primed == [history]
    assert [[b.start for b in bars] for bars in five.primed] == [[T0, T0 + 300, T0 + 600]]
    assert [[b.start for b in bars] for bars in fifteen.primed] == [[T0]]
    assert publisher.messages == [] and persistence.messages == []  # priming publishes nothing
    # The forming 5-minute bar (minutes 15-17 from history) continues with the live minutes.
    actor.on_receive(closed(18))
    actor.on_receive(closed(19))
    [live] = five.seen
    assert (live.start, live.open, live.close, live.volume, live.partial) == (T0 + 900, 114.5, 119.0, 585, False)


def test_priming_on_open_fills_the_higher_timeframes_too():
    five = FakePipeline(everything)
    history = [bar(m) for m in range(12)]
    clock = FakeClock(T0 + 12 * 60 + 1)  # opened a second into minute 12: nothing unobserved before it
    actor, base, _, _ = make({"5min": five}, history=None, load_history=lambda: history, clock=clock)
    actor.on_receive(Open(1))
    assert base.primed == [history]
    assert [[b.start for b in bars] for bars in five.primed] == [[T0, T0 + 300]]
    for m in (12, 13, 14):
        actor.on_receive(closed(m))
    [live] = five.seen
    assert (live.start, live.volume, live.partial) == (T0 + 600, 5 * 100 + sum(range(10, 15)), False)


def test_minutes_between_the_history_and_the_opening_are_unobserved():
    """History ends with minute 5; the actor opened during minute 7: minutes 6 and the start of 7 were
    seen by nobody here, so the 5-minute bar 5-9 is partial (skipped); the next one is whole."""
    five = FakePipeline(everything)
    clock = FakeClock(T0 + 7 * 60 + 20)
    actor, *_ = make({"5min": five}, history=None, load_history=lambda: [bar(m) for m in range(6)], clock=clock)
    actor.on_receive(Open(1))
    for m in range(8, 15):
        actor.on_receive(closed(m))
    assert [b.start for b in five.seen] == [T0 + 600]
    assert actor.on_receive(GetStats()).partial_bars_skipped == 1


def test_a_replay_in_event_time_is_not_taken_for_unobserved():
    """Opened long after the replayed minutes (event time: the wall clock is days ahead): the first
    live bar, not the opening, bounds what was unobserved, so the replay's bars are whole."""
    five = FakePipeline(everything)
    clock = FakeClock(T0 + 10 * 86_400)
    actor, *_ = make({"5min": five}, history=None, load_history=lambda: [bar(m) for m in range(6)], clock=clock)
    actor.on_receive(Open(1))
    for m in range(6, 10):
        actor.on_receive(closed(m))
    [b] = five.seen
    assert (b.start, b.partial) == (T0 + 300, False)


def test_a_history_bar_overlapping_the_live_feed_is_not_folded_twice():
    five = FakePipeline(everything)
    actor, *_ = make({"5min": five}, history=[bar(m) for m in range(4)])
    actor.on_receive(closed(3))  # already in the history
    actor.on_receive(closed(4))
    [b] = five.seen
    assert (b.volume, b.partial) == (sum(100 + m for m in range(5)), False)


# -- the 1min-only setup is untouched -------------------------------------------------------------


def rich(b):
    return PipelineOutput(patterns=[pattern_result(b, "Doji", 0.85)],
                          indicators=[indicator_result(b, "RSI", 55.0)], alerts=[alert_result()])


def run(higher, bars):
    actor, _, publisher, persistence = make(higher, base_outputs=rich, clock=FakeClock(T0 + 10_000))
    for b in bars:
        actor.on_receive(BarClosed(b, b.start + 62.0))
    return publisher.messages, persistence.messages, actor.on_receive(GetStats())


def test_a_1min_only_actor_says_exactly_what_it_did_before():
    bars = [bar(m, partial=(m == 3)) for m in range(20)]
    published, persisted, stats = run(None, bars)
    assert len(published) == len(persisted) == 19  # one of each per analysed bar, nothing more
    assert all(e.timeframe == "1min" for p in published for e in p.events)
    assert stats.partial_bars_skipped == 1
    # A higher timeframe that produces nothing adds nothing: not one message, event or record more.
    # (The partial minute's 5-minute bar is partial too, and counted as skipped.)
    assert run({"5min": FakePipeline()}, bars) == (published, persisted, replace(stats, partial_bars_skipped=2))


def test_the_baseline_definitions_build_no_higher_pipeline():
    definitions = select_definitions(
        [{"name": n, "applicable_timeframes": ["intraday"]} for n in ("Doji", "Hammer", "HeadShoulders")],
        [{"name": "RSI", "period": 14, "applicable_timeframes": ["intraday"]},
         {"name": "SMA", "period": 20, "applicable_timeframes": None}])
    plan = SessionPlan("u", ("AAPL",), Settings(), definitions)
    base, higher = symbol_pipelines(plan, "AAPL", 3)
    assert higher == {}
    assert [c.name for c in base.components] == ["Doji", "Hammer", "HeadShoulders", "RSI", "SMA"]
    actor = SymbolActor(None, SID, "AAPL", base, Recorder(), Recorder(), (), higher=higher)
    assert actor._resampler is None  # the 1-minute path only


# -- real pipelines end to end: definitions -> pipelines per timeframe -> results -----------------


def test_real_pipelines_per_timeframe_from_definitions():
    definitions = select_definitions([], [
        {"name": "SMA", "period": 2, "min_bars_required": 2, "applicable_timeframes": ["5min", "15min"]},
        {"name": "RSI", "period": 14, "applicable_timeframes": ["intraday"]},
    ])
    plan = SessionPlan("u", ("AAPL",), Settings(), definitions)
    base, higher = symbol_pipelines(plan, "AAPL", 3)
    assert sorted(higher) == ["15min", "5min"]
    assert [c.name for c in base.components] == ["RSI"]
    publisher, persistence = Recorder(), Recorder()
    actor = SymbolActor(None, SID, "AAPL", base, publisher, persistence, (), higher=higher,
                        clock=lambda: time.time())
    for m in range(30):
        actor.on_receive(closed(m))
    smas = [(e.timeframe, e.bar.start, e.value) for p in publisher.messages for e in p.events
            if e.indicator == "SMA"]
    # SMA(2) of the 5-minute closes (104, 109, 114, ...) from the second 5-minute bar; of the 15-minute
    # closes (114, 129) from the second 15-minute bar; 5min before 15min when both close together.
    five = [("5min", T0 + 300 * k, (104 + 5 * k + 99 + 5 * k) / 2) for k in range(1, 6)]
    assert smas == five + [("15min", T0 + 900, (114 + 129) / 2)]
