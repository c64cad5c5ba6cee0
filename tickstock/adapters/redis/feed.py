"""The tick channel subscriber: a raw socket read by ``hiredis.Reader``.

Why not redis-py's ``PubSub``: the server disconnects a subscriber whose unread backlog passes
32 MB, so the reader must drain the socket faster than any burst. A raw socket with hiredis parses
~430k messages/s on this machine against ~100-140k/s through redis-py (shared/docs/domain.md).

Half-open connections: a subscriber only reads, so a connection whose peer vanished (a cut cable,
a dropped NAT entry) would look like a quiet channel forever. After ``ping_interval`` seconds with
nothing received the feed sends PING (allowed in subscribed mode; the reply is ``[b"pong", b""]``);
if nothing at all arrives within ``ping_timeout`` after it, ``read`` raises ``FeedDisconnected``.
So a dead subscription is detected within ``ping_interval + ping_timeout`` (default 30 s).

Why it was lost (``disconnects``): every connect pipelines INFO / INFO commandstats / CONFIG GET
client-output-buffer-limit before SUBSCRIBE (no extra round trip); the reconnect after a loss
compares those counters with the previous connect's and with what the socket saw (how far behind
the reader was when the server closed it), and ``disconnect_cause()`` says it: a slow reader
dropped by the output-buffer limit is told from a network fault. Per read the feed only adds up
bytes and messages; nothing is done per tick.
"""

from __future__ import annotations

import select
import socket
import time

import hiredis

from tickstock.adapters.redis.disconnects import (
    CONNECT_COMMANDS, CONNECTION_LOST, HALF_OPEN, SERVER_CLOSED, DisconnectCause, LostConnection, ServerCounters,
    classify,
)
from tickstock.adapters.redis.resp import RedisReplyError, RedisUnavailable, RespConnection

_RECV_BYTES = 1 << 20
_PING = hiredis.pack_command(("PING",))


class FeedDisconnected(RedisUnavailable):
    """The subscription is gone (server closed, network error, or it never came up).

    ``reason``: what was seen when it went (``disconnects``: ``server_closed``,
    ``connection_lost``, ``half_open``, ...). The server's side of it is known only once the
    feed is connected again: ``RedisTickFeed.disconnect_cause()``."""

    def __init__(self, message: str, reason: str = CONNECTION_LOST) -> None:
        super().__init__(message)
        self.reason = reason


