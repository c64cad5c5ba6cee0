"""The load generator's schedule: ticks due over time, its inverse, bursts, batch sizes."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickstock.bench.pacing import Burst, Schedule


def test_a_steady_rate():
    s = Schedule(50_000)
    assert s.due(0) == 0 and s.due(-1) == 0
    assert s.due(1.0) == 50_000 and s.due(0.5) == 25_000 and s.due(0.00001) == 0
    assert s.time_of(50_000) == pytest.approx(1.0)
    assert s.batch == 250 and s.mean_rate() == 50_000


def test_batches_are_small_and_bounded():
    assert Schedule(500).batch == 2
    assert Schedule(10).batch == 1
    assert Schedule(1_000_000).batch == 2000
    assert Schedule(200_000, batch_seconds=0.002).batch == 400


def test_flat_out_is_everything_at_once():
    s = Schedule(0)
    assert s.flat_out and math.isinf(s.due(0.001)) and s.time_of(10**9) == 0.0 and s.batch == 2000


def test_bursts_at_the_end_of_each_period():
    s = Schedule(1000, Burst.parse("4x1/10"))
    assert s.due(9.0) == 9000                  # calm
    assert s.due(9.5) == 9000 + 2000           # half a second at 4,000/s
    assert s.due(10.0) == 13_000               # one period: 9 s calm + 1 s burst
    assert s.due(19.0) == 22_000
    assert s.time_of(11_000) == pytest.approx(9.5)
    assert s.mean_rate() == pytest.approx(1300)


@given(st.floats(1, 1e6), st.floats(0, 500), st.sampled_from([None, "4x1/10", "2.5x0.5/3", "1x5/5"]))
def test_time_of_inverts_cumulative(rate, elapsed, burst):
    s = Schedule(rate, Burst.parse(burst) if burst else None)
    assert s.time_of(s.cumulative(elapsed)) == pytest.approx(elapsed, rel=1e-9, abs=1e-9)


@given(st.floats(1, 1e6), st.lists(st.floats(0, 100), min_size=2), st.sampled_from([None, "3x2/7"]))
def test_due_never_goes_backwards(rate, times, burst):
    s = Schedule(rate, Burst.parse(burst) if burst else None)
    dues = [s.due(t) for t in sorted(times)]
    assert dues == sorted(dues)


@pytest.mark.parametrize("text", ["4x1", "x1/10", "4x11/10", "0x1/10", "four"])
def test_bad_bursts_are_refused(text):
    with pytest.raises(ValueError):
        Burst.parse(text)


def test_bad_rates_are_refused():
    for rate in (-1, math.inf, math.nan):
        with pytest.raises(ValueError):
            Schedule(rate)
