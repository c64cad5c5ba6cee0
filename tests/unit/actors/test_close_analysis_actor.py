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
    BarClosed, BarsClosed, ChildFailed, ChildReport, GetStats, Open, PersistResults, PrimeSymbol, Publish,
    PublishEncoded, RedoClose, TimerTick,
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


# -- a restart: the handover, the redo, the timer ---------------------------------------------------

class DiesInClose(LocalAnalysis):
    """A ``LocalAnalysis`` whose process "dies" in the close of ``minute``: after handing out
    ``parts`` of its parts (and never its rows), ``error`` is raised."""

    def __init__(self, minute: int | None, parts: int = 1, error: Exception | None = None) -> None:
        by_tf = {"1min": [EMA], "5min": [EMA]}
        super().__init__(AnalysisSpec(by_tf, SYMBOLS, OUTPUT, clock=FakeClock(T0 + 3600)))
        self.minute, self.parts = minute, parts
        self.error = error or AnalysisProcessError("analysis process is gone (pid 7, exit code -9)")
        self.ended = False

    def close(self, bars, closed_at):
        items = super().close(bars, closed_at)
        if self.minute is None or bars[0].start != T0 + 60 * self.minute:
            return items
        return self._dying(items)

    def _dying(self, items):
        for i, item in enumerate(items):
            if i == self.parts:
                raise self.error
            yield item

    def check(self) -> None:
        if self.ended:
            raise AnalysisProcessError("analysis process is gone (pid 7, exit code -9)")


def analysis_actor(analysis: LocalAnalysis, **kwargs: Any) -> tuple[CloseAnalysisActor, Recorder, Recorder]:
    publisher, persistence = Recorder("publisher"), Recorder("persistence")
    a = CloseAnalysisActor(None, SID, analysis, publisher, persistence, clock=FakeClock(T0 + 3600), **kwargs)
    a.on_receive(Open(1))
    return a, publisher, persistence


def closed(minute: int) -> BarsClosed:
    return BarsClosed(tuple(bar(s, minute) for s in SYMBOLS), T0 + 60 * minute + 62)


def die(a: CloseAnalysisActor, message: Any) -> Any:
    """Tell ``message``; the actor fails in it as pykka would run it: ``on_failure``, then its final stats."""
    with pytest.raises(Exception) as failed:
        a.on_receive(message)
    a.on_failure(failed.type, failed.value, failed.tb)
    return a.final_stats()


def uninterrupted(minutes: range, since: int) -> tuple[list[Sent], list[PersistResults]]:
    """What one analysis, never interrupted, publishes and stores at the closes from ``since`` on."""
    a, publisher, persistence = analysis_actor(DiesInClose(None))
    for m in minutes:
        if m == since:
            told, stored = len(publisher.messages), len(persistence.messages)
        a.on_receive(closed(m))
    return ([e for p in publisher.messages[told:] for e in sent(p)],
            persistence.of_type(PersistResults)[stored:])


def test_a_successor_primes_from_where_its_predecessor_reached_and_gives_what_an_uninterrupted_one_gives() -> None:
    expected, _ = uninterrupted(range(25), since=12)
    a, _, _ = analysis_actor(DiesInClose(None))
    for m in range(12):
        a.on_receive(closed(m))
    handover = a.final_stats()
    assert handover.analysed_through == T0 + 60 * 12 and handover.redo is None
    assert [b.start for b in handover.recent_bars] == [T0 + 60 * m for m in range(7, 12) for _ in SYMBOLS]
    # The store: minutes 10 and 11 not written yet; 12-14 already written (their closes queued meanwhile).
    loader = Loader({s: history(s, [*range(10), *range(12, 15)]) for s in SYMBOLS})
    b, publisher_b, _ = analysis_actor(DiesInClose(None), load_history=loader, prime_on_open=True, handover=handover)
    assert loader.calls == [(SYMBOLS, T0 + 60 * 12)]  # one query, nothing from where the predecessor stopped
    for m in range(12, 25):
        b.on_receive(closed(m))
    assert comparable(events(publisher_b)) == comparable(expected)
    assert any(e.timeframe == "5min" for e in events(publisher_b))  # the 5-minute bars across the restart too


