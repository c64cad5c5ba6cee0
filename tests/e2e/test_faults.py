"""End-to-end fault injection: the service as a subprocess talking to Redis and PostgreSQL through
cuttable TCP proxies (tests/faults/proxy.py), watched from outside as the dashboard watches it.

The machine's Redis and PostgreSQL are shared and are never stopped or flushed: a fault is a cut,
a blackhole or a table lock between this test's service and the server. Ticks are published and
events watched directly on the real Redis; rows are read directly from the test's own database.

Wall time: several scenarios must cross real minute boundaries (a bar closes with the clock), and
the database faults keep the issue's durations (60 s cut, 40 s lock). Run one after the other
they would take ~10 minutes, so every selected scenario of this module starts at once in a
thread of its own (the module fixture ``fault_runs``) and each test waits for its own scenario's
outcome: the file takes as long as its longest scenario plus the wait for its minute boundary
(~2-2.5 min). Service start-ups are limited to two at a time so they do not starve each other of
the machine's two cores. Selecting one test (``-k``) runs only that scenario.

Each test prints one line for the issue's closing note, e.g.
``FAULT redis_cut_10s: detect 0.4s recover 1.2s buffered 0 ticks_sent 1200 volume_sent 61234 volume_stored 61234``.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import psycopg2
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import query
from tests.e2e.harness import (
    REDIS_URL, REPO, Service, Watcher, e2e_config, numsub, publish_tick, sleep_until, write_config,
)
from tests.faults.proxy import TcpProxy
from tests.pg import temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

UNIVERSE = ("AAPL", "MSFT", "NVDA")
HEARTBEAT_MAX_AGE = 10.0        # the contract: refreshed at least every 10 s
# An issue that names the database problem (not merely a silent persistence actor).
DB_PROBLEM = re.compile(r"database|postgres|ohlcv|\block", re.I)
ROWS_BUFFERED = re.compile(r"(\d+) rows?")
SECONDS = re.compile(r"(\d+(?:\.\d+)?) ?s\b")
ISO_Z = "%Y-%m-%dT%H:%M:%S.%fZ"

_STARTUPS = threading.BoundedSemaphore(2)  # service start-ups at a time
_ALL_SERVICES: list[Service] = []          # last-resort cleanup if a scenario thread is abandoned


# -- small helpers -----------------------------------------------------------------------------------

def minute_of(t: float) -> int:
    return int(t // 60) * 60


def parse_iso(text: str) -> float:
    return datetime.strptime(text, ISO_Z).replace(tzinfo=timezone.utc).timestamp()


def heartbeat_value(client: redis.Redis, key: str) -> float | None:
    raw = client.get(key)
    return None if raw is None else float(raw)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """The predicate's first truthy value, or None when ``timeout`` passed."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() >= deadline:
            return None
        time.sleep(interval)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}s" if not math.isinf(value) else "inf"
    return str(value)


def volume_stored(dsn: str, symbols=UNIVERSE) -> int:
    return int(query(dsn, "SELECT COALESCE(SUM(volume), 0) FROM ohlcv_1min WHERE symbol = ANY(%s)",
                     list(symbols))[0][0])


def health_of(watcher: Watcher, session_id: str) -> list[tuple[float, dict]]:
    """(received at, health object) of one session, in arrival order."""
    return [(t, p["health"]) for t, p in watcher.timed("health") if p["health"].get("session_id") == session_id]


def db_issues(health: dict) -> list[str]:
    return [i for i in health.get("issues", []) if DB_PROBLEM.search(i)]


def max_rows_buffered(healths: list[tuple[float, dict]]) -> int | None:
    counts = [int(n) for _, h in healths for i in db_issues(h) for n in ROWS_BUFFERED.findall(i)]
    return max(counts) if counts else None


