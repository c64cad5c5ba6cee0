"""HeapKeeper: when the collector runs and what it freezes (tickstock/heap.py)."""

from __future__ import annotations

import gc

import pytest

from tickstock.heap import HeapKeeper


class RecordingGC:
    """The gc calls the keeper makes, recorded in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.frozen = 0

    def collect(self) -> int:
        self.calls.append("collect")
        return 7

    def freeze(self) -> None:
        self.calls.append("freeze")
        self.frozen += 100

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")
        self.frozen = 0

    def get_freeze_count(self) -> int:
        return self.frozen

    def disable(self) -> None:
        self.calls.append("disable")

    def enable(self) -> None:
        self.calls.append("enable")


MINUTE = 1_764_500_000 // 60 * 60  # a minute start, epoch seconds


def test_the_collector_pauses_while_a_session_starts_and_resumes_when_it_is_live_then_freezes_the_survivors():
    fake = RecordingGC()
    keeper = HeapKeeper(fake)
    keeper.session_starting()
    assert fake.calls == ["disable"]
    done = keeper.session_live(MINUTE + 5)
    assert fake.calls == ["disable", "enable", "collect", "freeze"]
    assert (done.reason, done.collected, done.frozen) == ("session live", 7, 100)


def test_tick_collects_once_per_minute_at_the_quiet_second_never_near_the_close():
    fake = RecordingGC()
    keeper = HeapKeeper(fake, quiet_second=30)
    keeper.session_live(MINUTE + 5)
    fake.calls.clear()
    # the rest of the live minute: already collected at start, and no pause
    assert [keeper.tick(MINUTE + s) for s in (10, 31, 59)] == [None, None, None]
    assert fake.calls == [] and not keeper.paused_for_closes
    # next minute: nothing collected before second 30 (the close at :02 and its burst), once at/after it
    assert keeper.tick(MINUTE + 60 + 2) is None and keeper.tick(MINUTE + 60 + 29.9) is None
    assert keeper.tick(MINUTE + 60 + 30.4) is not None
    assert keeper.tick(MINUTE + 60 + 45) is None
    assert fake.calls.count("collect") == 1 and fake.calls.index("collect") < fake.calls.index("freeze")
    # a timer that skipped the quiet second still collects in that minute
    assert keeper.tick(MINUTE + 120 + 50) is not None
    assert fake.calls.count("collect") == 2


def test_the_collector_is_paused_from_the_minute_start_until_its_quiet_moment_then_resumed():
    fake = RecordingGC()
    keeper = HeapKeeper(fake, quiet_second=30)
    keeper.session_live(MINUTE + 5)
    fake.calls.clear()
    keeper.tick(MINUTE + 60 + 0.7)  # the timer's first tick of the minute, before the close at :02
    assert fake.calls == ["disable"] and keeper.paused_for_closes
    keeper.tick(MINUTE + 60 + 1.7)
    keeper.tick(MINUTE + 60 + 2.7)
    assert fake.calls == ["disable"]  # paused once, not again every tick
    keeper.tick(MINUTE + 60 + 30.2)
    assert fake.calls == ["disable", "collect", "freeze", "enable"] and not keeper.paused_for_closes
    keeper.tick(MINUTE + 60 + 50)  # the rest of the minute: running
    assert fake.calls[-1] == "enable" and not keeper.paused_for_closes
    keeper.tick(MINUTE + 120 + 0.4)  # and so every minute
    assert fake.calls[-1] == "disable" and keeper.paused_for_closes


def test_a_session_that_ends_during_the_pause_resumes_the_collector():
    fake = RecordingGC()
    keeper = HeapKeeper(fake, quiet_second=30)
    keeper.session_live(MINUTE + 5)
    keeper.tick(MINUTE + 61)
    assert keeper.paused_for_closes
    fake.calls.clear()
    keeper.session_ended()
    assert fake.calls[0] == "enable" and not keeper.paused_for_closes


def test_with_the_real_collector_the_pause_for_closes_ends_at_the_quiet_moment():
    keeper = HeapKeeper(quiet_second=30)
    try:
        keeper.session_live(MINUTE + 5)
        keeper.tick(MINUTE + 61)
        assert not gc.isenabled()
        keeper.tick(MINUTE + 91)
        assert gc.isenabled()
    finally:
        keeper.session_ended()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_session_ended_unfreezes_and_collects_everything():
    fake = RecordingGC()
    keeper = HeapKeeper(fake)
    keeper.session_live(MINUTE)
    fake.calls.clear()
    done = keeper.session_ended()
    assert fake.calls == ["enable", "unfreeze", "collect"] and done.frozen == 0
    # and the next session starts afresh: its first tick is not skipped as "already done"
    assert keeper.tick(MINUTE + 30) is not None


def test_quiet_second_must_lie_within_a_minute():
    with pytest.raises(ValueError, match="quiet_second"):
        HeapKeeper(RecordingGC(), quiet_second=60)


def test_with_the_real_collector_start_up_objects_leave_its_sight_and_come_back_at_the_end():
    keeper = HeapKeeper()
    kept = [[i] for i in range(10_000)]  # survivors, as primed state is
    try:
        done = keeper.session_live(MINUTE)
        assert done.frozen >= len(kept) == 10_000 and gc.get_freeze_count() > 0
        # the automatic collector's generations no longer hold them: none is walked again
        walked = {id(o) for g in range(3) for o in gc.get_objects(generation=g)}
        assert not any(id(k) in walked for k in kept)
    finally:
        keeper.session_ended()
    assert gc.get_freeze_count() == 0
    walked = {id(o) for g in range(3) for o in gc.get_objects(generation=g)}
    assert all(id(k) in walked for k in kept)  # unfrozen: the collector sees them again


def test_a_start_up_that_failed_resumes_the_collector_at_the_end():
    fake = RecordingGC()
    keeper = HeapKeeper(fake)
    keeper.session_starting()
    keeper.session_ended()  # never live
    assert fake.calls[:2] == ["disable", "enable"]


def test_with_the_real_collector_a_start_up_pauses_it_and_live_resumes_it():
    keeper = HeapKeeper()
    try:
        keeper.session_starting()
        assert not gc.isenabled()
        keeper.session_live(MINUTE)
        assert gc.isenabled()
    finally:
        keeper.session_ended()
    assert gc.isenabled() and gc.get_freeze_count() == 0
