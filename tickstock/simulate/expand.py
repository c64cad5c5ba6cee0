"""Ticks from a 1-minute bar whose re-aggregation gives back exactly that bar.

Guarantee (``expand_bar``): folding the returned ticks into 1-minute bars (the service's
``MinuteBarAggregator``: open = earliest tick, close = latest, high/low = extremes, volume = sum)
gives back the bar exactly -- the same open, high, low, close floats and the same volume:

- every timestamp is strictly inside the bar's minute (``start < t < start + 60``) and the
  timestamps strictly increase, so the minute is the bar's and the order is unambiguous; evenly
  spaced (no generator), the open is at ``start + 0.05`` and the close at ``start + 59.95``;
- the first tick is at the open, the last at the close, the high and the low are visited in between
  (the low first on an up bar, the high first on a down bar), and every other price lies within
  ``[low, high]``;
- the volumes are non-negative integers summing exactly to the bar's volume (a tick may carry 0:
  the contract's quotes do).

The prices are the bar's own floats (never re-rounded), so the JSON the ticks are published as
carries them unchanged (msgspec writes the shortest representation that reads back as the same
float).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.simulate.tick import SimTick

__all__ = ["EDGE_SECONDS", "MAX_TICKS_PER_BAR", "check_bar", "expand_bar", "path_of", "split_volume"]

# At most this many ticks a bar: their spacing stays far above what a float near 2e9 resolves.
MAX_TICKS_PER_BAR = 10_000
# Without a generator the open is this long after the minute starts and the close this long before
# it ends: a replay beginning with a bar's open begins inside any bar grace, so in event time its
# first minute is not taken for a minute joined half-way (partial).
EDGE_SECONDS = 0.05


def check_bar(bar: Bar) -> None:
    """ValueError naming the problem unless ``bar`` is a well-formed 1-minute bar."""
    if bar.start % BAR_SECONDS:
        raise ValueError(f"bar timestamp {bar.start} is not a minute start (second 0)")
    for name in ("open", "high", "low", "close"):
        value = getattr(bar, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} {value!r} is not a finite positive price")
    if not (bar.low <= min(bar.open, bar.close) and max(bar.open, bar.close) <= bar.high):
        raise ValueError(f"prices out of order: need low <= open, close <= high, got "
                         f"open {bar.open} high {bar.high} low {bar.low} close {bar.close}")
    if isinstance(bar.volume, bool) or not isinstance(bar.volume, int) or bar.volume < 0:
        raise ValueError(f"volume {bar.volume!r} is not a non-negative integer")


def path_of(bar: Bar) -> list[float]:
    """The fewest prices that rebuild the bar, in time order: open, the extreme the bar reached
    first (the low on an up bar, the high otherwise), the other extreme, close -- without a point
    that repeats its neighbour."""
    first, second = (bar.low, bar.high) if bar.close > bar.open else (bar.high, bar.low)
    path = [bar.open]
    for price in (first, second, bar.close):
        if price != path[-1]:
            path.append(price)
    return path


def split_volume(volume: int, n: int, rng: np.random.Generator | None = None) -> list[int]:
    """``n`` non-negative integers summing exactly to ``volume``: even shares (the remainder on
    the first ticks), or with ``rng`` a random multinomial split."""
    if n < 1:
        raise ValueError("n must be >= 1")
    if rng is None or volume == 0:
        share, rest = divmod(volume, n)
        return [share + 1 if i < rest else share for i in range(n)]
    if volume >= 2**62:  # beyond numpy's multinomial: an even split is still exact
        return split_volume(volume, n)
    return [int(v) for v in rng.multinomial(volume, np.full(n, 1.0 / n))]


def _times(start: int, n: int, rng: np.random.Generator | None) -> list[float]:
    if rng is not None:
        # Random, sorted, strictly inside; a collision (probability ~n^2/2^53) falls back to even.
        u = np.sort(rng.random(n))
        times = [start + EDGE_SECONDS + (BAR_SECONDS - 2 * EDGE_SECONDS) * float(x) for x in u]
        if all(a < b for a, b in zip(times, times[1:])):
            return times
    if n == 1:
        return [start + EDGE_SECONDS]
    span = BAR_SECONDS - 2 * EDGE_SECONDS
    return [start + EDGE_SECONDS + span * k / (n - 1) for k in range(n)]


def expand_bar(
    bar: Bar,
    n_ticks: int = 4,
    *,
    rng: np.random.Generator | None = None,
    volumes: Sequence[int] | None = None,
) -> list[SimTick]:
    """Ticks that re-aggregate to exactly ``bar`` (see the module docstring).

    ``n_ticks`` is raised to the length of the bar's path when smaller (a bar with a distinct open,
    high, low and close needs 4 ticks). With ``rng`` the timestamps, the extra ticks' prices and
    the volume split are random (still exact); without, they are evenly spaced, on the path, and
    even. ``volumes``, if given, are the ticks' volumes (its length is the tick count; it must sum
    to ``bar.volume``). ValueError for a malformed bar or volumes.
    """
    check_bar(bar)
    path = path_of(bar)
    if volumes is not None:
        n = len(volumes)
        if n < len(path):
            raise ValueError(f"{n} volumes for a bar that needs {len(path)} ticks")
        if sum(volumes) != bar.volume or any(v < 0 for v in volumes):
            raise ValueError(f"volumes must be >= 0 and sum to the bar's volume {bar.volume}")
        vols = [int(v) for v in volumes]
    else:
        n = max(int(n_ticks), len(path))
        vols = split_volume(bar.volume, n, rng)
    if n > MAX_TICKS_PER_BAR:
        raise ValueError(f"at most {MAX_TICKS_PER_BAR} ticks per bar, asked for {n}")
    prices = _fill(path, n, bar.low, bar.high, rng)
    times = _times(bar.start, n, rng)
    return [SimTick(t, bar.symbol, p, v) for t, p, v in zip(times, prices, vols)]


def _fill(path: list[float], n: int, low: float, high: float, rng: np.random.Generator | None) -> list[float]:
    """``n`` prices: the path's points in order with ``n - len(path)`` extra prices between them
    (never before the open or after the close); each extra lies within ``[low, high]``."""
    extra = n - len(path)
    if extra == 0:
        return list(path)
    if len(path) == 1:  # a flat bar: every tick at the one price
        return path * n
    # Distribute the extras over the segments between consecutive path points.
    segments = len(path) - 1
    counts = [extra // segments + (1 if i < extra % segments else 0) for i in range(segments)]
    out: list[float] = []
    for i in range(segments):
        a, b = path[i], path[i + 1]
        out.append(a)
        k = counts[i]
        for j in range(k):
            if rng is None:
                price = a + (b - a) * (j + 1) / (k + 1)
            else:
                lo, hi = min(a, b), max(a, b)
                price = round(lo + (hi - lo) * float(rng.random()), 2)
            out.append(min(high, max(low, price)))
    out.append(path[-1])
    return out
