"""Clock: ManualClock moves only when told; SystemClock is the epoch wall clock."""

from __future__ import annotations

import math
import time

import pytest

from tickstock.clock import Clock, ManualClock, SystemClock


def test_manual_clock_advance_set_and_instant_sleep() -> None:
    clock = ManualClock(1_000.0)
    assert clock.now() == 1_000.0
    assert clock.advance(30.5) == 1_030.5
    wall_before = time.monotonic()
    clock.sleep(86_400)  # a whole day, instantly
    assert time.monotonic() - wall_before < 1.0
    assert clock.now() == 1_030.5 + 86_400
    clock.set(5.0)  # set may go backwards: tests use it to land on exact instants
    assert clock.now() == 5.0


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_manual_clock_rejects_bad_durations(bad: float) -> None:
    clock = ManualClock(100.0)
    with pytest.raises(ValueError):
        clock.advance(bad)
    with pytest.raises(ValueError):
        clock.sleep(bad)
    assert clock.now() == 100.0


def test_manual_clock_rejects_non_finite_instants() -> None:
    with pytest.raises(ValueError):
        ManualClock(math.nan)
    clock = ManualClock(0.0)
    with pytest.raises(ValueError):
        clock.set(math.inf)


def test_system_clock_is_epoch_utc() -> None:
    clock = SystemClock()
    before = time.time()
    now = clock.now()
    assert before <= now <= time.time()
    with pytest.raises(ValueError):
        clock.sleep(-1)


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(ManualClock(0.0), Clock)
