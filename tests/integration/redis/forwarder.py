"""A tiny TCP forwarder between one adapter and the real Redis, for faults the server must not see.

    fwd = Forwarder(("127.0.0.1", 6379))
    RedisTickFeed(fwd.url, ...)         # the adapter talks through it
    fwd.stop_forwarding()               # half-open: sockets stay open, nothing passes either way
    fwd.cut_after_commands(k, nbytes)   # new connections: forward the first ``nbytes`` the client
                                        # sends (its first k commands), then close once k replies
                                        # went back (a pipeline broken after k replies)
    fwd.close()

Only connections made through it are affected: the shared Redis is never stopped or flushed.
"""

from __future__ import annotations

import select
import socket
import threading

import hiredis


class Forwarder:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.forwarding = threading.Event()
        self.forwarding.set()
        self._cut: tuple[int, int] | None = None  # (replies, upstream bytes) for the next connection
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0
        threading.Thread(target=self._accept, name="forwarder-accept", daemon=True).start()

    def stop_forwarding(self) -> None:
        """Data from either side is read and dropped; no socket is closed (a half-open network)."""
        self.forwarding.clear()

    def resume(self) -> None:
        self.forwarding.set()

    def cut_after_commands(self, replies: int, upstream_bytes: int) -> None:
        """The next connection forwards only ``upstream_bytes`` of what the client sends, and is
        closed (both sides) as soon as ``replies`` replies have been forwarded back to it."""
        self._cut = (replies, upstream_bytes)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in [self._listener, *sockets]:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            with self._lock:
                self._sockets += [client, upstream]
            self.connections += 1
            cut, self._cut = self._cut, None
            threading.Thread(target=self._pump, args=(client, upstream, cut), name="forwarder-pump",
                             daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket, cut: tuple[int, int] | None) -> None:
        reply_limit, budget = cut if cut is not None else (None, None)
        replies = hiredis.Reader()
        forwarded_replies = 0
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.05)
                for sock in readable:
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    if not self.forwarding.is_set():
                        continue  # dropped on the floor: the other side never hears of it
                    if sock is client:
                        if budget is not None:
                            data, budget = data[:budget], budget - min(budget, len(data))
                        if data:
                            upstream.sendall(data)
                    else:
                        client.sendall(data)
                        if reply_limit is not None:
                            replies.feed(data)
                            while replies.gets() is not False:
                                forwarded_replies += 1
                            if forwarded_replies >= reply_limit:
                                return
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                try:
                    sock.close()
                except OSError:
                    pass
