"""Shared fixtures for the market tests: one calendar per module, plus a service-loop driver.

Helpers are handed out as fixtures (``utc``, ``run``) rather than imported from a module, so the
tests do not depend on pytest's import mode or on sys.path.

exchange_calendars 4.13 on pandas 3.1 triggers a pandas deprecation warning while building (it
calls Series.values on tz-aware data). We cannot fix that here. Each test module filters it with
its own ``pytestmark``, because a pytestmark set in a conftest does not reach the test modules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tickstock.clock import ManualClock
from tickstock.market.calendar import MarketCalendar, SessionWindow
from tickstock.market.schedule import Action, SessionScheduler

# Range 2026-01-25 .. 2027-02-01. Queries are answered without a rebuild for exchange dates
# 2026-01-26 .. 2027-01-01, which holds every 2026 date that the shared-calendar tests use. The
# fixture's teardown checks this.
ANCHOR = "2026-02-01T12:00:00Z"


def utc(iso: str) -> float:
    """Epoch seconds for an ISO-8601 instant. The offset is required, so host TZ cannot leak in."""
    parsed = dt.datetime.fromisoformat(iso)
    assert parsed.tzinfo is not None, "test instants must carry an explicit offset"
    return parsed.timestamp()


@dataclass(frozen=True)
class RanSession:
    window: SessionWindow
    started: float
    stopped: float
    final_status: str | None


def drive(
    scheduler: SessionScheduler,
    clock: ManualClock,
    until: float,
    keep_step: float | None = 60.0,
    max_steps: int = 100_000,
) -> list[RanSession]:
    """Run the service loop on ``clock`` until ``until`` and return the sessions it ran.

    On KEEP the loop advances ``keep_step`` seconds, or jumps to ``Decision.until`` if the step is
    None. On WAIT it jumps to the next open, or to ``until`` if that comes first.
    """
    running = False
    started: tuple[SessionWindow, float] | None = None
    ran: list[RanSession] = []
    for _ in range(max_steps):
        now = clock.now()
        if now >= until:
            return ran
        decision = scheduler.decide(now, running)
        if decision.action is Action.START:
            assert not running
            running, started = True, (decision.window, now)
        elif decision.action is Action.STOP:
            assert running and started is not None
            window, t0 = started
            assert decision.window == window, "stopped a different session than was started"
            ran.append(RanSession(window, t0, now, decision.final_status))
            running, started = False, None
        elif decision.action is Action.WAIT:
            assert decision.until is not None and decision.until > now
            clock.set(min(decision.until, until))
        else:
            assert decision.action is Action.KEEP and decision.until is not None
            if keep_step is None:
                clock.set(decision.until)
            else:
                clock.advance(keep_step)
    raise AssertionError("loop did not finish: scheduler is not making progress")


@pytest.fixture(scope="module")
def calendar() -> Iterator[MarketCalendar]:
    """One calendar per test module. Building takes about 0.2 s."""
    cal = MarketCalendar(utc(ANCHOR))
    yield cal
    # A rebuild here would mean that a test wandered outside the anchored range, and the
    # no-rebuild tests would be meaningless.
    assert cal.rebuilds == 0, "the shared calendar rebuilt: a test queried outside its range"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(utc(ANCHOR))


@pytest.fixture
def scheduler(calendar: MarketCalendar, clock: ManualClock) -> SessionScheduler:
    return SessionScheduler(calendar, clock)


@pytest.fixture(name="utc")
def utc_fixture() -> Callable[[str], float]:
    return utc


@pytest.fixture
def run() -> Callable[..., list[RanSession]]:
    """The service-loop driver ``drive``."""
    return drive
