"""Replay pacing: when a tick of a given event time is due on the wall clock.

``ReplayPace(first_event, wall_start, speed)``: a tick of event time ``e`` is due at
``wall_start + (e - first_event) / speed`` -- ``speed`` times real time, the first tick at once.
``speed=None`` (``--speed max``) makes every tick due at once. Pure arithmetic: the publisher
loop asks and sleeps.
"""

from __future__ import annotations

import math

__all__ = ["ReplayPace", "parse_speed"]


def parse_speed(text: str) -> float | None:
    """``"60"`` -> 60.0, ``"max"`` -> None (as fast as possible); ValueError for anything else."""
    raw = text.strip().lower()
    if raw == "max":
        return None
    try:
        value = float(raw.rstrip("x"))
    except ValueError:
        raise ValueError(f"speed {text!r} is not a number > 0 or 'max'") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"speed {text!r} is not a number > 0 or 'max'")
    return value


class ReplayPace:
    """Maps event time to wall time at ``speed`` x real time (None: everything due at once)."""

    def __init__(self, first_event: float, wall_start: float, speed: float | None) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be > 0 or None, got {speed!r}")
        self.first_event = first_event
        self.wall_start = wall_start
        self.speed = speed

    def due(self, event_time: float) -> float:
        """Wall time at which a tick of ``event_time`` is due."""
        if self.speed is None:
            return self.wall_start
        return self.wall_start + (event_time - self.first_event) / self.speed

    def watermark(self, wall: float) -> float:
        """The latest event time due by ``wall`` (every tick at or before it may go)."""
        if self.speed is None:
            return math.inf
        return self.first_event + (wall - self.wall_start) * self.speed
