"""The publishing loops with a manual clock and a recording sink: live (every tick before the end,
once, in order) and replay (event-time order, each tick when due at the speed, ``max`` at once)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from tickstock.clock import ManualClock
from tickstock.messages.ticks import decode_tick
from tickstock.simulate import publish
from tickstock.simulate.pacing import ReplayPace, parse_speed
from tickstock.simulate.publish import PublishFailed, run_live, run_replay
from tickstock.simulate.shapes import InjectedMarket, Injection
from tickstock.simulate.tick import SimTick
from tickstock.simulate.walk import RandomWalk

T0 = 1_760_000_017.0


class Sink:
    """Records (clock time, payloads) of every publish; can fail after ``fail_after`` payloads."""

    def __init__(self, clock: ManualClock, fail_after: int | None = None) -> None:
        self.clock, self.fail_after = clock, fail_after
        self.calls: list[tuple[float, list[bytes]]] = []

    @property
    def payloads(self) -> list[bytes]:
        return [p for _, batch in self.calls for p in batch]

    def publish(self, payloads: Sequence[bytes]) -> int:
        if self.fail_after is not None and len(self.payloads) + len(payloads) > self.fail_after:
            ok = self.fail_after - len(self.payloads)
            self.calls.append((self.clock.now(), list(payloads[:ok])))
            raise PublishFailed("connection lost", ok)
        self.calls.append((self.clock.now(), list(payloads)))
        return len(payloads)


def decoded(payloads: list[bytes]) -> list[tuple[float, str, float, int]]:
    out = []
    for p in payloads:
        t = decode_tick(p, received_at=T0)
        out.append((t.timestamp, t.symbol, t.price, t.volume))
    return out


def market(seed: int = 1) -> InjectedMarket:
    walk = RandomWalk(["AAPL", "NVDA"], rate=40.0, seed=seed, start=T0)
    return InjectedMarket(walk, [Injection("NVDA", "doji")], seed=seed)


def test_live_sends_every_tick_before_the_end_once_in_order() -> None:
    clock = ManualClock(T0)
    sink = Sink(clock)
    stats = run_live(market(), sink, clock, start=T0, seconds=90, stop=threading.Event())
    expected = market().advance(T0 + 90)
    assert decoded(sink.payloads) == [(t.timestamp, t.symbol, t.price, t.volume) for t in expected]
    assert stats.sent == len(expected) > 2000
    # Each batch holds only ticks whose time had come: sent after their own timestamp.
    for at, batch in sink.calls:
        assert all(t[0] <= at for t in decoded(batch))
    assert stats.elapsed == pytest.approx(90, abs=0.05)


def test_live_stops_when_asked() -> None:
    clock = ManualClock(T0)
    stop = threading.Event()
    calls = []

    def progress(stats) -> None:
        calls.append(stats.sent)
        if clock.now() >= T0 + 5:
            stop.set()

    stats = run_live(market(), Sink(clock), clock, start=T0, seconds=None, stop=stop, on_progress=progress)
    assert T0 + 5 <= clock.now() < T0 + 5.1 and stats.sent == calls[-1]


def test_a_failed_publish_counts_what_was_acknowledged_and_raises() -> None:
    clock = ManualClock(T0)
    sink = Sink(clock, fail_after=100)
    with pytest.raises(PublishFailed):
        run_live(market(), sink, clock, start=T0, seconds=60, stop=threading.Event())
    assert len(sink.payloads) == 100


def ticks(n: int, step: float = 0.5) -> list[SimTick]:
    return [SimTick(T0 + i * step, "AAPL", 100.0 + i / 100, 100) for i in range(n)]


def test_replay_publishes_each_tick_when_due_at_the_speed() -> None:
    clock = ManualClock(5_000_000.0)  # the wall clock is nowhere near the event times
    sink = Sink(clock)
    source = ticks(600)  # 300 s of event time
    stats = run_replay(source, sink, clock, speed=60.0, stop=threading.Event())
    assert decoded(sink.payloads) == [(t.timestamp, t.symbol, t.price, t.volume) for t in source]
    pace = ReplayPace(T0, 5_000_000.0, 60.0)
    for at, batch in sink.calls:
        for t in decoded(batch):
            assert pace.due(t[0]) <= at + 1e-6 < pace.due(t[0]) + publish.MAX_SLEEP + 1e-6
    assert stats.sent == 600
    assert clock.now() - 5_000_000.0 == pytest.approx(299.5 / 60, abs=1e-6)


def test_replay_at_max_speed_does_not_wait() -> None:
    clock = ManualClock(5_000_000.0)
    sink = Sink(clock)
    stats = run_replay(ticks(5000), sink, clock, speed=None, stop=threading.Event())
    assert stats.sent == 5000 and clock.now() == 5_000_000.0
    assert [len(b) for _, b in sink.calls] == [2000, 2000, 1000]


def test_replay_stops_after_its_seconds() -> None:
    clock = ManualClock(5_000_000.0)
    stats = run_replay(ticks(600), Sink(clock), clock, speed=1.0, stop=threading.Event(), seconds=10)
    assert 19 <= stats.sent <= 22  # 10 s of a tick every 0.5 s


def test_replay_of_nothing_sends_nothing() -> None:
    clock = ManualClock(5_000_000.0)
    assert run_replay([], Sink(clock), clock, speed=1.0, stop=threading.Event()).sent == 0


def test_speed_parsing() -> None:
    assert parse_speed("60") == 60.0 and parse_speed("2.5x") == 2.5 and parse_speed(" MAX ") is None
    for bad in ("0", "-1", "fast", "inf", "nan"):
        with pytest.raises(ValueError, match="speed"):
            parse_speed(bad)


def test_pace_maps_event_time_to_wall_time_and_back() -> None:
    pace = ReplayPace(first_event=1000.0, wall_start=50.0, speed=60.0)
    assert pace.due(1000.0) == 50.0 and pace.due(1600.0) == 60.0
    assert pace.watermark(60.0) == 1600.0
    flat_out = ReplayPace(1000.0, 50.0, None)
    assert flat_out.due(1e9) == 50.0 and flat_out.watermark(0.0) == float("inf")
    with pytest.raises(ValueError):
        ReplayPace(0.0, 0.0, 0.0)


def test_redis_urls_lose_their_password_in_messages() -> None:
    assert publish.safe_url("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert publish.safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
