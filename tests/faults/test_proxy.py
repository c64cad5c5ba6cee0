"""The fault-injection proxy itself, against the machine's real Redis (and PostgreSQL once).

Only connections made through a proxy of the test's own are ever cut: the servers are shared.
"""

from __future__ import annotations

import os
import socket
import time

import psycopg2
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.faults.proxy import BLACKHOLE, CUT, OPEN, TcpProxy
from tests.pg import DEFAULT_ADMIN_DSN

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REDIS_URL = os.environ.get("TICKSTOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_DSN = os.environ.get("TICKSTOCK_TEST_ADMIN_DSN", DEFAULT_ADMIN_DSN)
PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"


@pytest.fixture
def proxy():
    with TcpProxy.for_url(REDIS_URL) as p:
        yield p


def client_for(proxy: TcpProxy, timeout: float = 2.0) -> redis.Redis:
    # No retries: each command is one attempt, so a fault surfaces as the error it is.
    return redis.Redis.from_url(proxy.url_for(REDIS_URL), socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 0))


def raw_connection(proxy: TcpProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=timeout)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def eventually(predicate, timeout: float = 2.0) -> bool:
    """The proxy thread counts a chunk just after handing it on: the reader may be faster."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_url_for_keeps_everything_but_the_address(proxy):
    assert proxy.url_for("redis://:secret@example.com:6380/3") == f"redis://:secret@127.0.0.1:{proxy.port}/3"
    assert proxy.url_for("postgresql://root@db.internal/tickstock?sslmode=disable") == \
        f"postgresql://root@127.0.0.1:{proxy.port}/tickstock?sslmode=disable"
    dsn = proxy.url_for("dbname=x user=postgres host=10.0.0.1 port=5432")
    assert psycopg2.extensions.parse_dsn(dsn) == {"dbname": "x", "user": "postgres", "host": "127.0.0.1",
                                                  "port": str(proxy.port)}


def test_for_url_targets_the_urls_server():
    with TcpProxy.for_url("postgresql://u@127.0.0.1/db") as p:
        assert p.target == ("127.0.0.1", 5432)
    with TcpProxy.for_url("redis://localhost:6380/0") as p:
        assert p.target == ("localhost", 6380)


def test_ping_through_the_proxy_counts_connection_and_bytes(proxy):
    sock = raw_connection(proxy)
    try:
        sock.sendall(PING)
        assert recv_exactly(sock, len(PONG)) == PONG
        assert proxy.wait_for_connections(1)
        assert proxy.connections_total == 1 and proxy.active_connections == 1
        assert eventually(lambda: (proxy.bytes_up, proxy.bytes_down) == (len(PING), len(PONG))), proxy
    finally:
        sock.close()
    client = client_for(proxy)
    assert client.ping() is True
    assert client.set(f"proxytest:{proxy.port}", b"x" * 100_000, ex=10)  # more than one read's worth
    assert client.get(f"proxytest:{proxy.port}") == b"x" * 100_000
    assert eventually(lambda: proxy.bytes_up > 100_000 and proxy.bytes_down > 100_000), proxy
    client.close()


def test_client_closing_closes_the_upstream_side(proxy):
    sock = raw_connection(proxy)
    sock.sendall(PING)
    recv_exactly(sock, len(PONG))
    sock.close()
    assert eventually(lambda: proxy.active_connections == 0, timeout=5), proxy
    assert [kind for _, kind, _ in proxy.events] == ["accepted", "closed"]


def test_cut_resets_live_connections_and_refuses_new_ones_until_restore(proxy):
    live = raw_connection(proxy)
    live.sendall(PING)
    assert recv_exactly(live, len(PONG)) == PONG
    client = client_for(proxy)
    assert client.ping()

    proxy.cut()
    assert proxy.mode == CUT and proxy.active_connections == 0
    with pytest.raises(ConnectionResetError):  # RST, not a clean end of stream
        live.recv(16)
    live.close()
    with pytest.raises(redis.ConnectionError):  # the client's pooled connection was reset
        client.ping()
    with pytest.raises(redis.ConnectionError):  # and a new connection is reset too
        client.ping()
    assert proxy.connections_refused >= 1
    assert any(kind == "refused" for _, kind, _ in proxy.events)

    proxy.restore()
    assert proxy.mode == OPEN
    assert client.ping() is True  # the same client reconnects
    fresh = raw_connection(proxy)
    fresh.sendall(PING)
    assert recv_exactly(fresh, len(PONG)) == PONG
    fresh.close()
    client.close()


def test_blackhole_keeps_the_connection_open_but_silent_and_restore_delivers(proxy):
    sock = raw_connection(proxy, timeout=0.5)
    sock.sendall(PING)
    assert recv_exactly(sock, len(PONG)) == PONG
    client = client_for(proxy, timeout=0.5)
    assert client.ping()

    proxy.blackhole()
    assert proxy.mode == BLACKHOLE and proxy.active_connections == 2
    up_before = proxy.bytes_up
    sock.sendall(PING)  # accepted by the kernel, never answered: a half-open network
    with pytest.raises(socket.timeout):
        sock.recv(16)
    with pytest.raises(redis.TimeoutError):
        client.ping()
    assert proxy.bytes_up == up_before
    # A new connection is not refused either: it just never hears back.
    newcomer = socket.create_connection(proxy.address, timeout=0.5)
    newcomer.sendall(PING)
    with pytest.raises(socket.timeout):
        newcomer.recv(16)

    proxy.restore()
    sock.settimeout(2)
    assert recv_exactly(sock, len(PONG)) == PONG  # held, not lost: like a partition that heals
    newcomer.settimeout(2)
    assert recv_exactly(newcomer, len(PONG)) == PONG
    client.close()
    assert client_for(proxy).ping() is True
    sock.close()
    newcomer.close()


def test_blackhole_existing_only_silences_live_connections_and_forwards_new_ones(proxy):
    old = raw_connection(proxy, timeout=0.5)
    old.sendall(PING)
    assert recv_exactly(old, len(PONG)) == PONG

    proxy.blackhole(existing_only=True)  # a half-open connection: the network itself still works
    assert proxy.mode == OPEN and proxy.stats()["frozen"] == 1
    old.sendall(PING)
    with pytest.raises(socket.timeout):
        old.recv(16)
    assert client_for(proxy, timeout=1).ping() is True  # a new connection is forwarded at once
    assert proxy.stats()["frozen"] == 1

    proxy.restore()
    old.settimeout(2)
    assert recv_exactly(old, len(PONG)) == PONG
    assert proxy.stats()["frozen"] == 0
    old.close()


def test_cut_during_blackhole_resets_and_restore_recovers(proxy):
    sock = raw_connection(proxy)
    sock.sendall(PING)
    recv_exactly(sock, len(PONG))
    proxy.blackhole()
    proxy.cut()
    with pytest.raises(ConnectionResetError):
        sock.recv(16)
    proxy.restore()
    assert client_for(proxy).ping() is True


def test_close_refuses_connections():
    proxy = TcpProxy.for_url(REDIS_URL)
    assert client_for(proxy).ping()
    proxy.close()
    with pytest.raises(redis.ConnectionError):
        client_for(proxy, timeout=0.5).ping()


def test_postgres_through_the_proxy_cut_and_restore():
    with TcpProxy.for_url(ADMIN_DSN) as proxy:
        conn = psycopg2.connect(proxy.url_for(ADMIN_DSN), connect_timeout=2)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        proxy.cut()
        with pytest.raises(psycopg2.OperationalError):
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(proxy.url_for(ADMIN_DSN), connect_timeout=2)
        proxy.restore()
        conn = psycopg2.connect(proxy.url_for(ADMIN_DSN), connect_timeout=2)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        conn.close()
