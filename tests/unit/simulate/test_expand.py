"""Bar expansion: the ticks of a bar re-aggregate (the service's MinuteBarAggregator, through the
wire format) to exactly that bar."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstock.messages.bars import Bar
from tickstock.messages.ticks import decode_tick
from tickstock.simulate.expand import EDGE_SECONDS, expand_bar, path_of, split_volume
from tickstock.simulate.tick import encode

from .engine import fold

FUZZ = settings(database=None, deadline=None, max_examples=300)
M = 1_760_000_040  # a minute start


@st.composite
def bars(draw) -> Bar:
    prices = st.floats(min_value=0.0001, max_value=1e6, allow_nan=False, allow_infinity=False)
    a, b, c, d = (draw(prices) for _ in range(4))
    low, high = min(a, b, c, d), max(a, b, c, d)
    o, cl = draw(st.sampled_from([(a, b), (c, d), (low, high), (high, low), (low, low), (a, a)]))
    o, cl = min(max(o, low), high), min(max(cl, low), high)
    start = M + 60 * draw(st.integers(-10_000_000, 10_000_000))
    volume = draw(st.one_of(st.integers(0, 10), st.integers(0, 2**63 - 1)))
    return Bar(draw(st.sampled_from(["AAPL", "BRK.B", "X"])), start, o, high, low, cl, volume)


def same(a: Bar, b: Bar) -> bool:
    return (a.symbol, a.start, a.open, a.high, a.low, a.close, a.volume) == \
           (b.symbol, b.start, b.open, b.high, b.low, b.close, b.volume)


@FUZZ
@given(bar=bars(), n=st.integers(1, 40), seed=st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_ticks_re_aggregate_to_exactly_the_bar(bar: Bar, n: int, seed: int | None) -> None:
    rng = None if seed is None else np.random.default_rng(seed)
    ticks = expand_bar(bar, n, rng=rng)
    # Through the wire, as the service receives them.
    wire = [decode_tick(encode(t, "test"), received_at=t.timestamp) for t in ticks]
    assert [(w.symbol, w.price, w.volume, w.timestamp) for w in wire] == \
           [(t.symbol, t.price, t.volume, t.timestamp) for t in ticks]
    (rebuilt,) = fold(ticks)
    assert same(rebuilt, bar)
    assert len(ticks) == max(n, len(path_of(bar)))
    times = [t.timestamp for t in ticks]
    assert all(bar.start < t < bar.start + 60 for t in times)
    assert all(a < b for a, b in zip(times, times[1:]))
    assert ticks[0].price == bar.open and ticks[-1].price == bar.close
    assert all(bar.low <= t.price <= bar.high for t in ticks)


def test_evenly_spaced_the_open_is_at_the_minutes_start_and_the_close_at_its_end() -> None:
    """A replay that starts with a bar starts inside the bar grace (event time: not partial)."""
    times = [t.timestamp for t in expand_bar(Bar("X", M, 10.0, 12.0, 9.0, 11.0, 4), 5)]
    assert times[0] == M + EDGE_SECONDS and times[-1] == M + 60 - EDGE_SECONDS
    assert EDGE_SECONDS < 0.5  # the smallest grace the tests use
    assert [t.timestamp for t in expand_bar(Bar("X", M, 10.0, 10.0, 10.0, 10.0, 4), 1)] == [M + EDGE_SECONDS]


def test_the_low_comes_first_on_an_up_bar_and_the_high_on_a_down_bar() -> None:
    up = Bar("X", M, 10.0, 12.0, 9.0, 11.0, 4)
    down = Bar("X", M, 11.0, 12.0, 9.0, 10.0, 4)
    assert [t.price for t in expand_bar(up)] == [10.0, 9.0, 12.0, 11.0]
    assert [t.price for t in expand_bar(down)] == [11.0, 12.0, 9.0, 10.0]
    assert path_of(Bar("X", M, 10.0, 10.0, 10.0, 10.0, 0)) == [10.0]


def test_given_volumes_are_the_ticks_volumes() -> None:
    ticks = expand_bar(Bar("X", M, 10.0, 12.0, 9.0, 11.0, 600), volumes=[100, 0, 300, 200, 0])
    assert [t.volume for t in ticks] == [100, 0, 300, 200, 0]
    with pytest.raises(ValueError, match="sum to the bar's volume"):
        expand_bar(Bar("X", M, 10.0, 12.0, 9.0, 11.0, 600), volumes=[100, 100, 100, 100])
    with pytest.raises(ValueError, match="needs 4 ticks"):
        expand_bar(Bar("X", M, 10.0, 12.0, 9.0, 11.0, 600), volumes=[300, 300])


@FUZZ
@given(volume=st.integers(0, 2**63 - 1), n=st.integers(1, 50), seed=st.one_of(st.none(), st.integers(0, 99)))
def test_split_volume_is_exact(volume: int, n: int, seed: int | None) -> None:
    parts = split_volume(volume, n, None if seed is None else np.random.default_rng(seed))
    assert len(parts) == n and sum(parts) == volume and min(parts) >= 0


@pytest.mark.parametrize("bar, problem", [
    (Bar("X", M + 1, 10.0, 12.0, 9.0, 11.0, 1), "not a minute start"),
    (Bar("X", M, 10.0, 10.5, 9.0, 11.0, 1), "prices out of order"),
    (Bar("X", M, 10.0, 12.0, 10.5, 11.0, 1), "prices out of order"),
    (Bar("X", M, -1.0, 12.0, -2.0, 11.0, 1), "not a finite positive price"),
    (Bar("X", M, float("nan"), 12.0, 9.0, 11.0, 1), "not a finite positive price"),
    (Bar("X", M, 10.0, 12.0, 9.0, 11.0, -5), "not a non-negative integer"),
])
def test_malformed_bars_are_refused_by_name(bar: Bar, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        expand_bar(bar)
