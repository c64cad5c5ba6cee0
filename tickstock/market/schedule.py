"""When the automatic trading session should run: a decision object for the service loop.

The loop asks ``decide(now, running)`` and acts on the answer. The scheduler never starts,
stops or sleeps anything itself.

Guarantees (``running`` is whether the automatic session is running now):
- ``START``: not running, and ``now`` is inside a session window. This includes a launch in the
  middle of a session and a restart after a crash in the middle of a session. ``window`` is that
  session. ``until`` is its close.
- ``KEEP``: running, and ``now`` is before the close of the window that the session was started
  for. ``window`` is that session. ``until`` is its close, so the loop may sleep until then.
- ``STOP``: running, and ``now`` is at or after that window's close (``final_status`` is
  ``"completed"``). A STOP always comes before a START for a later session. If the loop oversleeps
  into the next session, it first stops the old session and then starts the new one.
- ``WAIT``: not running, and ``now`` is outside every window. ``window`` is the next session.
  ``until`` is its open, and nothing will change before then.

Only automatic sessions are covered. The caller handles manual sessions separately.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tickstock.clock import Clock
from tickstock.market.calendar import MarketCalendar, SessionWindow

COMPLETED = "completed"


class Action(enum.StrEnum):
    START = "start"
    STOP = "stop"
    WAIT = "wait"
    KEEP = "keep"


@dataclass(frozen=True)
class Decision:
    """What the loop should do now.

    ``until`` is when the answer next changes by itself: the window's close for START and KEEP,
    the next open for WAIT, and None for STOP (the loop should ask again at once).
    """

    action: Action
    window: SessionWindow | None
    until: float | None = None
    final_status: str | None = None

    def describe(self) -> str:
        """Log text, e.g. ``wait: next open is 2026-07-06 09:30-16:00 America/New_York``."""
        if self.window is None:
            return self.action.value
        if self.action is Action.WAIT:
            return f"wait: next open is {self.window.describe()}"
        return f"{self.action.value}: session {self.window.describe()}"


class SessionScheduler:
    """Decides START/STOP/WAIT/KEEP for the automatic session.

    The only state it keeps is the window of the session that it last told the caller to start. A
    session is then stopped at *its own* close, even if the caller next asks during a later
    session.
    """

    def __init__(self, calendar: MarketCalendar, clock: Clock) -> None:
        self.calendar = calendar
        self.clock = clock
        self._active: SessionWindow | None = None

    def window_at(self, now: float) -> SessionWindow | None:
        """The trading session in progress at ``now``, if any."""
        return self.calendar.window_at(now)

    def decide_now(self, running: bool) -> Decision:
        """``decide`` at ``clock.now()``."""
        return self.decide(self.clock.now(), running)

    def decide(self, now: float, running: bool) -> Decision:
        """The action for the automatic session at epoch ``now``. See the module docstring."""
        if running:
            # If we do not know the session (for example, the scheduler was recreated while it
            # ran), adopt the window that it is running in.
            window = self._active or self.calendar.window_at(now)
            if window is None or now >= window.close:
                self._active = None
                return Decision(Action.STOP, window, final_status=COMPLETED)
            self._active = window
            return Decision(Action.KEEP, window, until=window.close)

        window = self.calendar.next_window(now)
        if window.contains(now):
            self._active = window
            return Decision(Action.START, window, until=window.close)
        self._active = None
        return Decision(Action.WAIT, window, until=window.open)
