"""RSI: Wilder's relative strength index, identical to ``talib.RSI``.

Seed: the simple means of the first ``period`` gains and losses (bars 1..period); after that Wilder's
smoothing ``avg = (avg * (period - 1) + x) / period``; RSI = 100 * gain / (gain + loss). The first
value is on the bar with index ``period`` (``min_bars = period + 1``). Every operation is the one the
ta-lib 0.8.x wheel performs, in its order (it scales by ``1/period`` rather than dividing, which can
differ in the last bit), so values are bit-identical to ``talib.RSI`` over the same closes from the
same first bar -- and within 1e-13 of a build that divides -- with one deliberate exception, below.

Flat series (average gain and average loss both exactly 0: no close-to-close change in any bar so
far): TA-Lib returns 0.0, which reads as "maximally oversold" and would raise an
RSI_OVERSOLD alert for every halted or untraded symbol. This component returns 50.0 instead: no
movement is neutral, not oversold. This is the only case where it differs from TA-Lib (the parity
test excludes exactly these bars and asserts TA-Lib's 0.0 there). A series that only falls still
gives 0.0, as in TA-Lib.

Memory: Wilder smoothing never forgets the seed entirely; its effect is ~0.4 points after 50 bars and
~0 after 200, which is why the pipeline primes with the previous session's bars.
"""

from __future__ import annotations

from typing import Any

from tickstock.analysis.base import Component, IndicatorResult, Result, check_int
from tickstock.messages.bars import Bar

__all__ = ["RSI", "FLAT_RSI"]

FLAT_RSI = 50.0


class RSI(Component):
    """Wilder RSI on closes. O(1) per bar. ``metadata`` = {"period", "bars_used"} where bars_used is
    every bar the value depends on (Wilder smoothing has unbounded memory)."""

    name = "RSI"
    kind = "indicator"

    def __init__(self, *, period: int = 14) -> None:
        self.period = check_int("period", period, 2, 100_000)  # TA-Lib's accepted range
        self.min_bars = self.period + 1
        # The ta-lib 0.8.x wheel scales by the reciprocal (x * (1/n)), not x / n: the two differ in
        # the last bit for some inputs, and bit-identity with the oracle is the point.
        self._inv = 1.0 / self.period
        self._count = 0
        self._prev_close = 0.0
        self._gain = 0.0
        self._loss = 0.0
        self.value: float | None = None  # the latest RSI (None while seeding)

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def update(self, bar: Bar) -> list[Result]:
        value = self.advance(bar)
        if value is None:
            return []
        return [IndicatorResult(self.name, value, {"value": value}, bar,
                                {"period": self.period, "bars_used": self._count})]

    def advance(self, bar: Bar) -> float | None:
        """Consume ``bar`` and return the new RSI (None while seeding), building no result: what
        priming needs. ``value`` keeps the latest."""
        close = bar.close
        self._count += 1
        if self._count == 1:
            self._prev_close = close
            return None
        n = self.period
        diff = close - self._prev_close
        self._prev_close = close
        if self._count <= n + 1:  # accumulating the seed: diffs 1..n
            if diff < 0.0:
                self._loss -= diff
            else:
                self._gain += diff
            if self._count <= n:
                return None
            self._loss *= self._inv
            self._gain *= self._inv
        else:  # Wilder smoothing in TA-Lib's operation order: multiply, add, scale by 1/period
            self._loss *= n - 1
            self._gain *= n - 1
            if diff < 0.0:
                self._loss -= diff
            else:
                self._gain += diff
            self._loss *= self._inv
            self._gain *= self._inv
        total = self._gain + self._loss
        self.value = 100.0 * (self._gain / total) if total != 0.0 else FLAT_RSI
        return self.value