def with_true_figures(issue: str) -> bool:
    """The issue gives how long (>= 1 s) and how many rows (>= 1) - not 'failing for 0s (0 rows)'."""
    return (any(float(x) >= 1 for x in SECONDS.findall(issue))
            and any(int(n) >= 1 for n in ROWS_BUFFERED.findall(issue)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def insert_history(dsn: str, symbol: str, end_minute: int, n: int = 200, seed: int = 7) -> list[float]:
    """``n`` one-minute bars before ``end_minute`` so indicators have values on the first live bar.
    Returns the closes."""
    rng = random.Random(seed)
    closes = [100.0]
    for _ in range(n - 1):
        closes.append(round(closes[-1] * (1 + rng.uniform(-0.002, 0.002)), 4))
    rows, prev = [], closes[0]
    for i, close in enumerate(closes):
        start = end_minute - 60 * (n - i)
        rows.append((symbol, start, prev, max(prev, close) + 0.05, min(prev, close) - 0.05, close, 100))
        prev = close
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO ohlcv_1min(symbol, timestamp, open, high, low, close, volume) "
                        "VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s)", rows)
    conn.close()
    return closes


class Periodic:
    """A daemon thread that calls ``step()`` every ``period`` seconds until ``stop()``."""

    def __init__(self, name: str, period: float) -> None:
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def step(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.period)

    def stop(self) -> float:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        return time.time()


class Feeder(Periodic):
    """Publishes ticks for ``symbols`` every ``period`` seconds straight to the real Redis and
    remembers every tick sent: (sent at, symbol, price, volume)."""

    def __init__(self, channel: str, symbols=UNIVERSE, period: float = 0.5, seed: int = 1) -> None:
        super().__init__(f"feeder:{channel}", period)
        self.client = redis.Redis.from_url(REDIS_URL)
        self.channel = channel
        self.symbols = symbols
        self.rng = random.Random(seed)
        self.prices = {s: 100.0 for s in symbols}
        self.sent: list[tuple[float, str, float, int]] = []
        self._lock = threading.Lock()

    def step(self) -> None:
        self.send_round()

    def send_round(self) -> None:
        for symbol in self.symbols:
            price = self.prices[symbol] = round(self.prices[symbol] * (1 + self.rng.uniform(-0.001, 0.001)), 4)
            volume = self.rng.randint(1, 50)
            now = time.time()
            publish_tick(self.client, self.channel, symbol, price, volume, now)
            with self._lock:
                self.sent.append((now, symbol, price, volume))

    def ticks(self, since: float = 0.0, until: float = math.inf) -> list[tuple[float, str, float, int]]:
        with self._lock:
            return [t for t in self.sent if since <= t[0] < until]

    def volume(self, since: float = 0.0, until: float = math.inf) -> int:
        return sum(t[3] for t in self.ticks(since, until))


class HeartbeatPoller(Periodic):
    """Reads the heartbeat key every ``interval`` s, as the dashboard would: (read at, value)."""

    def __init__(self, key: str, interval: float = 0.5) -> None:
        super().__init__(f"heartbeat:{key}", interval)
        self.client = redis.Redis.from_url(REDIS_URL)
        self.key = key
        self.samples: list[tuple[float, float | None]] = []

    def step(self) -> None:
        self.samples.append((time.time(), heartbeat_value(self.client, self.key)))

    def max_age(self, since: float = 0.0, until: float = math.inf) -> float:
        ages = [t - v if v is not None else math.inf for t, v in self.samples if since <= t <= until]
        return max(ages) if ages else math.inf

    def first_written_after(self, t: float) -> float | None:
        """When the poller first saw a value written after ``t``."""
        for at, v in self.samples:
            if v is not None and v > t:
                return at
        return None


# -- one scenario's world ------------------------------------------------------------------------------

class Ctx:
    """A scenario's own database, proxies, configuration, watchers and services; all torn down."""

    def __init__(self, name: str, fault: str, tmp: Path) -> None:
        self.name, self.fault, self.tmp = name, fault, tmp
        self.figures: dict[str, Any] = {}
        self.notes: list[str] = []
        self.failures: list[str] = []
        self.services: list[Service] = []
        self.stack = contextlib.ExitStack()
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.cfg: dict | None = None

    def __enter__(self) -> "Ctx":
        self.database = self.stack.enter_context(_migrated_database())
        self.redis_proxy = self.stack.enter_context(TcpProxy.for_url(REDIS_URL))
        self.db_proxy = self.stack.enter_context(TcpProxy.for_url(self.database))
        return self

    def __exit__(self, *exc_info) -> None:
        for service in self.services:
            service.kill()
        if self.cfg is not None:
            with contextlib.suppress(Exception):
                self.redis.delete(*self.cfg["keys"].values())
        self.stack.close()

    def fig(self, **figures: Any) -> None:
        self.figures.update(figures)

    def expect(self, condition: Any, message: str) -> None:
        """A check whose failure is collected, so one run reports every way a scenario failed."""
        if not condition:
            self.failures.append(message)

    def expect_exit(self, rc: int | None, which: str = "service") -> None:
        self.expect(rc == 0, f"{which}: exit code {rc} after SIGTERM (None: still running past the shutdown "
                             f"deadline + 10 s)")

    def expect_stopped(self, watcher: Watcher, session_id: str, final_status: str) -> None:
        """Exactly one session_stopped, for this session, with ``final_status``."""
        if not wait_until(lambda: watcher.on("session_stopped"), 5, 0.05):
            self.failures.append(f"no session_stopped for {session_id}")
            return
        time.sleep(0.5)  # a duplicate would arrive now
        stops = [p["session"] for p in watcher.on("session_stopped")]
        self.expect([(s["session_id"], s["final_status"]) for s in stops] == [(session_id, final_status)],
                    f"session_stopped events {[(s['session_id'], s['final_status']) for s in stops]}, "
                    f"expected exactly one ({session_id}, {final_status})")

    def verify(self) -> None:
        if self.failures:
            raise AssertionError(f"{len(self.failures)} check(s) failed:\n  - " + "\n  - ".join(self.failures))

    def stop(self, service: Service, timeout: float | None = None) -> int | None:
        """SIGTERM and wait up to the shutdown deadline plus 10 s; the exit code, or None if it did
        not exit by then (it is killed at the end)."""
        if timeout is None:
            timeout = float((self.cfg or {}).get("session", {}).get("shutdown_deadline_seconds", 20)) + 10
        if service.proc.poll() is None:
            service.proc.send_signal(signal.SIGTERM)
        try:
            return service.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def config(self, **overrides: Any) -> tuple[Path, dict]:
        """The e2e configuration with Redis and PostgreSQL reached through this scenario's proxies
        and a spill/WAL directory of its own (kept across restarts within the scenario)."""
        overrides = {"persistence.spill_dir": str(self.tmp / "spill"),
                     "redis.url": self.redis_proxy.url_for(REDIS_URL),
                     **overrides}
        path, cfg = e2e_config(self.tmp, self.db_proxy.url_for(self.database), **overrides)
        self.cfg = cfg
        return path, cfg

    def rerun_config(self, run: str) -> Path:
        """The same configuration (same channels, keys, database, spill dir) in a directory of its
        own, so the next service process gets a log of its own."""
        return write_config(self.tmp / run, self.cfg)

    def watcher(self, cfg: dict) -> Watcher:
        watcher = Watcher(cfg["channels"])
        self.stack.callback(watcher.close)
        return watcher

    def start(self, config: Path, watcher: Watcher, extra_env: dict | None = None,
              args: tuple[str, ...] = ("--now",), timeout: float = 90.0) -> tuple[Service, dict]:
        """Start a service and wait for its (new) session_started; at most two start at a time."""
        known = {p["session"]["session_id"] for p in watcher.on("session_started")}
        with _STARTUPS:
            self.launched_at = time.time()
            service = Service(config, extra_env=extra_env, args=args)
            self.services.append(service)
            _ALL_SERVICES.append(service)
            try:
                started = watcher.wait_for("session_started", lambda p: p["session"]["session_id"] not in known,
                                           timeout=timeout)
            except AssertionError:
                raise AssertionError(f"no session_started within {timeout}s (exit code {service.proc.poll()}); "
                                     f"log {service.log_path}:\n{tail(service.log_path, 30)}") from None
        return service, started

    def summary(self) -> str:
        f = self.figures
        line = (f"FAULT {self.fault}: detect {fmt(f.pop('detect', None))} recover {fmt(f.pop('recover', None))} "
                f"buffered {fmt(f.pop('buffered', None))} ticks_sent {fmt(f.pop('ticks_sent', None))} "
                f"volume_sent {fmt(f.pop('volume_sent', None))} volume_stored {fmt(f.pop('volume_stored', None))}")
        extra = " ".join(f"{k} {fmt(v)}" for k, v in f.items())
        return f"{line}{' ' + extra if extra else ''}"


@contextlib.contextmanager
def _migrated_database():
    with temporary_database() as dsn:
        from tickstock.adapters.postgres import migrate

        migrate(dsn)
        yield dsn


def tail(path: Path, n: int = 40, pattern: str | None = None) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    if pattern:
        lines = [line for line in lines if re.search(pattern, line)]
    return "\n".join(lines[-n:])


# -- the scenarios -------------------------------------------------------------------------------------

SCENARIOS: dict[str, tuple[str, Callable[["Ctx", "Runner"], None]]] = {}


def scenario(fault: str):
    def register(fn):
        SCENARIOS[fn.__name__.removeprefix("run_")] = (fault, fn)
        return fn
    return register


@scenario("kill9_retained_key")
def run_kill9(ctx: Ctx, runner: "Runner") -> None:
    """(a) kill -9: the retained session key expires within its TTL (<= 30 s), the heartbeat stops."""
    path, cfg = ctx.config()
    keys = cfg["keys"]
    watcher = ctx.watcher(cfg)
    service, started = ctx.start(path, watcher)
    # The key is written before session_started is handed to the publisher: it is there when heard.
    assert ctx.redis.get(keys["session"]) is not None and ctx.redis.pttl(keys["session"]) > 0
    assert wait_until(lambda: heartbeat_value(ctx.redis, keys["heartbeat"]), 10), "no heartbeat while running"
    poller = HeartbeatPoller(keys["heartbeat"], 0.25).start()
    time.sleep(cfg["session"]["heartbeat_interval_seconds"] + 0.5)  # at least one refresh seen before
    killed_at = time.time()
    service.proc.kill()  # SIGKILL: no handler, no stop path
    service.proc.wait(10)
    gone = wait_until(lambda: ctx.redis.get(keys["session"]) is None and time.time(), 32, 0.1)
    # Watch the heartbeat for at least three of its intervals after the kill.
    sleep_until(max(time.time(), killed_at + 3 * cfg["session"]["heartbeat_interval_seconds"] + 1))
    poller.stop()
    before = [v for t, v in poller.samples if t < killed_at and v is not None]
    after = [(t, v) for t, v in poller.samples if t > killed_at + 0.5]
    ctx.fig(detect=(gone - killed_at) if gone else math.inf, buffered=0,
            heartbeat_refreshes_before=len(set(before)), heartbeat_values_after=len({v for _, v in after}))
    ctx.expect(len(set(before)) >= 2, f"the heartbeat was not refreshing before the kill: {poller.samples}")
    ctx.expect(gone is not None and gone - killed_at <= 30.0, "the retained session key outlived kill -9 by 30 s")
    values_after = {v for _, v in after}
    ctx.expect(len(values_after) <= 1 and all(v is None or v <= killed_at for v in values_after), f"heartbeat refreshed after kill -9: {after}")
    # Nobody could have said so: the key's expiry is the signal.
    ctx.expect(not watcher.on("session_stopped"), "session_stopped after kill -9?")


@scenario("redis_cut_10s")
def run_redis_cut(ctx: Ctx, runner: "Runner") -> None:
    """(b) Redis cut 10 s: re-subscribed, heartbeat back, ticks outside the cut in bars, one session."""
    path, cfg = ctx.config()
    channels, keys = cfg["channels"], cfg["keys"]
    watcher = ctx.watcher(cfg)
    service, started = ctx.start(path, watcher)
    session_id = started["session"]["session_id"]
    assert wait_until(lambda: numsub(ctx.redis, channels["ticks"]) == 1, 10), "service not subscribed"
    feeder = Feeder(channels["ticks"], period=0.1, seed=2)
    for _ in range(20):  # 60 ticks before the cut
        feeder.send_round()
        time.sleep(0.05)
    time.sleep(0.5)  # let the service read them: a reset discards what sits unread in its socket
    poller = HeartbeatPoller(keys["heartbeat"], 0.25).start()

    cut_at = time.time()
    ctx.redis_proxy.cut()
    unsubscribed = wait_until(lambda: numsub(ctx.redis, channels["ticks"]) == 0 and time.time(), 5, 0.02)
    assert unsubscribed, "the cut did not end the subscription on the server"
    feeder.start()  # ticks during the cut: nobody is subscribed, Redis drops them
    sleep_until(cut_at + 10)
    feeder.stop()
    lost_until = time.time()
    attempts = ctx.redis_proxy.events_since(cut_at, "refused")
    restored_at = time.time()
    ctx.redis_proxy.restore()
    resubscribed = wait_until(lambda: numsub(ctx.redis, channels["ticks"]) >= 1 and time.time(), 30, 0.05)
    heartbeat_back = wait_until(lambda: (v := heartbeat_value(ctx.redis, keys["heartbeat"])) and v > restored_at
                                and time.time(), 30, 0.1)
    after_from = time.time()
    if resubscribed:
        for _ in range(20):  # 60 ticks after the re-subscription
            feeder.send_round()
            time.sleep(0.05)
    time.sleep(1.0)
    stopped_before_term = list(watcher.on("session_stopped"))
    started_ids = {p["session"]["session_id"] for p in watcher.on("session_started")}
    # Events the publisher held during the cut and sent after it: their own timestamp is in the cut.
    held = [p for name in ("health", "session_started", "critical_alerts") for t, p in watcher.timed(name)
            if t > restored_at and "timestamp" in p and cut_at < parse_iso(p["timestamp"]) < restored_at]
    rc = ctx.stop(service)
    poller.stop()
    sent_before, sent_after = feeder.volume(until=cut_at), feeder.volume(since=after_from)
    expected = sent_before + sent_after
    stored = volume_stored(ctx.database)
    ctx.fig(detect=(attempts[0][0] - cut_at) if attempts else None,
            recover=(resubscribed - restored_at) if resubscribed else math.inf,
            heartbeat_back=(heartbeat_back - restored_at) if heartbeat_back else math.inf,
            buffered=len(held), ticks_sent=len(feeder.ticks(until=cut_at)) + len(feeder.ticks(since=after_from)),
            ticks_lost_in_cut=len(feeder.ticks(cut_at, lost_until)), volume_sent=expected, volume_stored=stored,
            reconnect_attempts=len(attempts))
    ctx.expect(resubscribed, "the service did not subscribe to the tick channel again within 30 s of the restore")
    ctx.expect(heartbeat_back, "the heartbeat key was not written again within 30 s of the restore")
    ctx.expect(not stopped_before_term, f"session_stopped during the Redis cut: {stopped_before_term}")
    ctx.expect(started_ids == {session_id}, f"more than one session: {started_ids}")
    ctx.expect_exit(rc)
    ctx.expect_stopped(watcher, session_id, "stopped")
    ctx.expect(stored == expected, (f"volume stored {stored} != sent before the cut {sent_before} + after the "
                                f"re-subscription {sent_after}"))


@scenario("redis_half_open")
def run_redis_half_open(ctx: Ctx, runner: "Runner") -> None:
    """(extra; issue item 4) Every Redis connection of the service goes silent while the network
    still works (half-open): the subscription's PING notices within 30 s, the service subscribes
    on a new connection, ticks sent after that are in bars exactly once, even after the old
    connection comes back to life, and it is one session throughout."""
    path, cfg = ctx.config()
    channels, keys = cfg["channels"], cfg["keys"]
    watcher = ctx.watcher(cfg)
    service, started = ctx.start(path, watcher)
    session_id = started["session"]["session_id"]
    assert wait_until(lambda: numsub(ctx.redis, channels["ticks"]) == 1, 10), "service not subscribed"
    feeder = Feeder(channels["ticks"], period=0.1, seed=5)
    for _ in range(20):
        feeder.send_round()
        time.sleep(0.05)
    time.sleep(0.5)
    poller = HeartbeatPoller(keys["heartbeat"], 0.5).start()
    frozen_at = time.time()
    ctx.redis_proxy.blackhole(existing_only=True)
    # The server still counts the silent subscriber: a second one is the service's new subscription.
    resubscribed = wait_until(lambda: numsub(ctx.redis, channels["ticks"]) >= 2 and time.time(), 45, 0.1)
    after_from = time.time()
    if resubscribed:
        for _ in range(20):
            feeder.send_round()
            time.sleep(0.05)
    time.sleep(1.0)
    ctx.redis_proxy.restore()  # the old connections come back to life, with what was held for them
    time.sleep(2.0)
    poller.stop()
    started_ids = {p["session"]["session_id"] for p in watcher.on("session_started")}
    stopped_early = list(watcher.on("session_stopped"))
    rc = ctx.stop(service)
    expected = feeder.volume(until=frozen_at) + feeder.volume(since=after_from)
    stored = volume_stored(ctx.database)
    ctx.fig(detect=(resubscribed - frozen_at) if resubscribed else math.inf, recover=None, buffered=0,
            ticks_sent=len(feeder.ticks()), volume_sent=expected, volume_stored=stored,
            heartbeat_max_age=poller.max_age(frozen_at, after_from),
            new_connections=len(ctx.redis_proxy.events_since(frozen_at, "accepted")))
    ctx.expect(resubscribed and resubscribed - frozen_at <= 32,
               "the silent subscription was not replaced within 30 s (+2 s to reconnect)")
    ctx.expect(not stopped_early, f"session_stopped while Redis was half-open: {stopped_early}")
    ctx.expect(started_ids == {session_id}, f"more than one session: {started_ids}")
    ctx.expect_exit(rc)
    ctx.expect_stopped(watcher, session_id, "stopped")
    ctx.expect(stored == expected, f"volume stored {stored} != sent outside the silent spell {expected}")


def _db_fault(ctx: Ctx, runner: "Runner", kind: str) -> None:
    """(d)/(e) The database cut (or ohlcv_1min locked) across a minute boundary while ticks flow."""
    interval = 10.0
    # The production heartbeat interval (config.yaml), not the harness's 2 s: a stall shows as it would.
    beat = yaml.safe_load((REPO / "config.yaml").read_text())["session"]["heartbeat_interval_seconds"]
    path, cfg = ctx.config(**{"session.health_interval_seconds": interval, "session.heartbeat_interval_seconds": beat})
    channels, keys = cfg["channels"], cfg["keys"]
    watcher = ctx.watcher(cfg)
    service, started = ctx.start(path, watcher)
    session_id = started["session"]["session_id"]
    boundary = runner.boundary
    if time.time() > boundary - 23:  # too late for the planned minute: take the next one
        boundary += 60
        ctx.notes.append("started late: used the next minute boundary")
    fault_from, fault_until = (boundary - 20, boundary + 40) if kind == "cut" else (boundary - 20, boundary + 20)
    sleep_until(fault_from - 5)
    feeder = Feeder(channels["ticks"], period=0.5, seed=4).start()
    poller = HeartbeatPoller(keys["heartbeat"], 0.5).start()
    lock = None
    sleep_until(fault_from)
    began = time.time()
    if kind == "cut":
        ctx.db_proxy.cut()
    else:
        lock = psycopg2.connect(ctx.database)  # directly, not through the proxy
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE ohlcv_1min IN ACCESS EXCLUSIVE MODE")  # held until rollback
    sleep_until(fault_until)
    ended = time.time()
    if kind == "cut":
        ctx.db_proxy.restore()
    else:
        lock.rollback()
        lock.close()
    sleep_until(ended + 5)
    feed_end = feeder.stop()
    sent = feeder.volume()
    # Every tick in a bar: the last bar closes at its minute's end plus grace, by the clock.
    last_close = minute_of(feed_end) + 60 + cfg["bars"]["grace_seconds"]
    stored_at = wait_until(lambda: volume_stored(ctx.database) == sent and time.time(),
                           max(0.0, last_close - time.time()) + 20, 0.5)
    window_end = max(time.time(), ended + interval + 2)
    sleep_until(window_end)
    poller.stop()
    stored = volume_stored(ctx.database)
    healths = health_of(watcher, session_id)
    during = [(t, h) for t, h in healths if began <= t <= ended + 2]
    named = [(t, h) for t, h in during if db_issues(h)]
    recovered = [t for t, h in healths if t > ended and not db_issues(h) and
                 h.get("connection", {}).get("database") == "connected"]
    # Gaps between health reports from the fault's start to well after its end.
    before = [t for t, _ in healths if t < began]
    times = [before[-1] if before else began] + [t for t, _ in healths if began <= t <= window_end] + [window_end]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # With the table locked nothing fails before the first bar write after the boundary.
    first_write = began if kind == "cut" else boundary + cfg["bars"]["grace_seconds"]
    ctx.fig(detect=(named[0][0] - first_write) if named else None,
            recover=(recovered[0] - ended) if recovered else None,
            all_stored_after=(stored_at - ended) if stored_at else math.inf,
            buffered=max_rows_buffered(during), ticks_sent=len(feeder.ticks()), volume_sent=sent,
            volume_stored=stored, heartbeat_max_age=poller.max_age(began, window_end),
            health_max_gap=max(gaps), health_reports=len(times) - 2)
    issues = sorted({i for _, h in during for i in h.get("issues", [])})
    rc = ctx.stop(service)
    ctx.expect(poller.max_age(began, window_end) <= HEARTBEAT_MAX_AGE, (
        f"heartbeat {poller.max_age(began, window_end):.1f}s old during the fault "
        f"(worst samples: {sorted(poller.samples, key=lambda s: s[0] - (s[1] or 0))[-3:]})"))
    ctx.expect(max(gaps) <= interval + 2, f"health gaps {[round(g, 1) for g in gaps]} (interval {interval}s)")
    ctx.expect(named, f"no health report named the database problem during the fault; issues seen: {issues}")
    ctx.expect(any(with_true_figures(i) for _, h in named for i in db_issues(h)),
               f"no health issue gave the database problem's true duration (>= 1 s) and rows (>= 1): {issues}")
    ctx.expect(stored == sent, f"volume stored {stored} != volume sent {sent} (after the {kind} ended)")
    ctx.expect_exit(rc)
    ctx.expect_stopped(watcher, session_id, "stopped")


@scenario("pg_cut_60s")
def run_pg_cut(ctx: Ctx, runner: "Runner") -> None:
    _db_fault(ctx, runner, "cut")


@scenario("table_lock_40s")
def run_table_lock(ctx: Ctx, runner: "Runner") -> None:
    _db_fault(ctx, runner, "lock")


@scenario("stop_start_same_minute")
def run_stop_start(ctx: Ctx, runner: "Runner") -> None:
    """(f) Ticks in minute M, SIGTERM, a new process, more ticks in M: the bar holds all of them."""
    path, cfg = ctx.config()
    channels = cfg["channels"]
    watcher = ctx.watcher(cfg)
    first, started = ctx.start(path, watcher)
    if minute_of(time.time()) + 60 - time.time() < 30:  # room for a stop and a start inside M
        sleep_until(minute_of(time.time()) + 60.2)
    m = minute_of(time.time())
    part1 = [(100.0, 10), (105.0, 20), (98.0, 30), (101.0, 40)]
    part2 = [(102.0, 5), (110.0, 6), (95.0, 7), (103.0, 8)]
    for price, volume in part1:
        publish_tick(ctx.redis, channels["ticks"], "AAPL", price, volume, time.time())
        time.sleep(0.05)
    time.sleep(0.5)
    term_at = time.time()
    rc1 = ctx.stop(first)
    exited_at = time.time()
    second, started2 = ctx.start(ctx.rerun_config("run2"), watcher)
    back_at = time.time()
    assert time.time() < m + 58, f"the second session started {time.time() - m:.1f}s into the minute: too late"
    for price, volume in part2:
        publish_tick(ctx.redis, channels["ticks"], "AAPL", price, volume, time.time())
        time.sleep(0.05)
    close_at = m + 60 + cfg["bars"]["grace_seconds"]
    expected = (100.0, 110.0, 95.0, 103.0, sum(v for _, v in part1 + part2))

    def row():
        rows = query(ctx.database, "SELECT open, high, low, close, volume FROM ohlcv_1min "
                                   "WHERE symbol = 'AAPL' AND timestamp = to_timestamp(%s)", m)
        return tuple(float(v) for v in rows[0]) if rows else None

    sleep_until(close_at)
    got = wait_until(lambda: row() == expected and row(), 10, 0.25) or row()
    rc2 = ctx.stop(second)
    ctx.fig(detect=None, recover=back_at - term_at, buffered=0, exit_after_sigterm=exited_at - term_at,
            ticks_sent=len(part1) + len(part2), volume_sent=expected[4],
            volume_stored=int(got[4]) if got else 0)
    ctx.expect_exit(rc1, "first process")
    ctx.expect_exit(rc2, "second process")
    ctx.expect(got == expected, f"bar for minute M is (open, high, low, close, volume) {got}, expected {expected}")


@scenario("kill9_rows_buffered")
def run_kill9_buffered(ctx: Ctx, runner: "Runner") -> None:
    """(g) kill -9 while the database is cut and a closed bar's rows are buffered: after a restart
    against the restored database the bar and its pattern/indicator rows are there, each once."""
    path, cfg = ctx.config()
    channels = cfg["channels"]
    closes = insert_history(ctx.database, "MSFT", minute_of(time.time()) - 60)
    watcher = ctx.watcher(cfg)
    first, started = ctx.start(path, watcher)
    sid1 = started["session"]["session_id"]
    # A whole minute after the session's first (partial) one: detectors run on its bar.
    sleep_until(minute_of(time.time()) + 60.2)
    m = minute_of(time.time())
    # AAPL: a Doji (zero body); MSFT: a 3% jump on top of its history (RSI and SMA values).
    ticks = [("AAPL", 100.0, 10), ("AAPL", 101.0, 10), ("AAPL", 99.0, 10), ("AAPL", 100.0, 10),
             ("MSFT", closes[-1], 10), ("MSFT", round(closes[-1] * 1.03, 4), 10)]
    for symbol, price, volume in ticks:
        publish_tick(ctx.redis, channels["ticks"], symbol, price, volume, time.time())
        time.sleep(0.05)
    sleep_until(m + 57)
    cut_at = time.time()
    ctx.db_proxy.cut()  # the bar of M closes with the database unreachable
    bar_closed = wait_until(lambda: any(p["detection"]["symbol"] == "AAPL" for p in watcher.on("patterns"))
                            and any(p["calculation"]["symbol"] == "MSFT" for p in watcher.on("indicators")),
                            m + 60 + 15 - time.time(), 0.1)
    assert bar_closed, "no AAPL pattern and MSFT indicator event for the bar of minute M (needed before the kill)"
    time.sleep(2.5)  # > the WAL's fsync interval (1 s)
    spill = ctx.tmp / "spill"
    spilled = [p for p in spill.rglob("*") if p.is_file()] if spill.exists() else []
    wal_rows = sum(len(p.read_bytes().splitlines()) for p in spilled)
    killed_at = time.time()
    first.proc.kill()
    first.proc.wait(10)
    in_db_at_kill = query(ctx.database, "SELECT count(*) FROM ohlcv_1min WHERE timestamp = to_timestamp(%s)", m)[0][0]
    ctx.db_proxy.restore()
    second, started2 = ctx.start(ctx.rerun_config("run2"), watcher)
    restarted_at = ctx.launched_at  # the new process's launch: its WAL replay may precede session_started

    patterns = sorted({(p["detection"]["symbol"], p["detection"]["pattern"]) for p in watcher.on("patterns")
                       if p["detection"]["metadata"]["session_id"] == sid1})
    indicators = sorted({(p["calculation"]["symbol"], p["calculation"]["indicator"]) for p in watcher.on("indicators")
                         if p["calculation"]["metadata"]["session_id"] == sid1})

    def rows():
        bars = query(ctx.database, "SELECT symbol, open, high, low, close, volume FROM ohlcv_1min "
                                   "WHERE timestamp = to_timestamp(%s) ORDER BY symbol", m)
        pats = query(ctx.database, "SELECT symbol, pattern_type, count(*) FROM intraday_patterns "
                                   "WHERE metadata->>'session_id' = %s GROUP BY 1, 2 ORDER BY 1, 2", sid1)
        inds = query(ctx.database, "SELECT symbol, indicator_type, count(*) FROM intraday_indicators "
                                   "WHERE metadata->>'session_id' = %s GROUP BY 1, 2 ORDER BY 1, 2", sid1)
        return ([(s, *(round(float(v), 6) for v in r)) for s, *r in bars], pats, inds)

    jump = round(closes[-1] * 1.03, 4)
    expected_bars = [("AAPL", 100.0, 101.0, 99.0, 100.0, 40.0),
                     ("MSFT", round(closes[-1], 6), round(jump, 6), round(closes[-1], 6), round(jump, 6), 20.0)]
    complete = wait_until(lambda: (r := rows())[0] == expected_bars and len(r[1]) == len(patterns)
                          and len(r[2]) == len(indicators) and time.time(), 30, 0.5)
    bars, pats, inds = rows()
    rc2 = ctx.stop(second)
    after_stop = rows()
    ctx.fig(detect=None, recover=(complete - restarted_at) if complete else math.inf,
            buffered=f"{wal_rows}rows/{len(spilled)}files", bar_rows=len(patterns) + len(indicators) + 2,
            ticks_sent=len(ticks), volume_sent=60, volume_stored=int(sum(b[-1] for b in bars)),
            killed_after_cut=killed_at - cut_at)
    ctx.expect(in_db_at_kill == 0, "the bar reached the database before the kill: the test proves nothing")
    ctx.expect(patterns and indicators, f"events of the bar: patterns {patterns} indicators {indicators}")
    ctx.expect(bars == expected_bars, f"bars of minute M after the restart: {bars}")
    ctx.expect([(s, t) for s, t, _ in pats] == patterns and all(n == 1 for *_, n in pats), f"patterns {pats}")
    ctx.expect([(s, t) for s, t, _ in inds] == indicators and all(n == 1 for *_, n in inds), f"indicators {inds}")
    ctx.expect_exit(rc2, "second process")
    ctx.expect(after_stop == (bars, pats, inds), "the second session's stop changed the rows")


@scenario("symbol_quarantine")
def run_symbol_quarantine(ctx: Ctx, runner: "Runner") -> None:
    """(h) AAPL's actor fails on every bar: restarted once, then quarantined; the session stays up,
    health names AAPL (warning, not critical or failed), MSFT/NVDA events keep flowing."""
    path, cfg = ctx.config(**{"supervision.symbol_max_restarts": 1, "supervision.symbol_within_seconds": 600})
    channels = cfg["channels"]
    end = minute_of(time.time()) - 60
    for seed, symbol in enumerate(("MSFT", "NVDA")):
        insert_history(ctx.database, symbol, end, seed=11 + seed)
    watcher = ctx.watcher(cfg)
    service, started = ctx.start(path, watcher, extra_env={"TICKSTOCK_INJECT_FAULT": "symbol:AAPL:bar"})
    session_id = started["session"]["session_id"]
    feeder = Feeder(channels["ticks"], period=0.5, seed=8).start()
    first = minute_of(time.time()) + 60  # the first bar closes here: crash 1, restart
    if first - time.time() < 3:
        first += 60
    second = first + 60                 # crash 2: past the budget of 1 restart, quarantined
    grace = cfg["bars"]["grace_seconds"]

    def quarantine_named():
        return next(((t, h) for t, h in health_of(watcher, session_id)
                     if any("AAPL" in i and re.search(r"quarantin", i, re.I) for i in h.get("issues", []))), None)

    sleep_until(second + grace)
    # Crash 2 is at ``second`` if the session's first (partial) bar reached AAPL's actor, else a
    # minute later: wait for either.
    named = wait_until(quarantine_named, second + 60 + grace + 15 - time.time(), 0.2)
    time.sleep(3.5)  # one more health report after the quarantine
    feeder.stop()
    stopped_early = list(watcher.on("session_stopped"))
    healths_after = [(t, h) for t, h in health_of(watcher, session_id) if t > second + grace]
    others = [p["calculation"]["symbol"] for p in watcher.on("indicators")
              if parse_iso(p["calculation"]["metadata"]["bar_closed_at"]) >= second]
    log = service.log()
    restarts = len(re.findall(r"restart\w* symbol:AAPL", log))
    rc = ctx.stop(service)
    ctx.fig(detect=(named[0] - second - grace) if named else None, buffered=0,
            ticks_sent=len(feeder.ticks()), restarts_logged=restarts,
            other_symbol_events_after=len(others))
    ctx.expect(not stopped_early, f"the session ended: {stopped_early}")
    ctx.expect(restarts >= 1 or any(re.search(r"restart", i, re.I) for _, h in health_of(watcher, session_id)
                                for i in h.get("issues", [])), "no sign of AAPL's actor being restarted")
    ctx.expect(named, ("no health report named AAPL as quarantined; issues after the second crash: "
                   f"{sorted({i for _, h in healths_after for i in h.get('issues', [])})}"))
    ctx.expect(all(h["status"] in ("healthy", "warning") for t, h in healths_after),
               f"health after the quarantine must be healthy or warning: {[(h['status'], h['issues']) for _, h in healths_after]}")
    ctx.expect({"MSFT", "NVDA"} <= set(others), f"other symbols' events after the quarantine: {others}")
    ctx.expect_exit(rc)
    ctx.expect_stopped(watcher, session_id, "stopped")


@scenario("shared_child_budget")
def run_shared_child(ctx: Ctx, runner: "Runner") -> None:
    """(i) The ingress fails on every read: past its budget the session fails, announced once."""
    path, cfg = ctx.config(**{"supervision.max_restarts": 1, "supervision.within_seconds": 120})
    channels = cfg["channels"]
    watcher = ctx.watcher(cfg)
    service, started = ctx.start(path, watcher, extra_env={"TICKSTOCK_INJECT_FAULT": "ingress:receive"})
    session_id = started["session"]["session_id"]
    first_tick = time.time()
    deadline = first_tick + 45
    while time.time() < deadline and not watcher.on("session_stopped"):
        publish_tick(ctx.redis, channels["ticks"], "AAPL", 100.0, 1, time.time())
        time.sleep(0.3)
    stopped_seen = watcher.timed("session_stopped")
    time.sleep(2.0)  # a second session_stopped would come now
    rc = ctx.stop(service)
    time.sleep(0.5)
    stops = watcher.on("session_stopped")
    alerts = [a for a in watcher.on("critical_alerts") if a["severity"] == "critical"]
    ctx.fig(detect=(stopped_seen[0][0] - first_tick) if stopped_seen else None, buffered=0,
            session_stopped_events=len(stops), critical_alerts=len(alerts))
    ctx.expect(stopped_seen, "the session did not end within 45 s of the first tick")
    ctx.expect_stopped(watcher, session_id, "failed")
    ctx.expect(any("ingress" in a["message"] for a in alerts), f"no critical alert naming the ingress: {alerts}")
    ctx.expect_exit(rc)


@scenario("redis_blip_sigterm")
def run_redis_blip(ctx: Ctx, runner: "Runner") -> None:
    """(c) A 1-s Redis cut and SIGTERM at once: exactly one session_stopped, exit code 0."""
    path, cfg = ctx.config()
    watcher = ctx.watcher(cfg)
    service, started = ctx.start(path, watcher)
    session_id = started["session"]["session_id"]
    time.sleep(1.0)
    cut_at = time.time()
    ctx.redis_proxy.cut()
    time.sleep(1.0)
    ctx.redis_proxy.restore()
    term_at = time.time()
    rc = ctx.stop(service)
    exited_at = time.time()
    first = wait_until(lambda: watcher.timed("session_stopped"), 3, 0.05)
    time.sleep(1.0)
    stops = watcher.on("session_stopped")
    ctx.fig(detect=None, recover=(first[0][0] - term_at) if first else None, buffered=0,
            exit_after_sigterm=exited_at - term_at, session_stopped_events=len(stops),
            reconnects_through_proxy=len(ctx.redis_proxy.events_since(cut_at, "accepted")))
    ctx.expect_exit(rc)
    ctx.expect_stopped(watcher, session_id, "stopped")


# The fuzz: categories chosen so each has one unambiguous reason (None: a valid message).
REASONS = ("malformed_json", "missing_field", "wrong_type", "bad_symbol", "bad_price", "bad_volume", "bad_timestamp")


def fuzz_message(rng: random.Random, now: float) -> tuple[bytes, str, str | None, int]:
    """(payload, kind, expected rejection reason or None, volume that must reach a bar)."""
    k = rng.random()
    tick: dict[str, Any] = {"type": "market_tick", "symbol": rng.choice(UNIVERSE),
                            "price": round(rng.uniform(1, 500), 2), "volume": rng.randint(0, 1000),
                            "timestamp": now + rng.uniform(-0.05, 0.0), "source": "fuzz"}
    if k < 0.10:
        return json.dumps(tick).encode(), "valid", None, tick["volume"]
    if k < 0.15:
        tick["timestamp"] = round(tick["timestamp"] * 1000)  # milliseconds: normalised, not rejected
        return json.dumps(tick).encode(), "valid_ms", None, tick["volume"]
    if k < 0.17:
        tick["extra"] = {"nested": [1, 2, {"x": None}], "\u2603": "snow"}
        return json.dumps(tick).encode(), "valid_extra_fields", None, tick["volume"]
    if k < 0.19:
        tick["symbol"] = rng.choice(["ZZZZ", "BRK.B", "XYZ-W"])  # well-formed, outside the universe
        return json.dumps(tick).encode(), "unknown_symbol", None, 0
    if k < 0.30:
        junk = rng.choice([
            lambda: b"~" + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))),
            lambda: json.dumps(tick).encode()[: rng.randint(1, 30)],
            lambda: b"",
            lambda: b"{not json",
            lambda: "\u00e9\u00e8".encode("latin-1"),
            lambda: json.dumps(tick).encode().replace(b'"price": ', b'"price": NaN, "x": ', 1),
            lambda: json.dumps(tick).encode().replace(b'"volume": ', b'"volume": Infinity, "y": ', 1),
        ])()
        return junk, "non_json", "malformed_json", 0
    if k < 0.40:
        del tick[rng.choice(["symbol", "price", "volume", "timestamp"])]
        return json.dumps(tick).encode(), "missing_field", "missing_field", 0
    if k < 0.52:
        field, value = rng.choice([("price", "abc"), ("price", [1]), ("volume", 1.5), ("volume", "10"),
                                   ("symbol", 123), ("timestamp", "now"), ("price", True), ("symbol", None),
                                   ("volume", {"v": 1})])
        tick[field] = value
        return json.dumps(tick).encode(), "wrong_type", "wrong_type", 0
    if k < 0.58:
        return rng.choice([b"null", b"[]", b"42", b'"AAPL"', b"[1,2,3]"]), "not_an_object", "wrong_type", 0
    if k < 0.66:
        tick["symbol"] = rng.choice(["\u00c4APL", "\u82f9\u679c", "AAPL\u200b", "aapl", "\U0001F4C8", "", "A" * 30,
                                     "AAPL\n", " AAPL"])
        return json.dumps(tick).encode(), "bad_symbol", "bad_symbol", 0
    if k < 0.74:
        tick["price"] = rng.choice([0, -1.5, -1e9])
        return json.dumps(tick).encode(), "bad_price", "bad_price", 0
    if k < 0.78:
        raw = json.dumps(tick).encode()
        return (raw.replace(b'"price": ' + json.dumps(tick["price"]).encode(), b'"price": 1e400'),
                "huge_price", "bad_price", 0)
    if k < 0.84:
        tick["volume"] = rng.choice([-1, -10**6, 2**63, 2**70, 10**30])
        return json.dumps(tick).encode(), "bad_volume", "bad_volume", 0
    if k < 0.92:
        tick["timestamp"] = rng.choice([0, -1, 1e10, now + 7200, now - 86400 * 3, 1e18])
        return json.dumps(tick).encode(), "bad_timestamp", "bad_timestamp", 0
    raw = json.dumps(tick).encode()
    return (raw.replace(b'"timestamp": ' + json.dumps(tick["timestamp"]).encode(), b'"timestamp": 1e400'),
            "huge_timestamp", "bad_timestamp", 0)


