"""HeartbeatActor: tells the dashboard the producer is alive, for the whole life of the process.

Guarantees:
- ``keys.heartbeat`` holds ``str(epoch seconds)`` of the moment it was written (read from the clock
  when writing, never a queued timer's time), rewritten every ``heartbeat_interval_seconds`` from
  the start of the process to its end, whether or not a session runs.
- While a session is retained (``RetainSession``), ``keys.session`` holds its JSON with a TTL of
  ``session_key_ttl_seconds``, extended at every heartbeat: if the process dies (kill -9) the key
  expires within that TTL. ``ClearSession`` deletes it at once.
- A ``RetainSession``'s follow-up (the ``session_started`` announcement) is told only after its SET
  has been answered or has failed: whoever hears the announcement can already read the key.
- Runs on a thread of its own and talks to Redis on a connection of its own: a stuck database, a
  busy session or a blocked publisher never delays it. A Redis outage is logged once when it
  begins and once when it ends; the next beat simply tries again.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pykka
from loguru import logger

from tickstock.actors.timer import Ticker
from tickstock.messages.commands import ClearSession, GetStats, RetainSession, TimerTick
from tickstock.messages.wire import dumps


class HeartbeatActor(pykka.ThreadingActor):
    def __init__(self, connect: Callable[[], Any], heartbeat_key: str, session_key: str, interval: float,
                 session_ttl: float, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._connect = connect
        self._redis: Any = None
        self._heartbeat_key = heartbeat_key
        self._session_key = session_key
        self._interval = interval
        self._ttl = session_ttl
        self._clock = clock
        self._retained: bytes | None = None
        self._ticker: Ticker | None = None
        self.beats = 0
        self.last_beat_at: float | None = None
        self.connected = True
        self.log = logger.bind(actor="heartbeat")

    def on_start(self) -> None:
        self._beat()
        self._ticker = Ticker(self.actor_ref, self._interval, TimerTick, "heartbeat").start()

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self._redis is not None:
            self._redis.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, TimerTick):
            if message.source is not None:
                message.source.handled()
            self._beat()
        elif isinstance(message, RetainSession):
            self._retained = dumps(message.payload)
            self._write(lambda redis: redis.set_value(self._session_key, self._retained, self._ttl))
            message.follow_up()  # after the SET, written or not: the announcement is never held back
        elif isinstance(message, ClearSession):
            self._retained = None
            self._write(lambda redis: redis.delete(self._session_key))
        elif isinstance(message, GetStats):
            return {"beats": self.beats, "last_beat_at": self.last_beat_at, "redis_connected": self.connected,
                    "retaining": self._retained is not None}
        return None

    def _beat(self) -> None:
        now = self._clock()
        session_key = self._session_key if self._retained is not None else None
        if self._write(lambda redis: redis.refresh(self._heartbeat_key, str(now), session_key, self._ttl)):
            self.beats += 1
            self.last_beat_at = now

    def _write(self, operation: Callable[[Any], None]) -> bool:
        try:
            if self._redis is None:
                self._redis = self._connect()
            operation(self._redis)
        except Exception as exc:  # RedisUnavailable, RedisReplyError, OSError: try again next beat
            if self.connected:
                self.log.error("heartbeat could not be written, retrying every {}s: {!r}", self._interval, exc)
            self.connected = False
            return False
        if not self.connected:
            self.log.info("heartbeat written again")
        self.connected = True
        return True
