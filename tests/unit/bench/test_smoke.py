"""Smoke tests of the benchmark against the real Redis and PostgreSQL: the smallest latency scenario
(20 primed symbols, one whole minute: 70 to 130 s, by where in the minute it starts; run as a user
runs it, ``python -m tickstock.bench``, launched when collection ends so its idle minute passes
beside the rest of the suite: tests/conftest.py), the smallest day replay in event time (5 primed
symbols, 12 event minutes at 120x: ~20 s) and one short receive-ceiling attempt. They check that the
figures exist and add up, never a speed."""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.launched import Launched
from tests.pg import query
from tickstock.adapters.redis.keys import keys_with_prefix
from tickstock.bench.ceiling import receive_once
from tickstock.bench.report import render
from tickstock.bench.sandbox import ADMIN_DSN, REDIS_URL
from tickstock.bench.scenarios import make_plan, run

pytestmark = pytest.mark.e2e


LATENCY_ARGS = ["--scenario", "latency", "--symbols", "20", "--minutes", "1", "--floor-closes", "3", "--no-ceiling"]
LATENCY_DEADLINE = 390.0  # seconds from the launch


def launch_latency(workdir: Path) -> Launched:
    """``python -m tickstock.bench`` (the smallest latency scenario), launched ahead of its test."""
    workdir.mkdir(parents=True)
    return Launched([sys.executable, "-m", "tickstock.bench", *LATENCY_ARGS, "--keep-dir", str(workdir / "run"),
                     "--json", str(workdir / "out.json")], workdir, LATENCY_DEADLINE)


@pytest.mark.timeout(400)
@pytest.mark.head_start(launch=launch_latency)
def test_the_smallest_latency_scenario(head_start: Launched):
    finished = head_start.finish()
    code, text, log = finished.code, finished.stdout, finished.stderr
    assert code == 0, log[-3000:]
    out = head_start.workdir / "out.json"
    result = json.loads(out.read_text())
    svc = result["service"]
    assert svc["exit_code"] == 0
    assert svc["sent"] > 20 * 60 and svc["in_bars"] == svc["sent"]          # nothing lost
    assert 0 < svc["startup_seconds"] < 60
    assert svc["latency_ms"]["last_per_minute_summary"]["n"] == 1           # one whole minute
    assert svc["events"] >= 40                                               # RSI + SMA per symbol, primed
    assert svc["latency_ms"]["from_deadline"]["p50"] > 0
    assert svc["bars_in_db_s"]["n"] == 1 and svc["bars_in_db_s"]["p50"] >= result["settings"]["grace"]
    assert svc["rss"]["max"] > 0 and svc["cpu_share"] is not None
    assert svc["metrics"]["tickstock_ticks_received_total"] == svc["sent"]
    assert result["floor"]["per_close_ms"]["n"] == 3 and result["floor"]["events_per_close"] > 0
    assert result["settings"]["command"] == "python -m tickstock.bench " + " ".join(
        [*LATENCY_ARGS, "--keep-dir", str(out.parent / "run"), "--json", str(out)])
    assert "close -> last event of the minute" in text and "ticks sent -> in bars" in text
    assert text == render(result) + "\n"  # the table printed is the JSON's
    assert keys_with_prefix(REDIS_URL, run_prefix(head_start.workdir / "run")) == []  # the heartbeat key included


def run_prefix(run_dir: Path) -> str:
    """The run's key prefix, from the configuration it kept (every key carries it)."""
    heartbeat = yaml.safe_load((run_dir / "config.yaml").read_text())["keys"]["heartbeat"]
    return heartbeat[:heartbeat.index(":") + 1]


@pytest.mark.timeout(180)
def test_a_sigterm_stops_the_service_and_drops_what_the_run_made(tmp_path):
    """A benchmark killed by SIGTERM (a CI timeout, a kill) unwinds as on an error: its service is
    stopped, its database dropped, its keys deleted; nothing keeps running on the shared servers."""
    run_dir = tmp_path / "run"
    bench = subprocess.Popen([sys.executable, "-m", "tickstock.bench", "--scenario", "latency", "--symbols", "5",
                              "--minutes", "3", "--no-floor", "--no-ceiling", "--keep-dir", str(run_dir)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        service_pid = None
        for line in bench.stderr:  # "[hh:mm:ss] service: pid N, ..." once the service runs
            if "session started" in line:
                break
            if "service: pid" in line:
                service_pid = int(line.split("service: pid ")[1].split(",")[0])
        assert service_pid is not None, "the service never started"
        prefix = run_prefix(run_dir)
        database = yaml.safe_load((run_dir / "config.yaml").read_text())["database"]["url"].rsplit("/", 1)[1]
        assert keys_with_prefix(REDIS_URL, prefix), "the running service has written its heartbeat"
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(120) == 128 + signal.SIGTERM
    finally:
        if bench.poll() is None:
            bench.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(service_pid, 0)  # stopped and reaped by the bench
    assert keys_with_prefix(REDIS_URL, prefix) == []
    assert query(ADMIN_DSN, "SELECT 1 FROM pg_database WHERE datname = %s", database) == []


@pytest.mark.timeout(120)
def test_the_smallest_day_replay_in_event_time(tmp_path):
    plan = make_plan("day", symbols=5, minutes=12, speed=120, rate=100, prime=True, prime_bars=50, floor=False,
                     ceiling=False, keep_dir=str(tmp_path / "run"))
    result = run(plan, log=lambda text: None)
    svc, day = result["service"], result["service"]["day"]
    assert svc["exit_code"] == 0
    assert "clock: event" in (tmp_path / "run" / "config.yaml").read_text()
    assert svc["sent"] == svc["in_bars"] == svc["metrics"]["tickstock_ticks_received_total"]  # nothing lost
    assert svc["rows"] == day["bars_expected"] == 5 * 12 == svc["metrics"]["tickstock_bars_closed_total"]
    assert svc["metrics"]["tickstock_ticks_late_total"] == 0                     # sent in time order
    assert day["first_stamp"] == plan.day_open and plan.day_open + 11 * 60 < day["last_stamp"] < plan.day_open + 720
    lat = svc["latency_ms"]
    assert lat["last_per_minute_summary"]["n"] == 11 and lat["closed_early"] == 0  # all but the last minute
    assert 0 < lat["from_deadline"]["p50"] and lat["from_deadline"]["max"] < 10_000  # mapped to the wall clock
    assert svc["events"] >= 11 * 5 and day["last_minute"]["events"] >= 5           # primed: analysed at once
    assert day["last_minute"]["closed_after_last_batch_s"] >= 5.0 - 0.1             # the feed's silence
    assert svc["bars_in_db_s"]["n"] == 11 and svc["rss"]["first_period"] > 0
    text = render(result)
    assert "12 event minutes of 2025-03-12 replayed at speed 120" in text and "late == 0" in text


@pytest.mark.timeout(120)
def test_one_receive_ceiling_attempt():
    symbols = ["AAPL", "MSFT", "T00001"]
    got = receive_once(REDIS_URL, f"bench{uuid.uuid4().hex[:8]}:ceiling:ticks", symbols, rate=5000, seconds=1.0)
    assert got["sent"] == 5000 and got["folded"] == 5000 and got["lost"] == 0 and not got["disconnected"]
    assert got["unheard"] == 0 and got["rate"] > 0
