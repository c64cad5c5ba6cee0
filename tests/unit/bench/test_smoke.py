"""Smoke tests of the benchmark against the real Redis and PostgreSQL: the smallest latency scenario
(20 primed symbols, one whole minute: 70 to 130 s, by where in the minute it starts) and one short
receive-ceiling attempt. They check that the figures exist and add up, never a speed."""

import json
import uuid

import pytest

from tickstock.bench.ceiling import receive_once
from tickstock.bench.report import render, write_json
from tickstock.bench.sandbox import REDIS_URL
from tickstock.bench.scenarios import make_plan, run

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(400)
def test_the_smallest_latency_scenario(tmp_path):
    plan = make_plan("latency", symbols=20, minutes=1, floor_closes=3, ceiling=False, keep_dir=str(tmp_path / "run"))
    result = run(plan, log=lambda text: None)
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
    text = render(result)
    assert "close -> last event of the minute" in text and "ticks sent -> in bars" in text
    write_json(result, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text())["service"]["in_bars"] == svc["sent"]


@pytest.mark.timeout(120)
def test_one_receive_ceiling_attempt():
    symbols = ["AAPL", "MSFT", "T00001"]
    got = receive_once(REDIS_URL, f"bench{uuid.uuid4().hex[:8]}:ceiling:ticks", symbols, rate=5000, seconds=1.0)
    assert got["sent"] == 5000 and got["folded"] == 5000 and got["lost"] == 0 and not got["disconnected"]
    assert got["unheard"] == 0 and got["rate"] > 0