class RedisTickFeed:
    """One subscription to one channel. Not thread-safe: owned by the ingress receive thread."""

    def __init__(self, url: str, channel: str, connect_timeout: float = 5.0,
                 ping_interval: float = 10.0, ping_timeout: float = 20.0) -> None:
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be positive")
        self.url = url
        self.channel = channel.encode()
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._conn = RespConnection(url, timeout=connect_timeout)
        self._last_data_at = 0.0              # monotonic: when anything was last received
        self._ping_sent_at: float | None = None  # monotonic: the PING not yet followed by data
        self._unsent = b""                    # the part of a PING the socket did not take yet
        self.pings_sent = 0
        # Disconnect diagnosis (``disconnects``): per read, not per tick.
        self.bytes_received = 0
        self.messages_received = 0
        self._run_bytes = 0          # read back to back since a read last found the socket nearly empty
        self._drained = True
        self._behind_threshold = _RECV_BYTES
        self._counters: ServerCounters | None = None  # read at the latest connect
        self._lost: LostConnection | None = None      # the loss not yet explained by a reconnect
        self._cause: DisconnectCause | None = None    # explained at the latest connect

    @property
    def connected(self) -> bool:
        return self._conn.connected

    def connect(self) -> None:
        """Connect, authenticate and subscribe. Returns only once the server confirmed the
        subscription; raises ``FeedDisconnected`` with the reason otherwise."""
        conn = self._conn
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            # What the kernel granted (Linux doubles it; net.core.rmem_max caps it): a reader that
            # has a quarter of it (at most one full read) waiting is behind.
            rcvbuf = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self._behind_threshold = max(1, min(_RECV_BYTES, rcvbuf // 4))
            conn.send([*CONNECT_COMMANDS, ("SUBSCRIBE", self.channel)])
            deadline = time.monotonic() + self.connect_timeout
            replies = [conn.read_reply(deadline) for _ in CONNECT_COMMANDS]  # error replies too
            counters = ServerCounters.parse(*replies[:-1], limits=replies[-1])
            while True:
                reply = conn.read_reply(deadline)
                if isinstance(reply, list) and reply[:2] == [b"subscribe", self.channel]:
                    break
                if isinstance(reply, hiredis.ReplyError):
                    raise FeedDisconnected(f"SUBSCRIBE refused: {reply}")
        except (RedisUnavailable, RedisReplyError, OSError) as exc:
            conn.close()
            raise FeedDisconnected(str(exc)) from None
        conn.sock.settimeout(None)
        conn.sock.setblocking(False)
        self._last_data_at = time.monotonic()
        self._ping_sent_at = None
        self._unsent = b""
        self._run_bytes, self._drained = 0, True
        previous, self._counters = self._counters, counters
        lost, self._lost = self._lost, None
        self._cause = classify(previous, counters, lost) if lost is not None else None

    def disconnect_cause(self) -> DisconnectCause | None:
        """Why the previous connection was lost, as judged at the latest (re)connect; None if
        this connection did not follow a loss (the first connect, or a reconnect on demand)."""
        return self._cause

    def read(self, timeout: float) -> list[bytes]:
        """Wait up to ``timeout`` seconds for data and return every complete message payload
        available (possibly none). Sends PING when the connection has been silent for
        ``ping_interval``. Raises ``FeedDisconnected`` if the connection is lost, including when
        nothing arrived within ``ping_timeout`` of a PING (a half-open connection)."""
        sock = self._conn.sock
        if sock is None:
            raise FeedDisconnected("not connected")
        try:
            wait = self._keepalive(time.monotonic(), max(timeout, 0.0))
            readable, _, _ = select.select([sock], [], [], wait)
            if not readable:
                self._keepalive(time.monotonic(), 0.0)  # raises if the PING went unanswered
                return []
            data = sock.recv(_RECV_BYTES)
        except FeedDisconnected:
            raise
        except (BlockingIOError, InterruptedError):
            return []
        except (OSError, ValueError) as exc:
            raise self._lose(CONNECTION_LOST, f"connection lost: {exc}") from None
        if not data:
            raise self._lose(SERVER_CLOSED, "server closed the connection")
        self._last_data_at = time.monotonic()
        self._ping_sent_at = None
        size = len(data)
        if self._drained:
            self._run_bytes = 0
        self._run_bytes += size
        self._drained = size < self._behind_threshold
        self.bytes_received += size
        reader = self._conn.reader
        reader.feed(data)
        payloads: list[bytes] = []
        append = payloads.append
        channel = self.channel
        while (reply := reader.gets()) is not False:
            # [b"message", channel, payload]; anything else (pong, unsubscribe) is not a tick.
            if type(reply) is list and len(reply) == 3 and reply[0] == b"message" and reply[1] == channel:
                append(reply[2])
        self.messages_received += len(payloads)
        return payloads

    def _lose(self, kind: str, detail: str) -> FeedDisconnected:
        """Close, keep what the socket saw for the diagnosis at the reconnect, and say it."""
        behind = self._run_bytes
        mean = self.bytes_received / self.messages_received if self.messages_received else None
        self._lost = LostConnection(kind, detail, behind, self._behind_threshold, mean)
        self.close()
        if behind >= self._behind_threshold:
            detail += (f" (the reader was behind: {behind / 2**20:.1f} MiB read back to back without once "
                       "finding its socket empty)")
        return FeedDisconnected(detail, kind)

    def _keepalive(self, now: float, wait: float) -> float:
        """PING when due, fail when a PING went unanswered; returns how long ``read`` may block
        (``wait``, shortened to the next PING or PING deadline)."""
        if self._ping_sent_at is not None:
            overdue = self._ping_sent_at + self.ping_timeout
            if now >= overdue:
                silent = now - self._last_data_at
                raise self._lose(HALF_OPEN, f"no reply to PING within {self.ping_timeout:g}s, nothing "
                                 f"received for {silent:.1f}s (half-open connection)")
            if self._unsent:
                self._send_ping(b"")
            return min(wait, overdue - now)
        due = self._last_data_at + self.ping_interval
        if now < due:
            return min(wait, due - now)
        self._ping_sent_at = now
        self.pings_sent += 1
        self._send_ping(_PING)
        return min(wait, self.ping_timeout)

    def _send_ping(self, data: bytes) -> None:
        """Write (the rest of) a PING without blocking: what the socket does not take now is
        kept for the next read (a full send buffer is itself a sign the peer is gone)."""
        assert self._conn.sock is not None
        pending = self._unsent + data
        try:
            sent = self._conn.sock.send(pending)
        except (BlockingIOError, InterruptedError):
            sent = 0
        self._unsent = pending[sent:]

    def close(self) -> None:
        self._unsent = b""
        self._ping_sent_at = None
        self._conn.close()
