"""End-to-end: the service as a subprocess, watched from Redis and PostgreSQL like the dashboard."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import pytest
import redis

from tests.e2e.conftest import query
from tests.e2e.harness import REDIS_URL, Service, Watcher, e2e_config, publish_tick, sleep_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ISO_Z = "%Y-%m-%dT%H:%M:%S.%fZ"


def parse_iso(text: str) -> float:
    return datetime.strptime(text, ISO_Z).replace(tzinfo=timezone.utc).timestamp()


def test_session_ticks_to_bars_and_clean_stop(tmp_path, database):
    config, cfg = e2e_config(tmp_path, database)
    channels, keys = cfg["channels"], cfg["keys"]
    # A dashboard reads the retained key when it hears the session start or end.
    watcher = Watcher(channels, read_on_hearing={"session_started": keys["session"],
                                                 "session_stopped": keys["session"]})
    client = redis.Redis.from_url(REDIS_URL)
    service = Service(config)
    try:
        started = watcher.wait_for("session_started", timeout=60)
        # Exact schema of session_started.
        assert started["type"] == "streaming_session_started"
        session = started["session"]
        assert set(session) == {"session_id", "universe", "started_at", "symbol_count", "status"}
        assert session["universe"] == "test:e2e" and session["symbol_count"] == 3 and session["status"] == "active"
        parse_iso(session["started_at"]), parse_iso(started["timestamp"])
        session_id = session["session_id"]

        # Heartbeat and the retained session key are there for late joiners.
        assert abs(float(client.get(keys["heartbeat"])) - time.time()) < 15
        heard = watcher.read_when_heard("session_started")  # read the moment each was heard
        assert heard and all(value is not None and session_id.encode() in value for value in heard)
        retained = client.get(keys["session"])
        assert retained is not None and session_id.encode() in retained
        assert client.pttl(keys["session"]) > 0

        # Ticks across a real minute boundary: minute M gets four AAPL ticks, published out of order.
        now = time.time()
        boundary = math.ceil(now / 60) * 60
        if boundary - now < 6:
            boundary += 60
        m = boundary - 60
        base = max(now, m) + 0.5
        ticks = [(base + 0.3, 101.0, 10), (base, 100.0, 5), (base + 0.2, 99.0, 7), (base + 0.1, 103.0, 1)]
        for ts, price, volume in ticks:
            publish_tick(client, channels["ticks"], "AAPL", price, volume, ts)
        publish_tick(client, channels["ticks"], "NOPE", 1.0, 1, base)           # outside the universe
        client.publish(channels["ticks"], b"{not json")                        # malformed
        # A tick of minute M+1, then no more: M must close by the clock alone.
        sleep_until(boundary + 0.1)
        publish_tick(client, channels["ticks"], "AAPL", 104.0, 2, boundary + 0.05)
        sleep_until(boundary + 0.5 + 2.0)

        rows = query(database, "SELECT open, high, low, close, volume FROM ohlcv_1min WHERE symbol='AAPL' AND timestamp = to_timestamp(%s)", m)
        assert [tuple(float(v) for v in r) for r in rows] == [(100.0, 103.0, 99.0, 101.0, 23.0)]

        # Health is computed from the children's reports (at most report_interval old): the first
        # report may predate the ticks, but a live value follows within one health interval.
        health = watcher.wait_for("health", lambda p: p["health"]["session_id"] == session_id
                                  and p["health"]["active_symbols"] >= 1, timeout=15)
        assert health["health"]["status"] in ("healthy", "warning", "critical")
        assert {"ticks_per_second", "bars_per_minute", "processing_lag_ms"} <= set(health["health"]["data_flow"])

        # SIGTERM: a clean stop with the session's last (forming) bar persisted.
        assert service.terminate() == 0
        stopped = watcher.wait_for("session_stopped", timeout=10)
        assert stopped["type"] == "streaming_session_stopped"
        s = stopped["session"]
        assert s["session_id"] == session_id and s["final_status"] == "stopped"
        assert s["duration_seconds"] > 0
        assert isinstance(s["total_patterns"], int) and isinstance(s["total_indicators"], int)
        assert len(watcher.on("session_stopped")) == 1
        assert watcher.read_when_heard("session_stopped") == [None]  # deleted before the end was said
        assert client.get(keys["session"]) is None
        last = query(database, "SELECT open, close, volume FROM ohlcv_1min WHERE symbol='AAPL' AND timestamp = to_timestamp(%s)", boundary)
        assert [tuple(float(v) for v in r) for r in last] == [(104.0, 104.0, 2.0)]
        row = query(database, "SELECT final_status, symbol_count, stopped_at IS NOT NULL FROM streaming_sessions WHERE session_id = %s", session_id)
        assert row == [("stopped", 3, True)]
        assert "rejected tick (malformed_json" in service.log()  # counted, logged, skipped
    finally:
        service.kill()
        watcher.close()


def test_injected_child_fault_still_ends_with_session_stopped(tmp_path, database):
    config, cfg = e2e_config(tmp_path, database, **{"supervision.max_restarts": 1, "supervision.within_seconds": 120})
    channels = cfg["channels"]
    watcher = Watcher(channels)
    client = redis.Redis.from_url(REDIS_URL)
    service = Service(config, extra_env={"TICKSTOCK_INJECT_FAULT": "ingress:receive"})
    try:
        started = watcher.wait_for("session_started", timeout=60)
        session_id = started["session"]["session_id"]
        # Every read of ticks now crashes the ingress: one restart is allowed, the second failure ends it.
        deadline = time.time() + 30
        while time.time() < deadline and not watcher.on("session_stopped"):
            publish_tick(client, channels["ticks"], "AAPL", 100.0, 1, time.time())
            time.sleep(0.3)
        stopped = watcher.wait_for("session_stopped", timeout=5)
        assert stopped["session"]["session_id"] == session_id
        assert stopped["session"]["final_status"] == "failed"
        alert = watcher.wait_for("critical_alerts", timeout=5)
        assert alert["type"] == "critical_alert" and alert["severity"] == "critical"
        assert "ingress" in alert["message"]
        assert service.terminate() == 0
        assert len(watcher.on("session_stopped")) == 1
        row = query(database, "SELECT final_status FROM streaming_sessions WHERE session_id = %s", session_id)
        assert row == [("failed",)]
    finally:
        service.kill()
        watcher.close()
