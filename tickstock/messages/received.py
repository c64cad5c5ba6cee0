"""The service's own events as a consumer receives them off Redis: decoded, checked, typed.

``events.py`` encodes; this module is the reading side, for consumers inside this project (the
live monitor) that must see exactly what the dashboard sees. Each ``decode_*`` function takes the
raw bytes of one PUBLISH (or of the retained session key) and returns one immutable ``Received*``
value with times as epoch seconds UTC, or raises :class:`EventRejected` naming the problem. It
never raises anything else, whatever the bytes.

What is checked is what a consumer reads: one JSON object (a list, a "batch", is rejected), the
fields the contract names with their types, and ISO-8601 times carrying an offset. Business rules
(a health status outside healthy/warning/critical, a confidence outside 0..1) are NOT rejected: a
consumer shows them, and the monitor flags them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec

from tickstock.messages.bars import Bar
from tickstock.messages.wire import parse_iso_utc

Time = Annotated[datetime, msgspec.Meta(tz=True)]  # an ISO-8601 string with an offset


class EventRejected(ValueError):
    """A message that is not a valid event of its channel. ``reason`` is a short stable label."""

    REASONS = ("malformed_json", "missing_field", "wrong_type", "bad_value")

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- what callers get


class ReceivedSessionStarted(msgspec.Struct, frozen=True):
    """``session_started`` (and the retained session key, which holds the same payload)."""

    session_id: str
    universe: str
    started_at: float
    symbol_count: int
    status: str
    published_at: float | None


class ReceivedSessionStopped(msgspec.Struct, frozen=True):
    session_id: str
    stopped_at: float
    duration_seconds: float | None
    total_patterns: int | None
    total_indicators: int | None
    final_status: str
    reason: str


class ReceivedHealth(msgspec.Struct, frozen=True):
    """``ticks_per_second`` is ``data_flow.ticks_per_second`` when present (it overrides the
    top-level one for the dashboard), else the top-level value."""

    session_id: str
    status: str
    active_symbols: int
    ticks_per_second: float | None
    patterns_detected: int
    indicators_calculated: int
    issues: tuple[str, ...]
    reported_at: float
    bars_per_minute: float | None = None
    processing_lag_ms: float | None = None
    cpu_percent: float | None = None
    memory_mb: float | None = None
    stale_count: int | None = None
    stale_symbols: tuple[str, ...] = ()
    redis: str | None = None
    database: str | None = None


class ReceivedPattern(msgspec.Struct, frozen=True):
    """One detection; ``bar`` is rebuilt from ``bar_data`` and ``parameters.bar_timestamp``."""

    symbol: str
    pattern: str
    confidence: float | None
    detected_at: float
    timeframe: str
    bar: Bar
    session_id: str
    parameters: dict[str, Any]
    bar_closed_at: float | None = None


class ReceivedIndicator(msgspec.Struct, frozen=True):
    """One indicator value; ``bar_start`` comes from ``metadata.bar_timestamp`` (None if absent)."""

    symbol: str
    indicator: str
    value: float | None
    values: dict[str, float | None]
    calculated_at: float
    timeframe: str
    bar_start: float | None
    session_id: str | None
    metadata: dict[str, Any]


class ReceivedIndicatorAlert(msgspec.Struct, frozen=True):
    alert_type: str
    symbol: str
    raised_at: float
    session_id: str | None
    severity: str
    indicator: str
    value: float | None
    threshold: float | None
    direction: str | None
    timeframe: str = "1min"  # ``data.timeframe``, sent only for a higher timeframe's alert


class ReceivedCriticalAlert(msgspec.Struct, frozen=True):
    """``severity`` 'info' is a recovery notice."""

    severity: str
    message: str
    raised_at: float
    component: str | None
    action_required: str | None
    session_id: str | None


# ---------------------------------------------------------------- the wire as read


class _Started(msgspec.Struct):
    session_id: str
    universe: str
    started_at: Time
    symbol_count: int
    status: str = "active"


class _StartedWire(msgspec.Struct):
    session: _Started
    timestamp: Time | None = None


class _Stopped(msgspec.Struct):
    session_id: str
    stopped_at: Time
    final_status: str
    duration_seconds: float | None = None
    total_patterns: int | None = None
    total_indicators: int | None = None
    reason: str = ""


class _StoppedWire(msgspec.Struct):
    session: _Stopped


class _DataFlow(msgspec.Struct):
    ticks_per_second: float | None = None
    bars_per_minute: float | None = None
    processing_lag_ms: float | None = None


class _Resources(msgspec.Struct):
    cpu_percent: float | None = None
    memory_mb: float | None = None


class _Stale(msgspec.Struct):
    count: int | None = None
    symbols: list[str] = []


class _Connection(msgspec.Struct):
    redis: str | None = None
    database: str | None = None


class _Health(msgspec.Struct):
    session_id: str
    status: str
    active_symbols: int
    patterns_detected: int
    indicators_calculated: int
    ticks_per_second: float | None = None
    data_flow: _DataFlow | None = None
    resources: _Resources | None = None
    stale_symbols: _Stale | None = None
    connection: _Connection | None = None
    issues: list[str] = []
    timestamp: Time | None = None


class _HealthWire(msgspec.Struct):
    health: _Health
    timestamp: Time | None = None


class _BarData(msgspec.Struct):
    open: float
    high: float
    low: float
    close: float
    volume: int


class _Detection(msgspec.Struct):
    symbol: str
    pattern: str
    timestamp: Time
    parameters: dict[str, Any]
    bar_data: _BarData
    metadata: dict[str, Any]
    confidence: float | None = None
    timeframe: str = "1min"


class _PatternWire(msgspec.Struct):
    detection: _Detection


class _Calculation(msgspec.Struct):
    symbol: str
    indicator: str
    values: dict[str, float | None]
    timestamp: Time
    value: float | None = None
    timeframe: str = "1min"
    metadata: dict[str, Any] = {}


class _IndicatorWire(msgspec.Struct):
    calculation: _Calculation


class _AlertData(msgspec.Struct):
    indicator: str
    value: float | None = None
    threshold: float | None = None
    direction: str | None = None
    timeframe: str = "1min"


class _IndicatorAlertWire(msgspec.Struct):
    alert_type: str
    symbol: str
    timestamp: Time
    data: _AlertData
    session_id: str | None = None
    severity: str = "warning"


class _CriticalData(msgspec.Struct):
    component: str | None = None
    action_required: str | None = None
    session_id: str | None = None


class _CriticalAlertWire(msgspec.Struct):
    severity: str
    message: str
    timestamp: Time
    data: _CriticalData | None = None


def _decode(raw: bytes | str, decoder: msgspec.json.Decoder) -> Any:
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        raise EventRejected("missing_field" if "missing required field" in text else "wrong_type", text) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise EventRejected("malformed_json", str(exc)) from None
    except Exception as exc:  # pragma: no cover - defensive: never crash a reader
        raise EventRejected("malformed_json", repr(exc)) from None


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _text(mapping: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = mapping.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        reason = "missing_field" if key not in mapping else "wrong_type"
        raise EventRejected(reason, f"{where}.{key} must be a string, got {value!r:.40}")
    return value


def _time_field(mapping: dict[str, Any], key: str, where: str, required: bool = True) -> float | None:
    text = _text(mapping, key, where, required)
    if text is None:
        return None
    try:
        return parse_iso_utc(text)
    except ValueError as exc:
        raise EventRejected("bad_value", f"{where}.{key}: {exc}") from None


_started = msgspec.json.Decoder(_StartedWire)
_stopped = msgspec.json.Decoder(_StoppedWire)
_health = msgspec.json.Decoder(_HealthWire)
_pattern = msgspec.json.Decoder(_PatternWire)
_indicator = msgspec.json.Decoder(_IndicatorWire)
_indicator_alert = msgspec.json.Decoder(_IndicatorAlertWire)
_critical_alert = msgspec.json.Decoder(_CriticalAlertWire)


def decode_session_started(raw: bytes | str) -> ReceivedSessionStarted:
    """``session_started``, or the retained session key's value (the same payload)."""
    wire = _decode(raw, _started)
    s = wire.session
    return ReceivedSessionStarted(s.session_id, s.universe, s.started_at.timestamp(), s.symbol_count, s.status,
                                  _epoch(wire.timestamp))


