"""PublisherActor: the one writer of everything the service says on Redis.

Guarantees: each event is one PUBLISH of one JSON object on its channel(s); events told in one
``Publish`` go out in one pipelined round trip, in order. If Redis refuses, events are kept (up to
``max_buffer``, oldest dropped first and counted) and retried on the next message or timer tick:
a Redis outage never kills this actor. It also counts what the session computed, so
``session_stopped`` totals come from the same place every result passes through.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import pykka

from tickstock.actors.base import SupervisedActor, handles
from tickstock.actors.timer import Ticker
from tickstock.adapters.redis.resp import RedisReplyError, RedisUnavailable
from tickstock.config import ChannelSettings, KeySettings
from tickstock.messages.commands import ClearSession, GetStats, Heartbeat, Publish, RetainSession, TimerTick
from tickstock.messages.events import Event, IndicatorCalculated, PatternDetected
from tickstock.messages.wire import dumps


_REDIS_ERRORS = (RedisUnavailable, RedisReplyError, OSError)
_MAX_PIPELINE = 2000  # events per round trip at most when coalescing
_COALESCE_WAIT = 0.002  # seconds a lone Publish waits for company before it is sent


@dataclass(frozen=True, slots=True)
class PublisherStats:
    published: int
    buffered: int
    dropped: int
    patterns: int
    indicators: int
    redis_connected: bool
    last_error: str


def channels_for(event: Event, channels: ChannelSettings, high_confidence: float) -> list[str]:
    """Where an event goes: its own channel; a detection at or above ``high_confidence`` also
    goes to ``patterns_high_confidence``."""
    channel = getattr(channels, event.channel)
    if isinstance(event, PatternDetected) and event.confidence >= high_confidence:
        return [channel, channels.patterns_high_confidence]
    return [channel]


def encode_for_redis(events, channels: ChannelSettings, high_confidence: float) -> list[tuple[str, bytes]]:
    """(channel, JSON) pairs for ``events``, one per PUBLISH."""
    out = []
    for event in events:
        payload = dumps(event.to_wire())
        out.extend((channel, payload) for channel in channels_for(event, channels, high_confidence))
    return out


class PublisherActor(SupervisedActor):
    def __init__(
        self,
        supervisor: pykka.ActorRef | None,
        session_id: str,
        channels: ChannelSettings,
        keys: KeySettings,
        session_key_ttl: float,
        high_confidence: float,
        connect: Callable[[], object],
        max_buffer: int = 100_000,
        retry_interval: float = 1.0,
        observe_latency: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(supervisor, "publisher", session_id)
        self._observe_latency = observe_latency
        self._channels = channels
        self._keys = keys
        self._ttl = session_key_ttl
        self._high_confidence = high_confidence
        self._connect = connect
        self._redis = None
        self._buffer: deque[tuple[str, bytes]] = deque()
        self._max_buffer = max_buffer
        self._retry_interval = retry_interval
        self._ticker: Ticker | None = None
        self.published = self.dropped = self.patterns = self.indicators = 0
        self.redis_connected = False
        self.last_error = ""

    def open(self) -> None:
        self._redis = self._connect()
        self._redis.ping()
        self.redis_connected = True
        self._ticker = Ticker(self.actor_ref, self._retry_interval, TimerTick, "publisher").start()

    def on_stop(self) -> None:
        if self._ticker:
            self._ticker.stop()
        self._flush()
        if self._buffer:
            self.log.error("publisher stopped with {} events unsent: {}", len(self._buffer), self.last_error)

    @handles(Publish)
    def _publish(self, message: Publish) -> None:
        for event in message.events:
            if isinstance(event, PatternDetected):
                self.patterns += 1
            elif isinstance(event, IndicatorCalculated):
                self.indicators += 1
        self._buffer.extend(encode_for_redis(message.events, self._channels, self._high_confidence))
        overflow = len(self._buffer) - self._max_buffer
        if overflow > 0:
            for _ in range(overflow):
                self._buffer.popleft()
            self.dropped += overflow
            self.log.error("publish buffer full: dropped {} oldest events", overflow)
        # Coalesce: at a bar close 500 symbol actors each send a Publish within a few ms. One
        # round trip per message made the last symbol wait ~400 ms; flushing only when no further
        # Publish is queued (or the batch is large) sends them in a handful of pipelines.
        if len(self._buffer) >= _MAX_PIPELINE or not self._more_queued(_COALESCE_WAIT):
            self._flush()

    @handles(Heartbeat)
    def _heartbeat(self, message: Heartbeat) -> None:
        self._call(lambda: self._redis.refresh(self._keys.heartbeat, str(message.now), self._keys.session, self._ttl))

    @handles(RetainSession)
    def _retain(self, message: RetainSession) -> None:
        self._call(lambda: self._redis.set_value(self._keys.session, dumps(message.payload), self._ttl))

    @handles(ClearSession)
    def _clear(self, message: ClearSession) -> None:
        self._call(lambda: self._redis.delete(self._keys.session))

    @handles(TimerTick)
    def _timer(self, message: TimerTick) -> None:
        """Nothing of its own: it wakes the actor so ``on_receive`` retries buffered events."""

    @handles(GetStats)
    def _stats(self, message: GetStats) -> PublisherStats:
        return PublisherStats(
            self.published, len(self._buffer), self.dropped, self.patterns, self.indicators,
            self.redis_connected, self.last_error,
        )

    def _more_queued(self, wait: float) -> bool:
        """Whether another message is queued, waiting up to ``wait`` for one to arrive: symbol
        actors finish a bar close within a few ms of each other, so a short wait turns hundreds
        of round trips into a few."""
        if self.actor_inbox.qsize() > 0:
            return True
        if wait > 0:
            time.sleep(wait)
        return self.actor_inbox.qsize() > 0

    def on_receive(self, message: Any) -> Any:
        result = super().on_receive(message)
        # The one retry point for buffered events: after any message but a Publish (which
        # coalesces on its own), when nothing else is queued.
        if self._buffer and not isinstance(message, Publish) and not self._more_queued(0):
            self._flush()
        return result

    def _call(self, operation: Callable[[], object]) -> bool:
        if self._redis is None:  # not opened yet: keep everything for when it is
            return False
        try:
            operation()
        except _REDIS_ERRORS as exc:
            self._mark_down(exc)
            return False
        if not self.redis_connected:
            self.log.info("redis is reachable again")
        self.redis_connected = True
        return True

    def _mark_down(self, exc: Exception) -> None:
        if self.redis_connected:
            self.log.error("redis publish failed, buffering: {!r}", exc)
        self.redis_connected = False
        self.last_error = repr(exc)

    def _flush(self) -> None:
        if not self._buffer or self._redis is None:
            return
        batch = list(self._buffer)
        started = time.perf_counter()
        if self._call(lambda: self._redis.publish_many(batch)):
            if self._observe_latency is not None:
                self._observe_latency(time.perf_counter() - started)
            self._buffer.clear()
            self.published += len(batch)
