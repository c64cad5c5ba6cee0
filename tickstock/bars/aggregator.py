"""Fold ticks into forming 1-minute bars and close them by the clock.

Guarantees:
- A bar is labelled by its minute's start in UTC and closes when the clock passes the minute's end
  plus ``grace_seconds``, whether or not another tick arrives (``close_due``).
- Within an open minute ticks are placed by their own timestamp: open = earliest tick, close =
  latest, so out-of-order arrival does not change the bar.
- A tick whose minute is already closed is late: it is counted and dropped, never merged.
- No bar is produced for a minute without ticks.
- Every bar carries the aggregator's ``session_id`` and the timestamps of its earliest and latest
  tick (``first_tick_at``/``last_tick_at``): the store merges parts of one minute by them.
- Every bar carries its traded ``notional``, sum(price * volume) over its ticks (for VWAP); a
  running float sum in arrival order, so arrival order changes it only by rounding.
- A bar is ``partial`` when it is known to be incomplete: its minute had already begun when the
  aggregator started (``now`` at construction; a start at exactly second 0 of a minute does not
  make that minute partial), or a gap declared with ``mark_gap`` overlaps its minute, or it was
  closed by ``close_all(now)`` before its minute ended.

Lateness is judged against the close watermark, which only the clock advances. The caller (the
ingress receive loop) folds every tick it has received before it asks for ``close_due``, so the
order in which it folds is the order in which ticks reached the service: a tick is late only if it
reached the service after its bar's deadline.

The clock is whatever ``now`` the caller passes: the wall clock live, or event time in a replay
(``session.clock: event``, ``tickstock.clock.EventTime``: the latest tick time seen). Nothing here
changes with it: in event time a bar closes once a tick of its minute's end plus grace or later
has been folded (or the feed's silence carried event time past it, see ``EventTime``), and a tick
is late when its minute was closed that way before the read that brought it. A replay's start is known only from its ticks:
``start_at`` sets it after construction.
"""

from __future__ import annotations

import math

from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.messages.ticks import Tick

# Indexes into the mutable forming-bar list (a list, not an object: ~0.2 us per fold matters here).
_OPEN, _HIGH, _LOW, _CLOSE, _VOLUME, _COUNT, _FIRST_TS, _LAST_TS, _NOTIONAL = range(9)


