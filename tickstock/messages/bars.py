"""The closed 1-minute bar: the unit every analysis component consumes."""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec

BAR_SECONDS = 60


class Bar(msgspec.Struct, frozen=True):
    """One closed OHLCV bar (immutable).

    ``start`` is the minute's start in epoch seconds, UTC (a multiple of 60): the label
    ``ohlcv_1min.timestamp`` uses. ``volume`` is the sum of the ticks' volumes.

    A bar is one session's PART of its minute: ``session_id`` names the session that folded it
    ("" for a bar of unknown origin, e.g. a spill line written before the field existed);
    ``first_tick_at``/``last_tick_at`` are the epoch seconds of the earliest and latest tick folded
    (by tick timestamp; None when unknown). The store merges all parts of a minute into the one
    row the dashboard reads. ``partial`` is True when the bar is known to be incomplete: its minute
    had already begun when the session started receiving, or the subscription had a gap inside it.
    ``notional`` is the traded value, sum(price * volume) over the folded ticks (what an exact VWAP
    needs); None when unknown, e.g. a bar read back from ``ohlcv_1min``, which has no such column.

    A frozen ``msgspec.Struct``, not a dataclass: a session's start builds one per stored bar of
    history (2,000,000 for 10,000 symbols), ~0.35 us each against ~2.6 us for a frozen dataclass.
    Copy with a change: ``msgspec.structs.replace(bar, partial=True)``.
    """

    symbol: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    tick_count: int = 0
    session_id: str = ""
    first_tick_at: float | None = None
    last_tick_at: float | None = None
    partial: bool = False
    notional: float | None = None

    @property
    def start_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.start, tz=timezone.utc)

    @property
    def end(self) -> int:
        """Epoch second at which the bar's minute ends (exclusive)."""
        return self.start + BAR_SECONDS
