"""Rows the PersistenceActor writes: one immutable record type per table.

Times are epoch seconds UTC; the PostgreSQL adapter converts them to TIMESTAMPTZ. Dict fields are
JSON-safe (finite floats, strings, ints, lists, dicts) and are treated as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PatternRecord:
    """A row of ``intraday_patterns``."""

    symbol: str
    pattern_type: str
    confidence: float
    detection_timestamp: float
    pattern_data: dict[str, Any] = field(default_factory=dict)
    expiration_timestamp: float | None = None
    levels: tuple[float, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    timeframe: str = "1min"


@dataclass(frozen=True, slots=True)
class IndicatorRecord:
    """A row of ``intraday_indicators``."""

    symbol: str
    indicator_type: str
    value: float | None
    calculation_timestamp: float
    value_data: dict[str, Any] = field(default_factory=dict)
    expiration_timestamp: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    timeframe: str = "1min"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A row of ``streaming_sessions``; written at start (no stop fields) and updated at the end."""

    session_id: str
    universe: str
    started_at: float
    symbol_count: int
    stopped_at: float | None = None
    total_patterns: int = 0
    total_indicators: int = 0
    final_status: str | None = None  # None while running; 'completed' | 'stopped' | 'failed'


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """A row of ``streaming_health_metrics``: one per published health report."""

    session_id: str
    recorded_at: float
    status: str
    active_symbols: int
    ticks_per_second: float
    bars_per_minute: float
    processing_lag_ms: float | None
    patterns_detected: int
    indicators_calculated: int
    payload: dict[str, Any] = field(default_factory=dict)
