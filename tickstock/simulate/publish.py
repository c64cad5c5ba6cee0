"""The publishing loops: live (the walk, in wall-clock time) and replay (a list, in event time).

Both encode with the contract's tick encoder and hand the payloads to a ``TickSink`` in batches
(one pipelined round trip of PUBLISH commands each). ``RunStats.sent`` counts only what Redis
acknowledged; a publish failure ends the run with ``PublishFailed`` after the stats are final.
Time comes from the clock passed in; ``stop`` (a ``threading.Event``) ends a run between batches.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tickstock.adapters.redis import PublishIncomplete, RedisPublisher
from tickstock.adapters.redis.resp import RedisReplyError, RedisUnavailable
from tickstock.clock import Clock
from tickstock.config import safe_url
from tickstock.simulate.pacing import ReplayPace
from tickstock.simulate.tick import SimTick, encode

__all__ = ["PublishFailed", "RedisTickSink", "RunStats", "TickSink", "run_live", "run_replay"]

MAX_BATCH = 2000          # PUBLISH commands per round trip
LIVE_INTERVAL = 0.02      # seconds between live batches
MAX_SLEEP = 0.1           # a replay never sleeps longer (stop and progress stay responsive)


class TickSink(Protocol):
    def publish(self, payloads: Sequence[bytes]) -> int:
        """Publish every payload; return how many were acknowledged (or raise)."""
        ...


class PublishFailed(RuntimeError):
    """Publishing failed; ``acknowledged`` of the last batch were delivered."""

    def __init__(self, message: str, acknowledged: int = 0) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged


class RedisTickSink:
    """PUBLISH on ``channel`` through the service's own RESP publisher (pipelined, acknowledged)."""

    def __init__(self, url: str, channel: str, timeout: float = 5.0) -> None:
        self.url, self.channel = url, channel
        self._publisher = RedisPublisher(url, socket_timeout=timeout)

    def check(self) -> None:
        """PublishFailed unless Redis answers a PING."""
        try:
            self._publisher.ping()
        except (RedisUnavailable, RedisReplyError) as exc:
            raise PublishFailed(f"redis at {safe_url(self.url)} does not answer: {exc}") from None

    def publish(self, payloads: Sequence[bytes]) -> int:
        try:
            return self._publisher.publish_many((self.channel, p) for p in payloads)
        except PublishIncomplete as exc:
            raise PublishFailed(f"publishing to {safe_url(self.url)} failed: {exc}", exc.acknowledged) from None
        except (RedisUnavailable, RedisReplyError) as exc:
            raise PublishFailed(f"publishing to {safe_url(self.url)} failed: {exc}") from None

    def close(self) -> None:
        self._publisher.close()



@dataclass
class RunStats:
    """What a run sent. ``event_time`` is the latest tick's timestamp (None before the first)."""

    sent: int = 0
    started: float = 0.0
    now: float = 0.0
    event_time: float | None = None
    total: int | None = None  # a replay's tick count

    @property
    def elapsed(self) -> float:
        return max(0.0, self.now - self.started)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


class _Batcher:
    def __init__(self, sink: TickSink, source: str, stats: RunStats) -> None:
        self.sink, self.source, self.stats = sink, source, stats

    def send(self, ticks: Sequence[SimTick]) -> None:
        for i in range(0, len(ticks), MAX_BATCH):
            chunk = ticks[i:i + MAX_BATCH]
            payloads = [encode(t, self.source) for t in chunk]
            try:
                acknowledged = self.sink.publish(payloads)
            except PublishFailed as exc:
                self.stats.sent += exc.acknowledged
                raise
            self.stats.sent += acknowledged
            self.stats.event_time = chunk[-1].timestamp


class Market(Protocol):
    def advance(self, until: float) -> list[SimTick]: ...


def run_live(
    market: Market,
    sink: TickSink,
    clock: Clock,
    *,
    start: float,
    seconds: float | None,
    stop: threading.Event,
    on_progress: Callable[[RunStats], None] = lambda stats: None,
    source: str = "tickstock.simulate",
    interval: float = LIVE_INTERVAL,
) -> RunStats:
    """Publish the market's ticks as their event time (= wall time) passes, every ``interval``
    seconds, from ``start`` for ``seconds`` (None: until ``stop``). Every tick stamped before the
    end is sent; none after it."""
    stats = RunStats(started=start, now=start)
    batcher = _Batcher(sink, source, stats)
    end = None if seconds is None else start + seconds
    while True:
        now = clock.now()
        finished = stop.is_set() or (end is not None and now >= end)
        until = now if end is None else min(now, end)
        batcher.send(market.advance(until))
        stats.now = clock.now()
        on_progress(stats)
        if finished:
            return stats
        clock.sleep(interval)


def run_replay(
    ticks: Sequence[SimTick],
    sink: TickSink,
    clock: Clock,
    *,
    speed: float | None,
    stop: threading.Event,
    seconds: float | None = None,
    on_progress: Callable[[RunStats], None] = lambda stats: None,
    source: str = "tickstock.replay",
) -> RunStats:
    """Publish ``ticks`` (sorted by event time) in that order, each when ``ReplayPace`` says it is
    due, in batches of what is due; ends when all are sent, ``stop`` is set or ``seconds`` of wall
    time have passed."""
    start = clock.now()
    stats = RunStats(started=start, now=start, total=len(ticks))
    if not ticks:
        return stats
    batcher = _Batcher(sink, source, stats)
    times = [t.timestamp for t in ticks]
    pace = ReplayPace(times[0], start, speed)
    i, n = 0, len(ticks)
    while i < n and not stop.is_set():
        now = clock.now()
        if seconds is not None and now - start >= seconds:
            break
        j = min(bisect.bisect_right(times, pace.watermark(now), lo=i), i + MAX_BATCH)
        full = j - i == MAX_BATCH  # more may be due already: no sleep
        if j > i:
            batcher.send(ticks[i:j])
            i = j
        stats.now = clock.now()
        on_progress(stats)
        if i < n and not full:
            wait = pace.due(times[i]) - clock.now()
            if wait > 0:
                clock.sleep(min(wait, MAX_SLEEP))
    stats.now = clock.now()
    on_progress(stats)
    return stats
