"""The monitor's state: what a consumer of the service knows, folded from what it read on Redis.

Pure: no I/O, no clock. The reader hands it messages stamped with the time it read them
(:class:`ChannelMessage`, :class:`KeysRead`, :class:`ConnectionChanged`); ``view(now)`` answers
with an immutable :class:`MonitorView` (heartbeat age counted against ``now``).

Guarantees:
- **Online/idle.** A ``session_started`` event or a retained session key makes that session
  current: online. Its ``session_stopped`` makes the monitor idle and the session id is remembered
  as ended, so a late re-announcement or a not-yet-deleted retained key for it never brings it
  back. A ``session_stopped`` for another (older) session changes nothing. A retained key found
  absent while online makes the monitor idle once nothing has confirmed the session (event or key)
  for ``key_grace_seconds``: the key is written by another actor than the one that publishes the
  event, so either can come first; after the grace an absent key means the producer ended without
  a ``session_stopped`` (killed) and its key expired.
- **Heartbeat.** The age is ``now`` minus the epoch seconds in the heartbeat key; the producer is
  alive while that age is at most ``PRODUCER_OFFLINE_AFTER_SECONDS`` (the consumer's rule, 30 s).
- **Ordering.** Health older (by its own timestamp) than the health held is ignored, as is an
  indicator value for an older bar than the one held for that symbol, indicator and timeframe.
  Detections are kept newest first by (bar, detection time), the latest ``max_detections``; the
  same detection seen on both pattern channels is one entry, flagged high-confidence.
- **Garbage.** A message that does not decode changes nothing but the rejection count, by
  channel, and the last rejection's reason.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from tickstock.messages.received import (
    EventRejected, ReceivedCriticalAlert, ReceivedHealth, ReceivedIndicator, ReceivedIndicatorAlert, ReceivedPattern,
    ReceivedSessionStarted, ReceivedSessionStopped, decode_event, decode_heartbeat, decode_session_started,
)
from tickstock.messages.wire import iso_utc

# The consumer treats the producer as offline when the heartbeat is older than this (interface.md).
PRODUCER_OFFLINE_AFTER_SECONDS = 30.0
HEALTH_STATUSES = ("healthy", "warning", "critical")
_REMEMBERED_STOPS = 64


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One message read on the output channel whose settings name is ``channel`` (``"patterns"``)."""

    channel: str
    data: bytes | str
    received_at: float


@dataclass(frozen=True, slots=True)
class KeysRead:
    """The heartbeat and retained session keys as read at ``read_at`` (None: the key is absent)."""

    heartbeat: bytes | str | None
    session: bytes | str | None
    read_at: float


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    """The reader lost (``connected`` False, with ``error``) or regained its Redis connection."""

    connected: bool
    at: float
    error: str = ""


Message = ChannelMessage | KeysRead | ConnectionChanged


@dataclass(frozen=True, slots=True)
class Detection:
    pattern: ReceivedPattern
    high_confidence: bool
    received_at: float

    def key(self) -> tuple[str, str, str, str, int]:
        p = self.pattern
        return (p.session_id, p.symbol, p.pattern, p.timeframe, p.bar.start)


@dataclass(frozen=True, slots=True)
class MonitorView:
    """One immutable snapshot of the monitor's knowledge at ``at``."""

    at: float
    online: bool
    session: ReceivedSessionStarted | None
    session_source: str  # "event", "retained key", or "" when idle
    idle_reason: str
    last_stop: ReceivedSessionStopped | None
    heartbeat_at: float | None
    heartbeat_age: float | None
    producer_alive: bool
    health: ReceivedHealth | None
    detections: tuple[Detection, ...]
    indicators: tuple[ReceivedIndicator, ...]  # latest per (symbol, indicator, timeframe), sorted so
    alerts: tuple[ReceivedIndicatorAlert, ...]  # newest first
    critical_alerts: tuple[ReceivedCriticalAlert, ...]  # newest first
    counts: dict[str, int]
    rejected: dict[str, int]
    last_rejection: str
    redis_connected: bool
    redis_error: str

    @property
    def status(self) -> str:
        return "online" if self.online else "idle"

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol named by a held detection, indicator value or alert, sorted."""
        names = {d.pattern.symbol for d in self.detections}
        names.update(i.symbol for i in self.indicators)
        names.update(a.symbol for a in self.alerts)
        return tuple(sorted(names))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; every time is an ISO-8601 UTC string, no NaN anywhere."""
        s, h = self.session, self.health
        return {
            "at": iso_utc(self.at),
            "status": self.status,
            "online": self.online,
            "idle_reason": self.idle_reason or None,
            "session": None if s is None else {
                "session_id": s.session_id, "universe": s.universe, "started_at": iso_utc(s.started_at),
                "symbol_count": s.symbol_count, "status": s.status, "source": self.session_source,
            },
            "last_stop": None if self.last_stop is None else _stop_json(self.last_stop),
            "heartbeat": {
                "at": _iso(self.heartbeat_at), "age_seconds": _round(self.heartbeat_age, 3),
                "producer_alive": self.producer_alive,
            },
            "health": None if h is None else {
                "session_id": h.session_id, "status": h.status, "known_status": h.status in HEALTH_STATUSES,
                "issues": list(h.issues), "ticks_per_second": _round(h.ticks_per_second, 2),
                "active_symbols": h.active_symbols, "patterns_detected": h.patterns_detected,
                "indicators_calculated": h.indicators_calculated, "bars_per_minute": _round(h.bars_per_minute, 2),
                "processing_lag_ms": _round(h.processing_lag_ms, 2), "stale_symbols": list(h.stale_symbols),
                "connection": {"redis": h.redis, "database": h.database}, "reported_at": iso_utc(h.reported_at),
            },
            "symbols": list(self.symbols),
            "detections": [_detection_json(d) for d in self.detections],
            "indicators": [_indicator_json(i) for i in self.indicators],
            "alerts": [_alert_json(a) for a in self.alerts],
            "critical_alerts": [_critical_json(a) for a in self.critical_alerts],
            "counts": dict(self.counts),
            "rejected": {"total": sum(self.rejected.values()), "by_source": dict(self.rejected),
                         "last": self.last_rejection or None},
            "redis": {"connected": self.redis_connected, "error": self.redis_error or None},
        }