def scrape(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, Any] = {"rejected": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tickstock_ticks_rejected_total":
                out["rejected"][sample.labels["reason"]] = int(sample.value)
            elif sample.name in ("tickstock_ticks_received_total", "tickstock_ticks_unknown_symbol_total",
                                 "tickstock_ticks_late_total"):
                out[sample.name] = int(sample.value)
    return out


@scenario("fuzz_100k")
def run_fuzz(ctx: Ctx, runner: "Runner") -> None:
    """(j) 100,000 fuzzed messages on the tick channel: alive, counted by reason, valid ones in bars."""
    port = free_port()
    path, cfg = ctx.config(**{"http.enabled": True, "http.port": port})
    channels, keys = cfg["channels"], cfg["keys"]
    watcher = ctx.watcher(cfg)
    service, started = ctx.start(path, watcher)
    session_id = started["session"]["session_id"]
    # A burst of a few seconds that never straddles a minute boundary: every valid tick is on time.
    if time.time() - minute_of(time.time()) > 40:
        sleep_until(minute_of(time.time()) + 61)
    rng = random.Random(20251007)
    expected: dict[str, int] = {}
    kinds: dict[str, int] = {}
    volume_sent = valid = 0
    burst_from = time.time()
    pipe = ctx.redis.pipeline(transaction=False)
    for chunk in range(100):
        now = time.time()
        for _ in range(1000):
            payload, kind, reason, volume = fuzz_message(rng, now)
            kinds[kind] = kinds.get(kind, 0) + 1
            if reason is None:
                valid += 1
                volume_sent += volume
            else:
                expected[reason] = expected.get(reason, 0) + 1
            pipe.publish(channels["ticks"], payload)
        pipe.execute()
    burst_until = time.time()
    counted = wait_until(lambda: (s := scrape(port)).get("tickstock_ticks_received_total") == 100_000 and s, 30, 0.5)
    metrics = counted or scrape(port)
    alive = service.proc.poll() is None
    age = time.time() - (heartbeat_value(ctx.redis, keys["heartbeat"]) or 0)
    health_after = wait_until(lambda: [h for t, h in health_of(watcher, session_id) if t > burst_until + 0.5], 15, 0.2)
    stopped_early = list(watcher.on("session_stopped"))
    rc = ctx.stop(service)
    stored = volume_stored(ctx.database)
    ctx.fig(detect=None, recover=None, buffered=0, ticks_sent=100_000, volume_sent=volume_sent, volume_stored=stored,
            burst=burst_until - burst_from, valid=valid, rejected=sum(expected.values()),
            counted_received=metrics.get("tickstock_ticks_received_total"),
            counted_rejected=sum(metrics["rejected"].values()), heartbeat_age=age,
            by_reason=",".join(f"{r}={metrics['rejected'].get(r, 0)}/{expected.get(r, 0)}" for r in REASONS))
    ctx.expect(alive, f"the service died during the fuzz (exit {service.proc.poll()})")
    ctx.expect(age <= HEARTBEAT_MAX_AGE, f"heartbeat {age:.1f}s old after the fuzz")
    ctx.expect(not stopped_early, f"the session ended: {stopped_early}")
    ctx.expect(health_after, "no health report after the fuzz")
    ctx.expect(counted, f"the service did not count 100,000 received messages: {metrics}")
    ctx.expect(metrics["rejected"] == expected, f"rejected by reason {metrics['rejected']} != sent {expected}")
    ctx.expect(set(expected) == set(REASONS), f"the fuzz must cover every reason: {sorted(expected)}")
    ctx.expect_exit(rc)
    ctx.expect(stored == volume_sent, f"volume stored {stored} != valid volume sent {volume_sent}")


# -- running the scenarios side by side ---------------------------------------------------------------

class Runner:
    """Starts the selected scenarios, each in a thread of its own, and hands each test its outcome."""

    # Order of start: those bound to the shared minute boundary first.
    ORDER = ("pg_cut", "table_lock", "symbol_quarantine", "kill9_buffered", "stop_start", "redis_cut",
             "redis_half_open", "kill9", "redis_blip", "shared_child", "fuzz")

    def __init__(self, tmp_factory) -> None:
        self.t0 = time.time()
        # The boundary the database faults straddle: far enough for their services to start and
        # for the fault to begin 20 s before it.
        self.boundary = math.ceil((self.t0 + 35) / 60) * 60
        self.tmp_factory = tmp_factory
        self.threads: dict[str, threading.Thread] = {}
        self.outcomes: dict[str, tuple[Ctx | None, BaseException | None, float]] = {}

    def start(self, names: list[str]) -> None:
        for name in sorted(names, key=lambda n: self.ORDER.index(n) if n in self.ORDER else 99):
            thread = threading.Thread(target=self._run, args=(name,), name=f"scenario:{name}", daemon=True)
            self.threads[name] = thread
            thread.start()
            time.sleep(0.3)

    def _run(self, name: str) -> None:
        fault, fn = SCENARIOS[name]
        started = time.time()
        ctx: Ctx | None = None
        try:
            with Ctx(name, fault, self.tmp_factory.mktemp(name)) as ctx:
                fn(ctx, self)
                ctx.verify()
        except BaseException as exc:  # handed to the test that owns the scenario
            self.outcomes[name] = (ctx, exc, time.time() - started)
        else:
            self.outcomes[name] = (ctx, None, time.time() - started)

    def check(self, name: str) -> None:
        thread = self.threads.get(name)
        assert thread is not None, f"scenario {name} was not started"
        thread.join(400)
        assert not thread.is_alive(), f"scenario {name} still running after 400 s"
        ctx, exc, took = self.outcomes[name]
        if ctx is not None:
            print(f"\n{ctx.summary()}  [{took:.0f}s wall{'; ' + '; '.join(ctx.notes) if ctx.notes else ''}]")
        if exc is not None:
            if ctx is not None:
                for service in ctx.services:
                    print(f"--- {service.log_path} (warnings and errors, last 25) ---")
                    print(tail(service.log_path, 25, r"WARNING|ERROR|CRITICAL|Traceback|Error"))
            raise exc


@pytest.fixture(scope="module")
def fault_runs(request, tmp_path_factory):
    here = request.module.__name__
    selected = [item.name.removeprefix("test_") for item in request.session.items
                if item.module.__name__ == here and item.name.removeprefix("test_") in SCENARIOS]
    runner = Runner(tmp_path_factory)
    runner.start(selected)
    yield runner
    for thread in runner.threads.values():
        thread.join(60)
    for service in _ALL_SERVICES:
        with contextlib.suppress(Exception):
            service.kill()
    print(f"\nfault scenarios: {time.time() - runner.t0:.0f}s wall for {len(selected)}", file=sys.stderr)


def test_kill9(fault_runs):
    fault_runs.check("kill9")


def test_redis_cut(fault_runs):
    fault_runs.check("redis_cut")


def test_redis_half_open(fault_runs):
    fault_runs.check("redis_half_open")


def test_redis_blip(fault_runs):
    fault_runs.check("redis_blip")


def test_pg_cut(fault_runs):
    fault_runs.check("pg_cut")


def test_table_lock(fault_runs):
    fault_runs.check("table_lock")


def test_stop_start(fault_runs):
    fault_runs.check("stop_start")


def test_kill9_buffered(fault_runs):
    fault_runs.check("kill9_buffered")


def test_symbol_quarantine(fault_runs):
    fault_runs.check("symbol_quarantine")


def test_shared_child(fault_runs):
    fault_runs.check("shared_child")


def test_fuzz(fault_runs):
    fault_runs.check("fuzz")
