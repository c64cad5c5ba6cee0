"""End-to-end: definitions on 5, 15 and 60 minutes, a trading day replayed in event time, and what the
service publishes and stores for those timeframes against bars built by the test from the ticks
directly (grouped by interval; 60-minute intervals from the 9:30 open, the last one 15:30-16:00).

The test's own database gets two rows the dashboard's operators could add: ``sma`` (SMA period 3) on
5min/15min/60min and ``doji`` on 5min. The reference runs the same definitions through
``AnalysisPipeline`` over its own bars; values must be identical, row for row and event for event.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timezone

import psycopg2
import pytest
import redis

from tests.e2e.conftest import query
from tests.e2e.harness import REDIS_URL, Service, Watcher, e2e_config, write_config
from tickstock.actors.plan import load_definitions
from tickstock.actors.wiring import store_for
from tickstock.analysis import AnalysisPipeline
from tickstock.config import load_settings
from tickstock.messages.bars import Bar
from tickstock.messages.ticks import encode_tick
from tickstock.messages.wire import iso_utc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

OPEN = int(datetime(2025, 3, 12, 13, 30, tzinfo=timezone.utc).timestamp())  # 09:30 EDT, a Wednesday
CLOSE = OPEN + 390 * 60                                                     # 16:00 EDT
SYMBOLS = ("AAPL", "MSFT")
HIGHER = ("5min", "15min", "60min")


def generate_day(seed: int = 7) -> list[tuple[str, float, int, float]]:
    """2-6 ticks per symbol per minute (a price walk in cents), every 10th 5-minute bar of AAPL a
    Doji (opens and closes at one price after a wide swing), time-ordered."""
    rng = random.Random(seed)
    ticks = []
    price = {s: 100.0 + 50 * k for k, s in enumerate(SYMBOLS)}
    for minute in range(390):
        start = OPEN + 60 * minute
        for symbol in SYMBOLS:
            p = price[symbol]
            if symbol == "AAPL" and minute % 50 in range(0, 5):  # a 5-minute Doji
                path = {0: [(0.5, p)], 1: [(30.0, p + 0.9)], 2: [(30.0, p - 0.9)], 3: [(30.0, p + 0.01)],
                        4: [(59.0, p)]}[minute % 5]
            else:
                path = []
                for offset in sorted(rng.uniform(0.5, 59.5) for _ in range(rng.randint(2, 6))):
                    p = round(max(1.0, p + rng.choice((-3, -1, 0, 1, 3)) * 0.01), 2)
                    path.append((offset, p))
                price[symbol] = p
            ticks += [(symbol, round(px, 2), rng.randint(1, 50) * 10, start + offset) for offset, px in path]
    ticks.sort(key=lambda t: t[3])
    return ticks


def execute(dsn: str, sql: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def interval(ts: float, timeframe: str) -> int:
    if timeframe == "60min":
        return OPEN + int(ts - OPEN) // 3600 * 3600
    n = {"1min": 60, "5min": 300, "15min": 900}[timeframe]
    return int(ts // n * n)


def reference(ticks, definitions, timeframes=HIGHER) -> tuple[list[tuple], list[tuple]]:
    """(indicators, patterns) on ``timeframes``, from bars grouped straight from the ticks."""
    indicators, patterns = [], []
    for tf in timeframes:
        for symbol in SYMBOLS:
            groups: dict[int, list] = {}
            for s, px, vol, ts in ticks:
                if s == symbol:
                    groups.setdefault(interval(ts, tf), []).append((ts, px, vol))
            pipeline = AnalysisPipeline(definitions.for_timeframe(tf), symbol=symbol)
            for start in sorted(groups):
                g = sorted(groups[start])
                bar = Bar(symbol, start, g[0][1], max(x[1] for x in g), min(x[1] for x in g), g[-1][1],
                          sum(x[2] for x in g), len(g))
                out = pipeline.on_bar(bar)
                assert not out.errors
                indicators += [(symbol, tf, i.name, iso_utc(start), i.value) for i in out.indicators]
                patterns += [(symbol, tf, p.name, iso_utc(start)) for p in out.patterns]
    return sorted(indicators), sorted(patterns)


def replay(config, cfg: dict, ticks, until, extra_env: dict[str, str] | None = None) -> tuple[Service, Watcher]:
    """Start the service, publish ``ticks`` once the session is announced, wait until
    ``until(watcher)`` is true (at most 60 s: the last minute closes once the feed has been silent a while), then stop
    it with SIGTERM (exit code 0). Returns the stopped service and the closed watcher."""
    watcher = Watcher(cfg["channels"])
    client = redis.Redis.from_url(REDIS_URL)
    service = Service(config, extra_env=extra_env)
    try:
        watcher.wait_for("session_started", timeout=60)
        pipe = client.pipeline(transaction=False)
        for symbol, px, vol, ts in ticks:
            pipe.publish(cfg["channels"]["ticks"], encode_tick(symbol, px, vol, ts, source="e2e-timeframes"))
        pipe.execute()
        deadline = time.time() + 60
        while not until(watcher) and time.time() < deadline:
            time.sleep(0.25)
        time.sleep(1.0)  # anything more (a second session_stopped) would come now
        assert service.terminate(30) == 0
    finally:
        if service.proc.poll() is None:
            service.kill()
        watcher.close()
        client.close()
    return service, watcher


def test_5_15_60_minute_definitions_on_a_replayed_day(tmp_path, database):
    execute(database, "INSERT INTO indicator_definitions (name, enabled, applicable_timeframes, period, parameters) "
                      "VALUES ('sma', true, '{5min,15min,60min}', 3, '{\"period\": 3}')")
    execute(database, "INSERT INTO pattern_definitions (name, enabled, applicable_timeframes) "
                      "VALUES ('doji', true, '{5min}')")
    _, cfg = e2e_config(tmp_path, database, **{"session.clock": "event"})
    cfg["universes"] = {"test:e2e": list(SYMBOLS)}
    config = write_config(tmp_path / "service", cfg)
    settings = load_settings(config, environ={})
    definitions, problems, _ = load_definitions(settings, lambda: store_for(settings))
    assert not problems and definitions.timeframes == ("1min", "5min", "15min", "60min")
    ticks = generate_day()
    want_indicators, want_patterns = reference(ticks, definitions)
    per_tf = {tf: sum(1 for i in want_indicators if i[1] == tf) for tf in HIGHER}
    assert per_tf == {"5min": 2 * 76, "15min": 2 * 24, "60min": 2 * 5}  # SMA(3) from each third bar
    assert len(want_patterns) >= 7  # the placed 5-minute Dojis (and whatever the walk made)

    higher_sql = ("SELECT symbol, timeframe, indicator_type, metadata->>'bar_timestamp', value "
                  "FROM intraday_indicators WHERE timeframe <> '1min'")
    service, watcher = replay(config, cfg, ticks, lambda _: len(query(database, higher_sql)) >= len(want_indicators))

    stored = sorted((s, tf, name, bar_ts, float(v)) for s, tf, name, bar_ts, v in query(database, higher_sql))
    assert stored == want_indicators, service.log()[-3000:]
    stored_patterns = sorted((s, tf, name, data["bar_timestamp"]) for s, tf, name, data in query(
        database, "SELECT symbol, timeframe, pattern_type, pattern_data FROM intraday_patterns "
                  "WHERE timeframe <> '1min'"))
    assert stored_patterns == want_patterns
    events = [e["calculation"] for e in watcher.on("indicators") if e["calculation"]["timeframe"] != "1min"]
    assert sorted((c["symbol"], c["timeframe"], c["indicator"], c["metadata"]["bar_timestamp"], c["value"])
                  for c in events) == want_indicators
    detections = [e["detection"] for e in watcher.on("patterns") if e["detection"]["timeframe"] != "1min"]
    assert sorted((d["symbol"], d["timeframe"], d["pattern"], d["parameters"]["bar_timestamp"])
                  for d in detections) == want_patterns
    # The 1-minute results are still there, tagged as before.
    [(one_minute,)] = query(database, "SELECT count(*) FROM intraday_indicators WHERE timeframe = '1min'")
    assert one_minute > 0
    assert json.loads(json.dumps(watcher.on("indicators")[0]))["calculation"]["timeframe"] == "1min"


def test_talib_definitions_on_every_timeframe_run_once_per_close_and_match_talib_per_symbol(tmp_path, database):
    """The TA-Lib rows run in the session's CloseAnalysisActor (``analysis.batch_talib``, on by
    default), all symbols at once; the reference runs them in each symbol's own pipeline."""
    # both rows are seeded, disabled (migrations/005): an operator enables them, on these timeframes
    execute(database, "UPDATE indicator_definitions SET enabled = true, period = 4, parameters = '{}', "
                      "applicable_timeframes = '{1min,5min,15min,60min}' WHERE name = 'EMA'")
    execute(database, "UPDATE pattern_definitions SET enabled = true, applicable_timeframes = '{1min,5min}' "
                      "WHERE name = 'Engulfing'")
    _, cfg = e2e_config(tmp_path, database, **{"session.clock": "event"})
    cfg["universes"] = {"test:e2e": list(SYMBOLS)}
    config = write_config(tmp_path / "service", cfg)
    settings = load_settings(config, environ={})
    definitions, problems, _ = load_definitions(settings, lambda: store_for(settings))
    assert not problems
    timeframes = ("1min", *HIGHER)
    ticks = generate_day(11)
    want_indicators, want_patterns = reference(ticks, definitions, timeframes)
    want_indicators = [i for i in want_indicators if i[2] == "EMA"]
    want_patterns = [p for p in want_patterns if p[2] == "Engulfing"]
    assert {i[1] for i in want_indicators} == set(timeframes) and {p[1] for p in want_patterns} == {"1min", "5min"}

    ema_sql = ("SELECT symbol, timeframe, indicator_type, metadata->>'bar_timestamp', value "
               "FROM intraday_indicators WHERE indicator_type = 'EMA'")
    service, watcher = replay(config, cfg, ticks, lambda _: len(query(database, ema_sql)) >= len(want_indicators))

    log = service.log()
    # EMA on four timeframes and Engulfing on two: six (definition, timeframe) pairs in one actor
    assert "analysing 6 TA-Lib (definition, timeframe) pairs for 2 symbols once per close" in log, log[-3000:]
    stored = sorted((s, tf, name, bar_ts, float(v)) for s, tf, name, bar_ts, v in query(database, ema_sql))
    assert stored == want_indicators, log[-3000:]
    stored_patterns = sorted((s, tf, name, data["bar_timestamp"]) for s, tf, name, data in query(
        database, "SELECT symbol, timeframe, pattern_type, pattern_data FROM intraday_patterns "
                  "WHERE pattern_type = 'Engulfing'"))
    assert stored_patterns == want_patterns
    events = [e["calculation"] for e in watcher.on("indicators") if e["calculation"]["indicator"] == "EMA"]
    assert sorted((c["symbol"], c["timeframe"], c["indicator"], c["metadata"]["bar_timestamp"], c["value"])
                  for c in events) == want_indicators
    detections = [e["detection"] for e in watcher.on("patterns") if e["detection"]["pattern"] == "Engulfing"]
    assert sorted((d["symbol"], d["timeframe"], d["pattern"], d["parameters"]["bar_timestamp"])
                  for d in detections) == want_patterns


