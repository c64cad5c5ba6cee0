"""End-to-end: ``python -m tickstock.demo --minutes 2`` as a user runs it (servers, seeded past,
service, simulator, monitor, chart), on channels and a database of the test's own, watched from
outside on Redis as the dashboard would: the session goes online, NVDA's Doji, AAPL's RSI_OVERSOLD
and Hammer are published, the session stops cleanly and the chart is written.

Takes 2-3.5 minutes: the shapes start at the first minute boundary after the session is online
(0-60 s), and the Hammer is the second whole minute's bar."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from tests.e2e.harness import REPO, Watcher, e2e_config
from tickstock.demo import plan

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(330)]


def test_make_demo_shows_a_doji_a_hammer_and_an_rsi_alert_then_writes_the_chart(tmp_path, database) -> None:
    config, cfg = e2e_config(tmp_path, database)  # channels and keys with a prefix of the test's own
    watcher = Watcher(cfg["channels"])
    out = tmp_path / "demo"
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "tickstock.demo", "--minutes", "2", "--config", str(config),
                               "--database-url", database, "--out", str(out)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        took = time.monotonic() - started
        logs = {name: (out / name).read_text() if (out / name).exists() else "" for name in ("service.log", "simulate.log")}
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr, logs)

        session = watcher.wait_for("session_started", timeout=1)["session"]
        assert session["universe"] == plan.UNIVERSE and session["symbol_count"] == len(plan.SYMBOLS)
        patterns = [(p["detection"]["symbol"], p["detection"]["pattern"]) for p in watcher.on("patterns")]
        assert ("NVDA", "Doji") in patterns and ("AAPL", "Hammer") in patterns, patterns
        alerts = [(a["symbol"], a["alert_type"]) for a in watcher.on("indicator_alerts")]
        assert ("AAPL", "RSI_OVERSOLD") in alerts, alerts
        stopped = watcher.wait_for("session_stopped", timeout=1)["session"]
        assert stopped["final_status"] == "stopped" and stopped["session_id"] == session["session_id"]

        chart = out / f"{plan.CHART_SYMBOL}.png"
        data = chart.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        wrote = re.search(rf"demo: wrote {re.escape(str(chart))}: AAPL, .*?(\d+) bars, (\d+) detections", done.stdout)
        assert wrote and int(wrote[1]) >= plan.HISTORY_MINUTES + 2 and int(wrote[2]) >= 1, done.stdout[-500:]
        assert "Hammer" in done.stdout and "RSI_OVERSOLD" in done.stdout  # the monitor's last screen
        assert took < 300
    finally:
        watcher.close()
