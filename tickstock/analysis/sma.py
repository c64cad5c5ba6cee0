"""SMA: simple moving average of closes, identical to ``talib.SMA``.

TA-Lib keeps a running total: ``total += newest; out = total / n; total -= oldest``. This component
does the same operations in the same order, so even the running total's float drift (which matters
when a symbol's price level changes by orders of magnitude) is TA-Lib's, bit for bit.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from tickstock.analysis.base import Component, IndicatorResult, Result, check_int
from tickstock.messages.bars import Bar

__all__ = ["SMA"]


class SMA(Component):
    """Mean of the last ``period`` closes; first value on the ``period``-th bar. O(1) per bar.
    ``metadata`` = {"period", "bars_used"} (bars_used = period: the window)."""

    name = "SMA"
    kind = "indicator"

    def __init__(self, *, period: int = 20) -> None:
        self.period = check_int("period", period, 1, 100_000)
        self.min_bars = self.warmup = self.period
        self._window: deque[float] = deque(maxlen=self.period)
        # Sum of the window minus its oldest value once full (TA-Lib subtracts right after output).
        self._total = 0.0

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def update(self, bar: Bar) -> list[Result]:
        close = bar.close
        self._total += close
        self._window.append(close)  # evicts the value already subtracted from the total
        if len(self._window) < self.period:
            return []
        value = self._total / self.period
        self._total -= self._window[0]
        return [IndicatorResult(self.name, value, {"value": value}, bar,
                                {"period": self.period, "bars_used": self.period})]
