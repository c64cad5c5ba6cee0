"""Publishing to Redis: pipelined PUBLISH (one message per event) and the service's keys."""

from __future__ import annotations

from typing import Iterable

from tickstock.adapters.redis.resp import RespConnection


class RedisPublisher:
    """One connection, (re)opened on demand. Every method raises ``RedisUnavailable`` or
    ``RedisReplyError`` on failure; the caller decides what to keep and retry."""

    def __init__(self, url: str, socket_timeout: float = 2.0) -> None:
        self._conn = RespConnection(url, timeout=socket_timeout)

    def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """PUBLISH every (channel, payload) in one round trip; returns how many were sent."""
        commands = [("PUBLISH", channel, payload) for channel, payload in messages]
        if commands:
            self._conn.call_many(commands)
        return len(commands)

    def set_value(self, key: str, value: str | bytes, ttl_seconds: float | None = None) -> None:
        command = ("SET", key, value) if ttl_seconds is None else ("SET", key, value, "PX", int(ttl_seconds * 1000))
        self._conn.call_many([command])

    def refresh(self, heartbeat_key: str, heartbeat_value: str, session_key: str | None, ttl_seconds: float) -> None:
        """Write the heartbeat and extend the retained session key's TTL in one round trip."""
        commands = [("SET", heartbeat_key, heartbeat_value)]
        if session_key:
            commands.append(("PEXPIRE", session_key, int(ttl_seconds * 1000)))
        self._conn.call_many(commands)

    def delete(self, key: str) -> None:
        self._conn.call_many([("DEL", key)])

    def ping(self) -> None:
        self._conn.call_many([("PING",)])

    def close(self) -> None:
        self._conn.close()
