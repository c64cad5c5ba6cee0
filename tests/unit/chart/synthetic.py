"""Synthetic stored rows for the chart tests, shaped as the service writes them (actors/symbol.py)."""

from __future__ import annotations

import random

from tickstock.messages.bars import Bar
from tickstock.messages.records import IndicatorRecord, PatternRecord, indicator_row_id, pattern_row_id
from tickstock.messages.wire import iso_utc

START = 1_759_843_800  # 2025-10-07T13:30:00Z, the NYSE open (09:30 America/New_York)
SESSION = "0b7c6a52-7c0e-4d0e-9d57-2f1a4b1f9e11"


def bars(symbol: str = "AAPL", n: int = 60, start: int = START, seed: int = 1, session_id: str = SESSION) -> list[Bar]:
    rng = random.Random(seed)
    price, out = 100.0, []
    for i in range(n):
        o = price
        c = round(price + rng.uniform(-0.5, 0.5), 4)
        price = c
        out.append(Bar(symbol, start + 60 * i, o, round(max(o, c) + 0.2, 4), round(min(o, c) - 0.2, 4), c,
                       100 + i, session_id=session_id))
    return out


def pattern(bar: Bar, name: str, confidence: float = 0.85, session_id: str = SESSION, detected_delay: float = 2.1,
            timeframe: str = "1min") -> PatternRecord:
    now = bar.start + 60 + detected_delay
    return PatternRecord(
        symbol=bar.symbol, pattern_type=name, confidence=confidence, detection_timestamp=now,
        expiration_timestamp=now + 3600,
        pattern_data={"bar_timestamp": iso_utc(bar.start), "bar_data": {"open": bar.open, "close": bar.close}},
        metadata={"session_id": session_id}, timeframe=timeframe,
        row_id=pattern_row_id(session_id, bar.symbol, name, bar.start, timeframe),
    )


def indicator(bar: Bar, name: str, value: float, period: int, session_id: str = SESSION,
              calculated_delay: float = 2.1) -> IndicatorRecord:
    now = bar.start + 60 + calculated_delay
    return IndicatorRecord(
        symbol=bar.symbol, indicator_type=name, value=value, calculation_timestamp=now,
        expiration_timestamp=now + 3600, value_data={"value": value},
        metadata={"period": period, "bars_used": period, "session_id": session_id, "bar_timestamp": iso_utc(bar.start)},
        timeframe="1min", row_id=indicator_row_id(session_id, bar.symbol, name, bar.start, "1min"),
    )


def indicators(series: list[Bar], session_id: str = SESSION, seed: int = 2) -> list[IndicatorRecord]:
    """SMA 20 from the 20th bar on, RSI 14 (arbitrary values in 10..90) from the 15th."""
    rng = random.Random(seed)
    out = []
    for i, bar in enumerate(series):
        if i >= 19:
            out.append(indicator(bar, "SMA", sum(b.close for b in series[i - 19:i + 1]) / 20, 20, session_id))
        if i >= 14:
            out.append(indicator(bar, "RSI", round(rng.uniform(10, 90), 3), 14, session_id))
    return out
