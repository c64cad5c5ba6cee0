"""What a close's TA-Lib analysis hands out: events encoded for Redis and rows for the database.

Why here and not in the publisher and persistence: at the top of an hour the close analysis makes
~5,000 events. Encoding them (~15 ms) and deriving their rows (~18 ms) where they are computed
lets that work run in the analysis's own process (``analysis_process.py``), off the interpreter
that runs the symbol actors, the publisher and persistence; in-process (``LocalAnalysis``) it is
the same work on the analysis actor's thread.

Guarantees (tests/unit/actors/test_analysis_output.py):

- ``close_parts`` yields one ``ClosePart`` per part of ``CloseAnalysis.close_in_parts`` (one
  timeframe, 1min first), as soon as that part is analysed, then one ``CloseRows`` with the rows
  of every event of the close. A part's ``entries`` are exactly what the publisher would send for
  the events a symbol actor builds for the same results (``encode_for_redis`` of
  ``close_events``); the rows are ``event_records`` of those events (same ``row_id``\\ s).
- Each part's events are stamped ``now()`` read when that part was analysed.
- ``AnalysisSpec.build`` is the one place a session's ``CloseAnalysis`` is constructed: on the
  actor's thread (``LocalAnalysis``) and in the analysis process alike.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import msgspec

from tickstock.actors.publisher import encode_for_redis
from tickstock.actors.symbol import indicator_event, pattern_event
from tickstock.analysis.base import PatternResult
from tickstock.analysis.close_analysis import CloseAnalysis, CloseOutput
from tickstock.analysis.definitions import Definition
from tickstock.analysis.pipeline import ComponentError
from tickstock.bars.timeframes import TIMEFRAMES, SessionTable
from tickstock.config import ChannelSettings
from tickstock.messages.bars import Bar
from tickstock.messages.events import PatternDetected
from tickstock.messages.records import IndicatorRecord, PatternRecord, event_records

__all__ = ["AnalysisSpec", "ClosePart", "CloseRows", "LocalAnalysis", "OutputSettings", "close_events", "close_parts"]


@dataclass(frozen=True)
class OutputSettings:
    """What turning results into events, wire JSON and rows needs."""

    session_id: str
    channels: ChannelSettings
    high_confidence: float
    pattern_ttl: float
    indicator_ttl: float


@dataclass(frozen=True)
class AnalysisSpec:
    """A session's close analysis, as data: what it is built from and how its output is made.
    Picklable (the analysis process receives it as its first message)."""

    definitions: Mapping[str, Sequence[Definition]]  # timeframe -> the TA-Lib definitions run on it
    symbols: tuple[str, ...]
    output: OutputSettings
    sessions: SessionTable | None = None
    max_failures: int = 3
    analyse_partial_bars: bool = False
    clock: Callable[[], float] = field(default=time.time)  # stamps the events (module-level: picklable)

    def build(self) -> CloseAnalysis:
        return CloseAnalysis(self.definitions, self.symbols, sessions=self.sessions,
                             max_failures=self.max_failures, analyse_partial_bars=self.analyse_partial_bars)

    def split(self, n: int) -> list[AnalysisSpec]:
        """This analysis as at most ``n`` specs, each the same but for its share of the timeframes
        that have definitions: the k-th of them (in ``TIMEFRAMES`` order, 1min first) goes to spec
        ``k mod n``. With two: 1min and 15min in one, 5min and 60min in the other, so a 5-minute
        close's two parts, and the :30 close's four, are shared evenly. Fewer specs when fewer
        timeframes have definitions; never an empty one (one spec when there is nothing at all)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        present = [tf for tf in (*TIMEFRAMES, *self.definitions) if self.definitions.get(tf)]
        present = list(dict.fromkeys(present))
        groups = [present[k::n] for k in range(min(n, len(present)))] or [[]]
        return [dataclasses.replace(self, definitions={tf: self.definitions[tf] for tf in group})
                for group in groups]


class ClosePart(msgspec.Struct, frozen=True, tag=True):
    """One timeframe of a close, ready to go out."""

    entries: list[tuple[str, bytes]]          # (channel, JSON) per PUBLISH, in order
    patterns: list[str]                       # the detections' pattern names, in order
    indicators: int                           # indicator values among the entries' events
    errors: list[tuple[str, ComponentError]]  # (timeframe, failure)
    partial_skipped: int
    timeframe: str = ""                       # the timeframe analysed ("": nothing was)


class CloseRows(msgspec.Struct, frozen=True, tag=True):
    """Every row of a close's events; the last item of a close."""

    patterns: list[PatternRecord]
    indicators: list[IndicatorRecord]


def close_events(out: CloseOutput, session_id: str, now: float, closed_at: float) -> list:
    """The events of one close's results, in their order, as a symbol actor builds them
    (``pattern_event``, ``indicator_event``), stamped ``now`` and carrying ``closed_at``."""
    events: list = []
    for tf, results in out.results:
        for r in results:
            if type(r) is PatternResult:
                events.append(pattern_event(r, r.bar.symbol, session_id, tf, now, closed_at))
            else:
                events.append(indicator_event(r, r.bar.symbol, session_id, tf, now, closed_at))
    return events


def close_parts(analysis: CloseAnalysis, bars: Sequence[Bar], closed_at: float, now: Callable[[], float],
                settings: OutputSettings) -> Iterator[ClosePart | CloseRows]:
    """Analyse one close: a ``ClosePart`` per timeframe as each is analysed, then its ``CloseRows``."""
    events_of_close: list = []
    for part in analysis.close_in_parts(bars):
        events = close_events(part, settings.session_id, now(), closed_at)
        patterns = [e.pattern for e in events if type(e) is PatternDetected]
        yield ClosePart(encode_for_redis(events, settings.channels, settings.high_confidence), patterns,
                        len(events) - len(patterns), part.errors, part.partial_skipped, part.timeframe)
        events_of_close += events
    # Rows after every part went out: they are for the database, which is not waiting.
    records = event_records(events_of_close, settings.pattern_ttl, settings.indicator_ttl)
    yield CloseRows([r for r in records if type(r) is PatternRecord],
                    [r for r in records if type(r) is IndicatorRecord])


class LocalAnalysis:
    """A session's ``CloseAnalysis`` on the calling thread (``analysis.process: false``), with the
    interface of ``ProcessAnalysis``."""

    def __init__(self, spec: AnalysisSpec) -> None:
        self._analysis = spec.build()
        self._settings = spec.output
        self._clock = spec.clock

    pids: tuple[int, ...] = ()  # no process of its own: the caller's

    def start(self) -> None:
        """Nothing to start: it runs on the caller's thread."""

    @property
    def broken(self) -> list[tuple[str, str, str]]:
        return self._analysis.broken

    @property
    def definitions(self) -> int:
        return self._analysis.definitions

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._analysis.symbols

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._analysis

    def add(self, symbol: str) -> None:
        self._analysis.add(symbol)

    def prime(self, symbol: str, bars: Sequence[Bar]) -> list[tuple[str, ComponentError]]:
        return self._analysis.prime(symbol, bars)

    def live_from(self, t: float) -> None:
        self._analysis.live_from(t)

    def close(self, bars: Sequence[Bar], closed_at: float) -> Iterator[ClosePart | CloseRows]:
        return close_parts(self._analysis, bars, closed_at, self._clock, self._settings)

    def check(self) -> None:
        """Nothing can have died: it runs on the caller's thread."""

    def stop(self) -> None:
        """Nothing to stop: it runs on the caller's thread."""
