"""SymbolActor: one per symbol. Runs its analysis pipeline on each closed bar and sends every result
to the publisher and persistence actors.

It keeps no list of bars: the pipeline's components hold exactly the window each needs (a few
floats for RSI/SMA, a few bars for candles), so a symbol costs kilobytes, not a day of Bar objects
(10,000 symbols must fit in a few hundred MB). ``SymbolStats.bars`` counts the bars it has seen.

Symbol actors run on their session's ``Dispatcher`` (``session.symbol_workers`` threads), not a
thread each: see dispatch.py. Their handlers never block on another actor.

The analysis itself is pure (``tickstock.analysis``); this actor only keeps the state and routes
messages. Its pipelines hold the hand-written components; the TA-Lib definitions run in the
session's ``CloseAnalysisActor`` for all symbols at once (analysis.py), unless
``analysis.batch_talib`` is off (``plan.symbol_pipelines`` decides). A component that raises is
isolated by the pipeline; an unexpected error here kills only this actor, and the supervisor
restarts it primed from the database.

A bar known to be partial (``Bar.partial``: the first minute of a mid-minute start, a minute with a
subscription gap) is counted but not analysed, unless ``analyse_partial_bars``;
it is stored either way (the ingress sends bars to persistence, not this actor). Each skipped bar
is counted in ``SymbolStats.partial_bars_skipped``.

Each result is built once, as its event: one ``Publish`` to the publisher, and the detections and
indicator values (not the alerts) in one ``PersistEvents`` to persistence, which derives the rows
there, each with a deterministic ``row_id`` (session, symbol, type, bar start, timeframe), so the
store writes a result at most once however often it is retried. Nothing else stands between a
bar's close and its events on Redis.

Higher timeframes (``higher``: timeframe -> that timeframe's pipeline; none for a 1min-only set,
whose path is then exactly the 1-minute one): every 1-minute bar, partial or not, is also folded by a
``Resampler`` (tickstock/bars/timeframes.py), and each 5/15/60-minute bar it closes runs through its
timeframe's pipeline in the same turn, its results published and stored with that ``timeframe``
(one ``Publish`` and one ``PersistEvents`` per 1-minute bar for all timeframes together). A
higher bar known to be partial is skipped like a partial 1-minute bar (and counted with them).
Priming folds the history too, priming each timeframe's pipeline with the higher bars it closes.
The stretch between the end of the history and the time the actor opened (or its first live bar,
if earlier: a replay in event time) was not seen by this actor: higher bars overlapping it are
partial. A higher bar whose last minute had no ticks closes with the symbol's next 1-minute bar
(``late``); none closes at the session's end without one (the next session's priming has it).

Priming, and the one place the actor reads the database. Given ``history`` (wall clock: the session
streams each symbol's latest bars at its start), it primes in the constructor. Built with
``history=None`` it loads its own, through ``load_history`` (the factory's; one query per
incarnation), in its own turn on its dispatcher worker -- never on the session actor's thread,
which must stay free to supervise, and never again after that one read:
- on ``open`` (a restart, a new symbol): ``load_history()``, the latest bars stored;
- in event time (``prime_at_first_bar``, ``session.clock: event``): when its first bar arrives,
  ``load_history(before=bar.start)``, the bars BEFORE that bar, then primes, then analyses the
  bar. A replay of a past day is so primed with the day's real predecessors, even when the database
  already holds later bars (replaying yesterday into today's database): primed with the latest, every
  replayed bar would be older than the history, ignored by the pipeline as stale, and nothing found.
A failed read is logged as a warning and the actor runs unprimed: priming is accuracy, not a
reason to die (and be restarted into the same failure).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pykka

from tickstock.actors.base import PooledSupervisedActor, handles
from tickstock.actors.dispatch import Dispatcher, default_dispatcher
from tickstock.actors.faults import maybe_fail
from tickstock.analysis.base import IndicatorResult, PatternResult
from tickstock.bars.timeframes import BASE_TIMEFRAME, Resampler, SessionTable
from tickstock.messages.bars import Bar
from tickstock.messages.commands import BarClosed, GetStats, PersistEvents, Publish
from tickstock.messages.events import IndicatorAlertRaised, IndicatorCalculated, PatternDetected
from tickstock.messages.wire import iso_utc


# The bars' timeframe, as the records name it.
TIMEFRAME = BASE_TIMEFRAME


def pattern_event(p: PatternResult, symbol: str, session_id: str, timeframe: str, now: float,
                  closed_at: float) -> PatternDetected:
    """The event of one detection on a bar of ``timeframe``, stamped ``now``, carrying the bar's
    ``closed_at``. It takes the result's dicts as they are: a result owns them (``PatternResult``)."""
    return PatternDetected(symbol, p.name, p.confidence, now, p.bar, session_id, p.parameters, p.levels,
                           closed_at, timeframe)


