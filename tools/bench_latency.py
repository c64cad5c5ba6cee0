#!/usr/bin/env python
"""Bar close -> event on Redis, and the analysis cost per bar, on the real service.

    python tools/bench_latency.py [--universe market_leaders:top_500] [--minutes 2]

1. per-bar cost of the full detector set (AnalysisPipeline.on_bar over the baseline definitions);
2. starts ``python -m tickstock.actors --now`` on the universe (a database of its own), sends one
   second of ticks per symbol per second, and measures for every pattern/indicator event the
   time from the bar's close (``metadata.bar_closed_at``) and from the minute's end to the moment
   a subscriber received it. Reports p50 / p99 / max. Figures depend on the machine: name it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import REDIS_URL, Service, Watcher, e2e_config  # noqa: E402
from tests.pg import temporary_database  # noqa: E402
from tickstock.adapters.postgres import migrate  # noqa: E402
from tickstock.analysis import AnalysisPipeline, definitions_from_config  # noqa: E402
from tickstock.config import load_settings  # noqa: E402
from tickstock.messages.bars import Bar  # noqa: E402
from tickstock.messages.ticks import encode_tick  # noqa: E402


def per_bar_cost(bars: int = 20_000) -> float:
    settings = load_settings(environ={})
    pipeline = AnalysisPipeline(definitions_from_config(settings.analysis.fallback_definitions), symbol="X")
    rng = random.Random(1)
    price, series = 100.0, []
    for i in range(bars):
        o = price
        price *= 1 + rng.gauss(0, 0.002)
        series.append(Bar("X", i * 60, o, max(o, price) * 1.001, min(o, price) * 0.999, price, 100))
    start = time.perf_counter()
    for bar in series:
        pipeline.on_bar(bar)
    return (time.perf_counter() - start) / bars * 1e6


class FastReceiver:
    """Raw hiredis subscribers (as the service's own ingress), each read stamped on arrival, so
    the measurement is not limited by a slow client."""

    def __init__(self, channels: list[str]) -> None:
        import threading

        from tickstock.adapters.redis.feed import RedisTickFeed

        self.feeds = [RedisTickFeed(REDIS_URL, ch) for ch in channels]
        for feed in self.feeds:
            feed.connect()
        self.received: list[tuple[bytes, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(f,), daemon=True) for f in self.feeds]
        for t in self._threads:
            t.start()

    def _run(self, feed) -> None:
        while not self._stop.is_set():
            batch = feed.read(0.1)
            now = time.time()
            self.received.extend((raw, now) for raw in batch)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(1)


def seed_history(dsn: str, symbols: list[str], bars: int) -> None:
    """``bars`` recent 1-minute bars per symbol, so RSI/SMA and candle averages are primed."""
    import psycopg2
    from psycopg2.extras import execute_values

    rng = random.Random(3)
    end = int(time.time() // 60) * 60 - 60
    rows = []
    for symbol in symbols:
        price = 100.0
        for i in range(bars):
            o = price
            price *= 1 + rng.gauss(0, 0.001)
            rows.append((symbol, end - 60 * (bars - i), o, max(o, price) * 1.0005, min(o, price) * 0.9995, price, 100))
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        execute_values(cur, "INSERT INTO ohlcv_1min(symbol, timestamp, open, high, low, close, volume) VALUES %s",
                       rows, template="(%s, to_timestamp(%s), %s, %s, %s, %s, %s)", page_size=5000)
    conn.close()


def iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--universe", default="market_leaders:top_500")
    parser.add_argument("--minutes", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(f"analysis per bar (Doji, Hammer, H&S, inverse H&S, RSI 14, SMA 20): {per_bar_cost():.1f} us")

    symbols = load_settings(environ={}).universe_symbols(args.universe)
    import tempfile

    with temporary_database() as dsn, tempfile.TemporaryDirectory() as tmp:
        migrate(dsn)
        seed_history(dsn, symbols, 200)
        config, cfg = e2e_config(Path(tmp), dsn)
        cfg["universes"] = {args.universe: symbols}
        cfg["session"]["universe"] = args.universe
        cfg["bars"]["grace_seconds"] = 2.0
        import yaml

        config.write_text(yaml.safe_dump(cfg))
        watcher = Watcher(cfg["channels"])
        fast = FastReceiver([cfg["channels"]["patterns"], cfg["channels"]["indicators"]])
        client = redis.Redis.from_url(REDIS_URL)
        service = Service(config)
        try:
            watcher.wait_for("session_started", timeout=120)
            end = math.ceil(time.time() / 60) * 60 + 60 * args.minutes
            rng = random.Random(2)
            prices = {s: 100.0 for s in symbols}
            while time.time() < end + 1:
                t0 = time.time()
                pipe = client.pipeline(transaction=False)
                for s in symbols:
                    prices[s] *= 1 + rng.gauss(0, 0.001)
                    pipe.publish(cfg["channels"]["ticks"], encode_tick(s, round(prices[s], 4), 100, t0))
                pipe.execute()
                time.sleep(max(0.0, 1.0 - (time.time() - t0)))
            time.sleep(5)
        finally:
            service.terminate()
            watcher.close()
            fast.close()
        grace = cfg["bars"]["grace_seconds"]
        from_close, from_deadline, in_actor = [], [], []
        pairs = [(json.loads(raw), received) for raw, received in fast.received]
        for payload, received in pairs:
            body = payload.get("detection") or payload.get("calculation")
            if not body or "bar_closed_at" not in body["metadata"]:
                continue
            bar_start = iso(body["parameters"]["bar_timestamp"] if "detection" in payload else body["metadata"]["bar_timestamp"])
            closed_at = iso(body["metadata"]["bar_closed_at"])
            if closed_at < bar_start + 60 + grace:
                continue  # closed early by the session's stop, not by the clock
            from_close.append((received - closed_at) * 1000)
            from_deadline.append((received - (bar_start + 60 + grace)) * 1000)
            in_actor.append((iso(body["timestamp"]) - closed_at) * 1000)
        if not from_close:
            print("no events measured")
            return
        print(f"{len(symbols)} symbols, {len(from_close)} events over {args.minutes} bar closes")
        for label, values in (("bar closed -> analysed (event timestamp)", in_actor),
                              ("bar closed -> received by a subscriber", from_close),
                              ("minute end + grace -> received", from_deadline)):
            print(f"{label}: p50 {percentile(values, 0.5):.1f} ms, p99 {percentile(values, 0.99):.1f} ms, "
                  f"max {max(values):.1f} ms")


if __name__ == "__main__":
    main()
