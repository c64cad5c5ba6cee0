"""MarketCalendar facts: normal days, DST, holidays, early closes, weekends, half-open windows."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import pytest

from tickstock.market.calendar import MarketCalendar, SessionWindow, exchange_date

pytestmark = pytest.mark.filterwarnings(
    "ignore:Series.values returning an ndarray:DeprecationWarning"
)

D = dt.date


def hm(t: float) -> str:
    """UTC HH:MM of epoch t, for readable assertions."""
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%H:%M")


@pytest.mark.parametrize(
    ("day", "open_z", "close_z"),
    [
        # winter (EST, UTC-5): 09:30-16:00 ET = 14:30-21:00Z
        (D(2026, 2, 10), "14:30", "21:00"),
        # summer (EDT, UTC-4): 13:30-20:00Z
        (D(2026, 6, 9), "13:30", "20:00"),
        # 2026-03-08 (Sunday) switches to EDT: Friday before is winter, Monday after is summer
        (D(2026, 3, 6), "14:30", "21:00"),
        (D(2026, 3, 9), "13:30", "20:00"),
        # 2026-11-01 (Sunday) switches back to EST
        (D(2026, 10, 30), "13:30", "20:00"),
        (D(2026, 11, 2), "14:30", "21:00"),
    ],
)
def test_session_open_close_in_utc_across_dst(
    calendar: MarketCalendar, utc: Callable[[str], float], day: dt.date, open_z: str, close_z: str
) -> None:
    w = calendar.next_window(utc(f"{day.isoformat()}T05:00:00Z"))  # before the open
    assert w.date == day
    assert (hm(w.open), hm(w.close)) == (open_z, close_z)
    assert w.open_utc.date() == day and w.open_utc.tzinfo is dt.timezone.utc
    assert not w.early_close
    assert w.describe() == f"{day.isoformat()} 09:30-16:00 America/New_York"


def test_window_is_half_open(calendar: MarketCalendar, utc: Callable[[str], float]) -> None:
    opens, closes = utc("2026-11-24T14:30:00Z"), utc("2026-11-24T21:00:00Z")
    assert calendar.window_at(opens - 0.001) is None
    w = calendar.window_at(opens)
    assert w is not None and (w.date, w.open, w.close) == (D(2026, 11, 24), opens, closes)
    assert calendar.window_at(closes - 0.001) == w
    assert calendar.window_at(closes) is None
    # at the close, the next window is the next day's, not the one that just ended
    assert calendar.next_window(closes).date == D(2026, 11, 25)


def test_early_close_2026_11_27(calendar: MarketCalendar, utc: Callable[[str], float]) -> None:
    w = calendar.window_at(utc("2026-11-27T17:59:59Z"))
    assert w is not None
    assert w.early_close
    assert w.open_utc == dt.datetime(2026, 11, 27, 14, 30, tzinfo=dt.timezone.utc)
    assert w.close_utc == dt.datetime(2026, 11, 27, 18, 0, tzinfo=dt.timezone.utc)  # 13:00 ET
    assert calendar.window_at(utc("2026-11-27T18:00:00Z")) is None
    assert w.describe() == "2026-11-27 09:30-13:00 America/New_York (early close)"
    assert calendar.is_trading_day(D(2026, 11, 27))  # an early close is still a trading day


def test_christmas_eve_2026_is_an_early_close(
    calendar: MarketCalendar, utc: Callable[[str], float]
) -> None:
    w = calendar.next_window(utc("2026-12-24T00:00:00Z"))
    assert (w.date, w.early_close, hm(w.close)) == (D(2026, 12, 24), True, "18:00")
    assert not calendar.is_trading_day(D(2026, 12, 25))


def test_independence_day_2026_observed_friday(
    calendar: MarketCalendar, utc: Callable[[str], float]
) -> None:
    assert not calendar.is_trading_day(D(2026, 7, 3))
    assert calendar.window_at(utc("2026-07-03T15:00:00Z")) is None
    # Thursday 07-02 closes at the normal time: no early close when the 4th is observed on a Friday
    thursday = calendar.window_at(utc("2026-07-02T19:59:00Z"))
    assert thursday is not None and not thursday.early_close and hm(thursday.close) == "20:00"
    nxt = calendar.next_window(thursday.close)
    assert nxt.date == D(2026, 7, 6)
    assert nxt.open == utc("2026-07-06T13:30:00Z")


def test_thanksgiving_is_a_holiday(calendar: MarketCalendar, utc: Callable[[str], float]) -> None:
    assert not calendar.is_trading_day(D(2026, 11, 26))
    assert calendar.next_window(utc("2026-11-26T15:00:00Z")).date == D(2026, 11, 27)


def test_weekend_has_no_session(calendar: MarketCalendar, utc: Callable[[str], float]) -> None:
    assert not calendar.is_trading_day(D(2026, 11, 28))
    assert not calendar.is_trading_day(D(2026, 11, 29))
    assert calendar.is_trading_day(D(2026, 11, 30))
    assert calendar.window_at(utc("2026-11-28T16:00:00Z")) is None
    nxt = calendar.next_window(utc("2026-11-28T16:00:00Z"))
    assert (nxt.date, nxt.open) == (D(2026, 11, 30), utc("2026-11-30T14:30:00Z"))


def test_session_date_is_the_new_york_date(
    calendar: MarketCalendar, utc: Callable[[str], float]
) -> None:
    # Monday 00:30Z is still Sunday evening in New York: no session now, and the next is Monday's.
    t = utc("2026-11-30T00:30:00Z")
    assert exchange_date(t) == D(2026, 11, 29)
    assert calendar.window_at(t) is None
    assert calendar.next_window(t).date == D(2026, 11, 30)


def test_is_trading_day_rejects_datetimes(calendar: MarketCalendar) -> None:
    with pytest.raises(TypeError):
        when = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
        calendar.is_trading_day(when)  # type: ignore[arg-type]


def test_rejects_non_finite_instants(calendar: MarketCalendar) -> None:
    with pytest.raises(ValueError):
        calendar.window_at(math.nan)
    with pytest.raises(ValueError):
        calendar.next_window(math.inf)


def test_session_window_must_open_before_close() -> None:
    with pytest.raises(ValueError):
        SessionWindow(D(2026, 1, 6), open=10.0, close=10.0, early_close=False)


def test_ad_hoc_closure_2025_01_09(utc: Callable[[str], float]) -> None:
    # National day of mourning (President Carter): an ad-hoc closure, not a rule-based holiday.
    cal = MarketCalendar(utc("2025-01-06T12:00:00Z"))
    assert not cal.is_trading_day(D(2025, 1, 9))
    assert cal.is_trading_day(D(2025, 1, 8)) and cal.is_trading_day(D(2025, 1, 10))
    assert cal.next_window(utc("2025-01-08T21:00:00Z")).date == D(2025, 1, 10)
    assert cal.rebuilds == 0
