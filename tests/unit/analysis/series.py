"""Deterministic bar series for the analysis tests (fixed seeds; no I/O)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tickstock.messages.bars import Bar

T0 = 1_760_000_040  # a minute start (multiple of 60), 2025-10-09


def to_bars(o: Sequence[float], h: Sequence[float], l: Sequence[float], c: Sequence[float],
            symbol: str = "TEST", start: int = T0) -> list[Bar]:
    return [Bar(symbol, start + 60 * i, float(o[i]), float(h[i]), float(l[i]), float(c[i]), 100)
            for i in range(len(c))]


def arrays(bars: Sequence[Bar]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([b.open for b in bars]), np.array([b.high for b in bars]),
            np.array([b.low for b in bars]), np.array([b.close for b in bars]))


def candles(seed: int, n: int, price: float, vol: float, tick: float | None = None,
            flat_start: int = 0, p_flat: float = 0.04, p_doji: float = 0.12, p_hammer: float = 0.08,
            p_gap: float = 0.02, p_zero_range: float = 0.02) -> tuple[list[float], ...]:
    """A random walk of OHLC bars rich in the shapes that stress the candle rules: flat bars
    (O=H=L=C), zero-range moves, tiny bodies, hammer shapes opening below the prior low, gaps.
    ``tick`` rounds prices to a grid, which makes exact ties with the thresholds common."""
    rng = np.random.default_rng(seed)
    o_, h_, l_, c_ = [], [], [], []
    last_close, last_low = price, price
    for i in range(n):
        if i < flat_start:
            o = h = l = c = price
        else:
            o = last_close
            if rng.random() < p_gap:
                o *= math.exp(rng.normal(0.0, 10 * vol))
            u = rng.random()
            spread = abs(rng.normal(0.0, vol)) * o
            if u < p_flat:
                h = l = c = o
            elif u < p_flat + p_zero_range:
                c = o * math.exp(rng.normal(0.0, vol))
                h, l = max(o, c), min(o, c)
            elif u < p_flat + p_zero_range + p_doji:
                c = o + rng.normal(0.0, 0.05 * vol) * o
                h = max(o, c) + spread
                l = min(o, c) - abs(rng.normal(0.0, vol)) * o
            elif u < p_flat + p_zero_range + p_doji + p_hammer:
                o = last_low * (1.0 - abs(rng.normal(0.0, 0.3 * vol)))
                c = o * (1.0 + abs(rng.normal(0.0, 0.3 * vol)))
                h = max(o, c) + abs(rng.normal(0.0, 0.02 * vol)) * o * (rng.random() < 0.5)
                l = min(o, c) - (2.0 + 3.0 * rng.random()) * vol * o
            else:
                c = o * math.exp(rng.normal(0.0, vol))
                h = max(o, c) + spread
                l = min(o, c) - abs(rng.normal(0.0, vol)) * o
        if tick is not None:
            o, h, l, c = (round(x / tick) * tick for x in (o, h, l, c))
        h, l = max(h, o, c), min(l, o, c)
        l = max(l, tick or 1e-12)  # prices stay positive
        o_.append(o); h_.append(h); l_.append(l); c_.append(c)
        last_close, last_low = c, l
    return o_, h_, l_, c_


def parity_series() -> list[tuple[str, list[Bar]]]:
    """~30,000 bars in six series: normal, tiny, huge, scale-jumping, drift trap, flat-heavy."""
    out = [
        ("equity_cents", to_bars(*candles(1, 8000, 100.0, 0.002, tick=0.01))),
        ("tiny_1e-4", to_bars(*candles(2, 4000, 1e-4, 0.003))),
        ("huge_1e6", to_bars(*candles(3, 4000, 1e6, 0.001, tick=1.0))),
    ]
    o, h, l, c = [], [], [], []
    for k, scale in enumerate([1e6, 1e-4, 100.0, 1e6, 1.0, 1e-4, 5e5, 20.0, 1e-3, 1e6, 3.0, 1e-4]):
        seg = candles(100 + k, 500, scale, 0.002)
        o += seg[0]; h += seg[1]; l += seg[2]; c += seg[3]
    out.append(("mixed_scales", to_bars(o, h, l, c)))
    out.append(("drift_trap", to_bars(*drift_trap(9, 300))))
    out.append(("flat_heavy", to_bars(*candles(4, 3000, 50.0, 0.0004, tick=0.01, flat_start=30,
                                               p_flat=0.3, p_zero_range=0.1))))
    return out


def drift_trap(seed: int, blocks: int) -> tuple[list[float], ...]:
    """Blocks of bars at wildly different price levels (1e-3 .. 1e7) followed by flat bars.

    Adding a 1e-3 range to a 1e6 running total rounds; once the big bars slide out of the window the
    total is a rounding residue instead of 0, and its SIGN decides whether a flat bar (body 0) is a
    doji: 0 <= 0.1 * residue / 10. TA-Lib's answer depends on its exact operation order, so this is
    where a detector that sums "equivalently" but not identically disagrees with it."""
    rng = np.random.default_rng(seed)
    o_, h_, l_, c_ = [], [], [], []
    for _ in range(blocks):
        for _ in range(int(rng.integers(3, 12))):
            p = 10 ** rng.uniform(-3, 7)
            r = p * rng.random() * 0.05
            o, c = p, max(p + rng.normal(0.0, r / 3), p * 0.5)
            o_.append(o); c_.append(c)
            h_.append(max(o, c) + rng.random() * r); l_.append(max(min(o, c) - rng.random() * r, p * 0.1))
        p = 10 ** rng.uniform(-3, 2)
        for _ in range(int(rng.integers(8, 16))):
            o_.append(p); h_.append(p); l_.append(p); c_.append(p)
    return o_, h_, l_, c_


def path_bars(waypoints: Sequence[float], legs: int | Sequence[int] = 10, symbol: str = "HS",
              start: int = T0) -> list[Bar]:
    """Bars whose closes run linearly between waypoints (``legs`` bars per leg): each waypoint is an
    exact close extreme, so zigzag pivots land on the waypoints' indices. O = previous close,
    H/L = max/min(O, C)."""
    if isinstance(legs, int):
        legs = [legs] * (len(waypoints) - 1)
    closes = [float(waypoints[0])]
    for a, b, k in zip(waypoints, waypoints[1:], legs):
        closes += [a + (b - a) * j / k for j in range(1, k + 1)]
    opens = [closes[0]] + closes[:-1]
    highs = [max(o, c) for o, c in zip(opens, closes)]
    lows = [min(o, c) for o, c in zip(opens, closes)]
    return to_bars(opens, highs, lows, closes, symbol=symbol, start=start)


def waypoint_indices(legs: int | Sequence[int], count: int) -> list[int]:
    if isinstance(legs, int):
        legs = [legs] * (count - 1)
    idx = [0]
    for k in legs:
        idx.append(idx[-1] + k)
    return idx
