"""End-to-end: ``python -m tickstock.monitor --once --json`` against a running service, as a late joiner."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import redis

from tests.e2e.harness import REDIS_URL, REPO, Service, Watcher, e2e_config, publish_tick

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
SYMBOLS = ("AAPL", "MSFT", "NVDA")


def monitor(config, wait: float) -> dict:
    done = subprocess.run([sys.executable, "-m", "tickstock.monitor", "--once", "--json", "--config", str(config),
                           "--wait", str(wait)], cwd=REPO, capture_output=True, text=True, timeout=wait + 60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_monitor_reports_the_running_session_its_health_and_symbols_then_idle(tmp_path, database):
    config, cfg = e2e_config(tmp_path, database)
    channels = cfg["channels"]
    watcher = Watcher(channels)
    client = redis.Redis.from_url(REDIS_URL)
    service = Service(config)
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            for symbol in SYMBOLS:
                publish_tick(client, channels["ticks"], symbol, 100.0, 5, time.time())
            time.sleep(0.2)

    feeder = threading.Thread(target=feed, daemon=True)
    try:
        session_id = watcher.wait_for("session_started", timeout=60)["session"]["session_id"]
        feeder.start()
        watcher.wait_for("health", lambda p: p["health"]["active_symbols"] == len(SYMBOLS)
                         and p["health"]["data_flow"]["ticks_per_second"] > 0, timeout=30)

        # Started after session_started: it learns the session from the retained key, and sees a
        # health report within --wait (health every 3 s in this configuration).
        snap = monitor(config, wait=4.0)
        assert snap["status"] == "online" and snap["online"] is True
        assert snap["session"]["session_id"] == session_id
        assert snap["session"]["universe"] == "test:e2e" and snap["session"]["symbol_count"] == len(SYMBOLS)
        assert "retained key" in snap["session"]["source"]
        assert snap["heartbeat"]["producer_alive"] and snap["heartbeat"]["age_seconds"] <= 2 * 2 + 1  # 2 s beats
        health = snap["health"]
        assert health["session_id"] == session_id and health["status"] == "healthy" and health["issues"] == []
        assert health["active_symbols"] == len(SYMBOLS) and health["ticks_per_second"] > 0
        assert health["connection"] == {"redis": "connected", "database": "connected"}
        assert snap["counts"]["health"] >= 1 and snap["rejected"]["total"] == 0
        assert snap["redis"] == {"connected": True, "error": None}
        for key in ("at", "started_at"):
            stamp = snap[key] if key == "at" else snap["session"][key]
            assert stamp.endswith("Z") and stamp[10] == "T"  # ISO-8601 UTC

        stop.set()
        feeder.join(5)
        assert service.terminate(60) == 0
        watcher.wait_for("session_stopped", timeout=10)
        after = monitor(config, wait=0.5)  # the retained key is gone with the session
        assert after["status"] == "idle" and after["session"] is None
        assert after["heartbeat"]["at"] is not None  # the last beat is still there, ageing
    finally:
        stop.set()
        if service.proc.poll() is None:
            service.kill()
        watcher.close()
        client.close()
