#!/usr/bin/env python
"""Whole-service throughput: ``python -m tickstock.actors --now`` on a universe, fed at a rate.

    python tools/bench_service.py [--rate 50000] [--seconds 20] [--universe market_leaders:top_500]

A separate process publishes ticks round-robin over the universe at ``--rate`` for ``--seconds``;
afterwards the service's own /metrics tells how many it received, folded, rejected and dropped
as late, and how much CPU it used. Figures depend on the machine: name it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import REDIS_URL, Service, Watcher, e2e_config  # noqa: E402
from tests.pg import temporary_database  # noqa: E402
from tickstock.adapters.postgres import migrate  # noqa: E402
from tickstock.config import load_settings  # noqa: E402
from tickstock.messages.ticks import encode_tick  # noqa: E402


def feed(channel: str, symbols: list[str], rate: float, seconds: float, sent: mp.Value) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    batch, count, start = 500, 0, time.perf_counter()
    total = int(rate * seconds)
    while count < total:
        pipe = client.pipeline(transaction=False)
        now = time.time()
        for j in range(count, min(count + batch, total)):
            pipe.publish(channel, encode_tick(symbols[j % len(symbols)], 100.0 + (j % 89) * 0.01, 1, now))
        pipe.execute()
        count = min(count + batch, total)
        ahead = count / rate - (time.perf_counter() - start)
        if ahead > 0:
            time.sleep(ahead)
    sent.value = count


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels:
                out[sample.name] = sample.value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--universe", default="market_leaders:top_500")
    args = parser.parse_args()
    symbols = load_settings(environ={}).universe_symbols(args.universe)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with temporary_database() as dsn, tempfile.TemporaryDirectory() as tmp:
        migrate(dsn)
        config, cfg = e2e_config(Path(tmp), dsn, **{"http.enabled": True, "http.port": port})
        cfg["universes"] = {args.universe: symbols}
        cfg["session"]["universe"] = args.universe
        config.write_text(yaml.safe_dump(cfg))
        watcher = Watcher(cfg["channels"])
        service = Service(config)
        try:
            watcher.wait_for("session_started", timeout=120)
            cpu_before = _process_cpu(service.proc.pid)  # start-up is not part of the figure
            sent = mp.Value("l", 0)
            proc = mp.Process(target=feed, args=(cfg["channels"]["ticks"], symbols, args.rate, args.seconds, sent))
            started = time.perf_counter()
            proc.start()
            proc.join()
            elapsed = time.perf_counter() - started
            time.sleep(3)  # the last health check refreshes /metrics
            m = scrape(port)
            service_cpu = _process_cpu(service.proc.pid) - cpu_before
        finally:
            service.terminate()
            watcher.close()
    received = m.get("tickstock_ticks_received_total", 0)
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; {len(symbols)} symbols")
    print(f"sent {sent.value:,} ticks in {elapsed:.1f}s ({sent.value / elapsed:,.0f}/s); service received "
          f"{received:,.0f} ({received / max(sent.value, 1):.2%}), late {m.get('tickstock_ticks_late_total', 0):,.0f}, "
          f"bars closed {m.get('tickstock_bars_closed_total', 0):,.0f}")
    print(f"service CPU over the run: {service_cpu:.1f}s of CPU in {elapsed + 3:.1f}s wall "
          f"({service_cpu / (elapsed + 3):.0%} of one core, all threads)")


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


if __name__ == "__main__":
    main()
