"""Fold ticks into forming 1-minute bars and close them by the clock.

Guarantees:
- A bar is labelled by its minute's start in UTC and closes when the clock passes the minute's end
  plus ``grace_seconds``, whether or not another tick arrives (``close_due``).
- Within an open minute ticks are placed by their own timestamp: open = earliest tick, close =
  latest, so out-of-order arrival does not change the bar.
- A tick whose minute is already closed is late: it is counted and dropped, never merged.
- No bar is produced for a minute without ticks.

Lateness is judged against the close watermark, which only the clock advances. The caller (the
ingress receive loop) folds every tick it has received before it asks for ``close_due``, so the
order in which it folds is the order in which ticks reached the service: a tick is late only if it
reached the service after its bar's deadline.
"""

from __future__ import annotations

from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.messages.ticks import Tick

# Indexes into the mutable forming-bar list (a list, not an object: ~0.2 us per fold matters here).
_OPEN, _HIGH, _LOW, _CLOSE, _VOLUME, _COUNT, _FIRST_TS, _LAST_TS = range(8)


class MinuteBarAggregator:
    """Forming bars for any number of symbols. Not thread-safe: one owner thread."""

    def __init__(self, grace_seconds: float = 2.0, now: float | None = None) -> None:
        if grace_seconds < 0:
            raise ValueError("grace_seconds must be >= 0")
        self.grace_seconds = grace_seconds
        # minute start -> symbol -> forming bar
        self._forming: dict[int, dict[str, list]] = {}
        # Every minute before this one is closed. Set from the start time so that a session never
        # rebuilds (and overwrites in the database) a minute whose deadline passed before it began.
        self._open_from = self._first_open_minute(now) if now is not None else 0
        self.late_ticks = 0
        self.folded_ticks = 0
        # Kept as a plain int so other threads can read it without iterating the dicts.
        self.forming = 0

    def _first_open_minute(self, now: float) -> int:
        return int((now - self.grace_seconds) // BAR_SECONDS) * BAR_SECONDS

    @property
    def open_from(self) -> int:
        """Start of the earliest minute still open; ticks before it are late."""
        return self._open_from

    def add(self, tick: Tick) -> bool:
        """Fold ``tick`` into its minute's bar. Returns False (and counts it) if the tick is late."""
        ts = tick.timestamp
        minute = int(ts // BAR_SECONDS) * BAR_SECONDS
        if minute < self._open_from:
            self.late_ticks += 1
            return False
        bars = self._forming.get(minute)
        if bars is None:
            bars = self._forming[minute] = {}
        price = tick.price
        bar = bars.get(tick.symbol)
        if bar is None:
            bars[tick.symbol] = [price, price, price, price, tick.volume, 1, ts, ts]
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
        due = sorted(m for m in self._forming if m < self._open_from)
        return [bar for m in due for bar in self._emit(m)]

    def close_all(self) -> list[Bar]:
        """Close every forming bar now (end of session); later ticks for those minutes are late."""
        minutes = sorted(self._forming)
        if minutes:
            self._open_from = max(self._open_from, minutes[-1] + BAR_SECONDS)
        return [bar for m in minutes for bar in self._emit(m)]

    def forming_count(self) -> int:
        return self.forming

    def _emit(self, minute: int) -> list[Bar]:
        bars = self._forming.pop(minute)
        self.forming -= len(bars)
        return [
            Bar(symbol, minute, b[_OPEN], b[_HIGH], b[_LOW], b[_CLOSE], b[_VOLUME], b[_COUNT])
            for symbol, b in bars.items()
        ]
