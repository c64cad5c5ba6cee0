"""tickstock.messages.received: the service's events decoded as a consumer reads them.

Every event is encoded by the service's own encoder (events.py ``to_wire`` + ``wire.dumps``) and
decoded back, so a field renamed on one side fails here. Garbage is rejected with a reason, never
another exception.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstock.messages.bars import Bar
from tickstock.messages.events import (
    CriticalAlert, HealthReport, IndicatorAlertRaised, IndicatorCalculated, PatternDetected, SessionStarted,
    SessionStopped,
)
from tickstock.messages.received import (
    DECODERS, EventRejected, decode_critical_alert, decode_event, decode_health, decode_heartbeat,
    decode_indicator, decode_indicator_alert, decode_pattern, decode_session_started, decode_session_stopped,
)
from tickstock.messages.wire import dumps, iso_utc, parse_iso_utc

T = 1_760_000_000.25  # 2025-10-09T08:53:20.250Z
SID = "0b7c6a52-7c0e-4d0e-9d57-2f1a4b1f9e11"
BAR = Bar("NVDA", 1_759_999_980, 125.5, 125.75, 125.45, 125.52, 250_000, session_id=SID)


def wire(event) -> bytes:
    return dumps(event.to_wire())


def test_parse_iso_utc_inverts_iso_utc_and_refuses_a_time_without_offset():
    assert parse_iso_utc(iso_utc(T)) == pytest.approx(T, abs=1e-3)
    assert parse_iso_utc("2025-10-07T13:30:00+00:00") == parse_iso_utc("2025-10-07T13:30:00.000Z")
    assert parse_iso_utc("2025-10-07T09:30:00-04:00") == parse_iso_utc("2025-10-07T13:30:00Z")
    for bad in ("2025-10-07T13:30:00", "yesterday", ""):
        with pytest.raises(ValueError):
            parse_iso_utc(bad)
    with pytest.raises(ValueError):
        parse_iso_utc(1_760_000_000)  # type: ignore[arg-type]


def test_session_started_round_trip_and_retained_key_payload():
    started = SessionStarted(SID, "test:tiny", T - 60, 3, T)
    got = decode_session_started(wire(started))
    assert (got.session_id, got.universe, got.symbol_count, got.status) == (SID, "test:tiny", 3, "active")
    assert got.started_at == pytest.approx(T - 60, abs=1e-3) and got.published_at == pytest.approx(T, abs=1e-3)


def test_session_stopped_round_trip_with_reason():
    stopped = SessionStopped(SID, T, 3600.5, 12, 3400, "failed", reason="publisher crashed")
    got = decode_session_stopped(wire(stopped))
    assert (got.session_id, got.final_status, got.reason) == (SID, "failed", "publisher crashed")
    assert (got.total_patterns, got.total_indicators, got.duration_seconds) == (12, 3400, 3600.5)
    assert got.stopped_at == pytest.approx(T, abs=1e-3)


def health_report(**changes) -> HealthReport:
    fields = dict(session_id=SID, status="warning", active_symbols=60, ticks_per_second=18.2,
                  patterns_detected=5, indicators_calculated=150, bars_per_minute=60.0, processing_lag_ms=12.0,
                  cpu_percent=12.5, memory_mb=210.0, stale_symbols=("MSFT",), stale_count=1, redis="connected",
                  database="failing", issues=("database failing for 30 s",), reported_at=T)
    fields.update(changes)
    return HealthReport(**fields)


def test_health_round_trip():
    got = decode_health(wire(health_report()))
    assert (got.session_id, got.status, got.active_symbols, got.ticks_per_second) == (SID, "warning", 60, 18.2)
    assert (got.patterns_detected, got.indicators_calculated) == (5, 150)
    assert got.issues == ("database failing for 30 s",) and got.stale_symbols == ("MSFT",)
    assert (got.redis, got.database, got.processing_lag_ms) == ("connected", "failing", 12.0)
    assert got.reported_at == pytest.approx(T, abs=1e-3)


def test_health_data_flow_ticks_per_second_overrides_the_top_level_one():
    payload = health_report().to_wire()
    payload["health"]["ticks_per_second"] = 0.0
    payload["health"]["data_flow"]["ticks_per_second"] = 42.5
    assert decode_health(json.dumps(payload)).ticks_per_second == 42.5
    del payload["health"]["data_flow"]
    assert decode_health(json.dumps(payload)).ticks_per_second == 0.0


def test_health_with_a_status_outside_the_contract_is_still_read():
    payload = health_report().to_wire()
    payload["health"]["status"] = "degraded"
    assert decode_health(json.dumps(payload)).status == "degraded"


def test_pattern_round_trip_rebuilds_the_bar():
    detected = PatternDetected("NVDA", "Doji", 0.85, T, BAR, SID, {"body_ratio": 0.02}, (125.5,), T - 0.4)
    got = decode_pattern(wire(detected))
    assert (got.symbol, got.pattern, got.confidence, got.session_id, got.timeframe) == ("NVDA", "Doji", 0.85, SID, "1min")
    assert got.bar == BAR
    assert got.parameters["body_ratio"] == 0.02
    assert got.detected_at == pytest.approx(T, abs=1e-3) and got.bar_closed_at == pytest.approx(T - 0.4, abs=1e-3)


def test_indicator_round_trip():
    calc = IndicatorCalculated("TSLA", "RSI", 72.5, {"value": 72.5}, T, BAR, SID, {"period": 14, "bars_used": 15})
    got = decode_indicator(wire(calc))
    assert (got.symbol, got.indicator, got.value, got.values, got.session_id) == ("TSLA", "RSI", 72.5, {"value": 72.5}, SID)
    assert got.bar_start == BAR.start and got.metadata["period"] == 14


def test_indicator_without_value_takes_values_value():
    payload = {"type": "streaming_indicator", "calculation": {
        "symbol": "TSLA", "indicator": "SMA", "values": {"value": 101.5}, "timestamp": "2025-10-16T14:02:00.150Z"}}
    got = decode_indicator(json.dumps(payload))
    assert got.value == 101.5 and got.bar_start is None and got.session_id is None


def test_indicator_alert_round_trip():
    alert = IndicatorAlertRaised("RSI_OVERBOUGHT", "AAPL", "RSI", 75.2, 70.0, "above", T, SID)
    got = decode_indicator_alert(wire(alert))
    assert (got.alert_type, got.symbol, got.indicator, got.value, got.threshold, got.direction, got.severity,
            got.session_id) == ("RSI_OVERBOUGHT", "AAPL", "RSI", 75.2, 70.0, "above", "warning", SID)


def test_critical_alert_round_trip():
    alert = CriticalAlert("Tick feed stalled for 120 s", "ingress", T, "check the forwarder", session_id=SID)
    got = decode_critical_alert(wire(alert))
    assert (got.severity, got.message, got.component, got.action_required, got.session_id) == (
        "critical", "Tick feed stalled for 120 s", "ingress", "check the forwarder", SID)
    assert got.raised_at == pytest.approx(T, abs=1e-3)


def test_decode_event_routes_by_channel_name():
    assert set(DECODERS) == {"session_started", "session_stopped", "health", "patterns",
                             "patterns_high_confidence", "indicators", "indicator_alerts", "critical_alerts"}
    assert decode_event("patterns_high_confidence", wire(PatternDetected("NVDA", "Hammer", 0.9, T, BAR, SID))).pattern == "Hammer"
    with pytest.raises(KeyError):
        decode_event("ticks", b"{}")


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "malformed_json"),
    (b"\xff\xfe", "malformed_json"),
    (b"[]", "wrong_type"),  # a batch: the consumer drops it
    (b'{"type": "streaming_session_started"}', "missing_field"),  # a flat message, no session object
    (b'{"session": {"session_id": 1, "universe": "u", "started_at": "2025-10-07T13:30:00Z", "symbol_count": 3}}', "wrong_type"),
    (b'{"session": {"session_id": "s", "universe": "u", "started_at": 1728300000, "symbol_count": 3}}', "wrong_type"),
    (b'{"session": {"session_id": "s", "universe": "u", "started_at": "2025-10-07T13:30:00", "symbol_count": 3}}', "wrong_type"),
])
def test_garbage_session_started_is_rejected_with_a_reason(raw, reason):
    with pytest.raises(EventRejected) as info:
        decode_session_started(raw)
    assert info.value.reason == reason


def test_pattern_without_a_bar_timestamp_or_session_is_rejected():
    payload = PatternDetected("NVDA", "Doji", 0.85, T, BAR, SID).to_wire()
    del payload["detection"]["parameters"]["bar_timestamp"]
    with pytest.raises(EventRejected, match="bar_timestamp") as info:
        decode_pattern(json.dumps(payload))
    assert info.value.reason == "missing_field"
    payload = PatternDetected("NVDA", "Doji", 0.85, T, BAR, SID).to_wire()
    payload["detection"]["parameters"]["bar_timestamp"] = "soon"
    with pytest.raises(EventRejected) as info:
        decode_pattern(json.dumps(payload))
    assert info.value.reason == "bad_value"


def test_health_without_any_timestamp_is_rejected():
    payload = health_report().to_wire()
    del payload["health"]["timestamp"], payload["timestamp"]
    with pytest.raises(EventRejected, match="timestamp"):
        decode_health(json.dumps(payload))


def test_heartbeat():
    assert decode_heartbeat(b"1760000000.25") == 1_760_000_000.25
    assert decode_heartbeat("1760000000") == 1_760_000_000.0
    for bad in (b"soon", b"nan", b"inf", b"-5", b"\xff", b""):
        with pytest.raises(EventRejected):
            decode_heartbeat(bad)


@settings(database=None, deadline=None, max_examples=200)
@given(channel=st.sampled_from(sorted(DECODERS)), raw=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_bytes_either_decode_or_are_rejected(channel, raw):
    try:
        decode_event(channel, raw)
    except EventRejected as exc:
        assert exc.reason in EventRejected.REASONS


VALID = {
    "session_started": SessionStarted(SID, "test:tiny", T - 60, 3, T),
    "session_stopped": SessionStopped(SID, T, 60.0, 1, 2, "stopped"),
    "health": health_report(),
    "patterns": PatternDetected("NVDA", "Doji", 0.85, T, BAR, SID, {"x": 1}, (1.0,), T),
    "indicators": IndicatorCalculated("TSLA", "RSI", 72.5, {"value": 72.5}, T, BAR, SID, {"period": 14}),
    "indicator_alerts": IndicatorAlertRaised("RSI_OVERBOUGHT", "AAPL", "RSI", 75.2, 70.0, "above", T, SID),
    "critical_alerts": CriticalAlert("stalled", "ingress", T),
}
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                   st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2025-10-07T13:30:00"]),
                   st.just([]), st.just({}))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))


@settings(database=None, deadline=None, max_examples=300)
@given(channel=st.sampled_from(sorted(VALID)), data=st.data())
def test_a_valid_event_with_any_one_field_replaced_decodes_or_is_rejected(channel, data):
    payload = VALID[channel].to_wire()
    path = data.draw(st.sampled_from([p for p in _paths(payload) if p]))
    target = payload
    for key in path[:-1]:
        target = target[key]
    if data.draw(st.booleans()):
        del target[path[-1]]
    else:
        target[path[-1]] = data.draw(LEAVES)
    try:
        decode_event(channel, json.dumps(payload))
    except EventRejected as exc:
        assert exc.reason in EventRejected.REASONS
