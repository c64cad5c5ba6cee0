"""The Redis adapters against the real server: subscriber, publisher, keys."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis

from tickstock.adapters.redis import FeedDisconnected, RedisPublisher, RedisTickFeed
from tickstock.adapters.redis.resp import RedisUnavailable

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