class MonitorState:
    """The fold. ``fold(message)`` updates it in place and returns it; ``view(now)`` snapshots it."""

    def __init__(self, max_detections: int = 20, max_alerts: int = 10, key_grace_seconds: float = 5.0) -> None:
        if max_detections < 1 or max_alerts < 1:
            raise ValueError("max_detections and max_alerts must be at least 1")
        if not math.isfinite(key_grace_seconds) or key_grace_seconds < 0:
            raise ValueError(f"key_grace_seconds must be a finite number >= 0, got {key_grace_seconds!r}")
        self.max_detections = max_detections
        self.key_grace_seconds = key_grace_seconds
        self._session: ReceivedSessionStarted | None = None
        self._from_event = False
        self._from_key = False
        self._confirmed_at = -math.inf
        self._idle_reason = "no session seen yet"
        self._stopped: OrderedDict[str, ReceivedSessionStopped] = OrderedDict()
        self._last_stop: ReceivedSessionStopped | None = None
        self._heartbeat_at: float | None = None
        self._health: ReceivedHealth | None = None
        self._detections: list[Detection] = []
        self._indicators: dict[tuple[str, str, str], ReceivedIndicator] = {}
        self._alerts: deque[ReceivedIndicatorAlert] = deque(maxlen=max_alerts)
        self._critical: deque[ReceivedCriticalAlert] = deque(maxlen=max_alerts)
        self._counts: dict[str, int] = {}
        self._rejected: dict[str, int] = {}
        self._last_rejection = ""
        self._redis_connected = True
        self._redis_error = ""

    # ------------------------------------------------------------ folding

    def fold(self, message: Message) -> MonitorState:
        if isinstance(message, ChannelMessage):
            self._on_channel(message)
        elif isinstance(message, KeysRead):
            self._on_keys(message)
        elif isinstance(message, ConnectionChanged):
            self._redis_connected = message.connected
            self._redis_error = "" if message.connected else message.error
        else:
            raise TypeError(f"not a monitor message: {message!r:.80}")
        return self

    def _reject(self, source: str, exc: EventRejected) -> None:
        self._rejected[source] = self._rejected.get(source, 0) + 1
        self._last_rejection = f"{source}: {exc}"[:300]

    def _on_channel(self, message: ChannelMessage) -> None:
        channel = message.channel
        try:
            event = decode_event(channel, message.data)
        except EventRejected as exc:
            self._reject(channel, exc)
            return
        self._counts[channel] = self._counts.get(channel, 0) + 1
        at = message.received_at
        if isinstance(event, ReceivedSessionStarted):
            self._announced(event, at, from_key=False)
        elif isinstance(event, ReceivedSessionStopped):
            self._ended(event)
        elif isinstance(event, ReceivedHealth):
            if self._health is None or event.reported_at >= self._health.reported_at:
                self._health = event
        elif isinstance(event, ReceivedPattern):
            self._detected(event, channel == "patterns_high_confidence", at)
        elif isinstance(event, ReceivedIndicator):
            key = (event.symbol, event.indicator, event.timeframe)
            held = self._indicators.get(key)
            if held is None or _indicator_order(event) >= _indicator_order(held):
                self._indicators[key] = event
        elif isinstance(event, ReceivedIndicatorAlert):
            self._alerts.appendleft(event)
        elif isinstance(event, ReceivedCriticalAlert):
            self._critical.appendleft(event)

    def _on_keys(self, message: KeysRead) -> None:
        if message.heartbeat is not None:
            try:
                self._heartbeat_at = decode_heartbeat(message.heartbeat)
            except EventRejected as exc:
                self._reject("heartbeat_key", exc)
        if message.session is not None:
            try:
                retained = decode_session_started(message.session)
            except EventRejected as exc:
                self._reject("session_key", exc)
                return
            self._announced(retained, message.read_at, from_key=True)
        elif self._session is not None and message.read_at - self._confirmed_at > self.key_grace_seconds:
            self._idle_reason = (f"session {self._session.session_id} ended without session_stopped: "
                                 "its retained key is gone (expired or deleted)")
            self._session = None
            self._from_event = self._from_key = False

    def _announced(self, session: ReceivedSessionStarted, at: float, from_key: bool) -> None:
        if session.session_id in self._stopped:
            return  # a re-announcement or a lingering key of a session already seen to end
        if self._session is None or self._session.session_id != session.session_id:
            self._from_event = self._from_key = False
        self._session = session
        self._from_key |= from_key
        self._from_event |= not from_key
        self._confirmed_at = max(self._confirmed_at, at)
        self._idle_reason = ""

    def _ended(self, stop: ReceivedSessionStopped) -> None:
        self._stopped[stop.session_id] = stop
        while len(self._stopped) > _REMEMBERED_STOPS:
            self._stopped.popitem(last=False)
        if self._session is None or self._session.session_id == stop.session_id:
            self._last_stop = stop
        if self._session is not None and self._session.session_id == stop.session_id:
            self._session = None
            self._from_event = self._from_key = False
            self._idle_reason = f"session {stop.session_id} stopped ({stop.final_status})"

    def _detected(self, pattern: ReceivedPattern, high: bool, at: float) -> None:
        new = Detection(pattern, high, at)
        key = new.key()
        for i, held in enumerate(self._detections):
            if held.key() == key:
                if high and not held.high_confidence:
                    self._detections[i] = Detection(held.pattern, True, held.received_at)
                return
        self._detections.append(new)
        self._detections.sort(key=lambda d: (d.pattern.bar.start, d.pattern.detected_at), reverse=True)
        del self._detections[self.max_detections:]

    # ------------------------------------------------------------ reading

    def view(self, now: float) -> MonitorView:
        age = None if self._heartbeat_at is None else max(0.0, now - self._heartbeat_at)
        source = " + ".join(name for name, on in (("event", self._from_event), ("retained key", self._from_key)) if on)
        return MonitorView(
            at=now, online=self._session is not None, session=self._session, session_source=source,
            idle_reason="" if self._session is not None else self._idle_reason, last_stop=self._last_stop,
            heartbeat_at=self._heartbeat_at, heartbeat_age=age,
            producer_alive=age is not None and age <= PRODUCER_OFFLINE_AFTER_SECONDS,
            health=self._health, detections=tuple(self._detections),
            indicators=tuple(self._indicators[k] for k in sorted(self._indicators)),
            alerts=tuple(self._alerts), critical_alerts=tuple(self._critical), counts=dict(self._counts),
            rejected=dict(self._rejected), last_rejection=self._last_rejection,
            redis_connected=self._redis_connected, redis_error=self._redis_error,
        )


