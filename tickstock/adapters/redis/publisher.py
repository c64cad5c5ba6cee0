"""Publishing to Redis through redis-py: pipelined PUBLISH (one message per event), keys."""

from __future__ import annotations

from typing import Iterable

import redis


class RedisPublisher:
    """Thin wrapper over one redis-py client. Raises ``redis.RedisError`` on any failure; the
    caller decides what to keep and retry."""

    def __init__(self, url: str, socket_timeout: float = 2.0) -> None:
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, health_check_interval=30
        )

    def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """PUBLISH every (channel, payload) in one round trip; returns how many were sent."""
        pipe = self._client.pipeline(transaction=False)
        count = 0
        for channel, payload in messages:
            pipe.publish(channel, payload)
            count += 1
        if count:
            pipe.execute()
        return count

    def set_value(self, key: str, value: str | bytes, ttl_seconds: float | None = None) -> None:
        if ttl_seconds is None:
            self._client.set(key, value)
        else:
            self._client.set(key, value, px=int(ttl_seconds * 1000))

    def refresh(self, heartbeat_key: str, heartbeat_value: str, session_key: str | None, ttl_seconds: float) -> None:
        """Write the heartbeat and extend the retained session key's TTL in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        pipe.set(heartbeat_key, heartbeat_value)
        if session_key:
            pipe.pexpire(session_key, int(ttl_seconds * 1000))
        pipe.execute()

    def delete(self, key: str) -> None:
        self._client.delete(key)

    def ping(self) -> None:
        self._client.ping()

    def close(self) -> None:
        self._client.close()
