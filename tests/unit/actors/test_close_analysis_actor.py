"""CloseAnalysisActor: its handlers driven directly (over a ``LocalAnalysis``), the publisher and
persistence replaced by mocked mailboxes, the store's history stream by a recording loader. What it
publishes is, byte for byte, what a symbol actor would publish for the same results, and what it
stores their rows; every path that reads the database reads it once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from loguru import logger

from tickstock.actors.analysis import AnalysisStats, CloseAnalysisActor
from tickstock.actors.analysis_output import AnalysisSpec, LocalAnalysis, OutputSettings
from tickstock.actors.analysis_process import AnalysisProcessError
from tickstock.actors.publisher import encode_for_redis
from tickstock.actors.symbol import SymbolActor
from tickstock.analysis import AnalysisPipeline, Definition, create
from tickstock.analysis.talib_batch import TalibBatch
from tickstock.messages.bars import Bar
from tickstock.config import ChannelSettings
from tickstock.messages.commands import (
    BarClosed, BarsClosed, GetStats, Open, PersistResults, PrimeSymbol, Publish, PublishEncoded,
)
from tickstock.messages.records import event_records

from .fakes import FakeClock, Recorder

pytestmark = pytest.mark.timeout(20)

SID = "5b1d0c7e-0000-4000-8000-00000000000a"
T0 = 1_741_786_200  # 2025-03-12 13:30 UTC
SYMBOLS = ("AAA", "BBB")
CHANNELS = ChannelSettings()
OUTPUT = OutputSettings(SID, CHANNELS, 0.8, 3600.0, 1800.0)


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
    clock = kwargs.pop("clock", FakeClock(T0 + 3600))
    a = CloseAnalysisActor(None, SID, LocalAnalysis(AnalysisSpec(by_tf, tuple(symbols), OUTPUT, clock=clock)), publisher,
                           persistence, load_history=loader, clock=clock, on_detection=on_detection, **kwargs)
    return a, publisher, persistence


def close(a: CloseAnalysisActor, minute: int, symbols=SYMBOLS, doji: bool = False) -> None:
    a.on_receive(BarsClosed(tuple(bar(s, minute, doji) for s in symbols), T0 + 60 * minute + 62))


class Sent:
    """One PUBLISH the actor told the publisher: its channel and its decoded JSON."""

    def __init__(self, channel: str, payload: bytes) -> None:
        self.channel, self.payload = channel, payload
        self.wire = json.loads(payload)
        body = self.wire.get("calculation") or self.wire["detection"]
        self.symbol, self.timeframe = body["symbol"], body["timeframe"]
        self.indicator, self.pattern = body.get("indicator"), body.get("pattern")
        self.timestamp = body["timestamp"]


def sent(message: PublishEncoded) -> list[Sent]:
    return [Sent(channel, payload) for channel, payload in message.entries]


def events(publisher: Recorder) -> list[Sent]:
    return [e for p in publisher.of_type(PublishEncoded) for e in sent(p)]


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
        out += [e for p in publisher.of_type(Publish) for e in p.events]
    return out


def comparable(entries) -> list[tuple[str, bytes]]:
    """(channel, JSON) pairs, sorted: ``Sent`` ones, or ``(channel, JSON)`` as the publisher encodes them."""
    return sorted((e.channel, e.payload) if isinstance(e, Sent) else e for e in entries)


def encoded(evs: list) -> list[tuple[str, bytes]]:
    return encode_for_redis(evs, CHANNELS, OUTPUT.high_confidence)


def test_each_timeframe_of_a_close_is_one_publish_of_what_a_symbol_actor_would_send_and_its_rows_stored() -> None:
    a, publisher, persistence = actor()
    a.on_receive(Open(1))
    for m in range(20):
        close(a, m, doji=m == 15)
    publishes = publisher.of_type(PublishEncoded)
    # EMA(3) is first published at the third bar of each timeframe: the 1-minute one at minute 2,
    # the 5-minute one at minute 14 (its third bar closes then), again at 19
    assert len(publishes) == (20 - 2) + 2 and publisher.of_type(Publish) == []
    timeframes = [{e.timeframe for e in sent(p)} for p in publishes]
    assert all(len(t) == 1 for t in timeframes)
    assert [next(iter(t)) for t in timeframes][-3:] == ["1min", "1min", "5min"]  # 1min first
    want = symbol_actor_events({s: [bar(s, m, m == 15) for m in range(20)] for s in SYMBOLS}, {})
    assert comparable(events(publisher)) == comparable(encoded(want))
    kinds = {(e.channel, e.timeframe) for e in events(publisher)}
    assert kinds == {(CHANNELS.indicators, "1min"), (CHANNELS.indicators, "5min"), (CHANNELS.patterns, "1min")}
    # the counts told with each publish are what it carries
    assert [(p.patterns, p.indicators) for p in publishes] == [
        (sum(e.channel == CHANNELS.patterns for e in sent(p)), sum(e.channel == CHANNELS.indicators for e in sent(p)))
        for p in publishes]
    # the rows: one PersistResults per close with any, the rows persistence would derive from those events
    stored = persistence.of_type(PersistResults)
    assert len(stored) == 20 - 2
    rows = [r for m in stored for r in m.patterns + m.indicators]
    assert sorted(rows, key=lambda r: r.row_id) == sorted(event_records(want, OUTPUT.pattern_ttl, OUTPUT.indicator_ttl),
                                                          key=lambda r: r.row_id)


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
    assert [m if isinstance(m, str) else {e.timeframe for e in sent(m)} for m in last] == [
        f"step {T0 + 60 * 14}", {"1min"}, f"step {T0 + 60 * 10}", {"5min"}]
    # each stamped when its own timeframe was analysed (the clock is read after each)
    assert sent(last[1])[0].timestamp < sent(last[3])[0].timestamp


def test_primed_symbols_publish_from_their_first_live_bar_as_primed_symbol_actors_do() -> None:
    a, publisher, _ = actor()
    a.on_receive(Open(1))
    primed = {s: history(s, range(-20, 0)) for s in SYMBOLS}
    for s in SYMBOLS:
        a.on_receive(PrimeSymbol(s, tuple(primed[s])))
    for m in range(6):
        close(a, m)
    want = symbol_actor_events({s: [bar(s, m) for m in range(6)] for s in SYMBOLS}, primed)
    assert comparable(events(publisher)) == comparable(encoded(want))
    # primed: EMA published at once, at every close; minute 4 closes a 5-minute bar too, told apart after
    assert [sent(p)[0].timeframe for p in publisher.of_type(PublishEncoded)] == ["1min"] * 5 + ["5min", "1min"]


def test_a_restart_primes_every_symbol_in_one_query_when_it_opens() -> None:
    loader = Loader({s: history(s, range(-20, 0)) for s in SYMBOLS})
    a, publisher, _ = actor(loader, prime_on_open=True)
    a.on_receive(Open(2))
    assert loader.calls == [(SYMBOLS, None)]
    close(a, 0)
    assert len(publisher.of_type(PublishEncoded)) == 1  # primed: EMA published on the first live bar
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
    assert comparable(events(publisher)) == comparable(encoded(want))


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
    assert len(publisher.of_type(PublishEncoded)) == 1  # unprimed: EMA(3) from the third bar


def test_a_failing_definition_is_logged_per_symbol_and_costs_nothing_else() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m), level="ERROR", format="{level} {message}")
    try:
        a, publisher, _ = actor(definitions=(EMA,))
        a.on_receive(Open(1))

        def broken(b: Bar) -> Any:
            raise RuntimeError("boom")

        a.analysis._analysis._batches["1min"][0]._states["BBB"].output = broken
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
    detections = [e for e in events(publisher) if e.channel == CHANNELS.patterns]
    assert len(detections) == 2 and seen == ["CDLDOJI", "CDLDOJI"]
    assert [p.patterns for p in publisher.of_type(PublishEncoded)] == [2]  # both symbols at minute 11


def test_an_empty_close_sends_nothing() -> None:
    a, publisher, persistence = actor()
    a.on_receive(Open(1))
    a.on_receive(BarsClosed((), T0))
    assert publisher.messages == [] and persistence.messages == []


class GoneAnalysis(LocalAnalysis):
    """A LocalAnalysis whose process "died": priming raises, and stop is recorded."""

    def __init__(self) -> None:
        super().__init__(AnalysisSpec({"1min": [EMA]}, tuple(SYMBOLS), OUTPUT, clock=FakeClock(T0)))
        self.stops = 0

    def prime(self, symbol, bars):
        raise AnalysisProcessError("analysis process is gone (pid 1, exit code -9)")

    def stop(self) -> None:
        self.stops += 1


def test_a_dead_analysis_process_while_priming_is_the_actor_s_death_not_a_warning() -> None:
    loader = Loader({s: history(s, range(-20, 0)) for s in SYMBOLS})
    a = CloseAnalysisActor(None, SID, GoneAnalysis(), Recorder(), Recorder(), load_history=loader, prime_on_open=True)
    with pytest.raises(AnalysisProcessError, match="exit code -9"):
        a.on_receive(Open(2))


def test_the_analysis_is_stopped_when_the_actor_stops_or_dies() -> None:
    analysis = GoneAnalysis()
    a = CloseAnalysisActor(None, SID, analysis, Recorder(), Recorder())
    a.on_stop()
    assert analysis.stops == 1
    try:
        raise AnalysisProcessError("gone")
    except AnalysisProcessError as exc:
        a.on_failure(type(exc), exc, exc.__traceback__)
    assert analysis.stops == 2
