"""HeartbeatActor: the heartbeat for the whole life of the process, the retained session key, and a
Redis outage that is survived quietly."""

from __future__ import annotations

import pytest

from tickstock.actors.heartbeat import HeartbeatActor
from tickstock.messages.commands import ClearSession, GetStats, RetainSession

from .fakes import FakeRedis, Recorder, wait_until

pytestmark = pytest.mark.timeout(10)


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        self.t += 1.0  # every read is a later moment: what is written is the time of writing
        return self.t


def start(redis: FakeRedis, interval: float = 0.02):
    clock = Clock()
    ref = HeartbeatActor.start(lambda: redis, "hb", "sess", interval, 30.0, clock=clock)
    return ref, clock


def test_beats_without_a_session_each_with_the_time_it_was_written():
    redis = FakeRedis()
    ref, clock = start(redis)
    try:
        assert wait_until(lambda: len(redis.refreshes) >= 5)
        values = [float(v) for _, v, _, _ in redis.refreshes[:5]]
        assert values == sorted(set(values))  # a new time at every beat, never a queued one
        assert all(key == "hb" and session is None for key, _, session, _ in redis.refreshes[:5])
    finally:
        ref.stop()


def test_a_retained_session_is_set_with_its_ttl_extended_by_each_beat_and_cleared():
    redis = FakeRedis()
    ref, _ = start(redis)
    try:
        ref.tell(RetainSession({"session": {"session_id": "s1"}}))
        assert wait_until(lambda: redis.values)
        key, value, ttl = redis.values[0]
        assert key == "sess" and b"s1" in value and ttl == 30.0
        n = len(redis.refreshes)
        assert wait_until(lambda: any(session == "sess" for _, _, session, _ in redis.refreshes[n:]))
        ref.tell(ClearSession())
        assert wait_until(lambda: redis.deleted == ["sess"])
        m = len(redis.refreshes)
        assert wait_until(lambda: len(redis.refreshes) >= m + 3)
        assert all(session is None for _, _, session, _ in redis.refreshes[m + 1:])
    finally:
        ref.stop()


def test_a_redis_outage_is_survived_and_beats_resume():
    redis = FakeRedis()
    redis.fail = True
    ref, _ = start(redis)
    try:
        assert wait_until(lambda: ref.ask(GetStats(), timeout=1)["redis_connected"] is False)
        assert redis.refreshes == []
        redis.fail = False
        assert wait_until(lambda: len(redis.refreshes) >= 2)
        assert ref.ask(GetStats(), timeout=1)["redis_connected"] is True
    finally:
        ref.stop()


class KeySeen(Recorder):
    """A follow-up target that notes, when told, what the fake Redis holds at that moment."""

    def __init__(self, redis: FakeRedis) -> None:
        super().__init__("publisher")
        self.redis = redis
        self.values_when_told: list = []

    def tell(self, message) -> None:
        self.values_when_told.append(list(self.redis.values))
        super().tell(message)


def test_the_follow_up_of_a_retained_session_is_told_only_after_the_key_is_written():
    redis = FakeRedis()
    ref, _ = start(redis, interval=3600.0)
    target = KeySeen(redis)
    try:
        ref.tell(RetainSession({"session": {"session_id": "s1"}}, then="announce", then_tell=target))
        assert wait_until(lambda: target.messages == ["announce"])
        [[(key, value, _)]] = target.values_when_told  # the SET had happened when it was told
        assert key == "sess" and b"s1" in value
    finally:
        ref.stop()


def test_the_follow_up_is_told_even_when_the_key_cannot_be_written():
    redis = FakeRedis()
    redis.fail = True
    ref, _ = start(redis, interval=3600.0)
    target = KeySeen(redis)
    try:
        ref.tell(RetainSession({"session": {"session_id": "s1"}}, then="announce", then_tell=target))
        assert wait_until(lambda: target.messages == ["announce"])  # the announcement is not held back
        assert target.values_when_told == [[]]
    finally:
        ref.stop()
