"""SessionScheduler decisions, single-step and as a driven service loop on a ManualClock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from tickstock.clock import ManualClock
from tickstock.market.calendar import MarketCalendar
from tickstock.market.schedule import COMPLETED, Action, SessionScheduler

pytestmark = pytest.mark.filterwarnings(
    "ignore:Series.values returning an ndarray:DeprecationWarning"
)

D = dt.date


# ------------------------------------------------------------------------------ single decisions


def test_normal_day_start_at_open_stop_at_close(
    scheduler: SessionScheduler, utc: Callable[[str], float]
) -> None:
    # 2026-11-24 is winter time: 09:30-16:00 ET = 14:30-21:00Z
    before = scheduler.decide(utc("2026-11-24T14:29:59Z"), running=False)
    assert before.action is Action.WAIT and before.until == utc("2026-11-24T14:30:00Z")

    start = scheduler.decide(utc("2026-11-24T14:30:00Z"), running=False)
    assert start.action is Action.START
    assert start.window is not None and start.window.date == D(2026, 11, 24)

    keep = scheduler.decide(utc("2026-11-24T20:59:59Z"), running=True)
    assert keep.action is Action.KEEP and keep.until == utc("2026-11-24T21:00:00Z")

    stop = scheduler.decide(utc("2026-11-24T21:00:00Z"), running=True)
    assert stop.action is Action.STOP and stop.final_status == COMPLETED
    assert stop.window == start.window


def test_summer_day_opens_at_1330z(
    scheduler: SessionScheduler, utc: Callable[[str], float]
) -> None:
    assert scheduler.decide(utc("2026-06-09T13:29:59Z"), False).action is Action.WAIT
    assert scheduler.decide(utc("2026-06-09T13:30:00Z"), False).action is Action.START
    assert scheduler.decide(utc("2026-06-09T19:59:59Z"), True).action is Action.KEEP
    assert scheduler.decide(utc("2026-06-09T20:00:00Z"), True).action is Action.STOP


def test_launch_mid_session_starts_immediately(
    scheduler: SessionScheduler, utc: Callable[[str], float]
) -> None:
    d = scheduler.decide(utc("2026-11-24T17:00:00Z"), running=False)
    assert d.action is Action.START
    assert d.window is not None and d.window.date == D(2026, 11, 24)
    assert d.until == utc("2026-11-24T21:00:00Z")


def test_launch_after_close_waits_for_next_open(
    scheduler: SessionScheduler, utc: Callable[[str], float]
) -> None:
    d = scheduler.decide(utc("2026-11-24T21:30:00Z"), running=False)
    assert d.action is Action.WAIT
    assert d.until == utc("2026-11-25T14:30:00Z")
    assert d.window is not None and d.window.date == D(2026, 11, 25)
    assert d.describe() == "wait: next open is 2026-11-25 09:30-16:00 America/New_York"


def test_early_close_stops_at_1800z(
    scheduler: SessionScheduler, utc: Callable[[str], float]
) -> None:
    start = scheduler.decide(utc("2026-11-27T14:30:00Z"), running=False)
    assert start.action is Action.START and start.until == utc("2026-11-27T18:00:00Z")
    assert scheduler.decide(utc("2026-11-27T17:59:59Z"), running=True).action is Action.KEEP
    stop = scheduler.decide(utc("2026-11-27T18:00:00Z"), running=True)
    assert stop.action is Action.STOP and stop.final_status == COMPLETED
    assert "(early close)" in stop.describe()


def test_holiday_waits_until_next_session(
    scheduler: SessionScheduler, utc: Callable[[str], float]
) -> None:
    d = scheduler.decide(utc("2026-07-03T14:00:00Z"), running=False)
    assert d.action is Action.WAIT
    assert d.window is not None and d.window.date == D(2026, 7, 6)
    assert d.until == utc("2026-07-06T13:30:00Z")


def test_weekend_waits_until_monday(
    scheduler: SessionScheduler, utc: Callable[[str], float]
) -> None:
    d = scheduler.decide(utc("2026-11-28T15:00:00Z"), running=False)
    assert d.action is Action.WAIT and d.until == utc("2026-11-30T14:30:00Z")


def test_dst_weekend_wait_uses_the_new_offset(
    scheduler: SessionScheduler, utc: Callable[[str], float]
) -> None:
    # After Friday 2026-03-06's winter close, the Monday after the switch opens at 13:30Z.
    d = scheduler.decide(utc("2026-03-06T21:00:00Z"), running=False)
    assert d.action is Action.WAIT and d.until == utc("2026-03-09T13:30:00Z")
    # ...and after Friday 2026-10-30's summer close, the Monday after opens at 14:30Z.
    d = scheduler.decide(utc("2026-10-30T20:00:00Z"), running=False)
    assert d.action is Action.WAIT and d.until == utc("2026-11-02T14:30:00Z")


def test_overslept_into_next_session_stops_old_then_starts_new(
    scheduler: SessionScheduler, utc: Callable[[str], float]
) -> None:
    start = scheduler.decide(utc("2026-11-23T15:00:00Z"), running=False)
    assert start.action is Action.START
    # The loop wakes up in the middle of Tuesday's session with Monday's still running.
    stop = scheduler.decide(utc("2026-11-24T15:00:00Z"), running=True)
    assert stop.action is Action.STOP
    assert stop.window is not None and stop.window.date == D(2026, 11, 23)
    restart = scheduler.decide(utc("2026-11-24T15:00:00Z"), running=False)
    assert restart.action is Action.START
    assert restart.window is not None and restart.window.date == D(2026, 11, 24)


def test_running_session_unknown_to_a_fresh_scheduler(
    calendar: MarketCalendar, clock: ManualClock, utc: Callable[[str], float]
) -> None:
    # e.g. the scheduler was recreated while the session ran: adopt it inside a window, stop outside
    fresh = SessionScheduler(calendar, clock)
    keep = fresh.decide(utc("2026-11-24T16:00:00Z"), running=True)
    assert keep.action is Action.KEEP and keep.until == utc("2026-11-24T21:00:00Z")
    assert SessionScheduler(calendar, clock).decide(utc("2026-11-24T22:00:00Z"), True).action is (
        Action.STOP
    )


def test_decide_now_uses_the_clock(
    scheduler: SessionScheduler, clock: ManualClock, utc: Callable[[str], float]
) -> None:
    clock.set(utc("2026-11-24T17:00:00Z"))
    assert scheduler.decide_now(running=False).action is Action.START
    clock.set(utc("2026-11-24T21:00:00Z"))
    assert scheduler.decide_now(running=True).action is Action.STOP


# ------------------------------------------------------------------------------ driven loops


@pytest.mark.parametrize("keep_step", [60.0, 47.0, None], ids=["step60", "step47", "jump"])
@pytest.mark.parametrize(
    ("monday", "open_z", "close_z"),
    [("2026-06-08", "13:30", "20:00"), ("2026-12-07", "14:30", "21:00")],
    ids=["summer", "winter"],
)
def test_normal_week_runs_exactly_five_sessions(
    scheduler: SessionScheduler,
    clock: ManualClock,
    run: Callable[..., list],
    utc: Callable[[str], float],
    keep_step: float | None,
    monday: str,
    open_z: str,
    close_z: str,
) -> None:
    start = utc(f"{monday}T00:00:00Z")
    clock.set(start)
    ran = run(scheduler, clock, until=start + 7 * 86_400, keep_step=keep_step)

    first = dt.date.fromisoformat(monday)
    days = [first + dt.timedelta(days=i) for i in range(5)]
    assert [s.window.date for s in ran] == days
    for s, day in zip(ran, days, strict=True):
        opens, closes = utc(f"{day}T{open_z}:00Z"), utc(f"{day}T{close_z}:00Z")
        assert (s.window.open, s.window.close) == (opens, closes)
        assert s.started == opens  # WAIT jumps exactly to the open
        step = keep_step or 0.0
        assert closes <= s.stopped <= closes + step  # never before the close, at most one step late
        assert s.final_status == COMPLETED


def test_thanksgiving_week_2026_runs_four_sessions(
    scheduler: SessionScheduler,
    clock: ManualClock,
    run: Callable[..., list],
    utc: Callable[[str], float],
) -> None:
    start = utc("2026-11-23T00:00:00Z")
    clock.set(start)
    ran = run(scheduler, clock, until=utc("2026-11-30T00:00:00Z"))

    assert [(s.window.date, s.started, s.stopped, s.window.early_close) for s in ran] == [
        (D(2026, 11, 23), utc("2026-11-23T14:30:00Z"), utc("2026-11-23T21:00:00Z"), False),
        (D(2026, 11, 24), utc("2026-11-24T14:30:00Z"), utc("2026-11-24T21:00:00Z"), False),
        (D(2026, 11, 25), utc("2026-11-25T14:30:00Z"), utc("2026-11-25T21:00:00Z"), False),
        # Thursday 26th: Thanksgiving. Friday 27th: early close at 13:00 ET.
        (D(2026, 11, 27), utc("2026-11-27T14:30:00Z"), utc("2026-11-27T18:00:00Z"), True),
    ]


def test_loop_across_the_march_dst_switch(
    scheduler: SessionScheduler,
    clock: ManualClock,
    run: Callable[..., list],
    utc: Callable[[str], float],
) -> None:
    clock.set(utc("2026-03-06T00:00:00Z"))
    ran = run(scheduler, clock, until=utc("2026-03-10T00:00:00Z"), keep_step=None)
    assert [(s.window.date, s.started, s.stopped) for s in ran] == [
        (D(2026, 3, 6), utc("2026-03-06T14:30:00Z"), utc("2026-03-06T21:00:00Z")),
        (D(2026, 3, 9), utc("2026-03-09T13:30:00Z"), utc("2026-03-09T20:00:00Z")),
    ]


def test_launch_mid_session_in_a_loop_counts_that_session(
    scheduler: SessionScheduler,
    clock: ManualClock,
    run: Callable[..., list],
    utc: Callable[[str], float],
) -> None:
    clock.set(utc("2026-11-24T17:00:00Z"))
    ran = run(scheduler, clock, until=utc("2026-11-25T00:00:00Z"))
    assert len(ran) == 1
    assert ran[0].started == utc("2026-11-24T17:00:00Z")
    assert ran[0].stopped == utc("2026-11-24T21:00:00Z")
