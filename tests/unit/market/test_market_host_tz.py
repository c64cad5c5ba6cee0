"""The host time zone (TZ) must not change any answer."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import pytest

from tickstock.clock import ManualClock
from tickstock.market.calendar import MarketCalendar, exchange_date
from tickstock.market.schedule import SessionScheduler

pytestmark = pytest.mark.filterwarnings(
    "ignore:Series.values returning an ndarray:DeprecationWarning"
)

D = dt.date

# Instants picked so that the host's local date differs from the New York date or the UTC date.
# A stray local-time conversion anywhere would then change an answer.
PROBES = [
    "2026-11-27T15:00:00Z",  # early-close day, in session; already 11-28 in Tokyo/Kiritimati
    "2026-11-30T00:30:00Z",  # Sunday evening in New York, Monday in Asia/UTC
    "2026-03-09T13:30:00Z",  # first summer-time open
    "2026-11-02T14:29:59Z",  # one second before the first winter-time open
    "2026-07-03T03:00:00Z",  # holiday; still 07-02 in New York and Los Angeles
]

EXPECTED = {
    "anchor_range": (D(2025, 12, 28), D(2027, 1, 5)),
    "exchange_dates": [
        D(2026, 11, 27),
        D(2026, 11, 29),
        D(2026, 3, 9),
        D(2026, 11, 2),
        D(2026, 7, 2),
    ],
    "window_at": [
        "2026-11-27 09:30-13:00 America/New_York (early close)",
        None,
        "2026-03-09 09:30-16:00 America/New_York",
        None,
        None,
    ],
    "next_open_utc": [
        "2026-11-27T14:30:00+00:00",
        "2026-11-30T14:30:00+00:00",
        "2026-03-09T13:30:00+00:00",
        "2026-11-02T14:30:00+00:00",
        "2026-07-06T13:30:00+00:00",
    ],
    "decisions": [  # (action, until) for a stopped service
        ("start", "2026-11-27T18:00:00+00:00"),
        ("wait", "2026-11-30T14:30:00+00:00"),
        ("start", "2026-03-09T20:00:00+00:00"),
        ("wait", "2026-11-02T14:30:00+00:00"),
        ("wait", "2026-07-06T13:30:00+00:00"),
    ],
    "trading_days": [False, True, False, False],  # 07-03, 07-06, 11-26, 11-28
}


def iso_utc(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).isoformat()


def answers(utc: Callable[[str], float]) -> dict:
    # Build a fresh calendar under the patched TZ: the range anchoring is part of what is tested.
    anchor = utc("2026-01-05T00:00:00Z")
    cal = MarketCalendar(anchor)
    scheduler = SessionScheduler(cal, ManualClock(anchor))
    ts = [utc(p) for p in PROBES]
    current = [cal.window_at(t) for t in ts]
    return {
        "anchor_range": cal.coverage,
        "exchange_dates": [exchange_date(t) for t in ts],
        "window_at": [w.describe() if w else None for w in current],
        "next_open_utc": [cal.next_window(t).open_utc.isoformat() for t in ts],
        "decisions": [
            (d.action.value, iso_utc(d.until))
            for d in (scheduler.decide(t, running=False) for t in ts)
        ],
        "trading_days": [
            cal.is_trading_day(d)
            for d in (D(2026, 7, 3), D(2026, 7, 6), D(2026, 11, 26), D(2026, 11, 28))
        ],
    }


@pytest.fixture
def host_tz(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()  # the C library caches TZ; re-read the restored value


@pytest.mark.parametrize(
    ("host_tz", "utc_offset_hours"),
    [("UTC", 0), ("Asia/Tokyo", 9), ("Pacific/Kiritimati", 14), ("America/Los_Angeles", -8)],
    indirect=["host_tz"],
)
def test_answers_do_not_depend_on_host_tz(
    host_tz: str, utc_offset_hours: int, utc: Callable[[str], float]
) -> None:
    # First check that the TZ change took effect, or this test would prove nothing.
    assert time.localtime(utc("2026-01-05T00:00:00Z")).tm_gmtoff == utc_offset_hours * 3600
    assert answers(utc) == EXPECTED
