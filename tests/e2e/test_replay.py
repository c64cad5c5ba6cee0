"""End-to-end: a past trading day replayed as fast as Redis takes it into a service with
``session.clock: event`` gives the bars, detections and indicator values live would have given.

The day (a deterministic walk for four symbols over the whole regular session of 2025-03-12,
with a Doji and a Hammer placed in it) is published by the test itself, in time order, with no
pacing. The "live" reference feeds the same ticks in real-time order through the same aggregator
and ``AnalysisPipeline`` in-process, a ManualClock standing in for the wall clock of a session that
started at the open. Bar for bar (ohlcv_1min), detection for detection (intraday_patterns) and
value for value (intraday_indicators) they must be identical.

With history stored on both sides of the day (the day before, and the day after: replaying a past
day into a database that already holds later ones), the service primes each symbol with the bars
BEFORE the day, as the reference does; primed with the latest stored, every replayed bar would be
older than its history and ignored as stale.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg2
import psycopg2.extras
import pytest
import redis

from tests.e2e.conftest import query
from tests.e2e.harness import REDIS_URL, Service, Watcher, e2e_config, write_config
from tickstock.actors.plan import load_definitions
from tickstock.actors.wiring import store_for
from tickstock.analysis import AnalysisPipeline
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.clock import DEFAULT_IDLE_AFTER_SECONDS, ManualClock
from tickstock.config import load_settings
from tickstock.messages.bars import Bar
from tickstock.messages.events import bar_data
from tickstock.messages.ticks import Tick, encode_tick
from tickstock.messages.wire import iso_utc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

OPEN = int(datetime(2025, 3, 12, 13, 30, tzinfo=timezone.utc).timestamp())  # 09:30 EDT, a Wednesday
MINUTES = 390                                                               # to the 16:00 close
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN")
LATENCY = 0.05  # live: each tick reaches the service this long after its own time
DOJI = ("NVDA", 47)     # (symbol, minute of the day) of the placed shapes
HAMMER = ("MSFT", 133)


@dataclass(frozen=True)
class DayTick:
    symbol: str
    price: float
    volume: int
    ts: float


def generate_day(seed: int = 20250312) -> list[DayTick]:
    """3-9 ticks per symbol per minute at random seconds, prices a walk in cents; the first tick
    at 09:30:00.2, the last at 15:59:59.8; a Doji (open = close, a wide range) and a Hammer after a
    slide (a small body at the top of a long lower shadow, opening at the previous bar's low)."""
    rng = random.Random(seed)
    ticks: list[DayTick] = []
    price = {s: round(rng.uniform(80, 400), 2) for s in SYMBOLS}
    low_of_prev = dict(price)
    for minute in range(MINUTES):
        start = OPEN + 60 * minute
        for symbol in SYMBOLS:
            p = price[symbol]
            if (symbol, minute) == DOJI:
                path = [(0.3, p), (15.0, p + 0.45), (30.0, p - 0.45), (59.5, p)]
            elif (symbol, minute) == HAMMER:
                o = low_of_prev[symbol]
                path = [(0.4, o), (20.0, o - 1.6), (40.0, o - 0.6), (59.4, o + 0.01)]
            else:
                slide = -0.06 if HAMMER[0] == symbol and HAMMER[1] - 8 <= minute < HAMMER[1] else 0.0
                offsets = sorted(rng.uniform(0.5, 59.5) for _ in range(rng.randint(3, 9)))
                if minute == 0 and symbol == SYMBOLS[0]:
                    offsets[0] = 0.2  # the replay starts within the open's first grace seconds
                if minute == MINUTES - 1 and symbol == SYMBOLS[-1]:
                    offsets[-1] = 59.8
                path = []
                for offset in offsets:
                    p = round(max(1.0, p + slide + rng.choice((-3, -2, -1, 0, 0, 1, 2, 3)) * 0.01), 2)
                    path.append((offset, p))
            for offset, px in path:
                ticks.append(DayTick(symbol, round(px, 2), rng.randint(1, 50) * 10, start + offset))
            price[symbol] = path[-1][1]
            low_of_prev[symbol] = min(px for _, px in path)
    ticks.sort(key=lambda t: t.ts)
    return ticks


@dataclass
class Expected:
    bars: dict[tuple[str, int], tuple]
    patterns: list[tuple]
    indicators: list[tuple]


def stored_history(seed: int = 20250311) -> tuple[list[Bar], list[Bar]]:
    """Bars another producer stored around the day: the last 230 minutes of 2025-03-11 (before it)
    and the first 120 of 2025-03-13 (after it), per symbol, as ``load_recent_bars`` reads them back
    (no session, tick_count 0); prices a walk in cents."""
    rng = random.Random(seed)
    before: list[Bar] = []
    after: list[Bar] = []
    for symbol in SYMBOLS:
        price = round(rng.uniform(80, 400), 2)
        for into, first_minute, minutes in ((before, OPEN - 86_400 + 60 * 160, 230), (after, OPEN + 86_400, 120)):
            for m in range(minutes):
                o = price
                price = round(max(1.0, price + rng.choice((-5, -3, -1, 0, 1, 3, 5)) * 0.01), 2)
                h = round(max(o, price) + rng.randint(0, 4) * 0.01, 2)
                lo = round(min(o, price) - rng.randint(0, 4) * 0.01, 2)
                into.append(Bar(symbol, first_minute + 60 * m, o, h, lo, price, rng.randint(1, 90) * 100))
    return before, after


def store_bars(dsn: str, bars: list[Bar]) -> None:
    """Straight into ohlcv_1min, as another producer would (no parts)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur, "INSERT INTO ohlcv_1min (symbol, timestamp, open, high, low, close, volume) VALUES %s",
                [(b.symbol, datetime.fromtimestamp(b.start, timezone.utc), b.open, b.high, b.low, b.close, b.volume)
                 for b in bars])
    finally:
        conn.close()


def live_reference(ticks: list[DayTick], grace: float, definitions, max_failures: int,
                   history: dict[str, list[Bar]] | None = None) -> Expected:
    """The day as a live session from the open would see it: ticks arriving in real time, bars
    closed by the (manual) wall clock at minute end + grace, every closed bar through the pipeline
    (primed with ``history``'s bars of its symbol, if given)."""
    clock = ManualClock(OPEN)
    agg = MinuteBarAggregator(grace, now=clock.now(), session_id="live")
    pipelines = {s: AnalysisPipeline(definitions, symbol=s, max_failures=max_failures) for s in SYMBOLS}
    for symbol, bars in (history or {}).items():
        pipelines[symbol].prime(bars)
    closed: list[Bar] = []
    for t in ticks:
        arrive = t.ts + LATENCY
        while (deadline := agg.next_deadline()) is not None and deadline <= arrive:
            clock.set(max(clock.now(), deadline))
            closed += agg.close_due(clock.now())
        clock.set(max(clock.now(), arrive))
        assert agg.add(Tick(t.symbol, t.price, t.volume, t.ts, clock.now()))
    clock.set(OPEN + 60 * MINUTES + grace)
    closed += agg.close_due(clock.now())
    assert agg.late_ticks == 0 and agg.forming_count() == 0
    expected = Expected({}, [], [])
    for bar in closed:
        assert not bar.partial
        expected.bars[(bar.symbol, bar.start)] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        out = pipelines[bar.symbol].on_bar(bar)
        assert not out.errors
        for p in out.patterns:
            data = {"bar_timestamp": iso_utc(p.bar.start), "bar_data": bar_data(p.bar), **p.parameters}
            expected.patterns.append((bar.symbol, p.name, p.confidence, _canonical(data)))
        for i in out.indicators:
            expected.indicators.append((bar.symbol, i.name, iso_utc(i.bar.start), i.value, _canonical(dict(i.values))))
    expected.patterns.sort()
    expected.indicators.sort()
    return expected


def _canonical(value) -> str:
    """JSON as the database gives it back, key order aside: compared as text."""
    return json.dumps(json.loads(json.dumps(value)), sort_keys=True)


def stored(dsn: str) -> Expected:
    """What the service stored of the day (history stored around it left out)."""
    bars = {(s, int(ts.timestamp())): (float(o), float(h), float(lo), float(c), int(v))
            for s, ts, o, h, lo, c, v in query(dsn, "SELECT symbol, timestamp, open, high, low, close, volume "
                                                    "FROM ohlcv_1min WHERE timestamp >= to_timestamp(%s) "
                                                    "AND timestamp < to_timestamp(%s)", OPEN, OPEN + 60 * MINUTES)}
    patterns = sorted((s, name, float(conf), _canonical(data)) for s, name, conf, data in query(
        dsn, "SELECT symbol, pattern_type, confidence, pattern_data FROM intraday_patterns"))
    indicators = sorted((s, name, meta["bar_timestamp"], float(value), _canonical(values))
                        for s, name, value, values, meta in query(
                            dsn, "SELECT symbol, indicator_type, value, value_data, metadata FROM intraday_indicators"))
    return Expected(bars, patterns, indicators)


def counts(dsn: str) -> tuple[int, int, int]:
    [(bars, patterns, indicators)] = query(
        dsn, "SELECT (SELECT count(*) FROM ohlcv_1min), (SELECT count(*) FROM intraday_patterns), "
             "(SELECT count(*) FROM intraday_indicators)")
    return bars, patterns, indicators


def test_a_day_replayed_at_full_speed_in_event_time_is_bar_for_bar_what_live_gives(tmp_path, database):
    replay_and_compare(tmp_path, database)


def test_a_replayed_day_is_primed_with_the_bars_before_it_though_later_days_are_stored(tmp_path, database):
    before, after = stored_history()
    store_bars(database, before + after)
    replay_and_compare(tmp_path, database, before, len(before) + len(after))


def replay_and_compare(tmp_path, database, history: list[Bar] = (), stored_bars: int = 0) -> None:
    """Replay the day into a service in event time; what it stores must be what the live reference
    (primed with the last ``prime_bars`` of ``history`` per symbol) gives. ``stored_bars``: rows
    already in ohlcv_1min."""
    path, cfg = e2e_config(tmp_path, database, **{"session.clock": "event"})
    cfg["universes"] = {"test:e2e": list(SYMBOLS)}
    config = write_config(tmp_path / "service", cfg)
    settings = load_settings(config, environ={})
    assert settings.session.clock == "event"
    grace = settings.bars.grace_seconds
    ticks = generate_day()
    definitions, problems, _ = load_definitions(settings, lambda: store_for(settings))
    assert not problems
    prime = settings.analysis.prime_bars
    primed = {s: [b for b in history if b.symbol == s][-prime:] for s in SYMBOLS} if history else None
    assert primed is None or all(len(bars) == prime for bars in primed.values())
    expected = live_reference(ticks, grace, definitions, settings.analysis.max_component_failures, primed)
    assert len(expected.bars) == len(SYMBOLS) * MINUTES
    if primed:  # primed: RSI has a value at the day's very first bar (unprimed, only at its 15th)
        assert {(s, n, t) for s, n, t, *_ in expected.indicators} >= {(s, "RSI", iso_utc(OPEN)) for s in SYMBOLS}
    names = {(s, name) for s, name, *_ in expected.patterns}
    assert (DOJI[0], "Doji") in names and (HAMMER[0], "Hammer") in names  # the day has something to find
    hammer_at = iso_utc(OPEN + 60 * HAMMER[1])
    assert any(s == HAMMER[0] and n == "Hammer" and hammer_at in data for s, n, _, data in expected.patterns)

    watcher = Watcher(cfg["channels"])
    client = redis.Redis.from_url(REDIS_URL)
    service = Service(config)
    try:
        watcher.wait_for("session_started", timeout=60)
        began = time.time()
        payloads = [encode_tick(t.symbol, t.price, t.volume, t.ts, source="e2e-replay") for t in ticks]
        for k in range(0, len(payloads), 2_000):  # as fast as Redis takes them, in time order
            pipe = client.pipeline(transaction=False)
            for payload in payloads[k:k + 2_000]:
                pipe.publish(cfg["channels"]["ticks"], payload)
            pipe.execute()
        published = time.time() - began
        want = (stored_bars + len(expected.bars), len(expected.patterns), len(expected.indicators))
        # The last minute closes once the feed has been silent for the idle threshold.
        deadline = time.time() + 45
        while counts(database) != want and time.time() < deadline:
            time.sleep(0.25)
        settled = time.time() - began
        assert counts(database) == want, (counts(database), want, service.log()[-3000:])
        assert service.terminate(30) == 0
        stopped = watcher.wait_for("session_stopped", timeout=10)["session"]
        assert stopped["total_patterns"] == want[1] and stopped["total_indicators"] == want[2]
    finally:
        if service.proc.poll() is None:
            service.kill()
        watcher.close()
        client.close()

    got = stored(database)
    assert got.bars == expected.bars  # bar for bar: every minute of every symbol, OHLCV exact
    assert got.patterns == expected.patterns  # detection for detection
    assert got.indicators == expected.indicators  # value for value
    # Event time closes the bars; the events still carry the wall clock's close time.
    closed_at = [e["detection"]["metadata"]["bar_closed_at"] for e in watcher.on("patterns")]
    assert len(closed_at) == len(expected.patterns)
    assert min(datetime.fromisoformat(c.replace("Z", "+00:00")).timestamp() for c in closed_at) >= began - 1
    assert settled - published >= DEFAULT_IDLE_AFTER_SECONDS - 1  # the last minute waited for the silence
    log = service.log()
    assert "event time starts at 2025-03-12T13:29:59.700Z" in log
    print(f"\nreplayed {len(ticks):,} ticks in {published:.2f}s; all {len(expected.bars)} bars, {want[1]} patterns, "
          f"{want[2]} indicator values stored {settled:.1f}s after the first tick was sent")
