"""End-to-end: ``python -m tickstock.demo --minutes 2`` as a user runs it (servers, seeded past,
service, simulator, monitor, chart), on channels and a database of the test's own, watched from
outside on Redis as the dashboard would: the session goes online, NVDA's Doji, AAPL's RSI_OVERSOLD
and Hammer are published, the session stops cleanly and the chart is written.

Takes 2-3.5 minutes: the shapes start at the first minute boundary after the session is online
(0-60 s), and the Hammer is the second whole minute's bar. Minutes in which the machine is nearly
idle, so the demo is launched when collection ends and runs beside the rest of the suite."""

from __future__ import annotations

import re
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, Watcher, e2e_config
from tests.launched import Launched
from tests.pg import temporary_database
from tickstock.adapters.postgres import migrate
from tickstock.demo import plan

DEADLINE = 300.0  # seconds from the launch


class DemoRun:
    """``python -m tickstock.demo --minutes 2`` on a database, channels and keys of its own, watched
    from the moment it starts; launched ahead of the test (tests/conftest.py: head_start)."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True)
        self._stack = ExitStack()
        try:
            self.database = self._stack.enter_context(temporary_database())
            migrate(self.database)
            self.config, self.cfg = e2e_config(workdir, self.database)
            self.watcher = Watcher(self.cfg["channels"])
            self._stack.callback(self.watcher.close)
            self.out = workdir / "demo"
            self.run = Launched([sys.executable, "-m", "tickstock.demo", "--minutes", "2", "--config", str(self.config),
                                 "--database-url", self.database, "--out", str(self.out)],
                                workdir, DEADLINE, cwd=REPO)
            self._stack.callback(self.run.close)
        except BaseException:
            self._stack.close()
            raise

    def close(self) -> None:
        self._stack.close()


pytestmark = [pytest.mark.e2e, pytest.mark.timeout(330)]


@pytest.mark.head_start(launch=DemoRun)
def test_make_demo_shows_a_doji_a_hammer_and_an_rsi_alert_then_writes_the_chart(head_start: DemoRun) -> None:
    watcher, out = head_start.watcher, head_start.out
    finished = head_start.run.finish()
    code, stdout, stderr, took = finished.code, finished.stdout, finished.stderr, finished.seconds
    logs = {name: (out / name).read_text() if (out / name).exists() else "" for name in ("service.log", "simulate.log")}
    assert code == 0, (stdout[-3000:], stderr, logs)

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
    wrote = re.search(rf"demo: wrote {re.escape(str(chart))}: AAPL, .*?(\d+) bars, (\d+) detections", stdout)
    assert wrote and int(wrote[1]) >= plan.HISTORY_MINUTES + 2 and int(wrote[2]) >= 1, stdout[-500:]
    assert "Hammer" in stdout and "RSI_OVERSOLD" in stdout  # the monitor's last screen
    assert took < DEADLINE
