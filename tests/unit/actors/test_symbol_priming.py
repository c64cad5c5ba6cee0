"""SymbolActor priming in event time: the history is the bars BEFORE the first bar received, read by
the actor itself (on its dispatcher worker) when that bar arrives, primed, then the bar analysed.
Wall clock: the history given at construction, or ``load_history()`` on open (restarts)."""

from __future__ import annotations

import threading

import pykka
import pytest
from loguru import logger

from tickstock.actors.dispatch import Dispatcher
from tickstock.actors.plan import SessionPlan
from tickstock.actors.symbol import SymbolActor
from tickstock.actors.wiring import ProductionFactory
from tickstock.config import Settings
from tickstock.messages.bars import Bar
from tickstock.messages.commands import BarClosed, GetStats, Open, Publish

from .fakes import FakeClock, FakePipeline, PipelineOutput, Recorder, indicator_result

pytestmark = pytest.mark.timeout(10)

SID = "3f2c9a1e-0000-4000-8000-000000000003"
DAY = 1_741_786_200  # 2025-03-12 13:30 UTC, a replayed day's open (an hour start + 30 min)
WALL = DAY + 200 * 86_400  # the replay runs long after


def bar(start: int, close: float = 100.0, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, start, close - 0.5, close + 1.0, close - 1.0, close, 100, 3, SID)


BEFORE = [bar(DAY - 60 * (10 - i), 90.0 + i) for i in range(10)]  # the ten minutes before the day


class Loader:
    """``load_history``: records each call's keyword arguments (and the thread it ran on)."""

    def __init__(self, bars=BEFORE, error: BaseException | None = None, events: list | None = None) -> None:
        self.bars, self.error = list(bars), error
        self.calls: list[dict] = []
        self.threads: list[str] = []
        self.events = events if events is not None else []

    def __call__(self, **kwargs) -> list[Bar]:
        self.calls.append(kwargs)
        self.threads.append(threading.current_thread().name)
        self.events.append("load")
        if self.error is not None:
            raise self.error
        before = kwargs.get("before")
        return [b for b in self.bars if before is None or b.start < before]


class OrderedPipeline(FakePipeline):
    """A FakePipeline that also writes prime/on_bar into a shared event list (the order matters)."""

    def __init__(self, events: list, outputs=None) -> None:
        super().__init__(outputs)
        self.events = events

    def prime(self, bars) -> None:
        self.events.append("prime")
        super().prime(bars)

    def on_bar(self, bar):
        self.events.append("bar")
        return super().on_bar(bar)


def sma(b: Bar) -> PipelineOutput:
    return PipelineOutput(indicators=[indicator_result(b, "SMA", b.close, {"value": b.close}, {"period": 2})])


def make(loader: Loader, prime_at_first_bar: bool = True, history=None, **kwargs):
    pipeline = OrderedPipeline(loader.events, sma)
    publisher, persistence = Recorder("publisher"), Recorder("persistence")
    actor = SymbolActor(None, SID, "AAPL", pipeline, publisher, persistence, history=history,
                        clock=FakeClock(WALL), load_history=loader, prime_at_first_bar=prime_at_first_bar, **kwargs)
    return actor, pipeline, publisher


def test_in_event_time_the_first_bar_primes_with_the_bars_before_it_then_is_analysed():
    loader = Loader(BEFORE + [bar(DAY + 86_400 + 60 * i) for i in range(5)])  # the next day is stored too
    actor, pipeline, publisher = make(loader)
    actor.on_receive(Open(1))
    assert loader.calls == [] and pipeline.primed == []  # nothing read on open: the day is not known yet
    first = bar(DAY, 101.0)
    actor.on_receive(BarClosed(first, WALL))
    assert loader.calls == [{"before": DAY}]
    assert pipeline.primed == [BEFORE]                     # the bars before the day, not the latest
    assert loader.events == ["load", "prime", "bar"]       # primed before the bar is analysed
    assert pipeline.seen == [first]
    [publish] = publisher.of_type(Publish)
    assert publish.events[0].bar == first                  # the first bar's results go out as usual
    actor.on_receive(BarClosed(bar(DAY + 60), WALL))
    assert len(loader.calls) == 1 and len(pipeline.primed) == 1  # once per incarnation
    stats = actor.on_receive(GetStats())
    assert (stats.bars, stats.last_bar_start) == (len(BEFORE) + 2, DAY + 60)