def test_the_close_a_process_died_in_is_analysed_again_by_the_successor_publishing_only_what_had_not_gone_out() -> None:
    expected, stored = uninterrupted(range(21), since=19)
    a, publisher_a, persistence_a = analysis_actor(DiesInClose(minute=19, parts=1))  # 19: a 5-minute bar closes
    for m in range(19):
        a.on_receive(closed(m))
    a.actor_ref.tell(closed(20))  # already in its mailbox when it dies
    rows_told = len(persistence_a.messages)
    handover = die(a, closed(19))
    assert handover.redo == RedoClose(closed(19), ("1min",)) and handover.analysed_through == T0 + 60 * 19
    assert handover.queued == (closed(20),) and handover.resend == (handover.redo, closed(20))
    assert len(persistence_a.messages) == rows_told  # the dying close's rows were never told

    b, publisher_b, persistence_b = analysis_actor(DiesInClose(None), load_history=Loader(
        {s: history(s, range(19)) for s in SYMBOLS}), prime_on_open=True, handover=handover)
    b.on_receive(handover.redo)
    sent_b = events(publisher_b)
    assert {e.timeframe for e in sent_b} == {"5min"}  # the 1-minute events went out before the death
    dying = sent(publisher_a.messages[-1])  # its 1-minute part, told before the death
    assert {e.timeframe for e in dying} == {"1min"}
    b.on_receive(closed(20))
    assert comparable(dying + events(publisher_b)) == comparable(expected)  # the closes' events, each once
    assert persistence_b.of_type(PersistResults) == stored  # all their rows
    assert b.closes == 2


def test_a_redo_that_fails_again_is_given_up_and_said_in_the_log() -> None:
    a, _, _ = analysis_actor(DiesInClose(minute=3, parts=0))
    for m in range(3):
        a.on_receive(closed(m))
    handover = die(a, closed(3))
    assert handover.redo == RedoClose(closed(3), ())
    b, publisher_b, _ = analysis_actor(DiesInClose(minute=3, parts=0), handover=handover)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="ERROR")
    try:
        again = die(b, handover.redo)
    finally:
        logger.remove(sink)
    assert again.redo is None and again.analysed_through == T0 + 60 * 3
    assert any("is not analysed: it failed again when analysed again" in line for line in lines), lines
    assert publisher_b.of_type(PublishEncoded) == []


def test_a_failure_that_is_not_the_process_s_hands_over_no_redo() -> None:
    """A close the actor itself fails in (a bug, an injected fault) would fail again: it is not redone."""
    a, _, _ = analysis_actor(DiesInClose(minute=2, parts=1, error=RuntimeError("a bug")))
    for m in range(2):
        a.on_receive(closed(m))
    assert die(a, closed(2)).redo is None


def test_on_its_timer_it_reports_its_figures_and_a_process_that_ended_between_closes_is_its_death() -> None:
    supervisor = Recorder("supervisor")
    analysis = DiesInClose(None)
    a = CloseAnalysisActor(supervisor, SID, analysis, Recorder(), Recorder(), clock=FakeClock(T0 + 3600))
    a.on_receive(Open(1))
    a.on_receive(closed(0))
    a.on_receive(TimerTick(T0 + 3601))
    reports = [m for m in supervisor.messages if isinstance(m, ChildReport)]
    assert [r.stats.closes for r in reports] == [0, 1] and reports[-1].child == "analysis"  # at open, on the tick
    analysis.ended = True
    handover = die(a, TimerTick(T0 + 3602))
    assert handover.redo is None and handover.analysed_through == T0 + 60
    assert "exit code -9" in supervisor.of_type(ChildFailed)[-1].error
    a.on_stop()


def test_a_successor_that_dies_opening_hands_on_what_it_was_handed() -> None:
    a, _, _ = analysis_actor(DiesInClose(minute=4, parts=0))
    for m in range(4):
        a.on_receive(closed(m))
    handover = die(a, closed(4))
    loader = Loader({s: history(s, range(4)) for s in SYMBOLS})
    b = CloseAnalysisActor(None, SID, GoneAnalysis(), Recorder(), Recorder(), load_history=loader, handover=handover)
    for message in handover.resend:  # told by the session right after Open
        b.actor_ref.tell(message)
    b.actor_ref.tell(closed(5))
    again = die(b, Open(2))  # its process dies while it primes
    assert again.analysed_through == handover.analysed_through == T0 + 60 * 4
    assert again.recent_bars == handover.recent_bars
    assert again.redo is None and again.resend == (handover.redo, closed(5))  # nothing lost, in order
