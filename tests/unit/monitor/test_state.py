"""The monitor's state model (tickstock/monitor/state.py), fed the service's own encoded events."""

from __future__ import annotations

import json

import pytest

from tickstock.messages.bars import Bar
from tickstock.messages.events import (
    CriticalAlert, HealthReport, IndicatorAlertRaised, IndicatorCalculated, PatternDetected, SessionStarted,
    SessionStopped,
)
from tickstock.messages.wire import dumps
from tickstock.monitor.state import (
    PRODUCER_OFFLINE_AFTER_SECONDS, ChannelMessage, ConnectionChanged, KeysRead, MonitorState,
)

T = 1_760_000_000.0
A, B = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"


def started(sid: str = A, at: float = T) -> bytes:
    return dumps(SessionStarted(sid, "test:tiny", at, 3, at).to_wire())


def stopped(sid: str = A, at: float = T + 60, status: str = "stopped") -> bytes:
    return dumps(SessionStopped(sid, at, 60.0, 1, 2, status).to_wire())


def health(status: str = "healthy", at: float = T, tps: float = 12.5, active: int = 3, issues=()) -> bytes:
    return dumps(HealthReport(A, status, active, tps, 4, 40, 3.0, 10.0, 5.0, 100.0, (), 0, "connected",
                              "connected", tuple(issues), at).to_wire())


def bar(symbol: str, start: int, close: float = 100.0) -> Bar:
    return Bar(symbol, start, 100.0, 101.0, 99.0, close, 10, session_id=A)


def pattern(symbol: str = "AAPL", name: str = "Doji", start: int = 1_759_999_980, conf: float = 0.85,
            at: float = T) -> bytes:
    return dumps(PatternDetected(symbol, name, conf, at, bar(symbol, start), A).to_wire())


def indicator(symbol: str = "MSFT", name: str = "RSI", value: float = 55.0, start: int = 1_759_999_980,
              at: float = T) -> bytes:
    return dumps(IndicatorCalculated(symbol, name, value, {"value": value}, at, bar(symbol, start), A,
                                     {"period": 14}).to_wire())


def msg(channel: str, data: bytes, at: float = T) -> ChannelMessage:
    return ChannelMessage(channel, data, at)


def test_starts_idle_with_nothing_known():
    view = MonitorState().view(T)
    assert not view.online and view.status == "idle" and view.session is None
    assert view.heartbeat_age is None and not view.producer_alive and view.health is None
    assert view.idle_reason == "no session seen yet"
    assert json.loads(json.dumps(view.to_json()))["status"] == "idle"


def test_session_started_then_stopped():
    state = MonitorState().fold(msg("session_started", started()))
    view = state.view(T + 1)
    assert view.online and view.session.session_id == A and view.session.symbol_count == 3
    assert view.session_source == "event"
    assert view.to_json()["session"]["started_at"] == "2025-10-09T08:53:20.000Z"
    state.fold(msg("session_stopped", stopped(status="completed"), T + 60))
    view = state.view(T + 61)
    assert not view.online and view.last_stop.final_status == "completed"
    assert view.idle_reason == f"session {A} stopped (completed)"


def test_late_joiner_learns_the_session_from_the_retained_key():
    state = MonitorState().fold(KeysRead(str(T).encode(), started(), T + 2))
    view = state.view(T + 2)
    assert view.online and view.session.session_id == A and view.session_source == "retained key"
    state.fold(msg("session_started", started(at=T), T + 3))
    assert state.view(T + 3).session_source == "event + retained key"


def test_a_reannouncement_or_lingering_key_after_the_stop_does_not_bring_the_session_back():
    state = MonitorState()
    state.fold(msg("session_started", started()))
    state.fold(msg("session_stopped", stopped(), T + 60))
    state.fold(msg("session_started", started(), T + 60.1))  # a re-announcement that was in flight
    state.fold(KeysRead(None, started(), T + 60.2))  # ClearSession not yet applied
    assert not state.view(T + 61).online


def test_a_stop_of_an_older_session_does_not_end_the_current_one():
    state = MonitorState()
    state.fold(msg("session_started", started(B, T + 100), T + 100))
    state.fold(msg("session_stopped", stopped(A, T + 90), T + 101))
    view = state.view(T + 102)
    assert view.online and view.session.session_id == B and view.last_stop is None


def test_a_new_session_replaces_the_current_one():
    state = MonitorState()
    state.fold(KeysRead(None, started(A), T))
    state.fold(msg("session_started", started(B, T + 300), T + 300))
    view = state.view(T + 300)
    assert view.session.session_id == B and view.session_source == "event"


