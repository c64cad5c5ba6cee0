"""A TCP proxy between the service and Redis/PostgreSQL that a test can cut, blackhole and restore.

    with TcpProxy.for_url(REDIS_URL) as proxy:
        config["redis"]["url"] = proxy.url_for(REDIS_URL)   # the service talks through the proxy
        ...
        proxy.cut()        # every live connection is reset (RST); new ones are reset at once
        proxy.restore()    # new connections are forwarded again
        proxy.blackhole()  # connections stay open, nothing is forwarded either way (half-open network)
        proxy.restore()    # what was held in the socket buffers flows again, like a healed partition

The machine's Redis and PostgreSQL are shared: a fault is injected here, between one client and
the server, and never by stopping or flushing the server.

One thread runs a selector loop over the listener and every forwarded connection; ``cut``,
``blackhole``, ``restore`` and ``close`` are applied by that thread and return once they have
taken effect, so a test can rely on the state right after the call. While blackholed the proxy
neither reads nor writes: data waits in the kernel's socket buffers (the senders see their writes
accepted and never answered), and connection attempts wait in the listen backlog.
"""

from __future__ import annotations

import queue
import selectors
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 1 << 16
_HIGH_WATER = 4 << 20     # bytes held for one side before the proxy stops reading the other
_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "postgresql": 5432, "postgres": 5432}
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN

OPEN, CUT, BLACKHOLE, CLOSED = "open", "cut", "blackhole", "closed"
_FREEZE = "freeze"  # command: blackhole the live connections only


@dataclass(eq=False)
class _Pair:
    """One forwarded connection: the accepted client socket and the socket to the target."""

    id: int
    client: socket.socket
    upstream: socket.socket
    opened_at: float
    frozen: bool = False
    pending: dict = field(default_factory=dict)  # socket -> bytearray still to be written to it

    def __post_init__(self) -> None:
        self.pending = {self.client: bytearray(), self.upstream: bytearray()}

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.client else self.client


