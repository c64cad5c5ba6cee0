"""Finding and deleting the keys under one name prefix (a benchmark's or a test's own namespace)."""

from __future__ import annotations

import re

import redis

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _match_prefix(prefix: str) -> str:
    """A SCAN pattern matching exactly the names that start with ``prefix`` (its glob characters escaped)."""
    return _GLOB_SPECIAL.sub(r"\\\1", prefix) + "*"


def _scan(client: redis.Redis, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=_match_prefix(prefix), count=1000))


def keys_with_prefix(redis_url: str, prefix: str) -> list[bytes]:
    """Every key whose name starts with ``prefix``, by SCAN (never KEYS: it does not block a shared server)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return _scan(client, prefix)
    finally:
        client.close()


def delete_keys_with_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key whose name starts with ``prefix``; returns how many were deleted.
    ``prefix`` must not be empty: this never empties a shared server. One connection does the scan and the delete."""
    if not prefix:
        raise ValueError("an empty prefix would match every key")
    client = redis.Redis.from_url(redis_url)
    try:
        keys = _scan(client, prefix)
        return client.delete(*keys) if keys else 0
    finally:
        client.close()