def test_absent_key_makes_idle_only_after_the_grace():
    state = MonitorState(key_grace_seconds=5)
    state.fold(msg("session_started", started(), T))
    state.fold(KeysRead(str(T).encode(), None, T + 1))  # the key is written by another actor: not yet there
    assert state.view(T + 1).online
    state.fold(KeysRead(str(T).encode(), started(), T + 3))  # there now: confirmed
    state.fold(KeysRead(str(T).encode(), None, T + 7))  # 4 s after the last confirmation
    assert state.view(T + 7).online
    state.fold(KeysRead(str(T).encode(), None, T + 8.5))  # 5.5 s: the producer died, the key expired
    view = state.view(T + 8.5)
    assert not view.online and "retained key is gone" in view.idle_reason


def test_heartbeat_age_and_producer_alive():
    state = MonitorState().fold(KeysRead(str(T).encode(), None, T))
    view = state.view(T + 4.25)
    assert view.heartbeat_age == pytest.approx(4.25) and view.producer_alive
    assert view.to_json()["heartbeat"] == {"at": "2025-10-09T08:53:20.000Z", "age_seconds": 4.25,
                                           "producer_alive": True}
    assert not state.view(T + PRODUCER_OFFLINE_AFTER_SECONDS + 0.1).producer_alive
    assert state.view(T - 1).heartbeat_age == 0.0  # a clock slightly behind the producer's: never negative
    state.fold(KeysRead(str(T + 10).encode(), None, T + 10))
    assert state.view(T + 11).heartbeat_age == pytest.approx(1.0)


def test_health_latest_by_its_own_timestamp():
    state = MonitorState()
    state.fold(msg("health", health("warning", T + 10, issues=["feed silent for 31 s"])))
    state.fold(msg("health", health("healthy", T), T + 11))  # older, arrived late
    h = state.view(T + 12).health
    assert h.status == "warning" and h.issues == ("feed silent for 31 s",)
    state.fold(msg("health", health("healthy", T + 20, tps=18.2, active=60)))
    out = state.view(T + 21).to_json()["health"]
    assert (out["status"], out["ticks_per_second"], out["active_symbols"], out["issues"]) == ("healthy", 18.2, 60, [])
    assert out["known_status"] is True


def test_detections_newest_first_bounded_and_deduplicated_across_channels():
    state = MonitorState(max_detections=3)
    for i, start in enumerate([60, 180, 120, 240]):
        state.fold(msg("patterns", pattern("AAPL", "Doji", 1_759_999_980 + start), T + i))
    state.fold(msg("patterns_high_confidence", pattern("AAPL", "Doji", 1_759_999_980 + 180), T + 5))
    view = state.view(T + 6)
    assert [d.pattern.bar.start - 1_759_999_980 for d in view.detections] == [240, 180, 120]
    assert [d.high_confidence for d in view.detections] == [False, True, False]
    assert view.counts == {"patterns": 4, "patterns_high_confidence": 1}
    first = view.to_json()["detections"][0]
    assert first["pattern"] == "Doji" and first["symbol"] == "AAPL" and first["bar_timestamp"].endswith("Z")


def test_a_high_confidence_copy_arriving_first_is_one_entry():
    state = MonitorState()
    state.fold(msg("patterns_high_confidence", pattern(conf=0.9)))
    state.fold(msg("patterns", pattern(conf=0.9)))
    assert [d.high_confidence for d in state.view(T).detections] == [True]


def test_latest_indicator_value_per_symbol_and_indicator():
    state = MonitorState()
    state.fold(msg("indicators", indicator("MSFT", "RSI", 55.0, 1_760_000_040)))
    state.fold(msg("indicators", indicator("MSFT", "RSI", 40.0, 1_759_999_980)))  # an older bar, late
    state.fold(msg("indicators", indicator("MSFT", "SMA", 101.5, 1_760_000_040)))
    state.fold(msg("indicators", indicator("AAPL", "RSI", 71.0, 1_760_000_040)))
    view = state.view(T)
    assert [(i.symbol, i.indicator, i.value) for i in view.indicators] == [
        ("AAPL", "RSI", 71.0), ("MSFT", "RSI", 55.0), ("MSFT", "SMA", 101.5)]
    assert view.symbols == ("AAPL", "MSFT")
    state.fold(msg("indicators", indicator("MSFT", "RSI", 62.0, 1_760_000_100)))
    assert state.view(T).to_json()["indicators"][1]["value"] == 62.0