def indicator_event(i: IndicatorResult, symbol: str, session_id: str, timeframe: str, now: float,
                    closed_at: float) -> IndicatorCalculated:
    """The event of one indicator value, as ``pattern_event``."""
    return IndicatorCalculated(symbol, i.name, i.value, i.values, now, i.bar, session_id, i.metadata,
                               closed_at, timeframe)


def result_events(out: Any, symbol: str, session_id: str, timeframe: str, now: float, closed_at: float) -> list:
    """The events of one pipeline output on a bar of ``timeframe``: its detections, indicator
    values and alerts, in that order (``pattern_event``, ``indicator_event``). Runs for every result
    of every symbol at a bar close."""
    events: list = [pattern_event(p, symbol, session_id, timeframe, now, closed_at) for p in out.patterns]
    events += [indicator_event(i, symbol, session_id, timeframe, now, closed_at) for i in out.indicators]
    events += [
        IndicatorAlertRaised(a.alert_type, symbol, a.indicator, a.value, a.threshold, a.direction, now, session_id,
                             timeframe=timeframe)
        for a in out.alerts
    ]
    return events


@dataclass(frozen=True, slots=True)
class SymbolStats:
    symbol: str
    bars: int                       # bars seen: primed history + live
    patterns: int
    indicators: int
    component_errors: int
    last_bar_start: int | None
    partial_bars_skipped: int = 0  # partial bars (of any timeframe) not analysed


