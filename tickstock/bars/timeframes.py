"""Higher-timeframe bars (5, 15 and 60 minutes) folded from a symbol's closed 1-minute bars.

Pure and thread-free: a ``Resampler`` per symbol is fed that symbol's closed 1-minute bars in time
order and returns the higher-timeframe bars each of them closes. Nothing here reads a clock or a
calendar; 60-minute intervals come from a ``SessionTable`` built once per session (``from_calendar``).

Intervals (epoch seconds UTC, half-open ``[start, end)``):

- ``5min`` / ``15min``: the UTC minute grid (``start`` a multiple of 300 / 900 seconds). The NYSE's
  opens and closes (9:30, 13:00, 16:00 ET) are on it, so no interval straddles them.
- ``60min``: aligned to the session's open (9:30, 10:30, ... ET); the last interval of a session ends
  at its close, so it is a partial hour: 15:30-16:00 on a regular day, 12:30-13:00 on an early close.
  Outside a session (pre/post-market ticks, a manual session at night) the hours are on the :30 grid
  (:30 UTC is :30 ET: New York's offsets are whole hours), cut at the neighbouring close and open. A
  minute the table does not cover is looked up from its source (the calendar around that day: a
  replay of an old day); with none, it is outside every session: the same :30 grid, so only a
  session's last hour (not cut at its close) would differ. Without a table, the :30 grid throughout.

A higher bar is: open of its first 1-minute bar, high/low over them, close of its last, volume, tick
count and notional (None when any bar lacks it) summed, first/last tick times the earliest/latest
known, ``session_id`` of its last 1-minute bar; ``Bar.start`` is the interval's start (``Bar.end`` is
the 1-minute property: use ``TimeframeBar.end``).

When a higher bar closes (is returned):

- With the 1-minute bar that ends its interval (the minute starting at ``end - 60``): at once.
- Missing minutes: a minute without ticks has no 1-minute bar and simply contributes nothing (as if
  grouping the ticks directly by interval). If the interval's LAST minute is such a minute, the bar
  closes late: with the next 1-minute bar fed, which belongs to a later interval (``late=True``), or
  with ``close_through(t)`` once ``t >= end`` (for a caller that knows the time has passed; the
  symbol actor does not call it: it hears of time only through the symbol's own bars).
- An interval with no 1-minute bar at all produces no bar (as no ticks give no 1-minute bar).

A higher bar is ``partial`` (known to be incomplete) when one of its 1-minute bars is partial, or its
interval overlaps a stretch of time that was not observed: everything before the first bar fed (so
the first interval is partial unless its first minute was fed), and the stretch declared by
``observed_from(t)`` (from the end of the last bar fed up to ``t``: e.g. between primed history and a
session's start). A minute nobody received cannot be told apart from a quiet one otherwise.

A 1-minute bar that does not start after the last one fed (history overlapping the live feed, a
replay) is ignored and counted in ``stale_bars``.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from tickstock.messages.bars import BAR_SECONDS, Bar

__all__ = [
    "BASE_TIMEFRAME", "HIGHER_TIMEFRAMES", "TIMEFRAMES", "Resampler", "SessionTable", "TimeframeBar",
    "timeframe_seconds",
]

#: The timeframe of the 1-minute bars everything is built from.
BASE_TIMEFRAME = "1min"
#: Every timeframe the engine runs, in ascending order (the names events and rows carry).
TIMEFRAMES: tuple[str, ...] = ("1min", "5min", "15min", "60min")
#: The ones a ``Resampler`` builds.
HIGHER_TIMEFRAMES: tuple[str, ...] = TIMEFRAMES[1:]

_SECONDS = {"1min": 60, "5min": 300, "15min": 900, "60min": 3600}
_HOUR = 3600
_HOUR_PHASE = 1800  # the 60-minute grid outside sessions starts at :30 past the hour
_NONE: tuple = ()


def timeframe_seconds(timeframe: str) -> int:
    """The length of a (full) interval of ``timeframe``; ValueError for an unknown name."""
    try:
        return _SECONDS[timeframe]
    except KeyError:
        raise ValueError(f"unknown timeframe {timeframe!r} (known: {', '.join(TIMEFRAMES)})") from None


@dataclass(frozen=True, slots=True)
class TimeframeBar:
    """A closed higher-timeframe bar: ``bar`` covers ``[bar.start, end)``; ``minutes`` 1-minute bars
    were folded into it; ``late`` is True when it closed after its last minute (that minute had no bar)."""

    timeframe: str
    bar: Bar
    end: int
    minutes: int
    late: bool = False


class SessionTable:
    """Exchange sessions ``[(open, close), ...]`` (epoch seconds UTC, minute-aligned, sorted, not
    overlapping): where 60-minute intervals start and end. One table is shared by every symbol actor
    of a session, whichever threads run them.

    ``covers``: the span ``[lo, hi)`` the windows are complete for (everything by default). A minute
    outside it is looked up in a table from ``source(minute)`` (e.g. the calendar around a replayed
    day, or around history older than the span), built under a lock and added whole, so readers
    never see half of one; spans once added stay (at most ``MAX_SPANS``), so history and live bars
    far apart never make the table rebuild back and forth. Without a source, or once it failed or
    returned a table not covering the minute (``source_error`` says why; it is not asked again),
    such a minute is outside every session: the :30 grid."""

    MAX_SPANS = 32

    __slots__ = ("_spans", "_source", "_lock", "source_error", "extensions")

    def __init__(self, windows: Iterable[tuple[float, float]], covers: tuple[float, float] = (-math.inf, math.inf),
                 source: Callable[[float], SessionTable] | None = None) -> None:
        opens: list[int] = []
        closes: list[int] = []
        for o, c in windows:
            if not (math.isfinite(o) and math.isfinite(c)) or o % BAR_SECONDS or c % BAR_SECONDS:
                raise ValueError(f"session ({o!r}, {c!r}) must be finite and minute-aligned")
            if not o < c:
                raise ValueError(f"session ({o!r}, {c!r}) must open before it closes")
            if closes and o < closes[-1]:
                raise ValueError(f"session ({o!r}, {c!r}) overlaps or precedes the one closing at {closes[-1]!r}")
            opens.append(int(o))
            closes.append(int(c))
        lo, hi = covers
        if not lo < hi:
            raise ValueError(f"covers must be a span lo < hi, got {covers!r}")
        self._spans = ((lo, hi, tuple(opens), tuple(closes)),)  # the first answers first; only appended to
        self._source = source
        self._lock = threading.Lock()
        self.source_error: str | None = None
        self.extensions = 0  # tables taken from the source

    def __getstate__(self) -> tuple:
        """Pickled without its lock (the analysis process gets a copy of the session's table)."""
        return self._spans, self._source, self.source_error, self.extensions

    def __setstate__(self, state: tuple) -> None:
        self._spans, self._source, self.source_error, self.extensions = state
        self._lock = threading.Lock()

    @classmethod
    def from_calendar(cls, calendar: Any, start: float, end: float,
                      source: Callable[[float], SessionTable] | None = None) -> SessionTable:
        """The sessions of ``calendar`` (a ``tickstock.market.MarketCalendar``: its ``next_window``)
        that open before ``end`` and close after ``start``; it covers ``[start, end)``."""
        windows: list[tuple[float, float]] = []
        t = start
        while True:
            window = calendar.next_window(t)
            if window.open >= end:
                return cls(windows, (start, end), source)
            windows.append((window.open, window.close))
            t = window.close

    def __len__(self) -> int:
        return len(self._spans[0][2])

    @property
    def windows(self) -> tuple[tuple[int, int], ...]:
        """The sessions of the table as built (its first span)."""
        return tuple(zip(self._spans[0][2], self._spans[0][3]))

    @property
    def covers(self) -> tuple[tuple[float, float], ...]:
        """Every span it is complete for, the one it was built with first."""
        return tuple((span[0], span[1]) for span in self._spans)

    def hour(self, minute: int) -> tuple[int, int]:
        """The 60-minute interval ``(start, end)`` holding the minute starting at ``minute``."""
        spans = self._spans
        lo, hi, opens, closes = spans[0]
        if not lo <= minute < hi:
            for span in spans:
                if span[0] <= minute < span[1]:
                    lo, hi, opens, closes = span
                    break
            else:
                if self._source is not None:
                    lo, hi, opens, closes = self._extend(minute)
        i = bisect_right(opens, minute) - 1
        if i >= 0 and minute < closes[i]:
            start = opens[i] + (minute - opens[i]) // _HOUR * _HOUR
            return start, min(start + _HOUR, closes[i])
        start = minute - (minute - _HOUR_PHASE) % _HOUR
        end = start + _HOUR
        if i >= 0 and closes[i] > start:
            start = closes[i]
        if i + 1 < len(opens) and opens[i + 1] < end:
            end = opens[i + 1]
        return start, end

    def _extend(self, minute: int) -> tuple:
        with self._lock:
            spans = self._spans
            for span in spans:
                if span[0] <= minute < span[1]:  # another thread added it meanwhile
                    return span
            source = self._source
            if source is None:
                return spans[0]
            try:
                if len(spans) >= self.MAX_SPANS:
                    raise LookupError(f"{len(spans)} spans held already")
                fresh = source(minute)._spans[0]
                if not fresh[0] <= minute < fresh[1]:
                    raise LookupError(f"the table it gave covers {fresh[0]}..{fresh[1]}")
            except Exception as exc:  # no calendar: the grid from now on, said once
                self.source_error = f"no sessions for {minute}: {type(exc).__name__}: {exc}"
                self._source = None
                return spans[0]
            self._spans = spans + (fresh,)
            self.extensions += 1
            return fresh


def _grid_hour(minute: int) -> tuple[int, int]:
    start = minute - (minute - _HOUR_PHASE) % _HOUR
    return start, start + _HOUR


class _Forming:
    """One timeframe's interval being built (``start is None``: nothing forming)."""

    __slots__ = ("timeframe", "seconds", "interval", "start", "end", "open", "high", "low", "close", "volume",
                 "ticks", "first_tick", "last_tick", "notional", "session_id", "partial", "minutes")

    def __init__(self, timeframe: str, interval: Any) -> None:
        self.timeframe = timeframe
        self.seconds = _SECONDS[timeframe]
        self.interval = interval  # None: the UTC grid of ``seconds``; else minute -> (start, end)
        self.start: int | None = None

    def begin(self, start: int, end: int, bar: Bar, partial: bool) -> None:
        self.start, self.end = start, end
        self.open, self.high, self.low, self.close = bar.open, bar.high, bar.low, bar.close
        self.volume, self.ticks = bar.volume, bar.tick_count
        self.first_tick, self.last_tick = bar.first_tick_at, bar.last_tick_at
        self.notional = bar.notional
        self.session_id = bar.session_id
        self.partial = partial or bar.partial
        self.minutes = 1

    def fold(self, bar: Bar) -> None:
        if bar.high > self.high:
            self.high = bar.high
        if bar.low < self.low:
            self.low = bar.low
        self.close = bar.close
        self.volume += bar.volume
        self.ticks += bar.tick_count
        if bar.first_tick_at is not None and (self.first_tick is None or bar.first_tick_at < self.first_tick):
            self.first_tick = bar.first_tick_at
        if bar.last_tick_at is not None and (self.last_tick is None or bar.last_tick_at > self.last_tick):
            self.last_tick = bar.last_tick_at
        notional = bar.notional
        self.notional = None if notional is None or self.notional is None else self.notional + notional
        self.session_id = bar.session_id
        self.partial = self.partial or bar.partial
        self.minutes += 1

    def finish(self, symbol: str, late: bool) -> TimeframeBar:
        bar = Bar(symbol, self.start, self.open, self.high, self.low, self.close, self.volume, self.ticks,
                  self.session_id, self.first_tick, self.last_tick, self.partial, self.notional)
        closed = TimeframeBar(self.timeframe, bar, self.end, self.minutes, late)
        self.start = None
        return closed


class Resampler:
    """One symbol's 5/15/60-minute bars. Not thread-safe: one owner (the symbol's actor).

    ``timeframes``: any of ``HIGHER_TIMEFRAMES`` (returned bars come in this ascending order);
    ``sessions``: where 60-minute intervals start and end (None: the :30 grid, see the module).
    """

    def __init__(self, symbol: str, timeframes: Iterable[str], sessions: SessionTable | None = None) -> None:
        wanted = set()
        for tf in timeframes:
            if tf not in HIGHER_TIMEFRAMES:
                raise ValueError(f"a Resampler builds {', '.join(HIGHER_TIMEFRAMES)}; got {tf!r}")
            wanted.add(tf)
        if not wanted:
            raise ValueError("a Resampler needs at least one timeframe")
        self.symbol = symbol
        self.timeframes = tuple(tf for tf in HIGHER_TIMEFRAMES if tf in wanted)
        hour = sessions.hour if sessions is not None else _grid_hour
        self._forming = [_Forming(tf, hour if tf == "60min" else None) for tf in self.timeframes]
        self._last_start: int | None = None
        # Unobserved stretch [from, until): None until the first bar or observed_from() sets it.
        self._gap: tuple[float, float] | None = None
        self.stale_bars = 0

    def observed_from(self, t: float) -> None:
        """Declare that every 1-minute bar from ``t`` on will be fed, and that the time between the
        end of the last bar fed (or the beginning, if none) and ``t`` was not observed: every higher
        bar overlapping that stretch, forming now or later, is partial."""
        lo = -math.inf if self._last_start is None else self._last_start + BAR_SECONDS
        if not t > lo:  # nothing unobserved (an empty gap overlaps no interval)
            self._gap = (lo, lo)
            return
        self._gap = (lo, t)
        for f in self._forming:
            if f.start is not None and f.start < t and f.end > lo:
                f.partial = True

    def fold(self, bars: Iterable[Bar]) -> dict[str, list[Bar]]:
        """Fold a run of 1-minute bars (history, when priming) and return the higher bars they
        close, per timeframe (every one of ``timeframes``, possibly empty), oldest first."""
        closed: dict[str, list[Bar]] = {tf: [] for tf in self.timeframes}
        for bar in bars:
            for c in self.on_bar(bar):
                closed[c.timeframe].append(c.bar)
        return closed

    def on_bar(self, bar: Bar) -> Sequence[TimeframeBar]:
        """Fold the next closed 1-minute bar; return the higher bars it closes (often none)."""
        if bar.symbol != self.symbol:
            raise ValueError(f"resampler for {self.symbol!r} got a bar for {bar.symbol!r}")
        s = bar.start
        if s % BAR_SECONDS:
            raise ValueError(f"1-minute bar start {s!r} is not minute-aligned")
        if self._last_start is not None and s <= self._last_start:
            self.stale_bars += 1
            return _NONE
        self._last_start = s
        if self._gap is None:
            self._gap = (-math.inf, s)
        out: list[TimeframeBar] = []
        for f in self._forming:
            if f.interval is None:
                start = s - s % f.seconds
                end = start + f.seconds
            else:
                start, end = f.interval(s)
            if f.start is not None and f.start != start:  # its last minute(s) had no bar
                out.append(f.finish(self.symbol, True))
            if f.start is None:
                lo, hi = self._gap
                f.begin(start, end, bar, start < hi and end > lo)
            else:
                f.fold(bar)
            if s + BAR_SECONDS >= end:
                out.append(f.finish(self.symbol, False))
        return out

    def close_through(self, t: float) -> Sequence[TimeframeBar]:
        """Close every forming bar whose interval has ended by ``t`` (``end <= t``): time has shown
        its remaining minutes had no ticks. Returned as ``late``."""
        out = [f.finish(self.symbol, True) for f in self._forming if f.start is not None and f.end <= t]
        return out or _NONE
