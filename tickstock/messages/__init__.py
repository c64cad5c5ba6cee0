"""Typed, immutable messages: the only things actors exchange, and the only home of wire formats."""

from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.messages.events import (
    CriticalAlert,
    Event,
    HealthReport,
    IndicatorAlertRaised,
    IndicatorCalculated,
    PatternDetected,
    SessionStarted,
    SessionStopped,
)
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord
from tickstock.messages.ticks import Tick, TickRejected, decode_tick, encode_tick

__all__ = [
    "BAR_SECONDS", "Bar", "CriticalAlert", "Event", "HealthReport", "IndicatorAlertRaised",
    "IndicatorCalculated", "PatternDetected", "SessionStarted", "SessionStopped", "HealthRecord",
    "IndicatorRecord", "PatternRecord", "SessionRecord", "Tick", "TickRejected", "decode_tick",
    "encode_tick",
]