def _reset(sock: socket.socket) -> None:
    """Close with RST, so the other end gets ECONNRESET instead of a clean end of stream."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``.

    Counters (written by the proxy thread only): ``connections_total`` (forwarded),
    ``connections_refused`` (reset at once during a cut, or the target refused),
    ``bytes_up`` (client -> target) and ``bytes_down`` (target -> client), both counting bytes
    actually delivered. ``events`` keeps ``(time, kind, connection id)`` for the last 10,000
    connection events (kinds: accepted, refused, closed, reset), so a test can tell when the
    client noticed a fault (its first reconnect attempt) and when it came back.
    """

    def __init__(self, target_host: str, target_port: int, connect_timeout: float = 2.0) -> None:
        self.target = (target_host, int(target_port))
        self.connect_timeout = connect_timeout
        self.host = "127.0.0.1"
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self.mode = OPEN
        self.connections_total = 0
        self.connections_refused = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.events: deque[tuple[float, str, int]] = deque(maxlen=10_000)
        self._pairs: dict[int, _Pair] = {}
        self._next_id = 0
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._selector.register(self._listener, selectors.EVENT_READ, "listen")
        self._listening = True
        self._thread = threading.Thread(target=self._run, name=f"tcp-proxy:{self.port}", daemon=True)
        self._thread.start()

    # -- construction helpers --------------------------------------------------------------------

    @classmethod
    def for_url(cls, url: str, **kwargs) -> "TcpProxy":
        """A proxy to the host and port of a ``redis://`` or ``postgresql://`` URL (or a libpq
        ``key=value`` DSN)."""
        host, port = _host_port(url)
        return cls(host, port, **kwargs)

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by this proxy's; user, password, path (DB
        number or database name) and query are kept. Accepts a libpq ``key=value`` DSN too."""
        if "://" not in url:
            from psycopg2.extensions import make_dsn

            return make_dsn(url, host=self.host, port=str(self.port))
        parts = urlsplit(url)
        userinfo, at, _ = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{self.host}:{self.port}"))

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    # -- faults ------------------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset (RST) every live connection, both sides; until ``restore`` every new connection
        is accepted and reset at once."""
        self._command(CUT)

    def blackhole(self, existing_only: bool = False) -> None:
        """Keep every socket open but forward nothing either way; new connections wait in the
        listen backlog. Clients see silence, never an error: only their own timeouts help.

        ``existing_only``: only the connections live now go silent (a half-open connection, e.g.
        state dropped by a NAT or firewall); new connections are forwarded as usual, so a client
        that detects the dead connection can reconnect at once."""
        self._command(_FREEZE if existing_only else BLACKHOLE)

    def restore(self) -> None:
        """Forward again: new connections are accepted, held data flows (also on connections
        silenced by ``blackhole(existing_only=True)``)."""
        self._command(OPEN)

    def close(self) -> None:
        """Stop the proxy: close every connection and the listener (connects are then refused)."""
        if self._thread.is_alive():
            self._command(CLOSED)
            self._thread.join(5)

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- observing ---------------------------------------------------------------------------------

    @property
    def active_connections(self) -> int:
        return len(self._pairs)

    def stats(self) -> dict:
        return {"mode": self.mode, "active": len(self._pairs),
                "frozen": sum(1 for p in list(self._pairs.values()) if p.frozen), "total": self.connections_total,
                "refused": self.connections_refused, "bytes_up": self.bytes_up, "bytes_down": self.bytes_down}

    def events_since(self, t: float, kind: str | None = None) -> list[tuple[float, str, int]]:
        return [e for e in list(self.events) if e[0] >= t and (kind is None or e[1] == kind)]

    def wait_for_connections(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Wait until at least ``n`` connections are being forwarded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._pairs) >= n:
                return True
            time.sleep(0.02)
        return False

    def __repr__(self) -> str:
        return f"TcpProxy({self.host}:{self.port} -> {self.target[0]}:{self.target[1]}, {self.stats()})"

    # -- the loop (proxy thread only below this line) --------------------------------------------

    def _command(self, mode: str) -> None:
        if not self._thread.is_alive():
            raise RuntimeError(f"{self!r}: the proxy thread is not running")
        done = threading.Event()
        self._commands.put((mode, done))
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise RuntimeError(f"{self!r}: {mode} not applied within 5 s")

    def _run(self) -> None:
        try:
            while self.mode != CLOSED:
                for key, mask in self._selector.select(timeout=1.0):
                    if key.data == "wake":
                        self._apply_commands()
                    elif key.data == "listen":
                        self._accept()
                    else:
                        pair, sock = key.data
                        if pair.id not in self._pairs:
                            continue  # dropped earlier in this round
                        if mask & selectors.EVENT_WRITE:
                            self._write(pair, sock)
                        if mask & selectors.EVENT_READ and pair.id in self._pairs:
                            self._read(pair, sock)
        finally:
            for pair in list(self._pairs.values()):
                self._drop(pair, reset=False)
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()
            self._selector.close()

    def _apply_commands(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                mode, done = self._commands.get_nowait()
            except queue.Empty:
                return
            if mode == CUT:
                for pair in list(self._pairs.values()):
                    self._drop(pair, reset=True)
            for pair in self._pairs.values():
                pair.frozen = mode == _FREEZE
            if mode == _FREEZE:
                mode = OPEN
            self.mode = mode
            if mode != CLOSED:
                self._set_listening(mode != BLACKHOLE)
                for pair in list(self._pairs.values()):
                    self._update(pair)
            done.set()

    def _set_listening(self, on: bool) -> None:
        if on and not self._listening:
            self._selector.register(self._listener, selectors.EVENT_READ, "listen")
        elif not on and self._listening:
            self._selector.unregister(self._listener)
        self._listening = on

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            self._next_id += 1
            conn_id = self._next_id
            if self.mode == CUT:
                self.connections_refused += 1
                self.events.append((time.time(), "refused", conn_id))
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError:
                self.connections_refused += 1
                self.events.append((time.time(), "refused", conn_id))
                _reset(client)
                continue
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(conn_id, client, upstream, time.time())
            self._pairs[conn_id] = pair
            self.connections_total += 1
            self.events.append((pair.opened_at, "accepted", conn_id))
            self._update(pair)

    def _update(self, pair: _Pair) -> None:
        """(Re)register both sockets for what they may do now."""
        for sock in (pair.client, pair.upstream):
            events = 0
            if self.mode == OPEN and not pair.frozen:
                if len(pair.pending[pair.peer(sock)]) < _HIGH_WATER:
                    events |= selectors.EVENT_READ
                if pair.pending[sock]:
                    events |= selectors.EVENT_WRITE
            registered = self._selector.get_map().get(sock.fileno()) if sock.fileno() >= 0 else None
            if events and registered is None:
                self._selector.register(sock, events, (pair, sock))
            elif events and registered.events != events:
                self._selector.modify(sock, events, (pair, sock))
            elif not events and registered is not None:
                self._selector.unregister(sock)

    def _read(self, pair: _Pair, sock: socket.socket) -> None:
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(pair, reset=True)  # a reset on one side is passed on as a reset
            return
        peer = pair.peer(sock)
        if not data:
            self._finish(pair, peer)
            return
        pair.pending[peer] += data
        self._write(pair, peer)

    def _write(self, pair: _Pair, sock: socket.socket) -> None:
        buf = pair.pending[sock]
        while buf:
            try:
                sent = sock.send(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(pair, reset=True)
                return
            del buf[:sent]
            if sock is pair.upstream:
                self.bytes_up += sent
            else:
                self.bytes_down += sent
        self._update(pair)

    def _finish(self, pair: _Pair, peer: socket.socket) -> None:
        """One side ended cleanly: hand the other what is still held for it, then close both."""
        buf = pair.pending[peer]
        if buf:
            try:
                peer.setblocking(True)
                peer.settimeout(1.0)
                peer.sendall(buf)
                if peer is pair.upstream:
                    self.bytes_up += len(buf)
                else:
                    self.bytes_down += len(buf)
            except OSError:
                pass
        self._drop(pair, reset=False)

    def _drop(self, pair: _Pair, reset: bool) -> None:
        if pair.id not in self._pairs:
            return
        for sock in (pair.client, pair.upstream):
            if sock.fileno() >= 0 and self._selector.get_map().get(sock.fileno()) is not None:
                self._selector.unregister(sock)
            if reset:
                _reset(sock)
            else:
                sock.close()
        self.events.append((time.time(), "reset" if reset else "closed", pair.id))
        del self._pairs[pair.id]  # last: a reader seeing fewer connections sees the event too


def _host_port(url: str) -> tuple[str, int]:
    if "://" not in url:
        from psycopg2.extensions import parse_dsn

        params = parse_dsn(url)
        return params.get("host", "127.0.0.1"), int(params.get("port", 5432))
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)


__all__ = ["TcpProxy", "OPEN", "CUT", "BLACKHOLE", "CLOSED"]