def decode_session_stopped(raw: bytes | str) -> ReceivedSessionStopped:
    s = _decode(raw, _stopped).session
    return ReceivedSessionStopped(s.session_id, s.stopped_at.timestamp(), s.duration_seconds, s.total_patterns,
                                  s.total_indicators, s.final_status, s.reason)


def decode_health(raw: bytes | str) -> ReceivedHealth:
    wire = _decode(raw, _health)
    h = wire.health
    flow, resources, stale, conn = h.data_flow, h.resources, h.stale_symbols, h.connection
    tps = flow.ticks_per_second if flow is not None and flow.ticks_per_second is not None else h.ticks_per_second
    reported = h.timestamp or wire.timestamp
    if reported is None:
        raise EventRejected("missing_field", "health.timestamp (or the top-level timestamp) is required")
    return ReceivedHealth(
        session_id=h.session_id, status=h.status, active_symbols=h.active_symbols, ticks_per_second=tps,
        patterns_detected=h.patterns_detected, indicators_calculated=h.indicators_calculated,
        issues=tuple(h.issues), reported_at=reported.timestamp(),
        bars_per_minute=flow.bars_per_minute if flow else None,
        processing_lag_ms=flow.processing_lag_ms if flow else None,
        cpu_percent=resources.cpu_percent if resources else None,
        memory_mb=resources.memory_mb if resources else None,
        stale_count=stale.count if stale else None, stale_symbols=tuple(stale.symbols) if stale else (),
        redis=conn.redis if conn else None, database=conn.database if conn else None,
    )


