"""The ``day`` scenario's time: a past regular session D replayed in event time, ``speed`` times
faster than the wall clock (pure: no I/O but the exchange calendar's, no clock read).

The load generator stamps each batch with ``event = D_open + (wall - t0) * speed`` (``t0``: the
wall time of its first batch, so the first tick is stamped exactly at the open), one stamp per
batch, in time order; the service (``session.clock: event``) closes bars by those stamps.

Guarantees:
- ``EventMap.event_at`` and ``EventMap.wall_at`` are each other's inverse, increasing, and
  ``event_at(t0) == open``.
- ``EventMap.wall_deadline(m, grace)`` is the wall time at which the generator's stamps pass minute
  ``m``'s end + grace (the watermark that closes it in the service); a batch sent then or later
  carries a stamp at or after the deadline, so the service cannot close ``m`` before it.
- ``ticks_per_bar(rate, symbols, speed)`` is the mean number of ticks each symbol gets per event
  minute with round-robin symbols; ``check_speed`` refuses a speed that leaves it below 1 (some
  minutes would have no bar), and ``default_speed`` is ``DEFAULT_SPEED`` unless that leaves fewer
  than 2 ticks per bar.
- ``last_close_wall`` is the earliest wall time at which the service can close the replay's last
  minute: only the feed's silence (``EventTime.idle_after``) closes it.
- ``regular_session(date, now)`` is D's XNYS session window; ValueError when D has no session or
  its close is not in the past of ``now`` (the service refuses event time ahead of its wall clock).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tickstock.market.calendar import EXCHANGE_TZ, MarketCalendar, SessionWindow

BAR_SECONDS = 60
REGULAR_MINUTES = 390            # 09:30 -> 16:00 America/New_York
DEFAULT_DATE = "2025-03-12"      # a Wednesday, a full regular session (tests/e2e/test_replay.py's day)
DEFAULT_SPEED = 60.0             # the day in 6.5 minutes of wall time
MIN_TICKS_PER_BAR = 1.0          # an explicit --speed must leave every symbol a tick per event minute
DEFAULT_TICKS_PER_BAR = 2.0      # the default speed keeps a margin for batching jitter


@dataclass(frozen=True)
class EventMap:
    """``event = open + (wall - t0) * speed``: event time of the replayed day against the wall clock."""

    open: float     # epoch seconds: D's open (event time)
    speed: float    # event seconds per wall second
    t0: float       # wall epoch at which event time is ``open``

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed!r}")

    def event_at(self, wall: float) -> float:
        return self.open + (wall - self.t0) * self.speed

    def wall_at(self, event: float) -> float:
        return self.t0 + (event - self.open) / self.speed

    def wall_deadline(self, minute: float, grace: float) -> float:
        """Wall time at which minute ``minute`` (its start, event epoch) is due to close: its end
        plus ``grace`` (event seconds, as the service's aggregator counts it) mapped to the wall."""
        return self.wall_at(minute + BAR_SECONDS + grace)


def ticks_per_bar(rate: float, symbols: int, speed: float) -> float:
    """Mean ticks per symbol per event minute: ``rate`` ticks/s round-robin over ``symbols``, an
    event minute lasting ``60 / speed`` wall seconds."""
    return rate * BAR_SECONDS / speed / symbols


def max_speed(rate: float, symbols: int, per_bar: float = MIN_TICKS_PER_BAR) -> float:
    """The highest speed leaving ``per_bar`` ticks per symbol per event minute."""
    return rate * BAR_SECONDS / symbols / per_bar


def default_speed(rate: float, symbols: int) -> float:
    """``DEFAULT_SPEED``, lowered to keep ``DEFAULT_TICKS_PER_BAR`` ticks per symbol per event minute."""
    return min(DEFAULT_SPEED, max_speed(rate, symbols, DEFAULT_TICKS_PER_BAR))


def check_speed(speed: float, rate: float, symbols: int) -> float:
    """``speed`` if every symbol gets at least one tick per event minute, else ValueError."""
    if not speed > 0:
        raise ValueError(f"--speed must be > 0, got {speed!r}")
    if ticks_per_bar(rate, symbols, speed) < MIN_TICKS_PER_BAR:
        raise ValueError(
            f"at {rate:,.0f} ticks/s over {symbols:,} symbols a symbol ticks every {symbols / rate:.3g} wall s, "
            f"but at speed {speed:g} an event minute lasts {BAR_SECONDS / speed:.3g} wall s: some minutes would "
            f"have no bar; use --speed <= {max_speed(rate, symbols):g} or a higher --rate")
    return speed


def regular_session(date: str | dt.date, now: float) -> SessionWindow:
    """D's XNYS session (``date``: an exchange date, ``YYYY-MM-DD``); ValueError if D has no session
    or closes after ``now`` (epoch seconds)."""
    try:
        day = date if isinstance(date, dt.date) else dt.date.fromisoformat(date)
    except ValueError:
        raise ValueError(f"--date {date!r} is not YYYY-MM-DD") from None
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=EXCHANGE_TZ).timestamp()
    window = MarketCalendar(noon).window_at(noon)
    if window is None:
        raise ValueError(f"{day} has no XNYS session (weekend or holiday): pick a trading day")
    if window.close > now:
        raise ValueError(f"{day}'s session closes after now: replay a past day (event time ahead of the "
                         "wall clock does not move the service's bars)")
    return window


def last_close_wall(ended_at: float, last_stamp: float, close: float, grace: float, idle_after: float) -> float:
    """Wall time at which the service can close the replay's last minute (ending at ``close``):
    after the last batch (sent at ``ended_at``, stamped ``last_stamp``) the feed is silent, and
    event time runs on as watermark + silence once the silence reaches ``idle_after`` wall seconds
    (tickstock/clock.py EventTime), so the close needs ``max(idle_after, close + grace - last_stamp)``."""
    return ended_at + max(idle_after, close + grace - last_stamp)
