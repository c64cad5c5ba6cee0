"""The rich renderer shows every part of the view, times in ISO-8601 UTC."""

from __future__ import annotations

from rich.console import Console

from tests.unit.monitor.test_state import A, T, health, indicator, msg, pattern, started, stopped
from tickstock.messages.events import CriticalAlert, IndicatorAlertRaised
from tickstock.messages.wire import dumps
from tickstock.monitor.render import render
from tickstock.monitor.state import KeysRead, MonitorState


def text_of(renderable) -> str:
    console = Console(record=True, width=220, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_online_view_shows_session_heartbeat_health_detections_indicators_alerts():
    state = MonitorState()
    state.fold(KeysRead(str(T).encode(), started(), T))
    state.fold(msg("health", health("warning", T, tps=18.25, active=3, issues=["feed silent for 31 s"])))
    state.fold(msg("patterns", pattern("AAPL", "Hammer", conf=0.9)))
    state.fold(msg("patterns_high_confidence", pattern("AAPL", "Hammer", conf=0.9)))
    state.fold(msg("indicators", indicator("MSFT", "RSI", 71.5)))
    state.fold(msg("indicator_alerts", dumps(IndicatorAlertRaised(
        "RSI_OVERBOUGHT", "MSFT", "RSI", 71.5, 70.0, "above", T, A).to_wire())))
    state.fold(msg("critical_alerts", dumps(CriticalAlert("Tick feed stalled for 120 s", "ingress", T).to_wire())))
    state.fold(msg("health", b"garbage"))
    out = text_of(render(state.view(T + 2.5), "redis://127.0.0.1:6379/0"))
    assert "ONLINE" in out and A in out and "test:tiny" in out and "3 symbols" in out
    assert "heartbeat 2.5 s ago (2025-10-09T08:53:20.000Z)" in out
    assert "WARNING" in out and "ticks/s 18.25" in out and "active symbols 3" in out
    assert "- feed silent for 31 s" in out
    assert "Hammer" in out and "90% ★" in out and "2025-10-09T08:53:00.000Z" in out  # the bar, in UTC
    assert "RSI 14" in out and "71.5000" in out
    assert "RSI_OVERBOUGHT" in out and "Tick feed stalled for 120 s" in out
    assert "rejected: 1" in out


def test_idle_view_says_why_and_flags_a_dead_producer():
    state = MonitorState()
    state.fold(KeysRead(str(T).encode(), None, T))
    state.fold(msg("session_started", started(), T))
    state.fold(msg("session_stopped", stopped(status="failed"), T + 60))
    out = text_of(render(state.view(T + 45), "redis://x"))
    assert "IDLE" in out and "ONLINE" not in out
    assert f"session {A} stopped (failed)" in out
    assert "producer offline" in out and "no health report seen yet" in out
