"""The load generator: pre-encoded PUBLISH commands written on a raw socket, paced on a monotonic
schedule, in a process of its own (``LoadGenerator`` starts and talks to it).

Per batch the hot path is: slice the pre-encoded ticks, stamp them with ``time.time()`` (one
``bytes.replace``; in event time, ``event_open + (wall - t0) * speed``: see bench/eventtime.py), ``sendall``, and read whatever replies are waiting (``:<receivers>\\r\\n`` each,
counted with ``bytes.count``; a ``:0`` reply is a tick published while nobody was subscribed). No
redis-py, no JSON encoding, no per-tick Python.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import resource
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

import hiredis

from tickstock.bench.eventtime import EventMap
from tickstock.bench.pacing import Burst, Schedule
from tickstock.bench.resp import TickCommands, command, stamp

END_MARKER = b"END"
_POLL_EVERY = 0.1  # seconds between checks for a stop request from the parent


@dataclass
class LoadSpec:
    url: str
    channel: str
    symbols: list[str]
    rate: float                     # ticks/s; 0 = flat out
    seconds: float | None = None    # stop after this long...
    count: int | None = None        # ...or after this many ticks...
    until: float | None = None      # ...or at this epoch second (whichever comes first)
    burst: Burst | None = None
    end_marker: bool = False        # PUBLISH b"END" on the channel after the last tick
    stop_when_unheard: bool = False # stop at the first PUBLISH nobody received (the reader was cut off)
    variants: int | None = None
    # Event time (the day scenario): stamp ``event_open + (wall - t0) * speed``, t0 = the first
    # batch's wall time; stop before the stamp reaches ``event_until``.
    event_open: float | None = None
    speed: float = 1.0
    event_until: float | None = None
    batch_seconds: float = 0.005
    max_batch: int = 2000


@dataclass
class LoadResult:
    sent: int = 0
    started_at: float = 0.0         # epoch: first batch
    ended_at: float = 0.0           # epoch: last batch
    first_stamp: float = 0.0        # the timestamp the first batch carried (event time: the open)
    last_stamp: float = 0.0         # the timestamp the last batch carried
    replies: int = 0
    unheard: int = 0                # PUBLISH replies of 0: nobody subscribed at that moment
    per_second: dict[int, int] = field(default_factory=dict)  # epoch second -> ticks sent
    max_behind: float = 0.0         # seconds the generator fell behind its schedule, at worst
    cpu_seconds: float = 0.0        # user + sys of the generator process while sending
    error: str = ""

    @property
    def seconds(self) -> float:
        return max(self.ended_at - self.started_at, 1e-9)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.sent else 0.0


class ReplyCounter:
    """Counts integer replies in a byte stream cut anywhere: every reply ends with ``\\n``; a
    ``:0\\r\\n`` (4 bytes) may straddle two reads, so the last 3 bytes are carried over."""

    def __init__(self) -> None:
        self.replies = 0
        self.zero = 0
        self.first_error = ""
        self._tail = b""

    def feed(self, data: bytes) -> None:
        self.replies += data.count(b"\n")
        joined = self._tail + data
        self.zero += joined.count(b":0\r\n")
        if not self.first_error and b"-" in data:
            start = data.index(b"-")
            self.first_error = data[start:start + 200].split(b"\r\n")[0].decode(errors="replace")
        self._tail = joined[-3:]


def connect(url: str, timeout: float = 5.0) -> socket.socket:
    """A plain socket to the Redis of ``url`` (redis:// with optional password and DB number)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", ""):
        raise ValueError(f"the load generator speaks plain redis:// only, not {parsed.scheme}://")
    sock = socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    setup = []
    if parsed.password:
        setup.append(command("AUTH", unquote(parsed.username), unquote(parsed.password)) if parsed.username
                     else command("AUTH", unquote(parsed.password)))
    db = parsed.path.strip("/")
    if db and db != "0":
        setup.append(command("SELECT", db))
    if setup:
        sock.sendall(b"".join(setup))
        reader = hiredis.Reader()
        for _ in setup:
            reply = False
            while reply is False:
                reader.feed(sock.recv(4096))
                reply = reader.gets()
            if isinstance(reply, hiredis.ReplyError):
                raise ConnectionError(f"redis refused the set-up: {reply}")
    sock.settimeout(None)
    return sock


def _drain(sock: socket.socket, counter: ReplyCounter) -> None:
    while True:
        try:
            data = sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            raise ConnectionError("redis closed the generator's connection")
        counter.feed(data)


def generate(sock: socket.socket, ticks: TickCommands, spec: LoadSpec, stop_requested=lambda: False,
             on_start=None) -> LoadResult:
    """Send ticks on ``sock`` as ``spec`` says; returns what was sent and heard back.

    One timestamp per batch, never decreasing: the wall clock, or in event time (``spec.event_open``)
    ``EventMap(event_open, speed, t0).event_at(wall)`` rounded down to the millisecond, with ``t0``
    the first batch's wall time (so the first batch is stamped ``event_open``), every stamp as
    written before ``spec.event_until``.
    ``on_start(t0)`` is called once, right after the first batch is sent."""
    schedule = Schedule(spec.rate, spec.burst, spec.batch_seconds, spec.max_batch)
    total = spec.count if spec.count is not None else float("inf")
    if spec.seconds is not None and not schedule.flat_out:
        # Paced for a duration: exactly what the schedule holds (sent late rather than cut short,
        # so a generator that fell behind shows in its rate, not in a smaller count). A batch goes
        # when its first tick is due, so every tick is sent (and stamped) within the duration.
        total = min(total, schedule.due(spec.seconds))
    counter = ReplyCounter()
    per_second: Counter[int] = Counter()
    result = LoadResult()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    next_poll = t0 + _POLL_EVERY
    sent = 0
    max_behind = 0.0
    batch = schedule.batch
    started_at = ended_at = first_stamp = last_stamp = 0.0
    event_map: EventMap | None = None
    while sent < total:
        now_mono = time.monotonic()
        elapsed = now_mono - t0
        if now_mono >= next_poll:
            next_poll = now_mono + _POLL_EVERY
            if stop_requested():
                break
        if spec.seconds is not None and schedule.flat_out and elapsed >= spec.seconds:
            break
        wall = time.time()
        if spec.until is not None and wall >= spec.until:
            break
        if spec.event_open is None:
            at = wall
        else:
            # To the millisecond the stamp is written with, rounded down: never at the close.
            at = spec.event_open if event_map is None else math.floor(event_map.event_at(wall) * 1000) / 1000
            if spec.event_until is not None and at >= spec.event_until:
                break
        due_at = schedule.time_of(sent)  # when the next batch's first tick is due
        if elapsed >= due_at:
            # A batch as the schedule sizes it, bigger if the generator fell behind.
            n = int(min(spec.max_batch, total - sent, max(batch, schedule.due(elapsed) - sent)))
            max_behind = max(max_behind, elapsed - due_at)
            sock.sendall(stamp(ticks.take(sent, n), at))
            if not started_at:
                started_at, first_stamp = wall, at
                if spec.event_open is not None:
                    event_map = EventMap(spec.event_open, spec.speed, wall)
                if on_start is not None:
                    on_start(wall)
            ended_at, last_stamp = wall, at
            sent += n
            per_second[int(wall)] += n
            _drain(sock, counter)
            if spec.stop_when_unheard and counter.zero:
                break
        else:
            time.sleep(min(due_at - elapsed, _POLL_EVERY))
            _drain(sock, counter)
    expected = sent
    if spec.end_marker:
        sock.sendall(command(b"PUBLISH", spec.channel, END_MARKER))
        expected += 1
    deadline = time.monotonic() + 15.0
    sock.settimeout(0.5)
    while counter.replies < expected and time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            continue
        if not data:
            break
        counter.feed(data)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    result.sent = sent
    result.started_at, result.ended_at = started_at, ended_at
    result.first_stamp, result.last_stamp = first_stamp, last_stamp
    result.replies = min(counter.replies, sent)
    result.unheard = counter.zero
    result.per_second = dict(per_second)
    result.max_behind = max_behind
    result.cpu_seconds = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    result.error = counter.first_error
    return result


def _process_main(spec: LoadSpec, conn) -> None:
    try:
        ticks = TickCommands(spec.channel, spec.symbols, spec.variants)
        sock = connect(spec.url)
        conn.send(("ready", None))
        message = conn.recv()
        if not (isinstance(message, tuple) and message[0] == "go"):
            return
        if message[1] is not None:
            spec.until = message[1]
        result = generate(sock, ticks, spec, stop_requested=conn.poll,
                          on_start=lambda t0: conn.send(("started", t0)))
        sock.close()
        conn.send(("done", result))
    except Exception as exc:  # reported to the parent, never silent
        conn.send(("error", repr(exc)))


class LoadGenerator:
    """The generator process: ``start()`` pre-encodes and connects (returns when ready), ``go()``
    starts sending, ``first_batch_at()`` waits for the first batch's wall time, ``wait()`` returns
    the ``LoadResult``; ``stop()`` asks it to end early."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        ctx = mp.get_context("spawn")  # nothing inherited from the bench's threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_process_main, args=(spec, child), name="bench-loadgen", daemon=True)
        self.go_at = 0.0
        self.started_at: float | None = None    # wall time of the first batch, once reported
        self._held: tuple | None = None         # the final message, read while waiting for the first batch

    def start(self, timeout: float = 120.0) -> LoadGenerator:
        self._proc.start()
        if not self._conn.poll(timeout):
            raise RuntimeError("load generator did not become ready")
        kind, detail = self._conn.recv()
        if kind != "ready":
            raise RuntimeError(f"load generator failed to start: {detail}")
        return self

    def go(self, until: float | None = None) -> None:
        """Start sending now (until the epoch second ``until`` if given, else as the spec says)."""
        self.go_at = time.time()
        self._conn.send(("go", until))

    def first_batch_at(self, timeout: float = 30.0) -> float:
        """The wall time of the first batch (the event-time map's t0), waiting for it if need be."""
        while self.started_at is None:
            if self._held is not None or not self._conn.poll(timeout):
                raise RuntimeError(f"load generator sent nothing: {self._held[1] if self._held else 'no reply'}")
            message = self._conn.recv()
            if message[0] == "started":
                self.started_at = message[1]
            else:
                self._held = message
        return self.started_at

    def stop(self) -> None:
        try:
            self._conn.send("stop")
        except OSError:
            pass

    def _next_final(self, timeout: float | None) -> tuple | None:
        """The "done"/"error" message within ``timeout`` (None if none came)."""
        if self._held is not None:
            return self._held
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._conn.poll(left):
                return None
            message = self._conn.recv()
            if message[0] == "started":
                self.started_at = message[1]
                continue
            return message

    def wait(self, timeout: float | None = None) -> LoadResult:
        message = self._next_final(timeout)
        if message is None:
            self.stop()
            message = self._next_final(30)
            if message is None:
                self.kill()
                raise RuntimeError("load generator did not finish")
        kind, detail = message
        self._proc.join(10)
        if kind != "done":
            raise RuntimeError(f"load generator failed: {detail}")
        return detail

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
