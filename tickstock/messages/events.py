"""Events the service publishes on Redis, and their exact wire schemas.

Each event is immutable and knows its channel (by settings name, see ``ChannelSettings``) and its
wire form (``to_wire``). Field names follow ``shared/docs/interface.md`` exactly; where the
dashboard has read two spellings, both are sent. Times are epoch seconds inside and ISO-8601 UTC
on the wire.

The per-result events (``PatternDetected``, ``IndicatorCalculated``, ``IndicatorAlertRaised``) are
frozen ``msgspec.Struct``s, the others frozen dataclasses: a bar close builds one per result of every
symbol, and a Struct is built in ~0.3 us where a frozen dataclass took ~2.3 us (this machine).

Patterns and indicators carry the ``timeframe`` of the bar they were computed on ("1min", "5min",
"15min", "60min"; tickstock/bars/timeframes.py). An indicator alert from a higher timeframe says
which in ``data.timeframe``; a 1-minute alert is sent exactly as before (no such field).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from tickstock.messages.bars import Bar
from tickstock.messages.wire import dumps, finite_or_none, finite_values, iso_utc

SESSION_STATUSES = ("completed", "stopped", "failed")
HEALTH_STATUSES = ("healthy", "warning", "critical")


def bar_data(bar: Bar) -> dict[str, Any]:
    return {"open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume}


@dataclass(frozen=True, slots=True)
class SessionStarted:
    channel: ClassVar[str] = "session_started"
    session_id: str
    universe: str
    started_at: float
    symbol_count: int
    published_at: float

    def session_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "universe": self.universe,
            "started_at": iso_utc(self.started_at),
            "symbol_count": self.symbol_count,
            "status": "active",
        }

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "streaming_session_started",
            "session": self.session_json(),
            "timestamp": iso_utc(self.published_at),
        }


@dataclass(frozen=True, slots=True)
class SessionStopped:
    channel: ClassVar[str] = "session_stopped"
    session_id: str
    stopped_at: float
    duration_seconds: float
    total_patterns: int
    total_indicators: int
    final_status: str
    reason: str = ""

    def __post_init__(self) -> None:
        if self.final_status not in SESSION_STATUSES:
            raise ValueError(f"final_status must be one of {SESSION_STATUSES}, got {self.final_status!r}")

    def to_wire(self) -> dict[str, Any]:
        session = {
            "session_id": self.session_id,
            "stopped_at": iso_utc(self.stopped_at),
            "duration_seconds": round(self.duration_seconds, 3),
            "total_patterns": self.total_patterns,
            "total_indicators": self.total_indicators,
            "final_status": self.final_status,
        }
        if self.reason:
            session["reason"] = self.reason
        return {"type": "streaming_session_stopped", "session": session, "timestamp": iso_utc(self.stopped_at)}


# The wire objects of the per-result events as Structs, fields in ``to_wire``'s key order: msgspec
# encodes a Struct without the dict ``to_wire`` builds, so ``wire_json`` costs ~1.3 us an event
# instead of ~2.6 (this machine), thousands of times per bar close. Same bytes (test_wire.py).
class _Detection(msgspec.Struct):
    symbol: str
    pattern: str
    pattern_type: str
    confidence: float | None
    timestamp: str
    timeframe: str
    parameters: dict[str, Any]
    bar_data: dict[str, Any]
    metadata: dict[str, Any]


class _PatternWire(msgspec.Struct):
    type: str
    detection: _Detection


class _Calculation(msgspec.Struct):
    symbol: str
    indicator: str
    indicator_type: str
    value: float | None
    values: dict[str, Any]
    timestamp: str
    timeframe: str
    metadata: dict[str, Any]


class _IndicatorWire(msgspec.Struct):
    type: str
    calculation: _Calculation


class PatternDetected(msgspec.Struct, frozen=True):
    channel: ClassVar[str] = "patterns"
    symbol: str
    pattern: str
    confidence: float
    detected_at: float
    bar: Bar
    session_id: str
    parameters: dict[str, Any] = {}
    levels: tuple[float, ...] = ()
    bar_closed_at: float | None = None
    timeframe: str = "1min"

    def wire_json(self) -> bytes:
        """The wire JSON, encoded from the Structs (see ``_Detection``): no nested dicts built."""
        return dumps(self._wire())

    def to_wire(self) -> dict[str, Any]:
        """The wire object as plain dicts and lists (the same content as ``wire_json``)."""
        return msgspec.to_builtins(self._wire())

    def _wire(self) -> _PatternWire:
        bar = self.bar
        metadata: dict[str, Any] = {"session_id": self.session_id}
        if self.bar_closed_at is not None:
            metadata["bar_closed_at"] = iso_utc(self.bar_closed_at)
        if self.levels:
            metadata["levels"] = list(self.levels)
        return _PatternWire("streaming_pattern", _Detection(
            self.symbol, self.pattern, self.pattern, finite_or_none(self.confidence), iso_utc(self.detected_at),
            self.timeframe, {"bar_timestamp": iso_utc(bar.start), **self.parameters}, bar_data(bar), metadata,
        ))


class IndicatorCalculated(msgspec.Struct, frozen=True):
    channel: ClassVar[str] = "indicators"
    symbol: str
    indicator: str
    value: float
    values: dict[str, float]
    calculated_at: float
    bar: Bar
    session_id: str
    metadata: dict[str, Any] = {}
    bar_closed_at: float | None = None
    timeframe: str = "1min"

    def wire_json(self) -> bytes:
        """The wire JSON, encoded from the Structs (see ``_Calculation``): no nested dicts built."""
        return dumps(self._wire())

    def to_wire(self) -> dict[str, Any]:
        """The wire object as plain dicts and lists (the same content as ``wire_json``)."""
        return msgspec.to_builtins(self._wire())

    def _wire(self) -> _IndicatorWire:
        metadata = {**self.metadata, "session_id": self.session_id, "bar_timestamp": iso_utc(self.bar.start)}
        if self.bar_closed_at is not None:
            metadata["bar_closed_at"] = iso_utc(self.bar_closed_at)
        return _IndicatorWire("streaming_indicator", _Calculation(
            self.symbol, self.indicator, self.indicator, finite_or_none(self.value), finite_values(self.values),
            iso_utc(self.calculated_at), self.timeframe, metadata,
        ))


class IndicatorAlertRaised(msgspec.Struct, frozen=True):
    channel: ClassVar[str] = "indicator_alerts"
    alert_type: str  # RSI_OVERBOUGHT | RSI_OVERSOLD
    symbol: str
    indicator: str
    value: float
    threshold: float
    direction: str  # above | below
    raised_at: float
    session_id: str
    severity: str = "warning"
    timeframe: str = "1min"

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "indicator": self.indicator,
            "value": finite_or_none(self.value),
            "threshold": self.threshold,
            "direction": self.direction,
        }
        if self.timeframe != "1min":
            data["timeframe"] = self.timeframe
        return {
            "type": "indicator_alert",
            "alert_type": self.alert_type,
            "symbol": self.symbol,
            "timestamp": iso_utc(self.raised_at),
            "session_id": self.session_id,
            "severity": self.severity,
            "data": data,
        }


@dataclass(frozen=True, slots=True)
class CriticalAlert:
    """A flat alert on ``tickstock:alerts:critical``; ``severity`` 'info' marks a recovery."""

    channel: ClassVar[str] = "critical_alerts"
    message: str
    component: str
    raised_at: float
    action_required: str = ""
    severity: str = "critical"
    session_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {"component": self.component, "action_required": self.action_required}
        if self.session_id:
            data["session_id"] = self.session_id
        return {
            "type": "critical_alert",
            "severity": self.severity,
            "message": self.message,
            "timestamp": iso_utc(self.raised_at),
            "data": data,
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    channel: ClassVar[str] = "health"
    session_id: str
    status: str
    active_symbols: int
    ticks_per_second: float
    patterns_detected: int
    indicators_calculated: int
    bars_per_minute: float
    processing_lag_ms: float | None
    cpu_percent: float
    memory_mb: float
    stale_symbols: tuple[str, ...]
    stale_count: int
    redis: str
    database: str
    issues: tuple[str, ...]
    reported_at: float
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in HEALTH_STATUSES:
            raise ValueError(f"health status must be one of {HEALTH_STATUSES}, got {self.status!r}")

    def health_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "active_symbols": self.active_symbols,
            "ticks_per_second": round(self.ticks_per_second, 2),
            "patterns_detected": self.patterns_detected,
            "indicators_calculated": self.indicators_calculated,
            "data_flow": {
                "ticks_per_second": round(self.ticks_per_second, 2),
                "bars_per_minute": round(self.bars_per_minute, 2),
                "processing_lag_ms": None if self.processing_lag_ms is None else round(self.processing_lag_ms, 2),
            },
            "resources": {"cpu_percent": round(self.cpu_percent, 1), "memory_mb": round(self.memory_mb, 1)},
            "stale_symbols": {"count": self.stale_count, "symbols": list(self.stale_symbols)},
            "connection": {"redis": self.redis, "database": self.database},
            "issues": list(self.issues),
            "timestamp": iso_utc(self.reported_at),
            **self.extra,
        }

    def to_wire(self) -> dict[str, Any]:
        return {"type": "streaming_health", "health": self.health_json(), "timestamp": iso_utc(self.reported_at)}


Event = SessionStarted | SessionStopped | PatternDetected | IndicatorCalculated | IndicatorAlertRaised | CriticalAlert | HealthReport