def _indicator_order(i: ReceivedIndicator) -> tuple[float, float]:
    return (i.bar_start if i.bar_start is not None else -math.inf, i.calculated_at)


def _iso(t: float | None) -> str | None:
    return None if t is None else iso_utc(t)


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


def _stop_json(s: ReceivedSessionStopped) -> dict[str, Any]:
    return {"session_id": s.session_id, "stopped_at": iso_utc(s.stopped_at), "final_status": s.final_status,
            "duration_seconds": s.duration_seconds, "total_patterns": s.total_patterns,
            "total_indicators": s.total_indicators, "reason": s.reason or None}


def _detection_json(d: Detection) -> dict[str, Any]:
    p = d.pattern
    return {"symbol": p.symbol, "pattern": p.pattern, "confidence": _round(p.confidence, 4),
            "bar_timestamp": iso_utc(p.bar.start), "detected_at": iso_utc(p.detected_at),
            "high_confidence": d.high_confidence, "timeframe": p.timeframe, "close": p.bar.close,
            "session_id": p.session_id}


def _indicator_json(i: ReceivedIndicator) -> dict[str, Any]:
    return {"symbol": i.symbol, "indicator": i.indicator, "value": _round(i.value, 6),
            "values": {k: _round(v, 6) for k, v in i.values.items()}, "bar_timestamp": _iso(i.bar_start),
            "calculated_at": iso_utc(i.calculated_at), "timeframe": i.timeframe, "period": i.metadata.get("period")}


def _alert_json(a: ReceivedIndicatorAlert) -> dict[str, Any]:
    return {"alert_type": a.alert_type, "symbol": a.symbol, "indicator": a.indicator, "value": _round(a.value, 6),
            "threshold": a.threshold, "direction": a.direction, "severity": a.severity, "timeframe": a.timeframe,
            "at": iso_utc(a.raised_at)}


def _critical_json(a: ReceivedCriticalAlert) -> dict[str, Any]:
    return {"severity": a.severity, "message": a.message, "component": a.component,
            "action_required": a.action_required, "at": iso_utc(a.raised_at)}
