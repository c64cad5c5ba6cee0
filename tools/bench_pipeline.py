#!/usr/bin/env python
"""Throughput of the tick path: Redis -> ingress receive loop (decode + fold) -> closed bars.

    python tools/bench_pipeline.py [--ticks 1000000] [--symbols 500] [--rate 50000]

1. in-process: decode + fold only (no Redis), ticks/s on one core;
2. through Redis: a separate publisher process sends ``--ticks`` ticks at ``--rate`` per second
   (0 = as fast as it can) over ``--symbols`` symbols; the real ``RedisTickFeed`` and
   ``MinuteBarAggregator`` receive them as the ingress thread does. Reports ticks/s received,
   ticks lost (pub/sub drops what a slow reader cannot take), and the receiver's CPU use.
Figures depend on the machine: report them with the machine named, or as ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
import uuid

import redis

from tickstock.adapters.redis.feed import RedisTickFeed
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.messages.ticks import TickRejected, decode_tick, encode_tick

URL = os.environ.get("TICKSTOCK_REDIS_URL", "redis://127.0.0.1:6379/0")


def symbols(n: int) -> list[str]:
    return [f"S{i:03d}" for i in range(n)]


def payloads(count: int, syms: list[str], t0: float) -> list[bytes]:
    return [encode_tick(syms[i % len(syms)], 100.0 + (i % 97) * 0.01, 1 + i % 5, t0 + i * 1e-5) for i in range(count)]


def bench_in_process(count: int, syms: list[str]) -> float:
    now = time.time()
    data = payloads(count, syms, now)
    agg = MinuteBarAggregator(2.0, now=now)
    start = time.perf_counter()
    for raw in data:
        try:
            agg.add(decode_tick(raw, now))
        except TickRejected:
            pass
    return count / (time.perf_counter() - start)


def publisher(channel: str, count: int, nsyms: int, rate: float, ready: mp.Event) -> None:
    client = redis.Redis.from_url(URL)
    syms = symbols(nsyms)
    ready.wait()
    start = time.perf_counter()
    batch = 500
    for i in range(0, count, batch):
        pipe = client.pipeline(transaction=False)
        now = time.time()
        for j in range(i, min(i + batch, count)):
            pipe.publish(channel, encode_tick(syms[j % nsyms], 100.0 + (j % 97) * 0.01, 1, now))
        pipe.execute()
        if rate:
            ahead = (i + batch) / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
    client.publish(channel, b"END")


def bench_redis(count: int, nsyms: int, rate: float) -> dict:
    channel = f"bench:{uuid.uuid4().hex[:8]}"
    feed = RedisTickFeed(URL, channel)
    feed.connect()
    ready = mp.Event()
    proc = mp.Process(target=publisher, args=(channel, count, nsyms, rate, ready))
    proc.start()
    agg = MinuteBarAggregator(2.0, now=time.time())
    received = 0
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    ready.set()
    start = None
    done = False
    while not done:
        batch = feed.read(1.0)
        now = time.time()
        for raw in batch:
            if raw == b"END":
                done = True
                break
            if start is None:
                start = time.perf_counter()
            try:
                agg.add(decode_tick(raw, now))
                received += 1
            except TickRejected:
                pass
    elapsed = time.perf_counter() - (start or time.perf_counter())
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    proc.join()
    feed.close()
    return {"received": received, "lost": count - received, "seconds": elapsed,
            "ticks_per_second": received / elapsed if elapsed else 0.0,
            "receiver_cpu_share": cpu / elapsed if elapsed else 0.0, "bars_forming": agg.forming_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50_000, help="ticks/s to publish; 0 = as fast as possible")
    args = parser.parse_args()
    syms = symbols(args.symbols)
    print(f"machine: {os.cpu_count()} cores; python {os.sys.version.split()[0]}")
    print(f"in-process decode+fold: {bench_in_process(min(args.ticks, 300_000), syms):,.0f} ticks/s")
    r = bench_redis(args.ticks, args.symbols, args.rate)
    print(f"through redis at target {args.rate:,.0f}/s: received {r['received']:,} lost {r['lost']:,} "
          f"in {r['seconds']:.1f}s = {r['ticks_per_second']:,.0f} ticks/s; receiver used "
          f"{r['receiver_cpu_share']:.0%} of a core")


if __name__ == "__main__":
    main()
