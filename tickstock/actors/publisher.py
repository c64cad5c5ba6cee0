"""PublisherActor: the one writer of everything the service says on Redis.

Guarantees:
- Each event is one PUBLISH of one JSON object on its channel(s); events told in one ``Publish``
  (or entries in one ``PublishEncoded``, encoded where they were computed) go out in one
  pipelined round trip, in order. A Redis outage never kills this actor.
- If Redis does not acknowledge, events are kept (up to ``max_buffer``, oldest dropped first and
  counted) and retried every ``retry_interval`` seconds (from the timer, or with the first message
  after that): while Redis is down a ``Publish`` costs a buffer append, no connection attempt.
- No duplicates from retries: a PUBLISH Redis acknowledged (its integer reply was read) leaves the
  buffer at once, so when a pipeline breaks after k replies only the others are sent again. (A
  PUBLISH whose reply never came may have been delivered: that one can be sent twice.)
- ``PublishConfirmed`` (an ask) answers ``True`` only when Redis acknowledged every PUBLISH of its
  events (and of everything buffered before them, which goes first), reconnecting and retrying
  until its deadline, else ``False``; one log line either way. On ``False`` its events are
  forgotten, not retried later: the caller owns the fallback, so the event is not sent twice.
- It counts what the session computed, so ``session_stopped`` totals come from the same place
  every result passes through; the counters are pushed to the supervisor (``ChildReport``) every
  ``report_interval`` seconds and handed over in ``ChildFailed.final_stats`` when it dies, so the
  session's totals survive a restart of this actor.
- The heartbeat key holds the time at which it is written (its clock), never a queued tick's.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import pykka

from tickstock.actors.base import SupervisedActor, handles
from tickstock.actors.timer import Ticker
from tickstock.adapters.redis.publisher import PublishIncomplete
from tickstock.adapters.redis.resp import RedisReplyError, RedisUnavailable
from tickstock.config import ChannelSettings, KeySettings
from tickstock.messages.commands import (
    ClearSession, GetStats, Heartbeat, Publish, PublishConfirmed, PublishEncoded, RetainSession, TimerTick,
)
from tickstock.messages.events import IndicatorCalculated, PatternDetected
from tickstock.messages.wire import dumps


_REDIS_ERRORS = (RedisUnavailable, RedisReplyError, OSError)
_MAX_PIPELINE = 2000  # events per round trip at most when coalescing
_CONFIRM_BACKOFF = (0.05, 1.0)  # first and longest pause between PublishConfirmed attempts
_STOP_FLUSH_TIMEOUT = 1.0  # the last flush in on_stop waits no longer than this per round trip


@dataclass(frozen=True, slots=True)
class PublisherStats:
    published: int
    buffered: int
    dropped: int
    patterns: int
    indicators: int
    redis_connected: bool
    last_error: str


def encode_for_redis(events, channels: ChannelSettings, high_confidence: float) -> list[tuple[str, bytes]]:
    """(channel, JSON) pairs for ``events``, one per PUBLISH, in order: each event on its own channel,
    and a detection at or above ``high_confidence`` also on ``patterns_high_confidence``.

    One pass, the channel of each event type looked up once: at a bar close this runs for every
    result of every symbol (~5 us an event was half channel lookup)."""
    out: list[tuple[str, bytes]] = []
    append = out.append
    channel_of: dict[type, str] = {}
    high = channels.patterns_high_confidence
    for event in events:
        kind = type(event)
        channel = channel_of.get(kind)
        if channel is None:
            channel = channel_of[kind] = getattr(channels, event.channel)
        # Patterns and indicators (thousands per close) encode from Structs: the same bytes.
        payload = event.wire_json() if kind is IndicatorCalculated or kind is PatternDetected else dumps(event.to_wire())
        append((channel, payload))
        if kind is PatternDetected and event.confidence >= high_confidence:
            append((high, payload))
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
        report_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
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
        self._report_interval = report_interval
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._retry_at = 0.0         # monotonic: no flush attempt before this (back-off after a failure)
        self._next_report_at = 0.0   # monotonic
        self._ticker: Ticker | None = None
        self.published = self.dropped = self.patterns = self.indicators = 0
        self.redis_connected = False
        self.last_error = ""

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        if self._redis is None:  # a PublishConfirmed handled before Open may have made it already
            self._redis = self._connect()
        self._redis.ping()
        self.redis_connected = True
        self.report(self._snapshot())
        self._next_report_at = self._monotonic() + self._report_interval
        interval = min(self._retry_interval, self._report_interval)
        self._ticker = Ticker(self.actor_ref, interval, TimerTick, "publisher").start()

    def on_stop(self) -> None:
        if self._ticker:
            self._ticker.stop()
        self._flush(timeout=_STOP_FLUSH_TIMEOUT)
        if self._buffer:
            self.log.error("publisher stopped with {} events unsent: {}", len(self._buffer), self.last_error)
        self.report(self._snapshot())
        if self._redis is not None:
            self._redis.close()

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        """Dying: stop the timer, send what is buffered (one bounded try: the next incarnation
        starts empty), then report the death with the final counters."""
        if self._ticker:
            self._ticker.stop()
        try:
            self._flush(timeout=_STOP_FLUSH_TIMEOUT)
        except Exception as exc:  # the failure may be in the client itself
            self.log.error("publisher could not flush while dying: {!r}", exc)
        if self._buffer:
            self.log.error("publisher died with {} events unsent", len(self._buffer))
        super().on_failure(exception_type, exception_value, traceback)
        if self._redis is not None:
            try:
                self._redis.close()
            except Exception:
                pass

    def final_stats(self) -> PublisherStats:
        return self._snapshot()

    # -- messages -------------------------------------------------------------------------------

    @handles(Publish)
    def _publish(self, message: Publish) -> None:
        self._count(message.events)
        self._enqueue(encode_for_redis(message.events, self._channels, self._high_confidence))

    @handles(PublishEncoded)
    def _publish_encoded(self, message: PublishEncoded) -> None:
        self.patterns += message.patterns
        self.indicators += message.indicators
        self._enqueue(message.entries)

    def _enqueue(self, entries) -> None:
        """Buffer ``entries`` behind what is buffered and flush them when it is time."""
        self._buffer.extend(entries)
        overflow = len(self._buffer) - self._max_buffer
        if overflow > 0:
            for _ in range(overflow):
                self._buffer.popleft()
            self.dropped += overflow
            self.log.error("publish buffer full: dropped {} oldest events", overflow)
        if not self._retry_due():
            return  # Redis failed recently: keep it, the timer retries (no cost per message)
        # Coalesce: at a bar close 500 symbol actors each send a Publish within a few ms (merged by
        # the session's outbox). Flushing only when no further Publish is queued (or the batch is
        # large) sends them in a handful of pipelines. No waiting for company here: the outbox
        # already lingered, and a wait at the end of a close's burst was pure latency (2 ms).
        if len(self._buffer) >= _MAX_PIPELINE or not self._more_queued():
            self._flush()

    @handles(PublishConfirmed)
    def _publish_confirmed(self, message: PublishConfirmed) -> bool:
        """Publish and wait for Redis's acknowledgement of every PUBLISH, until the deadline."""
        names = ", ".join(sorted({type(e).__name__ for e in message.events})) or "nothing"
        started = self._clock()
        if started >= message.deadline:
            # The asker has given up already and fallen back: sending now could duplicate it.
            self.log.error("publish of {} not attempted: its deadline passed {:.2f}s before it was handled",
                           names, started - message.deadline)
            return False
        self._count(message.events)
        entries = encode_for_redis(message.events, self._channels, self._high_confidence)
        mine = {id(entry) for entry in entries}
        self._buffer.extend(entries)  # behind everything buffered: order is kept
        if self._redis is None:
            self._redis = self._connect()
        attempts, pause = 0, _CONFIRM_BACKOFF[0]
        while True:
            attempts += 1
            remaining = message.deadline - self._clock()
            self._flush(timeout=max(remaining, 0.05))
            unacknowledged = [entry for entry in self._buffer if id(entry) in mine]
            if not unacknowledged:
                self.log.info("{} acknowledged by redis ({} PUBLISH) after {} attempt(s) in {:.2f}s",
                              names, len(entries), attempts, self._clock() - started)
                return True
            remaining = message.deadline - self._clock()
            if remaining <= 0:
                break
            self._sleep(min(pause, remaining))
            pause = min(pause * 2, _CONFIRM_BACKOFF[1])
        self._buffer = deque(entry for entry in self._buffer if id(entry) not in mine)
        self.log.error("{} NOT acknowledged by redis within {:.2f}s ({} attempts, {} of {} PUBLISH unconfirmed, "
                       "left to the caller's fallback): {}", names, self._clock() - started, attempts,
                       len(unacknowledged), len(entries), self.last_error)
        return False

    @handles(Heartbeat)
    def _heartbeat(self, message: Heartbeat) -> None:
        # The time written is read now, when writing: a tick queued behind a slow call is old.
        self._call(lambda: self._redis.refresh(self._keys.heartbeat, str(self._clock()), self._keys.session, self._ttl))

    @handles(RetainSession)
    def _retain(self, message: RetainSession) -> None:
        self._call(lambda: self._redis.set_value(self._keys.session, dumps(message.payload), self._ttl))
        message.follow_up()  # after the SET, as the heartbeat does

    @handles(ClearSession)
    def _clear(self, message: ClearSession) -> None:
        self._call(lambda: self._redis.delete(self._keys.session))

    @handles(TimerTick)
    def _timer(self, message: TimerTick) -> None:
        """Retry buffered events when the back-off is over; push the counters when due."""
        if self._buffer and self._retry_due():
            self._flush()
        now = self._monotonic()
        if now >= self._next_report_at:
            self.report(self._snapshot())
            # Half a tick early: a tick that arrives a hair before the exact interval still reports.
            tick = min(self._retry_interval, self._report_interval)
            self._next_report_at = now + self._report_interval - tick / 2

    @handles(GetStats)
    def _stats(self, message: GetStats) -> PublisherStats:
        return self._snapshot()

    def on_receive(self, message: Any) -> Any:
        result = super().on_receive(message)
        # The other retry point for buffered events: after a message that is not itself about
        # publishing, when nothing else is queued and the back-off is over.
        if (self._buffer and type(message) not in (Publish, PublishEncoded, PublishConfirmed, TimerTick)
                and self._retry_due() and not self._more_queued()):
            self._flush()
        return result

    # -- internals ------------------------------------------------------------------------------

    def _snapshot(self) -> PublisherStats:
        return PublisherStats(
            self.published, len(self._buffer), self.dropped, self.patterns, self.indicators,
            self.redis_connected, self.last_error,
        )

    def _count(self, events) -> None:
        for event in events:
            if isinstance(event, PatternDetected):
                self.patterns += 1
            elif isinstance(event, IndicatorCalculated):
                self.indicators += 1

    def _retry_due(self) -> bool:
        return self._monotonic() >= self._retry_at

    def _more_queued(self) -> bool:
        """Whether another message is queued behind this one (then the flush waits for it)."""
        return self.actor_inbox.qsize() > 0

    def _call(self, operation: Callable[[], object]) -> bool:
        if self._redis is None:  # not opened yet: keep everything for when it is
            return False
        try:
            operation()
        except _REDIS_ERRORS as exc:
            self._mark_down(exc)
            return False
        self._mark_up()
        return True

    def _mark_up(self) -> None:
        if not self.redis_connected:
            self.log.info("redis is reachable again")
        self.redis_connected = True
        self._retry_at = 0.0  # reachable: buffered events may go at once

    def _mark_down(self, exc: Exception) -> None:
        if self.redis_connected:
            self.log.error("redis publish failed, buffering (retry every {:g}s): {!r}", self._retry_interval, exc)
        self.redis_connected = False
        self.last_error = repr(exc)
        self._retry_at = self._monotonic() + self._retry_interval

    def _flush(self, timeout: float | None = None) -> bool:
        """Send the buffer in pipelines of at most ``_MAX_PIPELINE``; what Redis acknowledged
        leaves the buffer, the rest stays in order. True when the buffer is empty."""
        if self._redis is None:
            return not self._buffer
        buffer = self._buffer
        while buffer:
            batch = list(itertools.islice(buffer, _MAX_PIPELINE))
            started = time.perf_counter()
            try:
                if timeout is None:
                    self._redis.publish_many(batch)
                else:
                    self._redis.publish_many(batch, timeout=timeout)
            except PublishIncomplete as exc:
                self._settle(batch, exc.pending)
                self._mark_down(exc)
                return False
            except _REDIS_ERRORS as exc:
                self._mark_down(exc)
                return False
            if self._observe_latency is not None:
                self._observe_latency(time.perf_counter() - started)
            for _ in range(len(batch)):
                buffer.popleft()
            self.published += len(batch)
            self._mark_up()
        return True

    def _settle(self, batch: list[tuple[str, bytes]], pending: tuple[int, ...]) -> None:
        """``batch`` (the head of the buffer) was partly acknowledged: keep only ``pending``."""
        for _ in range(len(batch)):
            self._buffer.popleft()
        self._buffer.extendleft(batch[i] for i in reversed(pending))
        self.published += len(batch) - len(pending)