class SymbolActor(PooledSupervisedActor):
    def __init__(
        self,
        supervisor: pykka.ActorRef | None,
        session_id: str,
        symbol: str,
        pipeline: Any,
        publisher: Any,
        persistence: Any,
        history: Sequence[Bar] | None = (),
        clock: Callable[[], float] = time.time,
        on_detection: Callable[[str], None] | None = None,
        dispatcher: Dispatcher | None = None,
        load_history: Callable[..., Sequence[Bar]] | None = None,
        analyse_partial_bars: bool = False,
        higher: Mapping[str, Any] | None = None,
        sessions: SessionTable | None = None,
        prime_at_first_bar: bool = False,
    ) -> None:
        """``history=None``: prime from ``load_history()`` when the actor opens (a restart, a new
        symbol), so its supervisor never reads the database itself. ``higher``: the pipelines of
        the higher timeframes that have definitions (none: 1min only); ``sessions``: where the
        60-minute bars start and end. ``prime_at_first_bar`` (event time; with ``history=None``):
        load the history when the first bar arrives, ``load_history(before=<its start>)``, not on
        open (see the module docstring)."""
        super().__init__(supervisor, f"symbol:{symbol}", session_id, dispatcher or default_dispatcher())
        self._on_detection = on_detection
        self.symbol = symbol
        self.pipeline = pipeline
        self.publisher = publisher
        self.persistence = persistence
        self.bars_seen = 0
        self.last_bar_start: int | None = None
        self._load_history = load_history if history is None else None
        # Event time: the history is the bars before the first one received (unknown until then).
        self._prime_at_first_bar = prime_at_first_bar and self._load_history is not None
        self._clock = clock
        self._analyse_partial_bars = analyse_partial_bars
        self.patterns = self.indicators = self.component_errors = self.partial_bars_skipped = 0
        self._higher = dict(higher) if higher else {}
        self._resampler = Resampler(symbol, self._higher, sessions) if self._higher else None
        self._opened_at: float | None = None  # when this actor started to receive (higher timeframes)
        self._awaiting_live = True
        # Priming publishes nothing: it only brings indicators and candle averages up to date.
        if history:
            self._prime_loaded(list(history))

    def open(self) -> None:
        if self._load_history is None or self._prime_at_first_bar:
            self._opened_at = self._clock()
            return
        history = self._read_history()
        self._opened_at = self._clock()
        self._prime_loaded(history)

    def _read_history(self, before: int | None = None) -> list[Bar] | None:
        """The history from ``load_history`` (the bars before ``before`` if given); None if it failed."""
        try:
            return list(self._load_history() if before is None else self._load_history(before=before))
        except Exception as exc:  # priming is accuracy, not a reason to die (and be restarted again)
            self.log.warning("{}: recent bars could not be loaded for priming: {!r}", self.symbol, exc)
            return None

    def _prime_loaded(self, history: list[Bar] | None) -> None:
        if history is None:  # the read failed: unprimed
            return
        self._prime(history)
        self.bars_seen += len(history)
        if history:
            self.last_bar_start = history[-1].start

    def _prime(self, history: list[Bar]) -> None:
        self.pipeline.prime(history)
        resampler = self._resampler
        if resampler is None or not history:
            return
        for tf, bars in resampler.fold(history).items():
            if bars:
                self._higher[tf].prime(bars)

    @handles(BarClosed)
    def _bar(self, message: BarClosed) -> None:
        maybe_fail(f"symbol:{self.symbol}:bar")
        bar = message.bar
        if self._prime_at_first_bar:  # event time: primed with what preceded this bar, once
            self._prime_at_first_bar = False
            self._prime_loaded(self._read_history(before=bar.start))
        self.bars_seen += 1
        self.last_bar_start = bar.start
        resampler = self._resampler
        if bar.partial and not self._analyse_partial_bars:
            self._skip(bar, TIMEFRAME)
            if resampler is None:
                return
            out = None
        else:
            out = self.pipeline.on_bar(bar)
        now = self._clock()
        events: list = []
        if out is not None:
            self._collect(out, TIMEFRAME, now, message.closed_at, events)
        if resampler is not None:
            if self._awaiting_live:  # what lies between the history and now was not seen here
                self._awaiting_live = False
                opened = self._opened_at
                resampler.observed_from(bar.start if opened is None else min(opened, bar.start))
            for closed in resampler.on_bar(bar):
                if closed.bar.partial and not self._analyse_partial_bars:
                    self._skip(closed.bar, closed.timeframe)
                    continue
                self._collect(self._higher[closed.timeframe].on_bar(closed.bar), closed.timeframe, now,
                              message.closed_at, events)
        if events:
            events = tuple(events)
            self.publisher.tell(Publish(events))
            stored = tuple(e for e in events if type(e) is not IndicatorAlertRaised)
            if stored:  # the rows are derived from the events by the persistence actor
                self.persistence.tell(PersistEvents(stored))

    def _skip(self, bar: Bar, timeframe: str) -> None:
        self.partial_bars_skipped += 1
        self.log.debug("{} {} bar {} is partial: not analysed", self.symbol, timeframe, iso_utc(bar.start))

    def _collect(self, out: Any, timeframe: str, now: float, closed_at: float, events: list) -> None:
        """Turn one pipeline output (on a bar of ``timeframe``) into events."""
        if self._on_detection is not None:
            for p in out.patterns:
                self._on_detection(p.name)
        events.extend(result_events(out, self.symbol, self.session_id, timeframe, now, closed_at))
        self.patterns += len(out.patterns)
        self.indicators += len(out.indicators)
        symbol = self.symbol
        for e in out.errors:
            self.component_errors += 1
            self.log.error(
                "{} component {} failed on {} bar {}: {}{}", symbol, e.name, timeframe, iso_utc(e.bar_start),
                e.error_repr, " (disabled for this symbol)" if e.disabled else "",
            )

    @handles(GetStats)
    def _stats(self, message: GetStats) -> SymbolStats:
        return SymbolStats(self.symbol, self.bars_seen, self.patterns, self.indicators, self.component_errors, self.last_bar_start,
                           self.partial_bars_skipped)

