"""NYSE (XNYS) trading sessions as UTC epoch windows.

Guarantees:
- Every time in and out is epoch seconds UTC, or a tz-aware UTC datetime. America/New_York is used
  only to name a session's exchange date and in ``describe()`` text. The host time zone (TZ) never
  matters.
- A session window is half-open: ``open <= t < close``. This matches exchange_calendars' default
  ``side="left"`` for XNYS (the open minute trades, the close minute does not).
- Session dates, opens, closes, holidays, ad-hoc closures and early closes all come from
  exchange_calendars. Nothing is hard-coded here, so DST and early closes need no special cases.
- The underlying calendar covers an explicit date range. Before answering, each query checks that
  its instant or date is inside the range, and at least ``rebuild_margin_days`` before the range's
  end. If not, the calendar is rebuilt around the query, and ``rebuilds`` counts this. So a service
  that runs for years never asks a calendar about dates past its range. A rebuild that raises
  leaves the previous calendar in place.

Not thread-safe: one owner (the service loop). All queries are in-memory bisects. Only building or
rebuilding the calendar (about 0.2 s) does real work.
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

EXCHANGE = "XNYS"
EXCHANGE_TZ_NAME = "America/New_York"
EXCHANGE_TZ = ZoneInfo(EXCHANGE_TZ_NAME)

#: Builds the exchange calendar for sessions from ``start`` to ``end`` (inclusive exchange dates).
CalendarFactory = Callable[[dt.date, dt.date], xcals.ExchangeCalendar]


def xnys_calendar(start: dt.date, end: dt.date) -> xcals.ExchangeCalendar:
    """The default factory: the XNYS calendar with an explicit range.

    An explicit ``end`` is needed. Without one, exchange_calendars stops about one year after
    *today*, not after the instant we ask about.
    """
    return xcals.get_calendar(EXCHANGE, start=start, end=end)


@dataclass(frozen=True)
class SessionWindow:
    """One exchange session: ``open <= t < close`` in epoch seconds UTC.

    ``date`` is the exchange's session date (its America/New_York calendar date). It is not a UTC
    date and not the host's local date.
    """

    date: dt.date
    open: float
    close: float
    early_close: bool = False

    def __post_init__(self) -> None:
        if not self.open < self.close:
            raise ValueError(f"session {self.date} must open before it closes")

    @property
    def open_utc(self) -> dt.datetime:
        """The open as a tz-aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.open, tz=dt.timezone.utc)

    @property
    def close_utc(self) -> dt.datetime:
        """The close as a tz-aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.close, tz=dt.timezone.utc)

    def contains(self, t: float) -> bool:
        """True if ``t`` is inside the session (``open <= t < close``)."""
        return self.open <= t < self.close

    def describe(self) -> str:
        """Log text in exchange time.

        Example: ``2026-11-27 09:30-13:00 America/New_York (early close)``.
        """
        o = dt.datetime.fromtimestamp(self.open, tz=EXCHANGE_TZ)
        c = dt.datetime.fromtimestamp(self.close, tz=EXCHANGE_TZ)
        text = f"{self.date.isoformat()} {o:%H:%M}-{c:%H:%M} {EXCHANGE_TZ_NAME}"
        return text + " (early close)" if self.early_close else text


class MarketCalendar:
    """XNYS sessions around a moving point in time.

    ``now`` (epoch UTC) anchors the first build, from ``now - lookback_days`` to
    ``now + horizon_days``, as exchange dates. Later builds are anchored on the query that needed
    them. ``factory`` lets tests count builds or force short ranges.
    """

    def __init__(
        self,
        now: float,
        *,
        factory: CalendarFactory = xnys_calendar,
        horizon_days: int = 366,
        lookback_days: int = 7,
        rebuild_margin_days: int = 30,
    ) -> None:
        if lookback_days < 1 or rebuild_margin_days < 1:
            raise ValueError("lookback_days and rebuild_margin_days must be >= 1")
        if horizon_days <= rebuild_margin_days:
            # Otherwise a freshly built range would already need rebuilding.
            raise ValueError("horizon_days must exceed rebuild_margin_days")
        self._factory = factory
        self._horizon = dt.timedelta(days=horizon_days)
        self._lookback = dt.timedelta(days=lookback_days)
        self._margin = dt.timedelta(days=rebuild_margin_days)
        # Rebuilds since construction; the initial build is not one. Public so tests and health
        # checks can see that a long-running service moved its range forward.
        self.rebuilds = 0
        self._build(exchange_date(_check_instant(now)))

    # ----------------------------------------------------------------------------------- queries

    def window_at(self, t: float) -> SessionWindow | None:
        """The session in progress at ``t`` (``open <= t < close``), or None."""
        self._cover_instant(_check_instant(t))
        i = bisect_right(self._opens, t) - 1
        if i >= 0 and self._windows[i].contains(t):
            return self._windows[i]
        return None

    def next_window(self, t: float) -> SessionWindow:
        """The session in progress at ``t``, or else the first session that opens after ``t``.

        Raises LookupError only if the exchange has no session in the next
        ``rebuild_margin_days``. That has not happened at the NYSE since 1914.
        """
        current = self.window_at(t)  # also makes sure that t is covered
        if current is not None:
            return current
        i = bisect_right(self._opens, t)
        if i == len(self._windows):
            raise LookupError(f"no {EXCHANGE} session after {t} within the calendar range")
        return self._windows[i]

    def is_trading_day(self, date: dt.date) -> bool:
        """True if ``date`` (an exchange date) has a session, including an early close."""
        # datetime is a subclass of date. Reject it, because which "date" it means depends on a
        # time zone.
        if isinstance(date, dt.datetime) or not isinstance(date, dt.date):
            raise TypeError(f"expected a datetime.date, got {type(date).__name__}")
        if not self._first_covered <= date < self._last_covered_before:
            self._rebuild(date)
        return date in self._dates

    @property
    def coverage(self) -> tuple[dt.date, dt.date]:
        """The (start, end) exchange dates that the current underlying calendar was built for."""
        return self._start, self._end

    # ----------------------------------------------------------------------------------- building

    def _cover_instant(self, t: float) -> None:
        if not self._low <= t < self._high:
            self._rebuild(exchange_date(t))

    def _rebuild(self, anchor: dt.date) -> None:
        self._build(anchor)
        self.rebuilds += 1

    def _build(self, anchor: dt.date) -> None:
        start, end = anchor - self._lookback, anchor + self._horizon
        cal = self._factory(start, end)
        early = {label.date() for label in cal.early_closes}
        windows = tuple(
            SessionWindow(
                date=label.date(),  # session labels are tz-naive exchange dates
                open=_epoch(o),
                close=_epoch(c),
                early_close=label.date() in early,
            )
            for label, o, c in zip(cal.schedule.index, cal.opens, cal.closes, strict=True)
        )
        # Compute everything first, then assign. A factory that raises leaves the old state intact.
        first_covered = start + dt.timedelta(days=1)
        last_covered_before = end - self._margin
        self._start, self._end = start, end
        self._windows = windows
        self._opens = [w.open for w in windows]
        self._dates = frozenset(w.date for w in windows)
        # A query is answered from this build if its exchange date is in
        # [first_covered, last_covered_before). Skipping the first day leaves a day for a session
        # that began the previous exchange date. Stopping `margin` before the end makes sure that
        # next_window has sessions to find.
        self._first_covered, self._last_covered_before = first_covered, last_covered_before
        self._low = _midnight_epoch(first_covered)
        self._high = _midnight_epoch(last_covered_before)


def exchange_date(t: float) -> dt.date:
    """The America/New_York calendar date at epoch ``t``. It does not depend on the host TZ."""
    return dt.datetime.fromtimestamp(t, tz=EXCHANGE_TZ).date()


def _midnight_epoch(date: dt.date) -> float:
    """Epoch of 00:00 America/New_York on ``date``."""
    return dt.datetime.combine(date, dt.time(), tzinfo=EXCHANGE_TZ).timestamp()


def _epoch(ts: pd.Timestamp) -> float:
    # exchange_calendars returns tz-aware UTC opens and closes. For a tz-naive Timestamp,
    # .timestamp() would quietly assume UTC, so a factory that returns naive times is an error.
    if ts.tzinfo is None:
        raise ValueError(f"calendar returned a tz-naive session time: {ts}")
    return ts.timestamp()


def _check_instant(t: float) -> float:
    # A NaN would make every bisect and comparison below silently wrong.
    if not math.isfinite(t):
        raise ValueError(f"time must be finite epoch seconds, got {t!r}")
    return t