class MinuteBarAggregator:
    """Forming bars for any number of symbols. Not thread-safe: one owner thread."""

    def __init__(self, grace_seconds: float = 2.0, now: float | None = None, session_id: str = "") -> None:
        """``now``: when the session starts receiving (None: unknown, no minute is partial for
        that reason). ``session_id`` is stamped on every bar."""
        if grace_seconds < 0:
            raise ValueError("grace_seconds must be >= 0")
        self.grace_seconds = grace_seconds
        self.session_id = session_id
        self._started_at = now
        # Declared gaps (since, until), closed intervals of epoch seconds; pruned once every minute
        # they overlap is closed.
        self._gaps: list[tuple[float, float]] = []
        # minute start -> symbol -> forming bar
        self._forming: dict[int, dict[str, list]] = {}
        # Every minute before this one is closed. Set from the start time so that a session never
        # rebuilds (and overwrites in the database) a minute whose deadline passed before it began.
        self._open_from = self._first_open_minute(now) if now is not None else 0
        self.late_ticks = 0
        self.folded_ticks = 0
        self._decided = False  # a bar closed or a tick judged late: the start is fixed (start_at)
        # Kept as a plain int so other threads can read it without iterating the dicts.
        self.forming = 0

    def start_at(self, now: float | None) -> None:
        """Set when the session started receiving, in the time its bars close by, as ``now`` at
        construction would have: every minute before ``first_open_minute(now)`` is late, a minute
        begun before ``now`` is partial. None: not known (nothing late, nothing partial for it).

        For event time (a replay), whose start is known only from its first ticks: ``None`` before
        the first tick (the wall clock's now at construction would make every replayed tick late),
        then the replay's start. ValueError once a bar has been closed or a tick judged late: the
        start may no longer change what was decided."""
        if self._decided:
            raise ValueError("the start cannot change once bars have closed or ticks were judged late")
        self._started_at = now
        self._open_from = self._first_open_minute(now) if now is not None else 0

    def earliest_tick_at(self) -> float | None:
        """Time of the earliest tick folded into a forming bar (None if none is forming). Walks
        every forming bar: for a one-off question, never per tick."""
        return min((b[_FIRST_TS] for bars in self._forming.values() for b in bars.values()), default=None)

    def _first_open_minute(self, now: float) -> int:
        return int((now - self.grace_seconds) // BAR_SECONDS) * BAR_SECONDS

    @property
    def open_from(self) -> int:
        """Start of the earliest minute still open; ticks before it are late."""
        return self._open_from

    @property
    def started_at(self) -> float | None:
        """The ``now`` given at construction: minutes that began before it are partial."""
        return self._started_at

    def mark_gap(self, since: float, until: float) -> None:
        """Declare that ticks between ``since`` and ``until`` (epoch seconds, inclusive) may be
        missing (a lost subscription, re-established at ``until``). Every minute overlapping
        ``[since, until]`` whose bar is forming now or forms later is closed as ``partial``; bars
        already closed are not changed. ValueError unless both are finite and ``since <= until``."""
        since, until = float(since), float(until)
        if not (math.isfinite(since) and math.isfinite(until)) or since > until:
            raise ValueError(f"gap must be finite with since <= until, got [{since!r}, {until!r}]")
        if until >= self._open_from:  # else every minute it overlaps is closed already
            self._gaps.append((since, until))

    def _is_partial(self, minute: int) -> bool:
        started = self._started_at
        if started is not None and minute < started:
            return True
        end = minute + BAR_SECONDS
        for since, until in self._gaps:
            if minute <= until and since < end:
                return True
        return False

    def add(self, tick: Tick) -> bool:
        """Fold ``tick`` into its minute's bar. Returns False (and counts it) if the tick is late."""
        ts = tick.timestamp
        minute = int(ts // BAR_SECONDS) * BAR_SECONDS
        if minute < self._open_from:
            self.late_ticks += 1
            self._decided = True
            return False
        bars = self._forming.get(minute)
        if bars is None:
            bars = self._forming[minute] = {}
        price = tick.price
        bar = bars.get(tick.symbol)
        if bar is None:
            bars[tick.symbol] = [price, price, price, price, tick.volume, 1, ts, ts, price * tick.volume]
            self.forming += 1
        else:
            if price > bar[_HIGH]:
                bar[_HIGH] = price
            elif price < bar[_LOW]:
                bar[_LOW] = price
            if ts < bar[_FIRST_TS]:
                bar[_OPEN] = price
                bar[_FIRST_TS] = ts
            if ts >= bar[_LAST_TS]:
                bar[_CLOSE] = price
                bar[_LAST_TS] = ts
            bar[_VOLUME] += tick.volume
            bar[_COUNT] += 1
            bar[_NOTIONAL] += price * tick.volume
        self.folded_ticks += 1
        return True

    def next_deadline(self) -> float | None:
        """Epoch second at which the earliest forming bar is due to close, or None if none is forming."""
        if not self._forming:
            return None
        return min(self._forming) + BAR_SECONDS + self.grace_seconds

    def close_due(self, now: float) -> list[Bar]:
        """Close every minute whose end plus grace is <= ``now``; return its bars, oldest first."""
        open_from = self._first_open_minute(now)
        if open_from > self._open_from:
            self._open_from = open_from
            self._decided = True
        due = sorted(m for m in self._forming if m < self._open_from)
        closed = [bar for m in due for bar in self._emit(m, self._is_partial(m))]
        if self._gaps:  # only after emitting: a gap may still mark the minutes closed just now
            self._gaps = [g for g in self._gaps if g[1] >= self._open_from]
        return closed

    def close_all(self, now: float | None = None) -> list[Bar]:
        """Close every forming bar now (end of session); later ticks for those minutes are late.

        With ``now`` (when receiving stopped), a bar whose minute had not ended by then is partial."""
        minutes = sorted(self._forming)
        if minutes:
            self._open_from = max(self._open_from, minutes[-1] + BAR_SECONDS)
            self._decided = True
        return [
            bar for m in minutes
            for bar in self._emit(m, self._is_partial(m) or (now is not None and m + BAR_SECONDS > now))
        ]

    def forming_count(self) -> int:
        return self.forming

    def _emit(self, minute: int, partial: bool) -> list[Bar]:
        bars = self._forming.pop(minute)
        self.forming -= len(bars)
        sid = self.session_id
        return [
            Bar(symbol, minute, b[_OPEN], b[_HIGH], b[_LOW], b[_CLOSE], b[_VOLUME], b[_COUNT],
                sid, b[_FIRST_TS], b[_LAST_TS], partial, b[_NOTIONAL])
            for symbol, b in bars.items()
        ]
