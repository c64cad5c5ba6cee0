"""``python -m tickstock.simulate`` as a subprocess against the real Redis (and PostgreSQL for the
database replay), watched by a subscriber of the test's own on a channel of its own."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import redis
import yaml

from tests.pg import temporary_database
from tests.unit.simulate.engine import fold
from tickstock.adapters.postgres import migrate
from tickstock.market.calendar import MarketCalendar
from tickstock.messages.ticks import decode_tick
from tickstock.simulate.activity import IntradayActivity
from tickstock.simulate.tick import SimTick

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[3]
REDIS_URL = os.environ.get("TICKSTOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SUMMARY = re.compile(r"^sent (\d+) ticks in ([\d.]+) s \(([\d.]+) ticks/s\) on (\S+)$", re.M)


class Subscriber:
    """Everything published on ``channel`` from construction on, with its arrival time."""

    def __init__(self, channel: str) -> None:
        self.client = redis.Redis.from_url(REDIS_URL)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(channel)
        deadline = time.time() + 10
        while True:  # until the server confirmed it: nothing published from now on is missed
            msg = self.pubsub.get_message(timeout=1.0)
            if msg and msg["type"] == "subscribe":
                break
            assert time.time() < deadline, "no subscription confirmed"
        self.got: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.pubsub.get_message(timeout=0.1)
            if msg and msg["type"] == "message":
                self.got.append((time.time(), msg["data"]))

    def settle(self, expected: int, timeout: float = 10.0) -> list[tuple[float, bytes]]:
        deadline = time.time() + timeout
        while len(self.got) < expected and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # nothing more must come
        self._stop.set()
        self._thread.join(2)
        self.pubsub.close()
        self.client.close()
        return list(self.got)


def simulate(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    env = {**os.environ, "TICKSTOCK_REDIS_URL": REDIS_URL}
    proc = subprocess.run([sys.executable, "-m", "tickstock.simulate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def sent(stdout: str) -> int:
    match = SUMMARY.search(stdout)
    assert match, stdout
    return int(match[1])


def as_ticks(payloads: list[bytes]) -> list[SimTick]:
    out = []
    for raw in payloads:
        t = decode_tick(raw, received_at=time.time(), max_skew_seconds=10 * 365 * 86400.0)
        out.append(SimTick(t.timestamp, t.symbol, t.price, t.volume))
    return out


def test_live_simulation_publishes_what_it_reports(tmp_path: Path) -> None:
    channel = f"sim{uuid.uuid4().hex[:8]}:tickstock:market:ticks"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["channels"]["ticks"] = channel  # the settings' channel, as the service reads it
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    sub = Subscriber(channel)
    started = time.time()
    code, out, err = simulate("--config", str(path), "--symbols", "AAPL,MSFT,NVDA", "--rate", "300",
                              "--seconds", "3", "--seed", "5", "--inject", "NVDA:doji")
    ended = time.time()
    assert code == 0, err
    n = sent(out)
    assert SUMMARY.search(out)[4] == channel and out.count("\n") == 1  # one summary line, no progress
    got = sub.settle(n)
    # The rate follows the intraday curve (x2.6 at the open, x0.86 at midday): bounds at this hour's.
    activity = IntradayActivity(MarketCalendar(started))
    low, high = min(activity.at(started), activity.at(ended)), max(activity.at(started), activity.at(ended))
    assert len(got) == n and 600 * low < n < 1200 * high
    # Every message decodes with the contract's decoder, stamped within the run, in time order.
    ticks = [decode_tick(raw, received_at=at) for at, raw in got]
    assert {t.symbol for t in ticks} <= {"AAPL", "MSFT", "NVDA"}
    assert all(started - 1 < t.timestamp < ended for t in ticks)
    assert [t.timestamp for t in ticks] == sorted(t.timestamp for t in ticks)
    assert all(t.received_at - t.timestamp < 1.0 for t in ticks)  # published as they fell due
    assert "simulating 3 symbols at 300 ticks/s" in err


def test_bar_replay_at_max_speed_gives_back_exactly_the_bars(tmp_path: Path) -> None:
    channel = f"sim{uuid.uuid4().hex[:8]}:ticks"
    path = tmp_path / "bars.csv"
    rows = ["symbol,timestamp,open,high,low,close,volume"]
    expected = {}
    for i in range(30):
        for sym, base in (("AAPL", 257.0), ("BRK.B", 480.5)):
            o, c = base + i * 0.1, base + i * 0.1 + (0.07 if i % 2 else -0.05)
            h, l = max(o, c) + 0.13, min(o, c) - 0.11
            start = 1_741_786_200 + 60 * i  # 2025-03-12T13:30:00Z, the open
            rows.append(f"{sym},{dt.datetime.fromtimestamp(start, dt.timezone.utc).isoformat()},{o},{h},{l},{c},{1000 + i}")
            expected[(sym, start)] = (o, h, l, c, 1000 + i)
    path.write_text("\n".join(rows) + "\n")
    sub = Subscriber(channel)
    code, out, err = simulate("--replay", str(path), "--speed", "max", "--channel", channel, "--ticks-per-bar", "5")
    assert code == 0, err
    n = sent(out)
    got = sub.settle(n)
    assert n == len(got) == 60 * 5
    ticks = as_ticks([raw for _, raw in got])
    assert [t.timestamp for t in ticks] == sorted(t.timestamp for t in ticks)  # event-time order
    rebuilt = {(b.symbol, b.start): (b.open, b.high, b.low, b.close, b.volume) for b in fold(ticks)}
    assert rebuilt == expected


def test_tick_replay_is_paced_at_the_speed(tmp_path: Path) -> None:
    channel = f"sim{uuid.uuid4().hex[:8]}:ticks"
    path = tmp_path / "ticks.csv"
    first = 1_741_786_200.0
    path.write_text("symbol,timestamp,price,volume\n" + "".join(
        f"AAPL,{first + 2 * i},{200 + i / 100},{100 * (i + 1)}\n" for i in range(91)))  # 180 s of event time
    sub = Subscriber(channel)
    code, out, err = simulate("--replay", str(path), "--speed", "60", "--channel", channel)
    assert code == 0, err
    got = sub.settle(sent(out))
    assert len(got) == 91
    ticks = as_ticks([raw for _, raw in got])
    assert [t.timestamp for t in ticks] == [first + 2 * i for i in range(91)]  # original times kept
    t0 = got[0][0]
    for (at, _), tick in zip(got, ticks):
        assert abs((at - t0) - (tick.timestamp - first) / 60) < 0.3  # 3 s of wall for 180 s


def test_database_replay_of_an_exchange_date(tmp_path: Path) -> None:
    channel = f"sim{uuid.uuid4().hex[:8]}:ticks"
    day_open = 1_741_786_200  # 2025-03-12 09:30 New York
    inside = [("NVDA", day_open + 60 * i, 115.0 + i, 116.5 + i, 114.25 + i, 116.0 + i, 5000 + i) for i in range(5)]
    inside.append(("NVDA", day_open + 10 * 3600 + 30 * 60, 120.0, 120.0, 120.0, 120.0, 7))  # 20:00 New York, still the 12th
    inside.append(("AAPL", day_open, 220.0, 221.0, 219.0, 220.5, 100))
    outside = [("NVDA", day_open - 14 * 3600, 1.0, 1.0, 1.0, 1.0, 1),    # 2025-03-11 19:30 New York
               ("NVDA", day_open + 15 * 3600, 1.0, 1.0, 1.0, 1.0, 1)]    # 2025-03-13 00:30 New York
    with temporary_database() as dsn:
        migrate(dsn)
        conn = psycopg2.connect(dsn)
        with conn, conn.cursor() as cur:
            for s, ts, o, h, l, c, v in inside + outside:
                cur.execute("INSERT INTO ohlcv_1min (symbol, timestamp, open, high, low, close, volume) "
                            "VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s)", (s, ts, o, h, l, c, v))
        conn.close()
        sub = Subscriber(channel)
        code, out, err = simulate("--replay-db", dsn, "--date", "2025-03-12", "--symbols", "NVDA",
                                  "--speed", "max", "--channel", channel)
    assert code == 0, err
    got = sub.settle(sent(out))
    rebuilt = {(b.symbol, b.start): (b.open, b.high, b.low, b.close, b.volume) for b in fold(as_ticks([r for _, r in got]))}
    assert rebuilt == {(s, ts): (o, h, l, c, v) for s, ts, o, h, l, c, v in inside if s == "NVDA"}
    assert "replaying 6 bars of 1 symbol from ohlcv_1min 2025-03-12 as 24 ticks" in err
