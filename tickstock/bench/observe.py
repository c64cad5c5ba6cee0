"""Watching the service from outside while it runs.

- ``EventRecorder``: one raw subscription (hiredis, as the service's own ingress) to the output
  channels; every read is stamped with ``time.time()`` on arrival and kept raw (parsed afterwards,
  so the recorder costs little CPU while the service is measured).
- ``Sampler``: every second, the service process's CPU (user + sys) and RSS (psutil), and the output
  backlog Redis holds for the service's tick subscription (``CLIENT LIST``: ``omem`` and ``tot-mem``
  of the connection that belongs to the service's process and is subscribed).
- ``BarPoller``: when each expected minute's bars appear in ``ohlcv_1min`` (all symbols' rows),
  polled every 50 ms from the minute's deadline until they are all there (in event time, the
  deadline mapped to the wall clock).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import hiredis
import psutil
import psycopg2
import redis

from tickstock.adapters.redis.resp import RespConnection


class RawSubscriber:
    """SUBSCRIBE to ``channels`` on a raw socket; ``read`` returns [(channel, payload)]."""

    def __init__(self, url: str, channels: Sequence[str], rcvbuf: int = 8 << 20) -> None:
        self.channels = [c.encode() for c in channels]
        self._conn = RespConnection(url, timeout=5.0)
        self._conn.connect()
        sock = self._conn.sock
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._conn.send([("SUBSCRIBE", *self.channels)])
        confirmed = 0
        deadline = time.monotonic() + 5.0
        while confirmed < len(self.channels):
            reply = self._conn.read_reply(deadline)
            if isinstance(reply, list) and reply and reply[0] == b"subscribe":
                confirmed += 1
            elif isinstance(reply, hiredis.ReplyError):
                raise ConnectionError(f"SUBSCRIBE refused: {reply}")
        sock.settimeout(None)
        sock.setblocking(False)
        self.sock = sock
        self.reader = self._conn.reader

    def read(self, timeout: float) -> list[tuple[bytes, bytes]]:
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            return []
        out = []
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                raise ConnectionError("redis closed the subscription")
            self.reader.feed(data)
            if len(data) < (1 << 20):
                break
        while (reply := self.reader.gets()) is not False:
            if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
                out.append((reply[1], reply[2]))
        return out

    def drain(self, quiet: float = 0.05) -> list[tuple[bytes, bytes]]:
        """Everything until nothing arrives for ``quiet`` seconds."""
        out = []
        while batch := self.read(quiet):
            out.extend(batch)
        return out

    def close(self) -> None:
        self._conn.close()


class EventRecorder:
    """A thread keeping (received_at, channel, payload) of everything on ``channels``."""

    def __init__(self, url: str, channels: Sequence[str]) -> None:
        self._sub = RawSubscriber(url, channels)
        self.received: list[tuple[float, str, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        append = self.received.append
        names: dict[bytes, str] = {}
        while not self._stop.is_set():
            try:
                batch = self._sub.read(0.1)
            except (OSError, ConnectionError):
                return
            now = time.time()
            for channel, payload in batch:
                name = names.get(channel)
                if name is None:
                    name = names[channel] = channel.decode()
                append((now, name, payload))

    def first(self, channel: str, after: int = 0) -> tuple[float, bytes] | None:
        for t, name, payload in self.received[after:]:
            if name == channel:
                return t, payload
        return None

    def wait_for(self, channel: str, timeout: float, alive=lambda: True) -> tuple[float, bytes]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            hit = self.first(channel)
            if hit:
                return hit
            if not alive():
                raise RuntimeError(f"the service exited before anything came on {channel}")
            time.sleep(0.02)
        raise TimeoutError(f"nothing on {channel} within {timeout:.0f}s")

    def on(self, channel: str) -> list[tuple[float, bytes]]:
        return [(t, p) for t, name, p in list(self.received) if name == channel]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sub.close()


@dataclass
class Sample:
    t: float
    cpu: float          # cumulative user + sys seconds of the service's processes (with its analysis process)
    rss: int            # bytes, the service's processes together
    omem: int | None    # output buffer of the service's tick subscription, bytes (None: not found)
    tot_mem: int | None
    sub_id: int | None  # Redis client id of that subscription (a change: it reconnected)


def _redis_client_fields(line_fields: dict) -> tuple[int, int, int]:
    return int(line_fields.get("omem", 0)), int(line_fields.get("tot-mem", 0)), int(line_fields.get("id", 0))


class Sampler:
    """Samples the service's processes (the service and its children: the analysis process) and
    its subscription every ``interval`` seconds."""

    def __init__(self, pid: int, redis_url: str, interval: float = 1.0) -> None:
        self.process = psutil.Process(pid)
        self.client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.interval = interval
        self.samples: list[Sample] = []
        self.errors = 0
        # The service's local TCP addresses, to find its subscription in CLIENT LIST. Listing them
        # walks every descriptor of the process (~10 ms of CPU at 500 symbols, on the cores the
        # service runs on, once a second): done again only when the subscription is not found.
        self._local: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def sample_now(self) -> Sample | None:
        try:
            times = self.process.cpu_times()
            cpu = times.user + times.system + times.children_user + times.children_system  # + children ended
            rss = self.process.memory_info().rss
            children = self.process.children(recursive=True)
        except psutil.Error:
            return None
        for child in children:  # the analysis process: its CPU and memory are the service's too
            try:
                child_times = child.cpu_times()
                cpu += child_times.user + child_times.system
                rss += child.memory_info().rss
            except psutil.Error:
                continue
        omem = tot = sub_id = None
        try:
            clients = self.client.client_list()
            subscription = self._subscription(clients)
            if subscription is None:  # new connections since the addresses were listed
                self._local = self._local_addresses()
                subscription = self._subscription(clients)
            if subscription is not None:
                omem, tot, sub_id = _redis_client_fields(subscription)
        except redis.RedisError:
            self.errors += 1
        except psutil.Error:
            return None
        sample = Sample(time.time(), cpu, rss, omem, tot, sub_id)
        self.samples.append(sample)
        return sample

    def _local_addresses(self) -> set[str]:
        return {f"{c.laddr.ip}:{c.laddr.port}" for c in self.process.net_connections(kind="tcp") if c.raddr}

    def _subscription(self, clients: list[dict]) -> dict | None:
        """The service's subscribed connection among ``clients`` (CLIENT LIST), if known."""
        for client in clients:
            if client.get("addr") in self._local and (int(client.get("sub", 0)) or int(client.get("psub", 0))):
                return client
        return None

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sample_now()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()


