"""CloseAnalysisActor: the session's TA-Lib definitions, run once per close for every symbol.

Started only when the session has TA-Lib definitions and ``analysis.batch_talib`` is on
(``plan.batched_definitions``); the symbol actors keep the hand-written components. The ingress
tells it one ``BarsClosed`` per close, with every 1-minute bar of that close (a quarantined
symbol's excepted), before it tells the symbol actors their own: the analysis itself is pure
(``tickstock.analysis.close_analysis.CloseAnalysis``); this actor owns where it runs, primes it,
and routes its results.

Guarantees:

- Every result of a close becomes one event. A close's events go out one timeframe at a time:
  each timeframe's in one ``PublishEncoded``, told as soon as that timeframe is analysed
  (``CloseAnalysis.close_in_parts``: 1min first where one analysis runs them all; with several
  processes, ``ProcessGroup``, in the order they finish); then the rows of all of them in one
  ``PersistResults``. So at the top of an hour the 1-minute events do not wait for the
  5/15/60-minute analysis, and Redis's round trips overlap it. The entries are, byte for byte, what
  the publisher would send for the events a symbol actor builds for the same results
  (``analysis_output.close_parts``), each timeframe's stamped when it was analysed; the rows are
  those persistence would derive from them, with the same deterministic ``row_id``, so a result is
  stored at most once. TA-Lib definitions raise no alerts.
- Where the analysis runs is ``analysis``: ``ProcessAnalysis`` (``analysis.process: true``, a
  process of its own, started in ``open`` and stopped in ``on_stop`` / ``on_failure``: a new
  incarnation has a new process) or ``LocalAnalysis`` (this actor's thread). A dead or silent
  process is this actor's death (``AnalysisProcessError``), also while priming.
- A failing definition costs only that symbol's result on that bar, logged with the symbol, the
  definition, the timeframe and the bar; after ``max_component_failures`` in a row it is disabled
  for that symbol (said in the same line).
- Priming, and where the database is read (never on the session's thread):
  - at the session's start (wall clock) the session streams each symbol's latest bars as
    ``PrimeSymbol`` messages, before the ingress exists;
  - on ``open`` of a restarted incarnation (``prime_on_open``), every symbol's latest bars in one
    streamed query (``load_history``);
  - in event time (``prime_at_first_bar``), at the first close: every symbol's bars before that
    close's first bar, in one query;
  - a symbol not seen before (a new symbol) is added at its first close and primed with its bars
    before that close, one query for all the close's new symbols.
  A failed read is a warning and the symbols it was for run unprimed: priming is accuracy, not a
  reason to die.
- **A dead process is found between closes**: on its timer (every ``report_interval``) the actor
  checks its processes (``Analysis.check``) and reports its figures (``AnalysisStats``, a
  ``ChildReport``: health names an analysis that stops reporting, stuck in a close, say). A process
  that ended is this actor's death then, so its successor is running and primed before the next
  close.
- **The close a process dies in is analysed again, once**: the successor gets it (``RedoClose``,
  told by the session before anything queued meanwhile) and publishes the timeframes whose
  events had not gone out, then stores every row of the close. It is late, not lost. A redo that
  fails again is given up, said in the log. The closes waiting in the dead actor's mailbox follow
  it (pykka would drop them), then what the session kept while the actor was down.
- An unexpected error kills the actor; the session restarts it (shared child, ``supervision.py``).
  The dead incarnation hands over (``final_stats``: ``AnalysisHandover``) where its analysis
  reached and the bars of its last ``HANDOVER_CLOSES`` closes: the successor primes every symbol
  from the database with the bars before that point, then with those bars (the database's writes
  may lag behind, in a fast replay most), so the
  closes queued while it restarted are analysed, not taken for history, and give what an
  uninterrupted analysis gives (higher bars forming across the restart included). Without a
  handover (the actor could not give one) it primes with the latest bars stored.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import pykka

from tickstock.actors.analysis_output import ClosePart, CloseRows
from tickstock.actors.analysis_process import AnalysisProcessError
from tickstock.actors.base import SupervisedActor, handles
from tickstock.actors.faults import maybe_fail
from tickstock.actors.timer import Ticker
from tickstock.analysis.pipeline import ComponentError
from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.messages.commands import (
    BarsClosed, GetStats, PersistResults, PrimeSymbol, PublishEncoded, RedoClose, TimerTick,
)
from tickstock.messages.wire import iso_utc

#: Closes whose bars a dead incarnation hands its successor (AnalysisHandover.recent_bars).
HANDOVER_CLOSES = 5

# (symbols, before=None) -> (symbol, its latest bars, oldest first), streamed
HistoryLoader = Callable[..., Iterable[tuple[str, Sequence[Bar]]]]


class Analysis(Protocol):
    """Where the close analysis runs: ``analysis_output.LocalAnalysis`` (this thread),
    ``analysis_process.ProcessAnalysis`` (a process of its own) or ``ProcessGroup`` (several, the
    timeframes shared between them)."""

    broken: list[tuple[str, str, str]]
    definitions: int
    symbols: tuple[str, ...]
    pids: tuple[int, ...]  # the processes it runs in, if not this one

    def __contains__(self, symbol: object) -> bool: ...
    def start(self) -> None: ...
    def add(self, symbol: str) -> None: ...
    def prime(self, symbol: str, bars: Sequence[Bar]) -> list[tuple[str, ComponentError]]: ...
    def live_from(self, t: float) -> None: ...
    def close(self, bars: Sequence[Bar], closed_at: float) -> Iterator[ClosePart | CloseRows]: ...
    def check(self) -> None: ...  # raises AnalysisProcessError if a process it runs in has ended
    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AnalysisStats:
    closes: int
    symbols: int
    definitions: int          # (definition, timeframe) pairs
    patterns: int
    indicators: int
    component_errors: int
    partial_bars_skipped: int
    disabled: int             # (definition, timeframe, symbol) triples disabled


@dataclass(frozen=True, slots=True)
class AnalysisHandover:
    """What a dead ``CloseAnalysisActor`` hands its successor (its ``final_stats``).

    ``analysed_through``: every bar starting before it was analysed (None: no close was);
    ``recent_bars``: the bars of its last ``HANDOVER_CLOSES`` closes, oldest first, which the
    database may not hold yet;
    ``redo``: the close its analysis process died in, if it died so (not in a redo);
    ``queued``: the closes still in its mailbox when it died (pykka drops a dead actor's mailbox),
    a redo it was handed and did not reach included.
    ``resend``: what the successor is told right after ``Open``, in order."""

    analysed_through: int | None
    recent_bars: tuple[Bar, ...] = ()
    redo: RedoClose | None = None
    queued: tuple[BarsClosed | RedoClose, ...] = ()

    @property
    def resend(self) -> tuple[RedoClose | BarsClosed, ...]:
        return ((self.redo,) if self.redo is not None else ()) + self.queued


class CloseAnalysisActor(SupervisedActor):
    def __init__(
        self,
        supervisor: pykka.ActorRef | None,
        session_id: str,
        analysis: Analysis,
        publisher: Any,
        persistence: Any,
        load_history: HistoryLoader | None = None,
        prime_on_open: bool = False,
        prime_at_first_bar: bool = False,
        clock: Callable[[], float] = time.time,
        on_detection: Callable[[str], None] | None = None,
        handover: AnalysisHandover | None = None,
        report_interval: float = 1.0,
    ) -> None:
        """``analysis`` holds the definitions and the symbols known at the start.
        ``load_history``: the store's stream of recent bars (None: new symbols start unprimed).
        ``handover``: the dead predecessor's (a restart), to prime from where it stopped."""
        super().__init__(supervisor, "analysis", session_id)
        self.analysis = analysis
        self.publisher = publisher
        self.persistence = persistence
        self._load_history = load_history
        self._prime_on_open = prime_on_open
        self._prime_at_first_bar = prime_at_first_bar
        self._clock = clock
        self._on_detection = on_detection
        self.closes = self.patterns = self.indicators = self.component_errors = self.partial_bars_skipped = 0
        self.disabled = 0
        self._handover = handover
        self._report_interval = report_interval
        self._ticker: Ticker | None = None
        # Where the analysis has reached, for a successor (AnalysisHandover).
        self._analysed_through: int | None = None
        self._recent_closes: deque[tuple[Bar, ...]] = deque(maxlen=HANDOVER_CLOSES)
        self._in_flight: RedoClose | None = None   # the close being analysed, with what went out of it
        self._redoing = False
        self._death: BaseException | None = None
        self._queued: tuple[BarsClosed | RedoClose, ...] = ()

    def open(self) -> None:
        self.analysis.start()
        for tf, name, error in self.analysis.broken:
            self.log.error("definition {} on {} cannot be built and does not run: {}", name, tf, error)
        handover = self._handover
        if handover is not None:  # handed on as it is if this one dies before its first close
            self._analysed_through = handover.analysed_through
            self._recent_closes.append(handover.recent_bars)
        if handover is not None and handover.analysed_through is not None:
            # Everything before where the predecessor reached, and not a bar more: the closes queued
            # meanwhile (and its redo) are analysed, not primed.
            self._prime_at_first_bar = False
            self._prime_from_store(self.analysis.symbols, before=handover.analysed_through)
            self._prime_bars(handover.recent_bars)
        elif self._prime_on_open:
            self._prime_from_store(self.analysis.symbols)
        self.analysis.live_from(self._clock())
        pids = self.analysis.pids
        where = "" if not pids else f", in process {pids[0]}" if len(pids) == 1 else \
            f", in processes {', '.join(map(str, pids))}"
        self.log.info("analysing {} TA-Lib (definition, timeframe) pairs for {} symbols once per close{}",
                      self.analysis.definitions, len(self.analysis.symbols), where)
        self.report(self._stats())
        self._ticker = Ticker(self.actor_ref, self._report_interval, TimerTick, "analysis").start()

    def on_stop(self) -> None:
        self._stop_ticker()
        self.analysis.stop()

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self._death = exception_value
        self._stop_ticker()
        self._queued = self._take_queued_closes()
        super().on_failure(exception_type, exception_value, traceback)
        self.analysis.stop()  # the next incarnation starts a process of its own

    def final_stats(self) -> AnalysisHandover:
        """Where the analysis reached, and the close to analyse again if a process died in it."""
        redo = self._in_flight
        if redo is not None and (self._redoing or not isinstance(self._death, AnalysisProcessError)):
            self.log.error("the close of {} bars at {} is not analysed: {}", len(redo.close.bars),
                           iso_utc(redo.close.closed_at), "it failed again when analysed again" if self._redoing
                           else "the actor failed in it, not its analysis process")
            redo = None
        recent = tuple(bar for bars in self._recent_closes for bar in bars)
        return AnalysisHandover(self._analysed_through, recent, redo, self._queued)

    def _take_queued_closes(self) -> tuple[BarsClosed | RedoClose, ...]:
        """The closes waiting in this (dying) actor's mailbox, taken out: pykka would drop them."""
        queued: list[BarsClosed | RedoClose] = []
        while True:
            try:
                envelope = self.actor_inbox.get_nowait()
            except queue.Empty:
                return tuple(queued)
            if type(envelope.message) in (BarsClosed, RedoClose):
                queued.append(envelope.message)

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    @handles(TimerTick)
    def _tick(self, message: TimerTick) -> None:
        # A process that ended between closes is this actor's death now, not at the next close:
        # the successor is primed by then, and that close is analysed on time.
        self.analysis.check()
        self.report(self._stats())

    @handles(PrimeSymbol)
    def _prime_symbol(self, message: PrimeSymbol) -> None:
        if message.symbol not in self.analysis:
            self.analysis.add(message.symbol)
        self._log_errors(self.analysis.prime(message.symbol, message.bars))

    @handles(BarsClosed)
    def _bars(self, message: BarsClosed) -> None:
        maybe_fail("analysis:bars")
        self._close(message, ())

    @handles(RedoClose)
    def _redo(self, message: RedoClose) -> None:
        self.log.warning("analysing again the close of {} bars at {} (its analysis process died in it){}",
                         len(message.close.bars), iso_utc(message.close.closed_at),
                         f"; {', '.join(message.published)} already published" if message.published else "")
        self._redoing = True
        self._close(message.close, message.published)
        self._redoing = False

    def _close(self, message: BarsClosed, published: tuple[str, ...]) -> None:
        """Analyse one close; publish every part but those of the timeframes in ``published``."""
        bars = message.bars
        if not bars:
            return
        self._in_flight = RedoClose(message, published)
        analysis = self.analysis
        new = [bar.symbol for bar in bars if bar.symbol not in analysis]
        for symbol in new:
            analysis.add(symbol)
        first = min(bar.start for bar in bars)
        if self._prime_at_first_bar:  # event time: every symbol primed with what preceded this close, once
            self._prime_at_first_bar = False
            self._prime_from_store(analysis.symbols, before=first)
        elif new:
            self._prime_from_store(new, before=first)
        for item in analysis.close(bars, message.closed_at):  # one timeframe at a time, as each is ready
            if type(item) is CloseRows:  # the last: every row of the close (all stored: no alerts here)
                if item.patterns or item.indicators:
                    self.persistence.tell(PersistResults(tuple(item.patterns), tuple(item.indicators)))
                continue
            if item.timeframe and item.timeframe in published:
                continue  # its events went out before the process died
            self.partial_bars_skipped += item.partial_skipped
            self._log_errors(item.errors)
            if item.entries:
                self.publisher.tell(PublishEncoded(tuple(item.entries), len(item.patterns), item.indicators))
                self._count(item.patterns, item.indicators)
            if item.timeframe:
                published = (*published, item.timeframe)
                self._in_flight = RedoClose(message, published)
        self._in_flight = None
        self._analysed_through = max(self._analysed_through or 0, max(bar.start for bar in bars) + BAR_SECONDS)
        self._recent_closes.append(tuple(bars))
        self.closes += 1

    def _count(self, patterns: list[str], indicators: int) -> None:
        self.patterns += len(patterns)
        self.indicators += indicators
        if self._on_detection is not None:
            for name in patterns:
                self._on_detection(name)

    def _prime_from_store(self, symbols: Sequence[str], before: int | None = None) -> None:
        if self._load_history is None or not symbols:
            return
        served = 0
        try:
            for symbol, bars in self._load_history(list(symbols), before=before):
                if symbol in self.analysis:
                    self._log_errors(self.analysis.prime(symbol, bars))
                    served += 1
        except AnalysisProcessError:
            raise  # not the read: the analysis itself is gone
        except Exception as exc:  # priming is accuracy, not a reason to die (and be restarted again)
            self.log.warning("recent bars could not be loaded for priming ({} of {} symbols served): {!r}",
                             served, len(symbols), exc)

    def _prime_bars(self, bars: Sequence[Bar]) -> None:
        """Prime with a close's bars (several symbols'); bars a symbol already has are ignored."""
        by_symbol: dict[str, list[Bar]] = {}
        for bar in bars:
            if bar.symbol in self.analysis:
                by_symbol.setdefault(bar.symbol, []).append(bar)
        for symbol, own in by_symbol.items():
            self._log_errors(self.analysis.prime(symbol, own))

    def _log_errors(self, errors: Sequence[tuple[str, ComponentError]]) -> None:
        for tf, e in errors:
            self.component_errors += 1
            self.disabled += e.disabled
            self.log.error("{} component {} failed on {} bar {}: {}{}", e.symbol, e.name, tf, iso_utc(e.bar_start),
                           e.error_repr, " (disabled for this symbol)" if e.disabled else "")

    @handles(GetStats)
    def _get_stats(self, message: GetStats) -> AnalysisStats:
        return self._stats()

    def _stats(self) -> AnalysisStats:
        return AnalysisStats(self.closes, len(self.analysis.symbols), self.analysis.definitions, self.patterns,
                             self.indicators, self.component_errors, self.partial_bars_skipped, self.disabled)
