"""The calendar rebuilds its range before a query approaches the end (or falls before the start)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import exchange_calendars as xcals
import pytest

from tickstock.clock import ManualClock
from tickstock.market.calendar import MarketCalendar, exchange_date, xnys_calendar
from tickstock.market.schedule import Action, SessionScheduler

pytestmark = pytest.mark.filterwarnings(
    "ignore:Series.values returning an ndarray:DeprecationWarning"
)

D = dt.date


class CountingFactory:
    """Wraps the real XNYS factory and records each range it is asked for."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[tuple[dt.date, dt.date]] = []
        self.fail_after = fail_after

    def __call__(self, start: dt.date, end: dt.date) -> xcals.ExchangeCalendar:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("calendar source unavailable")
        self.calls.append((start, end))
        return xnys_calendar(start, end)


def test_queries_well_inside_the_range_do_not_rebuild(utc: Callable[[str], float]) -> None:
    factory = CountingFactory()
    cal = MarketCalendar(utc("2026-01-05T12:00:00Z"), factory=factory)
    assert factory.calls == [(D(2025, 12, 29), D(2027, 1, 6))]  # 7 days back, 366 ahead
    for iso in ("2026-01-06T15:00:00Z", "2026-07-03T15:00:00Z", "2026-11-27T15:00:00Z"):
        cal.next_window(utc(iso))
    cal.is_trading_day(D(2026, 12, 1))
    assert cal.rebuilds == 0 and len(factory.calls) == 1


def test_rebuilds_when_a_query_gets_within_the_margin_of_the_end(
    utc: Callable[[str], float],
) -> None:
    factory = CountingFactory()
    cal = MarketCalendar(utc("2026-01-05T00:00:00Z"), factory=factory)
    _, end = cal.coverage
    last_safe_day = end - dt.timedelta(days=31)  # 31 days before the end: still no rebuild
    cal.next_window(utc(f"{last_safe_day}T17:00:00Z"))
    assert cal.rebuilds == 0

    within_margin = end - dt.timedelta(days=30)  # 30 days before the end: rebuild now
    w = cal.next_window(utc(f"{within_margin}T17:00:00Z"))
    assert cal.rebuilds == 1 and len(factory.calls) == 2
    assert cal.coverage == (
        within_margin - dt.timedelta(days=7),
        within_margin + dt.timedelta(days=366),
    )
    assert w.date >= within_margin
    # the new range covers the query, so repeating it does not rebuild again
    cal.next_window(utc(f"{within_margin}T17:00:00Z"))
    assert cal.rebuilds == 1


def test_far_future_clock_triggers_rebuild_and_correct_answers(
    utc: Callable[[str], float],
) -> None:
    clock = ManualClock(utc("2026-01-05T00:00:00Z"))
    cal = MarketCalendar(clock.now())
    scheduler = SessionScheduler(cal, clock)

    clock.set(utc("2031-07-03T14:00:00Z"))  # ~5.5 years later: 10:00 EDT on Thursday 2031-07-03
    d = scheduler.decide_now(running=False)
    assert cal.rebuilds == 1
    start, end = cal.coverage
    assert start <= D(2031, 7, 3) <= end
    assert d.action is Action.START and d.window is not None
    # The day before Independence Day (a Friday in 2031) closes early at 13:00 EDT = 17:00Z.
    assert (d.window.date, d.window.early_close) == (D(2031, 7, 3), True)
    assert d.until == utc("2031-07-03T17:00:00Z")
    clock.set(d.until)
    assert scheduler.decide_now(running=True).action is Action.STOP
    wait = scheduler.decide_now(running=False)
    assert wait.action is Action.WAIT and wait.until == utc("2031-07-07T13:30:00Z")
    assert cal.rebuilds == 1


def test_query_before_the_range_rebuilds_around_it(utc: Callable[[str], float]) -> None:
    cal = MarketCalendar(utc("2026-06-01T00:00:00Z"))
    assert cal.coverage[0] > D(2026, 1, 6)
    w = cal.next_window(utc("2026-01-06T05:00:00Z"))
    assert cal.rebuilds == 1
    assert (w.date, w.open) == (D(2026, 1, 6), utc("2026-01-06T14:30:00Z"))


def test_short_range_factory_rebuilds_repeatedly_without_changing_answers(
    calendar: MarketCalendar, run: Callable[..., list], utc: Callable[[str], float]
) -> None:
    # A 40-day horizon with a 30-day margin forces a rebuild roughly every 10 days.
    factory = CountingFactory()
    clock = ManualClock(utc("2026-06-01T00:00:00Z"))
    short = MarketCalendar(clock.now(), factory=factory, horizon_days=40, rebuild_margin_days=30)
    scheduler = SessionScheduler(short, clock)
    ran = run(scheduler, clock, until=utc("2026-06-29T00:00:00Z"), keep_step=None)

    assert short.rebuilds >= 2 and len(factory.calls) == short.rebuilds + 1
    assert all(end - start == dt.timedelta(days=47) for start, end in factory.calls)
    # June 2026: 20 weekdays from the 1st to the 26th, less Juneteenth (Friday 19th).
    dates = [s.window.date for s in ran]
    assert len(dates) == 19 and D(2026, 6, 19) not in dates
    # Same windows as the long-range calendar gives.
    assert [s.window for s in ran] == [calendar.next_window(s.window.open) for s in ran]


def test_failed_rebuild_keeps_the_previous_calendar(utc: Callable[[str], float]) -> None:
    factory = CountingFactory(fail_after=1)
    cal = MarketCalendar(utc("2026-01-05T00:00:00Z"), factory=factory)
    before = cal.coverage
    with pytest.raises(RuntimeError):
        cal.next_window(utc("2030-01-07T15:00:00Z"))
    assert cal.rebuilds == 0 and cal.coverage == before
    assert cal.next_window(utc("2026-03-09T05:00:00Z")).open == utc("2026-03-09T13:30:00Z")


def test_initial_range_is_anchored_on_the_exchange_date(utc: Callable[[str], float]) -> None:
    # 02:00Z on Jan 5 is still Jan 4 in New York: the range is built around the exchange date.
    t = utc("2026-01-05T02:00:00Z")
    assert exchange_date(t) == D(2026, 1, 4)
    assert MarketCalendar(t).coverage == (D(2025, 12, 28), D(2027, 1, 5))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"horizon_days": 30, "rebuild_margin_days": 30},
        {"lookback_days": 0},
        {"rebuild_margin_days": 0},
    ],
)
def test_rejects_ranges_that_could_not_answer(kwargs: dict, utc: Callable[[str], float]) -> None:
    factory = CountingFactory()
    with pytest.raises(ValueError):
        MarketCalendar(utc("2026-01-05T00:00:00Z"), factory=factory, **kwargs)
    assert factory.calls == []  # validated before building anything