def decode_pattern(raw: bytes | str) -> ReceivedPattern:
    """A detection from ``patterns`` or ``patterns_high_confidence`` (the same payload)."""
    d = _decode(raw, _pattern).detection
    bar_start = _time_field(d.parameters, "bar_timestamp", "detection.parameters")
    session_id = _text(d.metadata, "session_id", "detection.metadata")
    b = d.bar_data
    bar = Bar(d.symbol, int(bar_start), b.open, b.high, b.low, b.close, b.volume, session_id=session_id)
    return ReceivedPattern(
        symbol=d.symbol, pattern=d.pattern, confidence=d.confidence, detected_at=d.timestamp.timestamp(),
        timeframe=d.timeframe, bar=bar, session_id=session_id, parameters=d.parameters,
        bar_closed_at=_time_field(d.metadata, "bar_closed_at", "detection.metadata", required=False),
    )


def decode_indicator(raw: bytes | str) -> ReceivedIndicator:
    c = _decode(raw, _indicator).calculation
    value = c.value if c.value is not None else c.values.get("value")
    return ReceivedIndicator(
        symbol=c.symbol, indicator=c.indicator, value=value, values=c.values,
        calculated_at=c.timestamp.timestamp(), timeframe=c.timeframe,
        bar_start=_time_field(c.metadata, "bar_timestamp", "calculation.metadata", required=False),
        session_id=_text(c.metadata, "session_id", "calculation.metadata", required=False),
        metadata=c.metadata,
    )


def decode_indicator_alert(raw: bytes | str) -> ReceivedIndicatorAlert:
    a = _decode(raw, _indicator_alert)
    return ReceivedIndicatorAlert(a.alert_type, a.symbol, a.timestamp.timestamp(), a.session_id, a.severity,
                                  a.data.indicator, a.data.value, a.data.threshold, a.data.direction,
                                  a.data.timeframe)


def decode_critical_alert(raw: bytes | str) -> ReceivedCriticalAlert:
    a = _decode(raw, _critical_alert)
    data = a.data or _CriticalData()
    return ReceivedCriticalAlert(a.severity, a.message, a.timestamp.timestamp(), data.component,
                                 data.action_required, data.session_id)


def decode_heartbeat(raw: bytes | str) -> float:
    """The heartbeat key's value, ``str(epoch seconds)``, as a float (finite and positive)."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        value = float(text)
    except (UnicodeDecodeError, ValueError, TypeError, AttributeError):
        raise EventRejected("bad_value", f"heartbeat {raw!r:.40} is not epoch seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise EventRejected("bad_value", f"heartbeat {value!r} is not finite positive epoch seconds")
    return value


ReceivedEvent = (ReceivedSessionStarted | ReceivedSessionStopped | ReceivedHealth | ReceivedPattern
                 | ReceivedIndicator | ReceivedIndicatorAlert | ReceivedCriticalAlert)

# By settings name (``ChannelSettings`` field): what each output channel carries.
DECODERS: dict[str, Callable[[bytes | str], ReceivedEvent]] = {
    "session_started": decode_session_started,
    "session_stopped": decode_session_stopped,
    "health": decode_health,
    "patterns": decode_pattern,
    "patterns_high_confidence": decode_pattern,
    "indicators": decode_indicator,
    "indicator_alerts": decode_indicator_alert,
    "critical_alerts": decode_critical_alert,
}


def decode_event(channel: str, raw: bytes | str) -> ReceivedEvent:
    """Decode ``raw`` as the event carried by the output channel named ``channel`` (a settings name
    such as ``"patterns"``). KeyError for a name that is not an output channel (a caller's bug)."""
    return DECODERS[channel](raw)


__all__ = [
    "DECODERS", "EventRejected", "ReceivedCriticalAlert", "ReceivedEvent", "ReceivedHealth",
    "ReceivedIndicator", "ReceivedIndicatorAlert", "ReceivedPattern", "ReceivedSessionStarted",
    "ReceivedSessionStopped", "decode_critical_alert", "decode_event", "decode_health", "decode_heartbeat",
    "decode_indicator", "decode_indicator_alert", "decode_pattern", "decode_session_started",
    "decode_session_stopped",
]
