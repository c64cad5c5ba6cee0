"""Bars rich in the shapes TA-Lib's candle functions look for (fixed seeds; no I/O).

A random walk on a cent grid whose bars are drawn from discrete shapes -- dojis, long and short
bodies, shaved and long shadows, gaps both ways, runs of three to five long same-colour bodies each
opening inside the previous one (soldiers, crows, three-line strikes) -- with trending stretches,
and a volume that varies (for MFI, OBV, AD). Over 8,000 bars most of TA-Lib's 61 candle functions
fire; the parity tests say which never did.
"""

from __future__ import annotations

import numpy as np

from tickstock.messages.bars import Bar

T0 = 1_760_000_040  # a minute start (2025-10-09)


def shape_bars(seed: int, n: int, price: float = 100.0, tick: float = 0.01, symbol: str = "TEST",
               start: int = T0) -> list[Bar]:
    rng = np.random.default_rng(seed)
    bars: list[Bar] = []
    last = price
    trend, run, run_dir = 0, 0, 1
    for i in range(n):
        unit = last * 0.004
        if i % 40 == 0:
            trend = int(rng.choice([-1, 0, 1]))
        if run == 0 and rng.random() < 0.04:
            run, run_dir = int(rng.integers(3, 6)), int(rng.choice([-1, 1]))
        if run:
            run -= 1
            prev_body = bars[-1].close - bars[-1].open if bars else 0.0
            o = last - run_dir * abs(prev_body) * float(rng.choice([0.0, 0.1, 0.3, 0.5]))
            c = o + run_dir * unit * float(rng.choice([1, 2, 3]))
            up = unit * float(rng.choice([0.0, 0.02, 0.1]))
            down = unit * float(rng.choice([0.0, 0.02, 0.1]))
        else:
            gap = float(rng.choice([0, 0, 0, 0, 1, -1, 2, -2])) * unit * float(rng.choice([0.5, 1, 2]))
            o = last + gap + trend * unit * 0.3 * rng.random()
            body = [0, 0.05, 0.3, 1, 2, 3, 0.5, 1.5][int(rng.integers(0, 8))] * unit * float(rng.choice([-1, 1]))
            if trend and rng.random() < 0.5:
                body = abs(body) * trend
            c = o + body
            up = [0, 0, 0.05, 0.3, 1, 2.5][int(rng.integers(0, 6))] * unit
            down = [0, 0, 0.05, 0.3, 1, 2.5][int(rng.integers(0, 6))] * unit
        h, l = max(o, c) + up, min(o, c) - down
        o, h, l, c = (round(x / tick) * tick for x in (o, h, l, c))
        h, l = max(h, o, c), max(min(l, o, c), tick)
        volume = int(rng.integers(0, 5000)) if rng.random() > 0.02 else 0
        bars.append(Bar(symbol, start + 60 * i, o, h, l, c, volume))
        last = max(c, 5.0)
    return bars


def columns(bars: list[Bar]) -> dict[str, np.ndarray]:
    """The bars as TA-Lib input arrays, by ``Bar`` field name."""
    return {name: np.array([float(getattr(b, name)) for b in bars])
            for name in ("open", "high", "low", "close", "volume")}


# The four patterns the random shapes above never produced, written out bar by bar (O, H, L, C)
# after 14 ordinary bars (body 0.5, range 1.0) that set TA-Lib's candle averages.
RARE_PATTERNS: dict[str, list[tuple[float, float, float, float]]] = {
    "CDLUPSIDEGAP2CROWS": [(100, 102.1, 99.9, 102), (103, 103.6, 102.4, 102.5), (103.2, 103.3, 102.2, 102.3)],
    "CDLRISEFALL3METHODS": [(100, 102.1, 99.9, 102), (101.8, 101.9, 101.3, 101.4), (101.4, 101.5, 100.9, 101.0),
                            (101.0, 101.1, 100.5, 100.6), (100.8, 103.1, 100.7, 103)],
    "CDLMATHOLD": [(100, 102.1, 99.9, 102), (102.8, 102.9, 102.3, 102.4), (102.3, 102.4, 101.8, 101.9),
                   (102.1, 102.2, 101.6, 101.7), (101.9, 104.1, 101.8, 104)],
    "CDL3STARSINSOUTH": [(102, 102.05, 97.5, 100), (101, 101.05, 99.0, 100.2), (100.6, 100.6, 100.3, 100.3)],
}


def rare_pattern_bars(symbol: str = "TEST", start: int = T0) -> list[Bar]:
    """Each of ``RARE_PATTERNS`` once, each after 14 ordinary bars at 100."""
    ohlc: list[tuple[float, float, float, float]] = []
    for pattern in RARE_PATTERNS.values():
        for i in range(14):
            o, c = 100.0, 100.0 + (0.5 if i % 2 else -0.5)
            ohlc.append((o, max(o, c) + 0.25, min(o, c) - 0.25, c))
        ohlc.extend(pattern)
    return [Bar(symbol, start + 60 * i, float(o), float(h), float(l), float(c), 1000)
            for i, (o, h, l, c) in enumerate(ohlc)]
