"""CloseAnalysisActor: its handlers driven directly, the publisher and persistence replaced by mocked
mailboxes, the store's history stream by a recording loader. The events it sends are those a symbol
actor would send for the same results; every path that reads the database reads it once."""

from __future__ import annotations

from typing import Any

import pytest
from loguru import logger

from tickstock.actors.analysis import AnalysisStats, CloseAnalysisActor
from tickstock.actors.symbol import SymbolActor
from tickstock.analysis import AnalysisPipeline, Definition, create
from tickstock.analysis.close_analysis import CloseAnalysis
from tickstock.analysis.talib_batch import TalibBatch
from tickstock.messages.bars import Bar
from tickstock.messages.commands import BarClosed, BarsClosed, GetStats, Open, PersistEvents, PrimeSymbol, Publish
from tickstock.messages.events import IndicatorCalculated, PatternDetected

from .fakes import FakeClock, Recorder

pytestmark = pytest.mark.timeout(20)

SID = "5b1d0c7e-0000-4000-8000-00000000000a"
T0 = 1_741_786_200  # 2025-03-12 13:30 UTC
SYMBOLS = ("AAA", "BBB")


def definition(name: str, params: dict[str, Any], timeframes: tuple[str, ...]) -> Definition:
    component = create(name, params)
    return Definition(component.name, component.kind, params, timeframes=timeframes)


EMA = definition("EMA", {"timeperiod": 3}, ("1min", "5min"))
DOJI = definition("CDLDOJI", {}, ("1min",))


def bar(symbol: str, minute: int, doji: bool = False) -> Bar:
    close = 100.0 + (minute % 7) * 0.3 + (5.0 if symbol == "BBB" else 0.0)
    o = close if doji else close - 0.4
    return Bar(symbol, T0 + 60 * minute, o, close + 1.0, o - 1.0, close, 100, 3, SID)


def history(symbol: str, minutes: range) -> list[Bar]:
    return [bar(symbol, m) for m in minutes]


class Loader:
    """The store's history stream: records each call (symbols, before) and serves ``bars``."""

    def __init__(self, bars: dict[str, list[Bar]], error: BaseException | None = None) -> None:
        self.bars, self.error = bars, error
        self.calls: list[tuple[tuple[str, ...], Any]] = []

    def __call__(self, symbols, before=None):
        self.calls.append((tuple(symbols), before))
        if self.error is not None:
            raise self.error
        for s in symbols:
            if s in self.bars:
                yield s, [b for b in self.bars[s] if before is None or b.start < before]


def actor(loader: Loader | None = None, definitions=(EMA, DOJI), symbols=SYMBOLS, on_detection=None,
          **kwargs: Any) -> tuple[CloseAnalysisActor, Recorder, Recorder]:
    by_tf: dict[str, list[Definition]] = {}
    for d in definitions:
        for tf in d.timeframes:
            by_tf.setdefault(tf, []).append(d)
    publisher, persistence = Recorder("publisher"), Recorder("persistence")
    a = CloseAnalysisActor(None, SID, CloseAnalysis(by_tf, symbols), publisher, persistence,
                           load_history=loader, clock=kwargs.pop("clock", FakeClock(T0 + 3600)),
                           on_detection=on_detection, **kwargs)
    return a, publisher, persistence


def close(a: CloseAnalysisActor, minute: int, symbols=SYMBOLS, doji: bool = False) -> None:
    a.on_receive(BarsClosed(tuple(bar(s, minute, doji) for s in symbols), T0 + 60 * minute + 62))


def events(publisher: Recorder) -> list:
    return [e for p in publisher.of_type(Publish) for e in p.events]


def symbol_actor_events(bars: dict[str, list[Bar]], primed: dict[str, list[Bar]], definitions=(EMA, DOJI)) -> list:
    """What symbol actors with these definitions in their own pipelines publish for the same bars."""
    out = []
    for symbol, live in bars.items():
        base = AnalysisPipeline([d for d in definitions if "1min" in d.timeframes], symbol=symbol)
        higher = {"5min": AnalysisPipeline([d for d in definitions if "5min" in d.timeframes], symbol=symbol)}
        publisher = Recorder()
        s = SymbolActor(None, SID, symbol, base, publisher, Recorder(), primed.get(symbol, []), higher=higher,
                        clock=FakeClock(T0 + 3600))
        s.on_receive(Open(1))
        for b in live:
            s.on_receive(BarClosed(b, b.start + 62))
        out += events(publisher)
    return out


