"""Publishing to Redis: pipelined PUBLISH (one message per event) and the service's keys."""

from __future__ import annotations

from typing import Iterable

from tickstock.adapters.redis.resp import PipelineBroken, RedisUnavailable, RespConnection


class PublishIncomplete(RedisUnavailable):
    """Not every PUBLISH of a ``publish_many`` was acknowledged.

    ``pending`` are the positions (in the batch given, ascending) of the messages Redis did not
    acknowledge: their reply never came (the connection broke or timed out) or was an error. Every
    other message was acknowledged (an integer reply) and is delivered: re-send only ``pending``.
    A message whose reply never came may still have been delivered; nothing can tell."""

    def __init__(self, message: str, acknowledged: int, pending: tuple[int, ...]) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged
        self.pending = pending


class RedisPublisher:
    """One connection, (re)opened on demand. Every method raises ``RedisUnavailable`` or
    ``RedisReplyError`` on failure; the caller decides what to keep and retry."""

    def __init__(self, url: str, socket_timeout: float = 2.0) -> None:
        self._conn = RespConnection(url, timeout=socket_timeout)

    def publish_many(self, messages: Iterable[tuple[str, bytes]], timeout: float | None = None) -> int:
        """PUBLISH every (channel, payload) in one round trip (reconnecting first if needed,
        within ``timeout`` seconds, default the socket timeout) and return how many were
        acknowledged: all of them, or it raises ``PublishIncomplete`` saying which were not."""
        commands = [("PUBLISH", channel, payload) for channel, payload in messages]
        if not commands:
            return 0
        try:
            replies = self._conn.pipeline(commands, timeout)
            reason = ""
        except PipelineBroken as exc:
            replies, reason = exc.replies, str(exc)
        except RedisUnavailable as exc:  # not connected, or the write failed: nothing acknowledged
            raise PublishIncomplete(str(exc), 0, tuple(range(len(commands)))) from None
        pending = tuple(i for i in range(len(commands)) if i >= len(replies) or type(replies[i]) is not int)
        if pending:
            if not reason:
                refused = next((r for r in replies if type(r) is not int), None)
                reason = f"PUBLISH refused: {refused!s}"
            raise PublishIncomplete(reason, len(commands) - len(pending), pending)
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
