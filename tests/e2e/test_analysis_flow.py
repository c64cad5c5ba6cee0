"""End-to-end: a Doji on the session's first bar and an RSI crossing after priming, seen from outside."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import psycopg2
import pytest
import redis
import talib

from tests.e2e.conftest import query
from tests.e2e.harness import REDIS_URL, Service, Watcher, e2e_config, publish_tick, sleep_until
from tests.e2e.test_session_lifecycle import parse_iso

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def insert_history(dsn: str, symbol: str, closes: list[float], end_minute: int) -> None:
    rows = []
    start = end_minute - 60 * len(closes)
    prev = closes[0]
    for i, close in enumerate(closes):
        o = prev
        rows.append((symbol, start + 60 * i, o, max(o, close) + 0.05, min(o, close) - 0.05, close, 100))
        prev = close
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ohlcv_1min(symbol, timestamp, open, high, low, close, volume) "
            "VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s)", rows)
    conn.close()


def test_doji_on_first_bar_and_rsi_crossing_after_priming(tmp_path, database):
    # The session starts mid-minute, so its first bar is known partial; this test feeds that bar
    # every tick after the start and asks for it to be analysed (analyse_partial_bars).
    config, cfg = e2e_config(tmp_path, database, **{"analysis.analyse_partial_bars": True})
    channels = cfg["channels"]
    rng = random.Random(7)
    closes = [100.0]
    for _ in range(199):
        closes.append(round(closes[-1] * (1 + rng.uniform(-0.002, 0.002)), 4))
    history_rsi = talib.RSI(np.array(closes), 14)[-1]
    assert history_rsi < 70
    now = time.time()
    insert_history(database, "MSFT", closes, int(now // 60) * 60 - 60)

    watcher = Watcher(channels)
    client = redis.Redis.from_url(REDIS_URL)
    service = Service(config)
    try:
        watcher.wait_for("session_started", timeout=60)
        assert not watcher.on("patterns") and not watcher.on("indicators")  # priming publishes nothing
        now = time.time()
        boundary = math.ceil(now / 60) * 60
        if boundary - now < 6:
            boundary += 60
        t = max(now, boundary - 60) + 0.2
        # AAPL: open 100, high 101, low 99, close 100 -> a zero body: a Doji on its first bar ever.
        for dt, price in [(0.0, 100.0), (0.1, 101.0), (0.2, 99.0), (0.3, 100.0)]:
            publish_tick(client, channels["ticks"], "AAPL", price, 10, t + dt)
        # MSFT: one strong up-move on the first live bar -> RSI crosses 70.
        live_close = round(closes[-1] * 1.03, 4)
        publish_tick(client, channels["ticks"], "MSFT", closes[-1], 10, t)
        publish_tick(client, channels["ticks"], "MSFT", live_close, 10, t + 0.5)
        sleep_until(boundary + 0.5)

        doji = watcher.wait_for("patterns", lambda p: p["detection"]["symbol"] == "AAPL"
                                and p["detection"]["pattern"] == "Doji", timeout=10)["detection"]
        assert doji["pattern_type"] == "Doji" and 0 <= doji["confidence"] <= 1
        assert doji["parameters"]["bar_timestamp"].startswith(time.strftime("%Y-%m-%dT%H:%M:00", time.gmtime(boundary - 60)))
        assert doji["bar_data"] == {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 40}
        assert doji["metadata"]["session_id"]

        expected_rsi = talib.RSI(np.array(closes + [live_close]), 14)[-1]
        rsi = watcher.wait_for("indicators", lambda p: p["calculation"]["symbol"] == "MSFT"
                               and p["calculation"]["indicator"] == "RSI", timeout=10)["calculation"]
        assert rsi["indicator_type"] == "RSI" and rsi["values"]["value"] == rsi["value"]
        assert rsi["value"] == pytest.approx(expected_rsi, abs=1e-6)
        assert expected_rsi > 70
        alert = watcher.wait_for("indicator_alerts", lambda p: p["symbol"] == "MSFT", timeout=10)
        assert alert["alert_type"] == "RSI_OVERBOUGHT" and alert["data"]["direction"] == "above"
        assert alert["data"]["threshold"] == 70 and alert["data"]["value"] == pytest.approx(expected_rsi, abs=1e-6)
        assert len([a for a in watcher.on("indicator_alerts") if a["symbol"] == "MSFT"]) == 1

        # Bar close to published, from the events' own timestamps (reported, not asserted).
        for name, event in (("Doji", doji), ("RSI", rsi)):
            closed_at = parse_iso(event["metadata"]["bar_closed_at"])
            print(f"{name}: bar closed -> published in {(parse_iso(event['timestamp']) - closed_at) * 1000:.1f} ms")

        assert service.terminate() == 0
        stopped = watcher.wait_for("session_stopped", timeout=10)["session"]
        assert stopped["total_patterns"] >= 1 and stopped["total_indicators"] >= 2
        patterns = query(database, "SELECT pattern_type, confidence, timeframe, pattern_data->>'bar_timestamp' "
                                   "FROM intraday_patterns WHERE symbol = 'AAPL'")
        assert ("Doji",) == patterns[0][:1] and patterns[0][2] == "1min"
        indicators = query(database, "SELECT indicator_type, value, expiration_timestamp > now() "
                                     "FROM intraday_indicators WHERE symbol = 'MSFT' AND indicator_type = 'RSI'")
        assert len(indicators) == 1 and float(indicators[0][1]) == pytest.approx(expected_rsi, abs=1e-6)
        assert indicators[0][2] is True
    finally:
        service.kill()
        watcher.close()