class BarPoller:
    """When the bars of each expected minute are all in ``ohlcv_1min``: ``arrivals[minute]`` is the
    wall epoch second at which a poll first counted ``len(symbols)`` rows for it.

    ``wall_of`` maps a bar time to the wall clock (identity live; in event time the replay's
    ``EventMap.wall_at``): a minute is polled from ``wall_of(minute end + grace)`` on, given up
    ``give_up`` wall seconds after ``wall_of(minute end)``. ``by_symbol``: count through the
    (symbol, timestamp) key, one probe per symbol, rather than scanning the parts table (a long run
    whose table grows)."""

    def __init__(self, dsn: str, symbols: Sequence[str], grace: float, interval: float = 0.05,
                 give_up: float = 120.0, wall_of: Callable[[float], float] | None = None,
                 by_symbol: bool = False) -> None:
        self.symbols = list(symbols)
        self.grace = grace
        self.wall_of = wall_of or (lambda t: t)
        self.by_symbol = by_symbol
        self.interval = interval
        self.give_up = give_up
        self.arrivals: dict[int, float] = {}
        self.counts: dict[int, int] = {}
        self._pending: set[int] = set()
        self._parts: bool | None = None
        self._lock = threading.Lock()
        self._conn = psycopg2.connect(dsn)
        self._conn.autocommit = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-bars", daemon=True)
        self._thread.start()

    def expect(self, minute: int) -> None:
        with self._lock:
            if minute not in self.arrivals:
                self._pending.add(minute)

    def pending(self) -> list[int]:
        with self._lock:
            return sorted(self._pending)

    def _count(self, minute: int) -> int:
        with self._conn.cursor() as cur:
            if self._parts is None:
                cur.execute("SELECT to_regclass('ohlcv_1min_parts') IS NOT NULL")
                self._parts = bool(cur.fetchone()[0])
            if self._parts and self.by_symbol:
                cur.execute("SELECT count(*) FROM ohlcv_1min_parts WHERE symbol = ANY(%s) "
                            "AND timestamp = to_timestamp(%s)", (self.symbols, minute))
            elif self._parts:
                # Each part is written in the transaction that merges its minute into ohlcv_1min, so
                # it is visible exactly when the ohlcv_1min row is; the parts table holds only this
                # run's live bars (not the primed history), so counting there is cheap.
                cur.execute("SELECT count(*) FROM ohlcv_1min_parts WHERE timestamp = to_timestamp(%s)", (minute,))
            else:
                cur.execute("SELECT count(*) FROM ohlcv_1min WHERE symbol = ANY(%s) AND timestamp = to_timestamp(%s)",
                            (self.symbols, minute))
            return int(cur.fetchone()[0])

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for minute in self.pending():
                if now < self.wall_of(minute + 60 + self.grace) - 0.2:
                    continue
                try:
                    count = self._count(minute)
                except psycopg2.Error:
                    continue
                self.counts[minute] = count
                with self._lock:
                    if count >= len(self.symbols):
                        self.arrivals[minute] = time.time()
                        self._pending.discard(minute)
                    elif now > self.wall_of(minute + 60) + self.give_up:
                        self._pending.discard(minute)
            self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()


def volume_since(dsn: str, first_minute: int) -> tuple[int, int]:
    """(sum of volume, rows) in ``ohlcv_1min`` from ``first_minute`` on."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(volume), 0), count(*) FROM ohlcv_1min WHERE timestamp >= to_timestamp(%s)",
                        (first_minute,))
            total, rows = cur.fetchone()
            return int(total), int(rows)
    finally:
        conn.close()
