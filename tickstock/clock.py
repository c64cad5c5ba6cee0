"""Time sources: the wall clock for the service, a manual clock for tests, event time for a replay.

Guarantees:
- ``now()`` is epoch seconds in UTC (a float). It never depends on the host time zone: epoch
  seconds have no zone, and nothing here converts to local time.
- ``ManualClock`` only moves when told to (``advance``, ``set``, ``sleep``); ``sleep`` returns
  immediately after moving the time forward, so a test can drive days of service loop in
  milliseconds.
- ``EventTime`` is the time of the ticks themselves (``session.clock: event``): what closes bars
  in a replay. Only bar closing reads it; health, heartbeat, the calendar and every timestamp the
  service stamps (``detected_at``, ``bar_closed_at``, row times) stay on the wall clock.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the time and can wait."""

    def now(self) -> float:
        """Current time as epoch seconds UTC."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (>= 0) of this clock's time."""
        ...


class SystemClock:
    """The host's wall clock. ``time.time()`` is epoch-based, so TZ does not affect it."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        _check_duration(seconds)
        time.sleep(seconds)


class ManualClock:
    """A clock for tests: starts at ``start`` and moves only when told to.

    ``advance`` and ``sleep`` only move forward; ``set`` may jump anywhere (including backwards),
    which is how a test lands on a specific instant.
    """

    def __init__(self, start: float) -> None:
        self._now = _check_instant(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        self._now += _check_duration(seconds)
        return self._now

    def set(self, t: float) -> None:
        """Jump to epoch ``t``."""
        self._now = _check_instant(t)

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` without blocking."""
        self.advance(seconds)


# A feed silent this long (wall seconds) is taken to have moved on: event time then runs with the
# wall clock. Long enough that a fast replay's publisher hiccup (GC, a busy 2-core machine) never
# cuts a minute short; short enough that a replay's last minute closes a few seconds after its end.
DEFAULT_IDLE_AFTER_SECONDS = 5.0


class EventTime:
    """Event time for a replay: the latest tick time seen (a watermark), fed once per read.

    Guarantees:
    - ``watermark`` is the greatest tick time given to ``observe`` (None before the first); it never
      moves backwards: an earlier time observed later changes nothing.
    - ``now()`` is the time bars close by: the watermark while ticks flow. Once no tick has been
      observed for ``idle_after`` wall seconds, it is the watermark plus the whole silence: event
      time then runs at least as fast as the wall clock, as a replay at speed >= 1 would. So at
      speed 1 a bar closes when it would live (a quiet minute is not cut short), and after a fast
      replay ends (or pauses) its last minute closes ``max(idle_after, end + grace - watermark)``
      wall seconds later, complete. A silence shorter than ``idle_after`` never moves event time.
    - ``now(extrapolate=False)`` is the watermark alone: while the subscription is lost the
      silence is not the source's, and must not close anything.
    - The silence is not committed: ticks observed after it bring ``now()`` back to the watermark.
      Nothing reopens for that (a closed minute stays closed in the aggregator); a tick of a minute
      closed during the silence is late, as live.
    """

    def __init__(self, wall: Callable[[], float] = time.time,
                 idle_after: float = DEFAULT_IDLE_AFTER_SECONDS) -> None:
        """``wall``: the wall clock's ``now`` (``ManualClock(...).now`` in tests)."""
        self._wall = wall
        self.idle_after = _check_duration(idle_after)
        self._watermark: float | None = None
        self._seen_at = 0.0  # wall time of the latest observe

    @property
    def watermark(self) -> float | None:
        """The latest tick time observed, or None before the first."""
        return self._watermark

    def observe(self, tick_time: float, seen_at: float | None = None) -> None:
        """Ticks up to ``tick_time`` have been received (at wall time ``seen_at``, now if None)."""
        self._seen_at = self._wall() if seen_at is None else seen_at
        if self._watermark is None or tick_time > self._watermark:
            self._watermark = _check_instant(tick_time)

    def silent_for(self) -> float:
        """Wall seconds since the latest ``observe`` (0 before the first)."""
        return 0.0 if self._watermark is None else max(0.0, self._wall() - self._seen_at)

    def now(self, extrapolate: bool = True) -> float | None:
        """Event time, by the rules above; None before the first tick."""
        watermark = self._watermark
        if watermark is None or not extrapolate:
            return watermark
        silent = self._wall() - self._seen_at
        return watermark + silent if silent >= self.idle_after else watermark


def _check_duration(seconds: float) -> float:
    # NaN would silently poison every later comparison; negative mirrors time.sleep's ValueError.
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite number >= 0, got {seconds!r}")
    return float(seconds)


def _check_instant(t: float) -> float:
    if not math.isfinite(t):
        raise ValueError(f"time must be finite epoch seconds, got {t!r}")
    return float(t)