def test_a_failed_read_is_a_warning_and_the_bar_is_still_analysed_unprimed():
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        loader = Loader(error=ConnectionError("database went away"))
        actor, pipeline, publisher = make(loader)
        actor.on_receive(Open(1))
        actor.on_receive(BarClosed(bar(DAY), WALL))
        actor.on_receive(BarClosed(bar(DAY + 60), WALL))
    finally:
        logger.remove(sink)
    assert len(loader.calls) == 1                          # not retried bar after bar
    assert pipeline.primed == [] and len(pipeline.seen) == 2 and len(publisher.of_type(Publish)) == 2
    assert any("could not be loaded for priming" in w and "database went away" in w for w in warnings)


def test_history_given_at_construction_is_used_and_nothing_is_read():
    loader = Loader()
    actor, pipeline, _ = make(loader, history=BEFORE[:3])
    actor.on_receive(Open(1))
    actor.on_receive(BarClosed(bar(DAY), WALL))
    assert loader.calls == [] and pipeline.primed == [BEFORE[:3]]


def test_wall_clock_reads_the_latest_bars_on_open_and_never_at_a_bar():
    loader = Loader()
    actor, pipeline, _ = make(loader, prime_at_first_bar=False)
    actor.on_receive(Open(1))
    assert loader.calls == [{}] and pipeline.primed == [BEFORE]
    actor.on_receive(BarClosed(bar(DAY), WALL))
    assert loader.calls == [{}]


def test_higher_timeframes_are_primed_from_the_bars_before_the_first_bar():
    events: list = []
    loader = Loader(events=events)
    five = FakePipeline(sma)
    actor, base, publisher = make(loader, higher={"5min": five})
    actor.on_receive(Open(1))
    for m in range(5):
        actor.on_receive(BarClosed(bar(DAY + 60 * m, 100.0 + m), WALL))
    # The ten minutes before the day close two 5-minute bars: the 5min pipeline's history.
    [primed] = five.primed
    assert [b.start for b in primed] == [DAY - 600, DAY - 300] and not any(b.partial for b in primed)
    # The history reaches the first bar: the day's first 5-minute bar is whole, and analysed.
    [day_bar] = five.seen
    assert (day_bar.start, day_bar.partial, day_bar.volume) == (DAY, False, 500)


def test_the_read_runs_on_the_dispatcher_worker_not_the_caller_thread():
    """The session's thread only tells; the query runs in the symbol actor's own turn."""
    dispatcher = Dispatcher("symbols-prime", 1)
    loader = Loader()
    pipeline, publisher = FakePipeline(sma), Recorder("publisher")
    ref = SymbolActor.start(None, SID, "AAPL", pipeline, publisher, Recorder("persistence"), history=None,
                            clock=FakeClock(WALL), load_history=loader, prime_at_first_bar=True,
                            dispatcher=dispatcher)
    try:
        ref.tell(Open(1))
        ref.tell(BarClosed(bar(DAY), WALL))
        assert ref.ask(GetStats(), timeout=5).bars == len(BEFORE) + 1
        assert loader.calls == [{"before": DAY}]
        assert loader.threads[0].startswith("symbols-prime-") and loader.threads[0] != threading.current_thread().name
    finally:
        ref.stop()
        dispatcher.shutdown(2)


@pytest.mark.parametrize("mode", ["wall", "event"])
def test_the_factory_primes_event_time_actors_from_the_bars_before_their_first_bar(mode, monkeypatch):
    settings = Settings()
    settings = settings.replace(session=settings.session.replace(clock=mode),
                                analysis=settings.analysis.replace(prime_bars=50))
    factory = ProductionFactory(settings)
    reads: list[tuple] = []
    monkeypatch.setattr(factory, "_history_of", lambda symbol, limit, before=None: reads.append(
        (symbol, limit, before)) or [])
    plan = SessionPlan("test:one", ("AAPL",), settings)
    ref = factory.symbol(None, plan, "AAPL", None, Recorder("publisher"), Recorder("persistence"))
    try:
        ref.ask(Open(1), timeout=5)
        opened = list(reads)
        ref.tell(BarClosed(bar(DAY), WALL))
        ref.ask(GetStats(), timeout=5)
    finally:
        ref.stop()
        factory.close(2)
    if mode == "event":
        assert opened == [] and reads == [("AAPL", 50, DAY)]
    else:
        assert opened == reads == [("AAPL", 50, None)]


@pytest.fixture(autouse=True)
def _no_actor_left():
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
