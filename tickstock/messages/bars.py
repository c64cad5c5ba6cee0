"""The closed 1-minute bar: the unit every analysis component consumes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

BAR_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed OHLCV bar.

    ``start`` is the minute's start in epoch seconds, UTC (a multiple of 60): the label
    ``ohlcv_1min.timestamp`` uses. ``volume`` is the sum of the ticks' volumes.
    """

    symbol: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    tick_count: int = 0

    @property
    def start_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.start, tz=timezone.utc)

    @property
    def end(self) -> int:
        """Epoch second at which the bar's minute ends (exclusive)."""
        return self.start + BAR_SECONDS
