"""Reading Redis as the dashboard does: the output channels and the two keys, nothing else.

Guarantees:
- Read-only: SUBSCRIBE on the output channels (every ``ChannelSettings`` field but ``ticks``),
  MGET of the heartbeat and session keys, PING. Nothing is published, written or deleted.
- ``open`` returns only once the server confirmed every subscription, so a key read after it
  cannot miss an event published between the read and the subscription.
- Every Redis failure leaves as :class:`MonitorRedisError` naming the URL (password masked), never
  as a redis-py exception.
- Messages are stamped with the clock's time when read.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from tickstock.clock import Clock
from tickstock.config import safe_url
from tickstock.monitor.state import ChannelMessage, KeysRead

_DRAIN_LIMIT = 5000  # messages taken per ``messages`` call after the first arrives


class MonitorRedisError(RuntimeError):
    """Redis could not be reached or the connection was lost."""



class RedisReader:
    """One connection for the keys and one subscription, opened by ``open``. Not thread-safe."""

    def __init__(self, url: str, channels: Mapping[str, str], heartbeat_key: str, session_key: str, clock: Clock,
                 connect_timeout: float = 3.0) -> None:
        self.url = url
        self._by_channel = {name.encode(): setting for setting, name in channels.items()}
        if not self._by_channel:
            raise ValueError("no channel to read")
        self._keys = (heartbeat_key, session_key)
        self._clock = clock
        self._timeout = connect_timeout
        self._client: redis.Redis | None = None
        self._pubsub: redis.client.PubSub | None = None

    def _fail(self, exc: Exception) -> MonitorRedisError:
        self.close()
        return MonitorRedisError(f"cannot read Redis at {safe_url(self.url)}: {exc}")

    def open(self) -> None:
        """Connect, PING, subscribe and wait for every subscription to be confirmed."""
        self.close()
        try:
            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=self._timeout,
                                                socket_timeout=max(self._timeout, 5.0), health_check_interval=10)
            self._client.ping()
            self._pubsub = self._client.pubsub()
            self._pubsub.subscribe(*self._by_channel)
            pending = set(self._by_channel)
            deadline = self._clock.now() + max(self._timeout, 5.0)
            while pending:
                if self._clock.now() > deadline:
                    raise TimeoutError(f"{len(pending)} subscription(s) not confirmed")
                reply = self._pubsub.get_message(timeout=0.2)
                if reply and reply["type"] == "subscribe":
                    pending.discard(reply["channel"])
        except (redis.RedisError, OSError) as exc:
            raise self._fail(exc) from None

    def read_keys(self) -> KeysRead:
        if self._client is None:
            raise MonitorRedisError("not connected")
        try:
            heartbeat, session = self._client.mget(self._keys)
        except (redis.RedisError, OSError) as exc:
            raise self._fail(exc) from None
        return KeysRead(heartbeat, session, self._clock.now())

    def messages(self, timeout: float) -> list[ChannelMessage]:
        """What arrived: waits up to ``timeout`` seconds for the first message, then takes what is
        already there (at most a few thousand)."""
        if self._pubsub is None:
            raise MonitorRedisError("not connected")
        out: list[ChannelMessage] = []
        try:
            reply = self._pubsub.get_message(timeout=timeout)
            while reply is not None and len(out) < _DRAIN_LIMIT:
                if reply["type"] == "message":
                    setting = self._by_channel.get(reply["channel"])
                    if setting is not None:
                        out.append(ChannelMessage(setting, reply["data"], self._clock.now()))
                reply = self._pubsub.get_message(timeout=0.0)
        except (redis.RedisError, OSError) as exc:
            raise self._fail(exc) from None
        return out

    def close(self) -> None:
        for closable in (self._pubsub, self._client):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # closing a broken connection: nothing left to do
                    pass
        self._pubsub = self._client = None
