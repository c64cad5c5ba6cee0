"""Keys under one prefix, against the real Redis: only that prefix is ever matched or deleted."""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from tickstock.adapters.redis.keys import delete_keys_with_prefix, keys_with_prefix

REDIS_URL = os.environ.get("TICKSTOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def client():
    c = redis.Redis.from_url(REDIS_URL)
    yield c
    c.close()


def test_only_names_under_the_prefix_are_found_and_deleted(client):
    prefix = f"keystest{uuid.uuid4().hex[:8]}:"
    # A glob character in the prefix is taken literally: "x*" must not match "xy...".
    glob_prefix = prefix + "g*:"
    neighbour = prefix + "gz:kept"
    mine = [prefix + "g*:a", prefix + "g*:b"]
    try:
        for name in [*mine, neighbour]:
            client.set(name, 1)
        assert sorted(keys_with_prefix(REDIS_URL, glob_prefix)) == sorted(n.encode() for n in mine)
        assert delete_keys_with_prefix(REDIS_URL, glob_prefix) == 2
        assert keys_with_prefix(REDIS_URL, glob_prefix) == []
        assert client.get(neighbour) == b"1"
        assert delete_keys_with_prefix(REDIS_URL, glob_prefix) == 0
    finally:
        client.delete(*mine, neighbour)


def test_an_empty_prefix_is_refused():
    with pytest.raises(ValueError, match="empty prefix"):
        delete_keys_with_prefix(REDIS_URL, "")