def with_timeframe(raw: bytes, timeframe: str) -> bytes:
    payload = json.loads(raw)
    body = payload.get("calculation") or payload.get("detection")
    if body is not None:
        body["timeframe"] = timeframe
    else:
        payload["data"]["timeframe"] = timeframe
    return json.dumps(payload).encode()


def test_timeframes_are_kept_apart():
    state = MonitorState()
    state.fold(msg("indicators", indicator("MSFT", "RSI", 55.0, 1_760_000_040)))
    state.fold(msg("indicators", with_timeframe(indicator("MSFT", "RSI", 61.0, 1_759_999_800), "5min")))
    state.fold(msg("patterns", pattern("AAPL", "Doji", 1_759_999_800)))
    state.fold(msg("patterns", with_timeframe(pattern("AAPL", "Doji", 1_759_999_800), "5min")))
    state.fold(msg("indicator_alerts", with_timeframe(dumps(IndicatorAlertRaised(
        "RSI_OVERSOLD", "MSFT", "RSI", 25.0, 30.0, "below", T, A).to_wire()), "15min")))
    out = state.view(T).to_json()
    assert [(i["indicator"], i["timeframe"], i["value"]) for i in out["indicators"]] == [
        ("RSI", "1min", 55.0), ("RSI", "5min", 61.0)]
    assert sorted(d["timeframe"] for d in out["detections"]) == ["1min", "5min"]
    assert out["alerts"][0]["timeframe"] == "15min"


def test_alerts_and_critical_alerts_newest_first_bounded():
    state = MonitorState(max_alerts=2)
    for i, symbol in enumerate(["AAPL", "MSFT", "NVDA"]):
        state.fold(msg("indicator_alerts", dumps(IndicatorAlertRaised(
            "RSI_OVERBOUGHT", symbol, "RSI", 75.0 + i, 70.0, "above", T + i, A).to_wire())))
    state.fold(msg("critical_alerts", dumps(CriticalAlert("Tick feed stalled for 120 s", "ingress", T).to_wire())))
    state.fold(msg("critical_alerts", dumps(CriticalAlert("feed back", "ingress", T + 5, severity="info").to_wire())))
    view = state.view(T + 6)
    assert [a.symbol for a in view.alerts] == ["NVDA", "MSFT"]
    assert [(a.severity, a.message) for a in view.critical_alerts] == [
        ("info", "feed back"), ("critical", "Tick feed stalled for 120 s")]
    assert view.to_json()["alerts"][0] == {"alert_type": "RSI_OVERBOUGHT", "symbol": "NVDA", "indicator": "RSI",
                                           "value": 77.0, "threshold": 70.0, "direction": "above",
                                           "severity": "warning", "timeframe": "1min",
                                           "at": "2025-10-09T08:53:22.000Z"}


def test_garbage_is_ignored_and_counted():
    state = MonitorState()
    state.fold(msg("session_started", started()))
    state.fold(msg("health", health()))
    before = state.view(T).to_json()
    state.fold(msg("session_stopped", b"not json"))
    state.fold(msg("health", b'[{"health": {}}]'))  # a batch
    state.fold(msg("patterns", b'{"type": "streaming_pattern"}'))
    state.fold(KeysRead(b"soon", b"{}", T + 1))
    after = state.view(T).to_json()
    assert after["rejected"]["total"] == 5
    assert after["rejected"]["by_source"] == {"session_stopped": 1, "health": 1, "patterns": 1,
                                              "heartbeat_key": 1, "session_key": 1}
    assert after["rejected"]["last"].startswith("session_key: missing_field")
    for key in ("status", "session", "health", "detections", "heartbeat", "counts"):
        assert after[key] == before[key]


def test_connection_changes_are_shown():
    state = MonitorState().fold(ConnectionChanged(False, T, "Connection refused"))
    assert state.view(T).to_json()["redis"] == {"connected": False, "error": "Connection refused"}
    assert state.fold(ConnectionChanged(True, T + 1)).view(T + 1).redis_connected


def test_view_is_a_snapshot():
    state = MonitorState()
    view = state.view(T)
    state.fold(msg("session_started", started()))
    state.fold(msg("patterns", pattern()))
    assert not view.online and view.detections == () and state.view(T).online


def test_bad_arguments_and_messages():
    with pytest.raises(ValueError):
        MonitorState(max_detections=0)
    with pytest.raises(ValueError):
        MonitorState(key_grace_seconds=float("nan"))
    with pytest.raises(TypeError):
        MonitorState().fold("session_started")  # type: ignore[arg-type]