def comparable(evs: list) -> list:
    return sorted((type(e).__name__, e.symbol, e.timeframe, e.bar.start, getattr(e, "pattern", None),
                   getattr(e, "indicator", None), getattr(e, "value", None), getattr(e, "confidence", None),
                   e.session_id, e.bar_closed_at) for e in evs)


def test_each_timeframe_of_a_close_is_one_publish_and_one_persist_of_the_events_a_symbol_actor_would_send() -> None:
    a, publisher, persistence = actor()
    a.on_receive(Open(1))
    for m in range(20):
        close(a, m, doji=m == 15)
    publishes = publisher.of_type(Publish)
    # EMA(3) is first published at the third bar of each timeframe: the 1-minute one at minute 2,
    # the 5-minute one at minute 14 (its third bar closes then), again at 19
    assert len(publishes) == (20 - 2) + 2
    assert [p.events for p in persistence.of_type(PersistEvents)] == [p.events for p in publishes]
    timeframes = [{e.timeframe for e in p.events} for p in publishes]
    assert all(len(t) == 1 for t in timeframes)
    assert [next(iter(t)) for t in timeframes][-3:] == ["1min", "1min", "5min"]  # 1min first
    got = events(publisher)
    want = symbol_actor_events({s: [bar(s, m, m == 15) for m in range(20)] for s in SYMBOLS}, {})
    assert comparable(got) == comparable(want)
    kinds = {(type(e), e.timeframe) for e in got}
    assert kinds == {(IndicatorCalculated, "1min"), (IndicatorCalculated, "5min"), (PatternDetected, "1min")}


def test_a_close_s_1_minute_events_are_told_before_its_higher_timeframes_are_analysed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(T0 + 3600)
    a, publisher, _ = actor(definitions=(EMA,), clock=lambda: clock.advance(1.0))
    a.on_receive(Open(1))
    step = TalibBatch.step  # marked in the publisher's mailbox, to order the analysis against what it is told
    monkeypatch.setattr(TalibBatch, "step", lambda self, bars: publisher.tell(f"step {bars[0].start}")
                        or step(self, bars))
    for m in range(15):
        close(a, m)
    last = publisher.messages[-4:]  # minute 14 closes a 1- and a 5-minute bar
    assert [m if isinstance(m, str) else {e.timeframe for e in m.events} for m in last] == [
        f"step {T0 + 60 * 14}", {"1min"}, f"step {T0 + 60 * 10}", {"5min"}]
    # each stamped when its own timeframe was analysed (the clock is read after each)
    assert last[1].events[0].calculated_at < last[3].events[0].calculated_at


def test_primed_symbols_publish_from_their_first_live_bar_as_primed_symbol_actors_do() -> None:
    a, publisher, _ = actor()
    a.on_receive(Open(1))
    primed = {s: history(s, range(-20, 0)) for s in SYMBOLS}
    for s in SYMBOLS:
        a.on_receive(PrimeSymbol(s, tuple(primed[s])))
    for m in range(6):
        close(a, m)
    want = symbol_actor_events({s: [bar(s, m) for m in range(6)] for s in SYMBOLS}, primed)
    assert comparable(events(publisher)) == comparable(want)
    # primed: EMA published at once, at every close; minute 4 closes a 5-minute bar too, told apart after
    assert [p.events[0].timeframe for p in publisher.of_type(Publish)] == ["1min"] * 5 + ["5min", "1min"]


def test_a_restart_primes_every_symbol_in_one_query_when_it_opens() -> None:
    loader = Loader({s: history(s, range(-20, 0)) for s in SYMBOLS})
    a, publisher, _ = actor(loader, prime_on_open=True)
    a.on_receive(Open(2))
    assert loader.calls == [(SYMBOLS, None)]
    close(a, 0)
    assert len(publisher.of_type(Publish)) == 1  # primed: EMA published on the first live bar
    assert loader.calls == [(SYMBOLS, None)]  # and never read again


