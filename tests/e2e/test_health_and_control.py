"""End-to-end: health tells the truth about a dying feed, and operators control sessions over HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import query
from tests.e2e.harness import REDIS_URL, Service, Watcher, e2e_config, publish_tick

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _statuses(watcher: Watcher, session_id: str) -> list[str]:
    return [p["health"]["status"] for p in watcher.on("health") if p["health"]["session_id"] == session_id]


def test_feed_that_stops_goes_warning_then_critical_and_recovers(tmp_path, database):
    config, cfg = e2e_config(tmp_path, database, **{
        "health.feed_silent_warning_seconds": 3, "health.feed_silent_critical_seconds": 7,
        "session.health_interval_seconds": 2})
    channels = cfg["channels"]
    watcher = Watcher(channels)
    client = redis.Redis.from_url(REDIS_URL)
    service = Service(config)
    feeding = threading.Event()
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            if feeding.is_set():
                for symbol in ("AAPL", "MSFT"):
                    publish_tick(client, channels["ticks"], symbol, 100.0, 5, time.time())
            time.sleep(0.2)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        session_id = watcher.wait_for("session_started", timeout=60)["session"]["session_id"]
        feeding.set()
        live = watcher.wait_for("health", lambda p: p["health"]["status"] == "healthy"
                                and p["health"]["data_flow"]["ticks_per_second"] > 0, timeout=20)["health"]
        assert live["active_symbols"] == 2  # live values while ticks flow, never placeholder zeros
        assert live["ticks_per_second"] == live["data_flow"]["ticks_per_second"]
        assert live["connection"] == {"redis": "connected", "database": "connected"}

        feeding.clear()  # the feed dies
        warning = watcher.wait_for("health", lambda p: p["health"]["status"] == "warning", timeout=20)["health"]
        assert any("silent" in issue for issue in warning["issues"])
        critical = watcher.wait_for("health", lambda p: p["health"]["status"] == "critical", timeout=20)["health"]
        assert any("silent" in issue for issue in critical["issues"])
        alert = watcher.wait_for("critical_alerts", lambda p: p["severity"] == "critical", timeout=5)
        assert "silent" in alert["message"] and alert["data"]["component"] == "health"
        statuses = _statuses(watcher, session_id)
        assert statuses.index("warning") < statuses.index("critical")

        feeding.set()  # ticks return
        watcher.wait_for("health", lambda p: p["health"]["status"] == "healthy"
                         and p["timestamp"] > critical["timestamp"], timeout=20)
        recovered = watcher.wait_for("critical_alerts", lambda p: p["severity"] == "info", timeout=5)
        assert "recovered" in recovered["message"]
        assert len([a for a in watcher.on("critical_alerts") if a["severity"] == "critical"]) == 1
        stop.set()
        assert service.terminate() == 0
        rows = query(database, "SELECT status FROM streaming_health_metrics WHERE session_id = %s ORDER BY recorded_at",
                     session_id)
        assert {"healthy", "warning", "critical"} <= {r[0] for r in rows}
    finally:
        stop.set()
        service.kill()
        watcher.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(method: str, url: str, token: str | None = None) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as err:
        body, status = err.read().decode(), err.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def test_manual_control_metrics_and_probes_over_http(tmp_path, database):
    port = _free_port()
    config, cfg = e2e_config(tmp_path, database, **{"http.enabled": True, "http.port": port})
    watcher = Watcher(cfg["channels"])
    token = "e2e-secret"
    service = Service(config, extra_env={"TICKSTOCK_ADMIN_TOKEN": token}, args=())  # no --now: idle
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if _call("GET", f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert _call("GET", f"{base}/readyz")[0] == 503  # alive, but no session
        assert _call("POST", f"{base}/api/admin/streaming/start")[0] == 401
        assert _call("POST", f"{base}/api/admin/streaming/start", "wrong")[0] == 403
        assert not watcher.on("session_started")

        status, body = _call("POST", f"{base}/api/admin/streaming/start", token)
        assert status == 201 and body["started"] is True
        session_id = watcher.wait_for("session_started", timeout=30)["session"]["session_id"]
        status, body = _call("POST", f"{base}/api/admin/streaming/start", token)
        assert status == 409 and body["status"]["session"]["session_id"] == session_id
        time.sleep(2.5)  # a few health checks feed the metrics
        assert _call("GET", f"{base}/readyz")[0] == 200
        status, text = _call("GET", f"{base}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        states = {s.labels["state"]: s.value for s in families["tickstock_session_state"].samples}
        assert states["running"] == 1
        assert "tickstock_ticks_received" in families and "tickstock_publish_latency_seconds" in families

        status, body = _call("POST", f"{base}/api/admin/streaming/stop", token)
        assert status == 200 and body["final_status"] == "stopped" and body["session_id"] == session_id
        stopped = watcher.wait_for("session_stopped", timeout=10)["session"]
        assert stopped["final_status"] == "stopped"
        assert _call("POST", f"{base}/api/admin/streaming/stop", token)[0] == 409
        assert _call("GET", f"{base}/readyz")[0] == 503
        assert service.terminate() == 0
        assert len(watcher.on("session_stopped")) == 1
    finally:
        service.kill()
        watcher.close()
