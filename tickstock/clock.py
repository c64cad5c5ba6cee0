"""Time sources: the wall clock for the service, a manual clock for tests.

Guarantees:
- ``now()`` is epoch seconds in UTC (a float). It never depends on the host time zone: epoch
  seconds have no zone, and nothing here converts to local time.
- ``ManualClock`` only moves when told to (``advance``, ``set``, ``sleep``); ``sleep`` returns
  immediately after moving the time forward, so a test can drive days of service loop in
  milliseconds.
"""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable


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


def _check_duration(seconds: float) -> float:
    # NaN would silently poison every later comparison; negative mirrors time.sleep's ValueError.
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite number >= 0, got {seconds!r}")
    return float(seconds)


def _check_instant(t: float) -> float:
    if not math.isfinite(t):
        raise ValueError(f"time must be finite epoch seconds, got {t!r}")
    return float(t)
