"""SymbolActor: one per symbol. Runs its analysis pipeline on each closed bar and sends every result
to the publisher and persistence actors.

It keeps no list of bars: the pipeline's components hold exactly the window each needs (a few
floats for RSI/SMA, a few bars for candles), so a symbol costs kilobytes, not a day of Bar objects
(10,000 symbols must fit in a few hundred MB). ``SymbolStats.bars`` counts the bars it has seen.

Symbol actors run on their session's ``Dispatcher`` (``session.symbol_workers`` threads), not a
thread each: see dispatch.py. Their handlers never block on another actor.

The analysis itself is pure (``tickstock.analysis``); this actor only keeps the state and routes
messages. A component that raises is isolated by the pipeline; an unexpected error here kills only
this actor, and the supervisor restarts it primed from the database.

A bar known to be partial (``Bar.partial``: the first minute of a mid-minute start, a minute with a
subscription gap) is counted but not analysed, unless ``analyse_partial_bars``;
it is stored either way (the ingress sends bars to persistence, not this actor). Each skipped bar
is counted in ``SymbolStats.partial_bars_skipped``.

Every pattern and indicator record gets a deterministic ``row_id`` (session, symbol, type, bar
start, timeframe), so the store writes a result at most once however often it is retried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pykka

from tickstock.actors.base import PooledSupervisedActor, handles
from tickstock.actors.dispatch import Dispatcher, default_dispatcher
from tickstock.actors.faults import maybe_fail
from tickstock.messages.bars import Bar
from tickstock.messages.commands import BarClosed, GetStats, PersistResults, Publish
from tickstock.messages.events import IndicatorAlertRaised, IndicatorCalculated, PatternDetected, bar_data
from tickstock.messages.records import IndicatorRecord, PatternRecord, indicator_row_id, pattern_row_id
from tickstock.messages.wire import iso_utc


# The bars' timeframe, as the records name it.
TIMEFRAME = "1min"


@dataclass(frozen=True, slots=True)
class SymbolStats:
    symbol: str
    bars: int                       # bars seen: primed history + live
    patterns: int
    indicators: int
    component_errors: int
    last_bar_start: int | None
    partial_bars_skipped: int = 0  # partial bars kept but not analysed


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
        pattern_ttl: float = 3600.0,
        indicator_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
        on_detection: Callable[[str], None] | None = None,
        dispatcher: Dispatcher | None = None,
        load_history: Callable[[], Sequence[Bar]] | None = None,
        analyse_partial_bars: bool = False,
    ) -> None:
        """``history=None``: prime from ``load_history()`` when the actor opens (a restart, a new
        symbol), so its supervisor never reads the database itself."""
        super().__init__(supervisor, f"symbol:{symbol}", session_id, dispatcher or default_dispatcher())
        self._on_detection = on_detection
        self.symbol = symbol
        self.pipeline = pipeline
        self.publisher = publisher
        self.persistence = persistence
        self.bars_seen = len(history or ())
        self.last_bar_start: int | None = history[-1].start if history else None
        self._load_history = load_history if history is None else None
        self._pattern_ttl = pattern_ttl
        self._indicator_ttl = indicator_ttl
        self._clock = clock
        self._analyse_partial_bars = analyse_partial_bars
        self.patterns = self.indicators = self.component_errors = self.partial_bars_skipped = 0
        # Priming publishes nothing: it only brings indicators and candle averages up to date.
        if history:
            self.pipeline.prime(list(history))

    def open(self) -> None:
        if self._load_history is None:
            return
        try:
            history = list(self._load_history())
        except Exception as exc:  # priming is accuracy, not a reason to die (and be restarted again)
            self.log.warning("{}: recent bars could not be loaded for priming: {!r}", self.symbol, exc)
            return
        self.pipeline.prime(history)
        self.bars_seen += len(history)
        if history:
            self.last_bar_start = history[-1].start

    @handles(BarClosed)
    def _bar(self, message: BarClosed) -> None:
        maybe_fail(f"symbol:{self.symbol}:bar")
        bar = message.bar
        self.bars_seen += 1
        self.last_bar_start = bar.start
        if bar.partial and not self._analyse_partial_bars:
            self.partial_bars_skipped += 1
            self.log.debug("{} bar {} is partial: not analysed", self.symbol, iso_utc(bar.start))
            return
        out = self.pipeline.on_bar(bar)
        now = self._clock()
        events: list = []
        patterns: list[PatternRecord] = []
        indicators: list[IndicatorRecord] = []
        for p in out.patterns:
            if self._on_detection is not None:
                self._on_detection(p.name)
            events.append(PatternDetected(
                self.symbol, p.name, p.confidence, now, p.bar, self.session_id,
                dict(p.parameters), tuple(p.levels), message.closed_at,
            ))
            patterns.append(PatternRecord(
                symbol=self.symbol, pattern_type=p.name, confidence=p.confidence,
                detection_timestamp=now, expiration_timestamp=now + self._pattern_ttl,
                pattern_data={"bar_timestamp": iso_utc(p.bar.start), "bar_data": bar_data(p.bar), **p.parameters},
                levels=tuple(p.levels), metadata={"session_id": self.session_id}, timeframe=TIMEFRAME,
                row_id=pattern_row_id(self.session_id, self.symbol, p.name, p.bar.start, TIMEFRAME),
            ))
        for i in out.indicators:
            events.append(IndicatorCalculated(
                self.symbol, i.name, i.value, dict(i.values), now, i.bar, self.session_id,
                dict(i.metadata), message.closed_at,
            ))
            indicators.append(IndicatorRecord(
                symbol=self.symbol, indicator_type=i.name, value=i.value, calculation_timestamp=now,
                expiration_timestamp=now + self._indicator_ttl, value_data=dict(i.values),
                metadata={**i.metadata, "session_id": self.session_id, "bar_timestamp": iso_utc(i.bar.start)},
                timeframe=TIMEFRAME,
                row_id=indicator_row_id(self.session_id, self.symbol, i.name, i.bar.start, TIMEFRAME),
            ))
        for a in out.alerts:
            events.append(IndicatorAlertRaised(
                a.alert_type, self.symbol, a.indicator, a.value, a.threshold, a.direction, now, self.session_id,
            ))
        for e in out.errors:
            self.component_errors += 1
            self.log.error(
                "{} component {} failed on bar {}: {}{}", self.symbol, e.name, iso_utc(e.bar_start),
                e.error_repr, " (disabled for this symbol)" if e.disabled else "",
            )
        self.patterns += len(patterns)
        self.indicators += len(indicators)
        if events:
            self.publisher.tell(Publish(tuple(events)))
        if patterns or indicators:
            self.persistence.tell(PersistResults(tuple(patterns), tuple(indicators)))

    @handles(GetStats)
    def _stats(self, message: GetStats) -> SymbolStats:
        return SymbolStats(self.symbol, self.bars_seen, self.patterns, self.indicators, self.component_errors, self.last_bar_start,
                           self.partial_bars_skipped)

