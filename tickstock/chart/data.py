"""What a chart shows, assembled from stored rows: pure, no database, no drawing.

Guarantees of :func:`assemble`:
- Bars are ordered by start, one per minute (a repeated start keeps the last given).
- Every detection whose bar is among the bars becomes one :class:`Marker` at that bar's index; the
  same pattern on the same bar (and timeframe) stored twice (two sessions over one minute, a replay)
  is one marker, with the highest confidence. A detection whose bar is not among the bars is
  counted in ``unplaced``; one without a readable ``bar_timestamp`` in ``unreadable``.
- Indicator values become series aligned to the bars (None where no value), one per indicator and
  period (``"SMA 20"``, ``"RSI 14"``); for a bar with several values of one series the most recently
  calculated wins. SMA/EMA/VWAP go over the price, RSI into its own panel; any other indicator,
  and any indicator of another timeframe than the 1-minute bars drawn, is named in ``ignored``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from tickstock.adapters.postgres.readback import bar_time
from tickstock.messages.bars import Bar
from tickstock.messages.records import IndicatorRecord, PatternRecord

OVERLAY_TYPES = ("SMA", "EMA", "VWAP")
PANEL_TYPES = ("RSI",)
PRIMARY_TIMEFRAME = "1min"


@dataclass(frozen=True, slots=True)
class Marker:
    """One detection to mark: at bar ``index`` (into ``ChartData.bars``)."""

    index: int
    bar_start: int
    name: str
    confidence: float | None
    timeframe: str

    @property
    def label(self) -> str:
        """``Doji 85%``; the timeframe is added when it is not the 1-minute one (``Doji 85% 5min``)."""
        text = self.name
        if self.confidence is not None and math.isfinite(self.confidence):
            text += f" {self.confidence:.0%}"
        if self.timeframe and self.timeframe != PRIMARY_TIMEFRAME:
            text += f" {self.timeframe}"
        return text


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: tuple[float | None, ...]  # aligned to ChartData.bars

    @property
    def count(self) -> int:
        return sum(v is not None for v in self.values)


@dataclass(frozen=True, slots=True)
class ChartData:
    symbol: str
    scope: str  # what the bars cover, in words: "session <id>" / "2025-10-07 (America/New_York)"
    bars: tuple[Bar, ...]
    markers: tuple[Marker, ...]
    overlays: tuple[Series, ...]
    panel: tuple[Series, ...]
    unplaced: int = 0
    unreadable: int = 0
    ignored: tuple[str, ...] = ()


def _series_name(record: IndicatorRecord) -> str:
    period = record.metadata.get("period")
    if isinstance(period, (int, float)) and not isinstance(period, bool):
        return f"{record.indicator_type} {int(period) if float(period).is_integer() else period}"
    return record.indicator_type


def assemble(symbol: str, scope: str, bars: Iterable[Bar], patterns: Iterable[PatternRecord],
             indicators: Iterable[IndicatorRecord]) -> ChartData:
    by_start = {bar.start: bar for bar in bars}
    ordered = tuple(by_start[s] for s in sorted(by_start))
    index = {bar.start: i for i, bar in enumerate(ordered)}

    best: dict[tuple[str, int, str], Marker] = {}
    unplaced = unreadable = 0
    for record in patterns:
        t = bar_time(record.pattern_data)
        if t is None:
            unreadable += 1
            continue
        start = int(t)
        if start not in index:
            unplaced += 1
            continue
        confidence = record.confidence if record.confidence is None or math.isfinite(record.confidence) else None
        marker = Marker(index[start], start, record.pattern_type, confidence, record.timeframe or PRIMARY_TIMEFRAME)
        key = (record.pattern_type, start, marker.timeframe)
        held = best.get(key)
        if held is None or (confidence or -1.0) > (held.confidence or -1.0):
            best[key] = marker
    markers = tuple(sorted(best.values(), key=lambda m: (m.index, m.name, m.timeframe)))

    values: dict[str, dict[int, tuple[float, float]]] = {}  # series -> bar index -> (calculated, value)
    kinds: dict[str, str] = {}
    ignored: set[str] = set()
    for record in indicators:
        kind = record.indicator_type.upper()
        if kind not in OVERLAY_TYPES and kind not in PANEL_TYPES:
            ignored.add(record.indicator_type)
            continue
        if record.timeframe not in (PRIMARY_TIMEFRAME, ""):
            ignored.add(f"{record.indicator_type} ({record.timeframe})")
            continue
        t = bar_time(record.metadata)
        if t is None or int(t) not in index or record.value is None or not math.isfinite(record.value):
            continue
        name = _series_name(record)
        kinds[name] = kind
        slot = values.setdefault(name, {})
        i = index[int(t)]
        if i not in slot or record.calculation_timestamp >= slot[i][0]:
            slot[i] = (record.calculation_timestamp, record.value)

    def series(name: str) -> Series:
        slot = values[name]
        return Series(name, tuple(slot[i][1] if i in slot else None for i in range(len(ordered))))

    overlays = tuple(series(n) for n in sorted(values) if kinds[n] in OVERLAY_TYPES)
    panel = tuple(series(n) for n in sorted(values) if kinds[n] in PANEL_TYPES)
    return ChartData(symbol, scope, ordered, markers, overlays, panel, unplaced, unreadable, tuple(sorted(ignored)))
