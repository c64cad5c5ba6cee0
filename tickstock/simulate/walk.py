"""A random walk per symbol, in event time: the simulator's plain market.

Guarantees:

- Deterministic: the same symbols, rate, seed, start and activity curve give the same ticks, however
  ``advance`` is called (one call to ``t`` or many smaller steps to ``t`` return the same ticks).
  Randomness is drawn per one-second block of event time, in block order, never per call.
- Event time: ``advance(until)`` returns every tick with ``timestamp < until`` not returned before,
  sorted by timestamp. Ticks arrive as a Poisson process of rate ``rate * activity.at(t)``
  (piecewise constant per second), so ``rate`` is the average ticks/s over a session (and the rate
  outside one). Symbols are drawn with fixed per-symbol weights (some names trade more than others).
- Prices: each symbol's log price moves by a Student-t (4 degrees of freedom, unit variance) step
  per trade, scaled so that at its average trading rate its volatility is ``volatility(symbol)``
  a year of session seconds -- ``volatility`` times a per-symbol factor drawn around 1
  (lognormal, sigma 0.25). Published prices are rounded to cents. A price set with ``set_price``
  is where that symbol's next tick continues from.
- Sizes: heavy-tailed (``TradeSizes``: Pareto, rounded to whole lots).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np

from tickstock.simulate.activity import IntradayActivity
from tickstock.simulate.tick import SimTick

__all__ = ["RandomWalk", "TradeSizes"]

SESSION_SECONDS_PER_YEAR = 252 * 23_400  # trading seconds in a year
_T_DOF = 4.0
_T_SCALE = 1.0 / math.sqrt(_T_DOF / (_T_DOF - 2.0))  # unit variance


class TradeSizes:
    """Trade sizes in shares: ``minimum * (1 + Lomax(alpha))`` -- a Pareto tail of index ``alpha``
    from ``minimum`` up -- rounded to whole lots (at least one lot) and capped at ``maximum``.
    With ``alpha`` 1.5 the mean is finite and the variance is not: a few block trades carry a
    large share of the volume, as on a real tape."""

    def __init__(self, *, lot: int = 100, alpha: float = 1.5, minimum: float = 100.0,
                 maximum: int = 5_000_000) -> None:
        if lot < 1 or alpha <= 0 or minimum <= 0 or maximum < lot:
            raise ValueError("need lot >= 1, alpha > 0, minimum > 0, maximum >= lot")
        self.lot, self.alpha, self.minimum, self.maximum = lot, alpha, minimum, maximum

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` sizes (int64), each a positive multiple of ``lot``."""
        raw = self.minimum * (1.0 + rng.pareto(self.alpha, n))
        lots = np.maximum(1.0, np.rint(raw / self.lot))
        cap = self.maximum // self.lot
        return (np.minimum(lots, cap).astype(np.int64) * self.lot)


class RandomWalk:
    """Ticks for ``symbols`` from ``start`` on (see the module docstring)."""

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        rate: float,
        seed: int,
        start: float,
        activity: IntradayActivity | None = None,
        volatility: float = 0.3,
        sizes: TradeSizes | None = None,
        prices: Mapping[str, float] | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("a walk needs at least one symbol")
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbols must be distinct")
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
        if not (math.isfinite(volatility) and volatility >= 0):
            raise ValueError(f"volatility must be finite and >= 0, got {volatility!r}")
        self.symbols = tuple(symbols)
        self.rate = float(rate)
        self.activity = activity or IntradayActivity(None)
        self.sizes = sizes or TradeSizes()
        self._rng = np.random.default_rng(seed)
        rng = self._rng
        k = len(self.symbols)
        # Per-symbol traits, drawn first and always in this order (determinism).
        weights = rng.lognormal(0.0, 0.5, k)
        self.weights = weights / weights.sum()
        vols = volatility * rng.lognormal(0.0, 0.25, k)
        self._volatility = [float(v) for v in vols]
        start_prices = np.exp(rng.uniform(math.log(20.0), math.log(500.0), k))
        given = prices or {}
        self._price = [float(given.get(s, round(float(p), 2))) for s, p in zip(self.symbols, start_prices)]
        for s, p in zip(self.symbols, self._price):
            if not (math.isfinite(p) and p > 0):
                raise ValueError(f"start price of {s} must be finite and > 0, got {p!r}")
        # Per-trade step so that the volatility per session second is vol / sqrt(seconds a year)
        # at the symbol's average rate (more trades: smaller steps each).
        per_second = vols / math.sqrt(SESSION_SECONDS_PER_YEAR)
        self._step = [float(v) / math.sqrt(self.rate * w) for v, w in zip(per_second, self.weights)]
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self._block = float(start)  # start of the next one-second block to draw
        self._cursor = float(start)  # everything before this has been returned
        self._pending: deque[tuple[float, int, float, int]] = deque()  # (t, symbol index, z, size)

    @property
    def cursor(self) -> float:
        """Ticks before this event time have been returned."""
        return self._cursor

    def symbol_rate(self, symbol: str) -> float:
        """The symbol's average ticks/s."""
        return self.rate * float(self.weights[self._index[symbol]])

    def volatility(self, symbol: str) -> float:
        """The symbol's annual volatility (over session seconds, at its average rate)."""
        return self._volatility[self._index[symbol]]

    def price(self, symbol: str) -> float:
        """The symbol's current price (rounded to cents), where its next tick continues from."""
        return max(0.01, round(self._price[self._index[symbol]], 2))

    def set_price(self, symbol: str, price: float) -> None:
        """Continue ``symbol``'s walk from ``price`` (after an injected shape took it elsewhere)."""
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"price must be finite and > 0, got {price!r}")
        self._price[self._index[symbol]] = float(price)

    def advance(self, until: float) -> list[SimTick]:
        """Every tick with ``cursor <= timestamp < until``, in time order; moves the cursor."""
        while self._block < until:
            self._draw_block()
        out: list[SimTick] = []
        pending, prices, steps, symbols = self._pending, self._price, self._step, self.symbols
        exp = math.exp
        while pending and pending[0][0] < until:
            t, i, z, size = pending.popleft()
            p = prices[i] * exp(steps[i] * z)
            prices[i] = p
            out.append(SimTick(t, symbols[i], max(0.01, round(p, 2)), size))
        self._cursor = max(self._cursor, until)
        return out

    def _draw_block(self) -> None:
        rng, t0 = self._rng, self._block
        self._block = t0 + 1.0
        n = int(rng.poisson(self.rate * self.activity.at(t0 + 0.5)))
        if n == 0:
            return
        offsets = np.sort(rng.random(n))
        index = rng.choice(len(self.symbols), size=n, p=self.weights)
        z = rng.standard_t(_T_DOF, size=n) * _T_SCALE
        sizes = self.sizes.sample(rng, n)
        self._pending.extend(zip((t0 + offsets).tolist(), index.tolist(), z.tolist(), sizes.tolist()))