def test_a_close_analysis_failing_on_every_close_is_restarted_then_fails_the_session_announced(tmp_path, database):
    """The CloseAnalysisActor is a shared child: a crash is restarted once (the budget here), the
    next ends the session 'failed', announced once with a critical alert naming it; the bars stay stored."""
    execute(database, "UPDATE indicator_definitions SET enabled = true WHERE name = 'EMA'")
    _, cfg = e2e_config(tmp_path, database, **{"session.clock": "event"})
    cfg["universes"] = {"test:e2e": list(SYMBOLS)}
    cfg["supervision"].update(max_restarts=1, within_seconds=600)
    config = write_config(tmp_path / "service", cfg)
    ticks = [t for t in generate_day(3) if t[3] < OPEN + 10 * 60]  # ten minutes of the day
    service, watcher = replay(config, cfg, ticks, lambda w: bool(w.on("session_stopped")),
                              extra_env={"TICKSTOCK_INJECT_FAULT": "analysis:bars"})
    [started] = watcher.on("session_started")[:1]
    [stopped] = watcher.on("session_stopped")
    log = service.log()
    assert stopped["session"]["final_status"] == "failed", log[-3000:]
    alerts = [a for a in watcher.on("critical_alerts") if a["severity"] == "critical"]
    assert any(a["data"]["component"] == "analysis" for a in alerts), alerts
    assert "restarted analysis (incarnation 2)" in log
    # the symbol actors' and the ingress's work is untouched: every closed minute is stored
    [(minutes,)] = query(database, "SELECT count(DISTINCT timestamp) FROM ohlcv_1min WHERE symbol = 'AAPL'")
    assert minutes >= 2
    assert started["session"]["session_id"] == stopped["session"]["session_id"]
