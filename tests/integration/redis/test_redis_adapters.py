"""The Redis adapters against the real server: subscriber (PING, half-open detection), publisher
(acknowledged counts, partial pipelines), keys. Faults go through a forwarder of the test's own."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import hiredis
import pytest
import redis

from tickstock.adapters.redis import FeedDisconnected, PublishIncomplete, RedisPublisher, RedisTickFeed
from tickstock.adapters.redis.resp import RedisUnavailable

from .forwarder import Forwarder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def channel() -> str:
    return f"it:{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client() -> redis.Redis:
    c = redis.Redis.from_url(URL)
    yield c
    c.close()


def kill_own_connection(client: redis.Redis, conn) -> None:
    """Have the server drop exactly this adapter's connection (matched by its local address)."""
    host, port = conn.sock.getsockname()[:2]
    assert client.client_kill_filter(addr=f"{host}:{port}") == 1


def read_until(feed: RedisTickFeed, count: int, timeout: float = 5.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.time() + timeout
    while len(got) < count and time.time() < deadline:
        got.extend(feed.read(0.1))
    return got


def test_subscription_is_live_when_connect_returns(channel, client) -> None:
    feed = RedisTickFeed(URL, channel)
    feed.connect()
    try:
        # No sleep: connect() returns only after the server confirmed the subscription.
        assert client.publish(channel, b'{"a": 1}') == 1
        assert read_until(feed, 1) == [b'{"a": 1}']
    finally:
        feed.close()


def test_a_burst_arrives_complete_and_in_order(channel, client) -> None:
    feed = RedisTickFeed(URL, channel)
    feed.connect()
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(20_000):
            pipe.publish(channel, str(i).encode())
        pipe.execute()
        got = read_until(feed, 20_000)
        assert got == [str(i).encode() for i in range(20_000)]
    finally:
        feed.close()


def test_a_killed_connection_is_reported_and_a_reconnect_resubscribes(channel, client) -> None:
    feed = RedisTickFeed(URL, channel)
    feed.connect()
    try:
        kill_own_connection(client, feed._conn)
        with pytest.raises(FeedDisconnected):
            for _ in range(50):
                feed.read(0.1)
        assert not feed.connected
        feed.connect()
        assert client.publish(channel, b"after") == 1
        assert read_until(feed, 1) == [b"after"]
    finally:
        feed.close()


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(FeedDisconnected, match="cannot connect"):
        RedisTickFeed("redis://127.0.0.1:1/0", "x", connect_timeout=1).connect()
    with pytest.raises(RedisUnavailable):
        RedisPublisher("redis://127.0.0.1:1/0", socket_timeout=1).ping()


def test_publish_many_is_one_message_per_publish_in_order(channel) -> None:
    feed = RedisTickFeed(URL, channel)
    feed.connect()
    publisher = RedisPublisher(URL)
    try:
        events = [(channel, json.dumps({"n": i}).encode()) for i in range(1500)]
        assert publisher.publish_many(events) == 1500
        got = read_until(feed, 1500)
        assert [json.loads(g)["n"] for g in got] == list(range(1500))
    finally:
        publisher.close()
        feed.close()


def test_heartbeat_and_retained_session_keys(client) -> None:
    key, hb = f"it:session:{uuid.uuid4().hex[:8]}", f"it:hb:{uuid.uuid4().hex[:8]}"
    publisher = RedisPublisher(URL)
    try:
        publisher.set_value(key, b'{"session": 1}', ttl_seconds=2)
        assert 0 < client.pttl(key) <= 2000
        publisher.refresh(hb, "123.5", key, ttl_seconds=30)
        assert client.get(hb) == b"123.5"
        assert 2000 < client.pttl(key) <= 30_000  # the heartbeat extended the retained key
        publisher.delete(key)
        assert client.get(key) is None
    finally:
        client.delete(hb)
        publisher.close()


def test_the_publisher_reconnects_after_its_connection_is_killed(channel, client) -> None:
    publisher = RedisPublisher(URL)
    try:
        publisher.ping()
        kill_own_connection(client, publisher._conn)
        try:
            publisher.ping()  # may fail once: the caller keeps its events and retries
        except RedisUnavailable:
            pass
        publisher.ping()  # a later call reconnects
    finally:
        publisher.close()


# -- publish_many: what Redis acknowledged ------------------------------------------------------


@pytest.fixture
def forwarder():
    fwd = Forwarder(("127.0.0.1", 6379))
    yield fwd
    fwd.close()


def packed(channel: str, payload: bytes) -> int:
    return len(hiredis.pack_command(("PUBLISH", channel, payload)))


def test_publish_many_of_nothing_acknowledges_nothing() -> None:
    publisher = RedisPublisher(URL)
    try:
        assert publisher.publish_many([]) == 0
    finally:
        publisher.close()


def test_a_pipeline_broken_after_k_replies_reports_k_acknowledged_and_only_the_rest_is_resent(
        channel, forwarder) -> None:
    feed = RedisTickFeed(URL, channel)  # the consumer, straight to Redis
    feed.connect()
    publisher = RedisPublisher(forwarder.url)
    try:
        messages = [(channel, f"m{i}".encode()) for i in range(10)]
        # The server gets exactly the first 4 PUBLISH, answers them, then the connection breaks.
        forwarder.cut_after_commands(4, sum(packed(c, p) for c, p in messages[:4]))
        with pytest.raises(PublishIncomplete) as broken:
            publisher.publish_many(messages)
        assert isinstance(broken.value, RedisUnavailable)  # callers that only know this still work
        assert broken.value.acknowledged == 4
        assert broken.value.pending == tuple(range(4, 10))
        rest = [messages[i] for i in broken.value.pending]
        assert publisher.publish_many(rest) == 6  # a new connection through the forwarder
        got = read_until(feed, 11, timeout=1.0)  # one more than expected: a duplicate would show
        assert got == [f"m{i}".encode() for i in range(10)]
        assert forwarder.connections == 2
    finally:
        publisher.close()
        feed.close()


def test_a_refused_publish_in_the_middle_is_the_only_one_pending() -> None:
    """Error replies (e.g. BUSY while a script runs) come from a scripted server: real Redis
    cannot be made to refuse a PUBLISH without disturbing everyone else."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        reader, commands = hiredis.Reader(), 0
        with conn:
            while commands < 3:
                reader.feed(conn.recv(1 << 16))
                while reader.gets() is not False:
                    commands += 1
            conn.sendall(b":1\r\n-BUSY Redis is busy running a script\r\n:0\r\n")
            conn.recv(1)  # hold the connection until the client closes it

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    publisher = RedisPublisher(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(PublishIncomplete, match="BUSY") as refused:
            publisher.publish_many([("c", b"a"), ("c", b"b"), ("c", b"c")])
        assert refused.value.acknowledged == 2
        assert refused.value.pending == (1,)
    finally:
        publisher.close()
        server.close()
        thread.join(2)


def test_an_unreachable_server_acknowledges_nothing() -> None:
    publisher = RedisPublisher("redis://127.0.0.1:1/0", socket_timeout=1)
    with pytest.raises(PublishIncomplete) as failed:
        publisher.publish_many([("c", b"a"), ("c", b"b")])
    assert failed.value.acknowledged == 0 and failed.value.pending == (0, 1)


# -- the subscription: PING and half-open connections ---------------------------------------------


def test_an_idle_subscription_pings_and_stays_up(channel, client) -> None:
    feed = RedisTickFeed(URL, channel, ping_interval=0.2, ping_timeout=0.5)
    feed.connect()
    try:
        deadline = time.monotonic() + 1.5  # three times the PING timeout, with nothing published
        while time.monotonic() < deadline:
            assert feed.read(0.1) == []  # the PONG replies are not ticks
        assert feed.pings_sent >= 3
        assert feed.connected
        assert client.publish(channel, b"still here") == 1
        assert read_until(feed, 1) == [b"still here"]
    finally:
        feed.close()


def test_a_half_open_subscription_is_declared_lost_within_ping_interval_plus_timeout(
        channel, client, forwarder) -> None:
    interval, timeout = 0.5, 1.0
    feed = RedisTickFeed(forwarder.url, channel, ping_interval=interval, ping_timeout=timeout)
    feed.connect()
    try:
        assert client.publish(channel, b"before") == 1
        assert read_until(feed, 1) == [b"before"]
        forwarder.stop_forwarding()  # nothing passes, nothing is closed: only a PING can tell
        cut_at = time.monotonic()
        with pytest.raises(FeedDisconnected, match="PING") as lost:
            while time.monotonic() - cut_at < 10:
                feed.read(0.1)
        detected_after = time.monotonic() - cut_at
        assert timeout <= detected_after <= interval + timeout + 0.5, lost.value
        assert not feed.connected
        forwarder.resume()
        feed.connect()  # a new connection through the forwarder works again
        assert client.publish(channel, b"after") == 1
        assert read_until(feed, 1) == [b"after"]
    finally:
        feed.close()


def test_ping_settings_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RedisTickFeed(URL, "x", ping_interval=0)
    with pytest.raises(ValueError):
        RedisTickFeed(URL, "x", ping_timeout=-1)