def test_at_the_start_it_reads_nothing_the_session_primes_it() -> None:
    loader = Loader({s: history(s, range(-20, 0)) for s in SYMBOLS})
    a, _, _ = actor(loader)
    a.on_receive(Open(1))
    close(a, 0)
    assert loader.calls == []


def test_event_time_primes_every_symbol_with_the_bars_before_the_first_close_once() -> None:
    loader = Loader({s: history(s, range(-20, 5)) for s in SYMBOLS})  # the store also holds later bars
    a, publisher, _ = actor(loader, prime_at_first_bar=True)
    a.on_receive(Open(1))
    assert loader.calls == []
    close(a, 0)
    close(a, 1)
    assert loader.calls == [(SYMBOLS, T0)]
    want = symbol_actor_events({s: [bar(s, 0), bar(s, 1)] for s in SYMBOLS}, {s: history(s, range(-20, 0))
                                                                              for s in SYMBOLS})
    assert comparable(events(publisher)) == comparable(want)


def test_a_new_symbol_is_added_and_primed_with_its_bars_before_that_close() -> None:
    loader = Loader({"NEW": history("NEW", range(-20, 10))})
    a, publisher, _ = actor(loader)
    a.on_receive(Open(1))
    close(a, 0)
    close(a, 5, symbols=("AAA", "NEW"))
    assert loader.calls == [(("NEW",), T0 + 300)]
    assert "NEW" in a.analysis.symbols
    new = [e for e in events(publisher) if e.symbol == "NEW"]
    assert {(e.indicator, e.timeframe) for e in new} == {("EMA", "1min")}  # primed: published at once
    close(a, 6, symbols=("AAA", "NEW"))
    assert len(loader.calls) == 1


def test_a_failed_history_read_is_a_warning_and_the_symbols_run_unprimed() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m), level="WARNING", format="{level} {message}")
    try:
        loader = Loader({}, error=ConnectionError("database down"))
        a, publisher, _ = actor(loader, prime_on_open=True)
        a.on_receive(Open(2))
        for m in range(3):
            close(a, m)
    finally:
        logger.remove(sink)
    assert any(line.startswith("WARNING") and "database down" in line for line in lines)
    assert len(publisher.of_type(Publish)) == 1  # unprimed: EMA(3) from the third bar


def test_a_failing_definition_is_logged_per_symbol_and_costs_nothing_else() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m), level="ERROR", format="{level} {message}")
    try:
        a, publisher, _ = actor(definitions=(EMA,))
        a.on_receive(Open(1))

        def broken(b: Bar) -> Any:
            raise RuntimeError("boom")

        a.analysis._batches["1min"][0]._states["BBB"].output = broken
        for m in range(5):
            close(a, m)
    finally:
        logger.remove(sink)
    errors = [line for line in lines if "BBB component EMA failed on 1min" in line]
    assert len(errors) == 3 and "disabled for this symbol" in errors[-1]
    assert {e.symbol for e in events(publisher) if e.timeframe == "1min"} == {"AAA"}
    stats = a.on_receive(GetStats())
    assert stats == AnalysisStats(closes=5, symbols=2, definitions=2, patterns=0, indicators=stats.indicators,
                                  component_errors=3, partial_bars_skipped=0, disabled=1)
    assert stats.indicators == len(events(publisher)) > 0


def test_every_detection_is_counted_for_the_metrics() -> None:
    seen: list[str] = []
    a, publisher, _ = actor(definitions=(DOJI,), on_detection=seen.append)
    a.on_receive(Open(1))
    for m in range(12):
        close(a, m, doji=m == 11)
    detections = [e for e in events(publisher) if isinstance(e, PatternDetected)]
    assert len(detections) == 2 and seen == ["CDLDOJI", "CDLDOJI"]


def test_an_empty_close_sends_nothing() -> None:
    a, publisher, persistence = actor()
    a.on_receive(Open(1))
    a.on_receive(BarsClosed((), T0))
    assert publisher.messages == [] and persistence.messages == []
