"""The tick channel subscriber: a raw socket read by ``hiredis.Reader``.

Why not redis-py's ``PubSub``: the server disconnects a subscriber whose unread backlog passes
32 MB, so the reader must drain the socket faster than any burst. A raw socket with hiredis parses
~430k messages/s on this machine against ~100-140k/s through redis-py (shared/docs/domain.md).
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from urllib.parse import unquote, urlparse

import hiredis

_RECV_BYTES = 1 << 20


class FeedDisconnected(ConnectionError):
    """The subscription is gone (server closed, network error, or it never came up)."""


def _command(*parts: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RedisTickFeed:
    """One subscription to one channel. Not thread-safe: owned by the ingress receive thread."""

    def __init__(self, url: str, channel: str, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.channel = channel.encode()
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader()
        self._pending: list[bytes] = []

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        """Connect, authenticate and subscribe. Returns only once the server confirmed the
        subscription; raises ``FeedDisconnected`` with the reason otherwise."""
        self.close()
        parsed = urlparse(self.url)
        try:
            sock = socket.create_connection(
                (parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=self.connect_timeout
            )
            if parsed.scheme == "rediss":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parsed.hostname)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError as exc:
            raise FeedDisconnected(f"cannot connect to {parsed.hostname}:{parsed.port or 6379}: {exc}") from None
        self._sock = sock
        self._reader = hiredis.Reader()
        self._pending = []
        try:
            if parsed.password:
                auth = ("AUTH", unquote(parsed.username), unquote(parsed.password)) if parsed.username else (
                    "AUTH", unquote(parsed.password))
                sock.sendall(_command(*auth))
                reply = self._read_reply(time.monotonic() + self.connect_timeout)
                if isinstance(reply, hiredis.ReplyError):
                    raise FeedDisconnected(f"AUTH refused: {reply}")
            sock.sendall(_command("SUBSCRIBE", self.channel))
            deadline = time.monotonic() + self.connect_timeout
            while True:
                reply = self._read_reply(deadline)
                if isinstance(reply, list) and reply[:2] == [b"subscribe", self.channel]:
                    break
                if isinstance(reply, hiredis.ReplyError):
                    raise FeedDisconnected(f"SUBSCRIBE refused: {reply}")
            sock.settimeout(None)
            sock.setblocking(False)
        except (OSError, FeedDisconnected) as exc:
            self.close()
            raise exc if isinstance(exc, FeedDisconnected) else FeedDisconnected(str(exc)) from None

    def _read_reply(self, deadline: float):
        assert self._sock is not None
        while True:
            reply = self._reader.gets()
            if reply is not False:
                return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FeedDisconnected("timed out waiting for the server's reply")
            self._sock.settimeout(remaining)
            data = self._sock.recv(65536)
            if not data:
                raise FeedDisconnected("server closed the connection")
            self._reader.feed(data)

    def read(self, timeout: float) -> list[bytes]:
        """Wait up to ``timeout`` seconds for data and return every complete message payload
        available (possibly none). Raises ``FeedDisconnected`` if the connection is lost."""
        sock = self._sock
        if sock is None:
            raise FeedDisconnected("not connected")
        try:
            readable, _, _ = select.select([sock], [], [], max(timeout, 0.0))
            if not readable:
                return []
            data = sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return []
        except (OSError, ValueError) as exc:
            self.close()
            raise FeedDisconnected(f"connection lost: {exc}") from None
        if not data:
            self.close()
            raise FeedDisconnected("server closed the connection")
        reader = self._reader
        reader.feed(data)
        payloads: list[bytes] = []
        append = payloads.append
        channel = self.channel
        while (reply := reader.gets()) is not False:
            # [b"message", channel, payload]; anything else (pong, unsubscribe) is not a tick.
            if type(reply) is list and len(reply) == 3 and reply[0] == b"message" and reply[1] == channel:
                append(reply[2])
        return payloads

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
