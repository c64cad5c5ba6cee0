"""Session VWAP: the volume-weighted average price of the NYSE regular session so far.

VWAP = sum(notional) / sum(volume) over the session's bars up to and including this one, where a
bar's notional is its traded value sum(price * size) over its ticks (``Bar.notional``, folded by the
bar aggregator). So a VWAP computed from live bars equals sum(p*v)/sum(v) over the session's ticks,
up to float rounding (tested against that reference computed from the ticks themselves).

Session rules (decided here, tested):

- The session is the NYSE regular session from ``tickstock.market.calendar`` (exchange_calendars:
  09:30 to 16:00 America/New_York, 13:00 on early closes, none on holidays). A bar belongs to it
  when its START is inside ``[open, close)``: for 1-minute bars the minutes 09:30..15:59.
- A bar of another session than the last one folded (a new trading day) starts afresh: the sums
  are reset before it is folded. So VWAP resets at each session's open, even if the symbol had no
  bar for days.
- Bars outside the regular session (premarket from 04:00, after-hours, holidays) are not folded and
  return nothing: premarket prints never leak into the session's VWAP, and no VWAP is published
  outside the session.
- A bar without ``notional`` (read back from ``ohlcv_1min`` for priming, which stores none) is
  counted at its typical price: (high + low + close) / 3 * volume -- the usual approximation; the
  result's ``metadata["estimated_bars"]`` says how many of the session's bars were. A session fed
  only by live bars is exact.
- While the session's volume is 0 (quotes only) VWAP is undefined and nothing is returned.

Result: ``IndicatorResult("VWAP", vwap, {"value": vwap, "volume": session volume}, bar,
{"session": "YYYY-MM-DD", "bars_used": n, "estimated_bars": k})``. O(1) per bar; the calendar is
shared by every instance and asked only when a bar falls outside the session cached last (and,
between sessions, once until the next open).
"""

from __future__ import annotations

import math
import threading
from typing import Any

from tickstock.analysis.base import Component, IndicatorResult, Result
from tickstock.market.calendar import MarketCalendar, SessionWindow
from tickstock.messages.bars import Bar

__all__ = ["VWAP", "session_at"]

_lock = threading.Lock()
_calendar: MarketCalendar | None = None


def session_at(t: float) -> SessionWindow | None:
    """The NYSE regular session in progress at epoch ``t``, or None. One calendar for the process
    (built on first use around ``t``, about 0.2 s; it moves its range by itself), behind a lock
    because symbol pipelines run on several threads."""
    return _ask(t)[0]


def _ask(t: float) -> tuple[SessionWindow | None, float]:
    """(the session at ``t`` or None, the next session's open when there is none)."""
    global _calendar
    with _lock:
        if _calendar is None:
            _calendar = MarketCalendar(t)
        window = _calendar.window_at(t)
        return window, (window.open if window is not None else _calendar.next_window(t).open)


class VWAP(Component):
    """Session VWAP (module doc). No parameters."""

    name = "VWAP"
    kind = "indicator"

    def __init__(self) -> None:
        self.min_bars = 1
        self._session: SessionWindow | None = None
        self._closed_until = -math.inf  # bars before this (the next open) are outside any session
        self._notional = 0.0
        self._volume = 0
        self._bars = 0
        self._estimated = 0

    def params(self) -> dict[str, Any]:
        return {}

    def update(self, bar: Bar) -> list[Result]:
        session = self._session
        if session is None or not session.contains(bar.start):
            if bar.start < self._closed_until:
                return []  # still between sessions: no need to ask the calendar again
            session, next_open = _ask(bar.start)
            if session is None:
                self._closed_until = next_open
                return []  # premarket, after-hours, holiday: not part of any regular session
            if self._session is None or session.date != self._session.date:
                self._session = session
                self._notional, self._volume, self._bars, self._estimated = 0.0, 0, 0, 0
        if bar.notional is None:
            self._notional += (bar.high + bar.low + bar.close) / 3.0 * bar.volume
            self._estimated += 1
        else:
            self._notional += bar.notional
        self._volume += bar.volume
        self._bars += 1
        if self._volume <= 0:
            return []
        vwap = self._notional / self._volume
        return [IndicatorResult(self.name, vwap, {"value": vwap, "volume": float(self._volume)}, bar, {
            "session": session.date.isoformat(), "bars_used": self._bars, "estimated_bars": self._estimated,
        })]
