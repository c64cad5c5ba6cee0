"""PublisherActor: channels, one JSON object per PUBLISH, buffering through a Redis outage with a
back-off, no duplicates after a partial pipeline, confirmed delivery, keys, reports and final stats."""

from __future__ import annotations

import json
import math
import threading

from tickstock.adapters.redis.resp import RedisUnavailable
import pytest

from tickstock.actors.publisher import PublisherActor, encode_for_redis
from tickstock.config import ChannelSettings, KeySettings
from tickstock.messages.bars import Bar
from tickstock.actors.publisher import PublisherStats
from tickstock.messages.commands import (
    ChildFailed, ChildOpened, ChildReport, ClearSession, GetStats, Heartbeat, Open, Publish, PublishConfirmed,
    PublishEncoded, RetainSession, TimerTick,
)
from tickstock.messages.events import (
    CriticalAlert, IndicatorAlertRaised, IndicatorCalculated, PatternDetected, SessionStarted, SessionStopped,
)

from .fakes import M, FakeClock, FakeRedis, Recorder, wait_until

pytestmark = pytest.mark.timeout(10)

CH = ChannelSettings()
KEYS = KeySettings()
BAR = Bar("NVDA", M, 125.5, 125.75, 125.45, 125.52, 250_000, 30)
STREAMING = "tickstock:patterns:streaming"
DETECTED = "tickstock:patterns:detected"


def opened(fake: FakeRedis, **kwargs) -> PublisherActor:
    """An opened actor driven by the test: ``actor.mono`` is its monotonic clock (back-off),
    ``actor.wall`` its epoch clock (heartbeat value, deadlines), ``actor.sleeps`` its pauses."""
    kwargs.setdefault("retry_interval", 3600.0)
    mono, wall, sleeps = FakeClock(1000.0), FakeClock(1_760_000_000.0), []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        mono.advance(seconds)
        wall.advance(seconds)
    kwargs.setdefault("monotonic", mono)
    kwargs.setdefault("clock", wall)
    kwargs.setdefault("sleep", sleep)
    actor = PublisherActor(None, "sid", CH, KEYS, 30.0, 0.8, lambda: fake, **kwargs)
    actor.open()
    actor._ticker.stop()  # the test drives TimerTick itself
    actor.mono, actor.wall, actor.sleeps = mono, wall, sleeps
    return actor


def values_of(pairs) -> list:
    return [strict_json(p)["calculation"]["value"] for _, p in pairs]


def pattern(confidence: float, name: str = "Doji") -> PatternDetected:
    return PatternDetected("NVDA", name, confidence, M + 61, BAR, "sid", {"body_ratio": 0.02}, (), M + 62)


def indicator(value: float = 55.0) -> IndicatorCalculated:
    return IndicatorCalculated("NVDA", "RSI", value, {"value": value}, M + 61, BAR, "sid", {"period": 14})


def strict_json(payload: bytes):
    def no_constants(name):
        raise AssertionError(f"non-JSON constant {name} on the wire")
    return json.loads(payload, parse_constant=no_constants)


def test_open_pings_redis():
    fake = FakeRedis()
    actor = opened(fake)
    assert fake.pings == 1
    assert actor.on_receive(GetStats()).redis_connected is True


def test_open_raises_when_redis_is_down():
    fake = FakeRedis()
    fake.fail = True
    actor = PublisherActor(None, "sid", CH, KEYS, 30.0, 0.8, lambda: fake)
    with pytest.raises(RedisUnavailable):
        actor.open()
    assert actor._ticker is None


def test_high_confidence_detection_goes_to_both_pattern_channels():
    fake = FakeRedis()
    actor = opened(fake)
    actor.on_receive(Publish((pattern(0.85),)))
    [batch] = fake.batches
    assert [channel for channel, _ in batch] == [STREAMING, DETECTED]
    assert batch[0][1] == batch[1][1]  # the same JSON on both


def test_threshold_is_inclusive_and_below_it_only_the_streaming_channel():
    fake = FakeRedis()
    actor = opened(fake)
    actor.on_receive(Publish((pattern(0.8),)))
    actor.on_receive(Publish((pattern(0.79),)))
    assert [[c for c, _ in batch] for batch in fake.batches] == [[STREAMING, DETECTED], [STREAMING]]


def test_every_event_goes_to_its_own_channel_in_one_round_trip_in_order():
    fake = FakeRedis()
    actor = opened(fake)
    events = (
        SessionStarted("sid", "u", M, 3, M + 1),
        pattern(0.5),
        indicator(),
        IndicatorAlertRaised("RSI_OVERSOLD", "NVDA", "RSI", 25.0, 30.0, "below", M + 61, "sid"),
        CriticalAlert("feed stalled", "ingress", M + 61),
        SessionStopped("sid", M + 100, 100.0, 1, 1, "completed"),
    )
    actor.on_receive(Publish(events))
    [batch] = fake.batches
    assert [c for c, _ in batch] == [
        CH.session_started, CH.patterns, CH.indicators, CH.indicator_alerts, CH.critical_alerts, CH.session_stopped,
    ]
    types = [strict_json(payload)["type"] for _, payload in batch]
    assert types == ["streaming_session_started", "streaming_pattern", "streaming_indicator",
                     "indicator_alert", "critical_alert", "streaming_session_stopped"]


def test_each_payload_is_one_json_object_and_nan_becomes_null():
    fake = FakeRedis()
    actor = opened(fake)
    nan_pattern = PatternDetected("NVDA", "Doji", math.nan, M + 61, BAR, "sid", {"ratio": math.inf})
    actor.on_receive(Publish((indicator(math.nan), nan_pattern, indicator(61.0))))
    payloads = [payload for _, payload in fake.published()]
    assert len(payloads) == 3  # NaN confidence is not "high": one channel
    decoded = [strict_json(p) for p in payloads]
    assert all(isinstance(d, dict) for d in decoded)
    assert b"NaN" not in b"".join(payloads) and b"Infinity" not in b"".join(payloads)
    assert decoded[0]["calculation"]["value"] is None
    assert decoded[0]["calculation"]["values"] == {"value": None}
    assert decoded[1]["detection"]["confidence"] is None
    assert decoded[1]["detection"]["parameters"]["ratio"] is None
    assert decoded[2]["calculation"]["value"] == 61.0


def test_stats_count_patterns_and_indicators():
    fake = FakeRedis()
    actor = opened(fake)
    actor.on_receive(Publish((pattern(0.9), indicator(), indicator())))
    actor.on_receive(Publish((pattern(0.1), CriticalAlert("x", "session", M))))
    stats = actor.on_receive(GetStats())
    assert stats.patterns == 2
    assert stats.indicators == 2
    assert stats.published == 6  # PUBLISHes: 2 + 1 + 1 + 1 + 1
    assert stats.buffered == 0 and stats.dropped == 0


def test_encoded_entries_go_out_as_they_are_in_order_behind_events_and_count_as_told():
    fake = FakeRedis()
    actor = opened(fake)
    entries = tuple(encode_for_redis((pattern(0.9), indicator(1.0), indicator(2.0)), CH, 0.8))
    actor.on_receive(Publish((indicator(0.5),)))
    actor.on_receive(PublishEncoded(entries, patterns=1, indicators=2))
    assert fake.published() == [*encode_for_redis((indicator(0.5),), CH, 0.8), *entries]
    stats = actor.on_receive(GetStats())
    assert (stats.patterns, stats.indicators, stats.published) == (1, 3, 5)


def test_encoded_entries_are_buffered_through_an_outage_and_bounded_like_events():
    fake = FakeRedis()
    actor = opened(fake, retry_interval=5.0, max_buffer=3)
    fake.fail = True
    entries = tuple(encode_for_redis([indicator(float(v)) for v in range(4)], CH, 0.8))
    actor.on_receive(PublishEncoded(entries, indicators=4))
    stats = actor.on_receive(GetStats())
    assert (stats.buffered, stats.dropped, stats.indicators) == (3, 1, 4)
    fake.fail = False
    actor.mono.advance(5.0)
    actor.on_receive(TimerTick(0.0))
    assert values_of(fake.published()) == [1.0, 2.0, 3.0]


def test_redis_outage_keeps_events_and_a_timer_tick_resends_them_in_order():
    fake = FakeRedis()
    actor = opened(fake, retry_interval=5.0)
    fake.fail = True
    actor.on_receive(Publish((pattern(0.9),)))
    actor.on_receive(Publish((indicator(1.0),)))
    stats = actor.on_receive(GetStats())
    assert stats.buffered == 3 and stats.published == 0
    assert stats.redis_connected is False and "RedisUnavailable" in stats.last_error
    assert stats.patterns == 1 and stats.indicators == 1  # counted once, even if not yet sent
    actor.mono.advance(5.0)
    actor.on_receive(TimerTick(0.0))  # still down: still kept
    assert actor.on_receive(GetStats()).buffered == 3
    fake.fail = False
    actor.mono.advance(5.0)
    actor.on_receive(TimerTick(0.0))
    [batch] = fake.batches
    assert [c for c, _ in batch] == [STREAMING, DETECTED, CH.indicators]
    assert strict_json(batch[2][1])["calculation"]["value"] == 1.0
    stats = actor.on_receive(GetStats())
    assert stats.buffered == 0 and stats.published == 3 and stats.redis_connected is True


def test_a_dead_redis_is_retried_every_retry_interval_not_after_every_message():
    fake = FakeRedis()
    actor = opened(fake, retry_interval=5.0)
    fake.fail = True
    actor.on_receive(Publish((indicator(0.0),)))
    assert fake.attempts == 1 and actor.sleeps == []  # tried at once: no waiting for company
    for i in range(1, 200):  # messages during the back-off cost no attempt at all
        actor.on_receive(Publish((indicator(float(i)),)))
        actor.on_receive(GetStats())
        actor.on_receive(TimerTick(0.0))
    assert fake.attempts == 1
    assert actor.sleeps == []  # no sleep at all
    actor.mono.advance(4.9)
    actor.on_receive(TimerTick(0.0))
    assert fake.attempts == 1
    actor.mono.advance(0.1)
    actor.on_receive(TimerTick(0.0))  # back-off over: one attempt, still down
    assert fake.attempts == 2
    fake.fail = False
    actor.on_receive(Publish((indicator(200.0),)))  # the back-off restarted: kept
    assert fake.attempts == 2
    actor.mono.advance(5.0)
    actor.on_receive(Publish((indicator(201.0),)))  # after it, the next message sends everything
    assert values_of(fake.published()) == [float(i) for i in range(202)]
    assert actor.on_receive(GetStats()).buffered == 0


def test_a_partially_acknowledged_pipeline_resends_only_the_unacknowledged_rest():
    fake = FakeRedis()
    actor = opened(fake, retry_interval=5.0)
    fake.acknowledge = 2  # the connection breaks after two replies were read
    actor.on_receive(Publish(tuple(indicator(float(i)) for i in range(5))))
    assert values_of(fake.published()) == [0.0, 1.0]
    stats = actor.on_receive(GetStats())
    assert stats.published == 2 and stats.buffered == 3 and stats.redis_connected is False
    actor.mono.advance(5.0)
    actor.on_receive(TimerTick(0.0))
    assert [values_of(batch) for batch in fake.batches] == [[0.0, 1.0], [2.0, 3.0, 4.0]]
    stats = actor.on_receive(GetStats())
    assert stats.published == 5 and stats.buffered == 0


def test_a_partial_ack_keeps_the_rest_in_order_ahead_of_newer_events():
    fake = FakeRedis()
    actor = opened(fake, retry_interval=5.0)
    fake.acknowledge = 1
    actor.on_receive(Publish((indicator(0.0), indicator(1.0), indicator(2.0))))
    actor.on_receive(Publish((indicator(3.0),)))  # during the back-off: queued behind the rest
    actor.mono.advance(5.0)
    actor.on_receive(TimerTick(0.0))
    assert values_of(fake.published()) == [0.0, 1.0, 2.0, 3.0]


def test_timer_tick_with_nothing_buffered_sends_nothing():
    fake = FakeRedis()
    actor = opened(fake)
    actor.on_receive(TimerTick(0.0))
    assert fake.attempts == 0


def test_buffer_is_bounded_oldest_dropped_first():
    fake = FakeRedis()
    actor = opened(fake, max_buffer=2)
    fake.fail = True
    actor.on_receive(Publish((indicator(1.0), indicator(2.0), indicator(3.0))))
    stats = actor.on_receive(GetStats())
    assert stats.buffered == 2 and stats.dropped == 1
    fake.fail = False
    actor.mono.advance(3600.0)
    actor.on_receive(TimerTick(0.0))
    values = [strict_json(p)["calculation"]["value"] for _, p in fake.published()]
    assert values == [2.0, 3.0]


def test_heartbeat_writes_the_heartbeat_key_and_refreshes_the_session_key_ttl():
    fake = FakeRedis()
    actor = opened(fake)
    actor.wall.set(1_760_000_000.5)
    actor.on_receive(Heartbeat(1_760_000_000.5))
    assert fake.refreshes == [("tickstock:producer:heartbeat", "1760000000.5", "tickstock:streaming:session", 30.0)]


def test_heartbeat_writes_the_time_of_writing_not_the_time_of_a_queued_tick():
    fake = FakeRedis()
    actor = opened(fake)
    actor.wall.set(1_760_000_018.25)  # the Heartbeat waited 18 s in the mailbox
    actor.on_receive(Heartbeat(1_760_000_000.0))
    assert [value for _, value, _, _ in fake.refreshes] == ["1760000018.25"]


def test_heartbeat_also_flushes_buffered_events_once_redis_is_back():
    fake = FakeRedis()
    actor = opened(fake)  # retry_interval 3600 s: only the heartbeat's success can send them
    fake.fail = True
    actor.on_receive(Publish((indicator(),)))
    actor.on_receive(Heartbeat(1.0))
    assert fake.refreshes == [] and actor.on_receive(GetStats()).redis_connected is False
    fake.fail = False
    actor.on_receive(Heartbeat(2.0))
    assert len(fake.refreshes) == 1 and len(fake.published()) == 1


def test_retain_and_clear_session():
    fake = FakeRedis()
    actor = opened(fake)
    started = SessionStarted("sid", "u", M, 3, M + 1)
    actor.on_receive(RetainSession(started.to_wire()))
    [(key, value, ttl)] = fake.values
    assert key == "tickstock:streaming:session" and ttl == 30.0
    assert strict_json(value) == started.to_wire()
    actor.on_receive(ClearSession())
    assert fake.deleted == ["tickstock:streaming:session"]


def test_a_retained_sessions_follow_up_is_told_after_the_key_is_written():
    fake = FakeRedis()
    actor = opened(fake)
    values_when_told = []

    class Target(Recorder):
        def tell(self, message):
            values_when_told.append(list(fake.values))
            super().tell(message)

    target = Target("publisher")
    actor.on_receive(RetainSession({"a": 1}, then="announce", then_tell=target))
    assert target.messages == ["announce"] and len(values_when_told[0]) == 1


def test_key_operations_never_raise_on_a_redis_outage():
    fake = FakeRedis()
    actor = opened(fake)
    fake.fail = True
    actor.on_receive(Heartbeat(1.0))
    actor.on_receive(RetainSession({"a": 1}))
    actor.on_receive(ClearSession())
    assert actor.on_receive(GetStats()).redis_connected is False


def test_pure_helpers_match_the_actor():
    assert [c for c, _ in encode_for_redis([pattern(0.95)], CH, 0.8)] == [STREAMING, DETECTED]
    assert [c for c, _ in encode_for_redis([indicator()], CH, 0.0)] == [CH.indicators]
    pairs = encode_for_redis([pattern(0.5), indicator()], CH, 0.8)
    assert [c for c, _ in pairs] == [STREAMING, CH.indicators]


def test_heartbeat_arriving_before_open_is_not_fatal():
    fake = FakeRedis()
    wall = FakeClock(1.0)
    actor = PublisherActor(None, "sid", CH, KEYS, 30.0, 0.8, lambda: fake, retry_interval=3600.0, clock=wall)
    actor.on_receive(Heartbeat(1.0))  # replayed by ChildHandle.replace before Open
    actor.open()
    actor._ticker.stop()
    wall.set(2.0)
    actor.on_receive(Heartbeat(2.0))
    assert [value for _, value, _, _ in fake.refreshes] == ["2.0"]


# -- the started actor: coalescing of queued Publish messages ------------------------------------


def start_publisher(fake: FakeRedis):
    ref = PublisherActor.start(None, "sid", CH, KEYS, 30.0, 0.8, lambda: fake, retry_interval=30.0)
    ref.ask(Open(), timeout=2)
    return ref


def test_publishes_queued_behind_a_slow_round_trip_go_out_together_in_order():
    fake = FakeRedis()
    ref = start_publisher(fake)
    gate = fake.gate = threading.Event()
    ref.tell(Publish((indicator(1.0),)))
    assert fake.entered.wait(2)  # the actor is inside a round trip
    for value in (2.0, 3.0, 4.0):
        ref.tell(Publish((indicator(value),)))
    gate.set()
    assert wait_until(lambda: len(fake.published()) == 4, timeout=2)
    values = [[strict_json(p)["calculation"]["value"] for _, p in batch] for batch in fake.batches]
    assert values[0] == [1.0]
    assert [v for batch in values[1:] for v in batch] == [2.0, 3.0, 4.0]
    assert len(fake.batches) < 4  # the queued ones were coalesced
    assert ref.ask(GetStats(), timeout=2).buffered == 0


def test_events_are_not_stranded_when_a_non_publish_message_is_queued_behind_them():
    fake = FakeRedis()
    ref = start_publisher(fake)
    gate = fake.gate = threading.Event()
    ref.tell(Publish((indicator(1.0),)))
    assert fake.entered.wait(2)
    ref.tell(Publish((indicator(2.0),)))
    stats = ref.ask(GetStats(), block=False)  # queued behind the second Publish
    gate.set()
    stats.get(timeout=2)
    assert wait_until(lambda: len(fake.published()) == 2, timeout=0.5)


# -- PublishConfirmed --------------------------------------------------------------------------


def stopped(value: float = 1.0) -> SessionStopped:
    return SessionStopped("sid", M + 100, value, 1, 1, "stopped")


def test_publish_confirmed_is_true_once_redis_acknowledged_and_goes_after_what_was_buffered():
    fake = FakeRedis()
    actor = opened(fake, retry_interval=5.0)
    fake.fail = True
    actor.on_receive(Publish((indicator(1.0),)))  # buffered, in back-off
    fake.fail = False
    sleeps = len(actor.sleeps)
    assert actor.on_receive(PublishConfirmed((stopped(),), actor.wall() + 5.0)) is True
    assert [c for c, _ in fake.published()] == [CH.indicators, CH.session_stopped]
    assert len(actor.sleeps) == sleeps  # acknowledged at the first attempt: no pause
    stats = actor.on_receive(GetStats())
    assert stats.published == 2 and stats.buffered == 0 and stats.redis_connected is True


def test_publish_confirmed_reconnects_and_retries_until_acknowledged():
    fake = FakeRedis()
    actor = opened(fake)
    fake.fail_publishes = 3  # three refused attempts, the fourth is acknowledged
    assert actor.on_receive(PublishConfirmed((stopped(),), actor.wall() + 10.0)) is True
    assert fake.attempts == 4
    pauses = actor.sleeps
    assert len(pauses) == 3 and sum(pauses) < 10.0  # a pause between attempts
    assert [c for c, _ in fake.published()] == [CH.session_stopped]  # exactly once
    # every attempt is bounded by what is left of the deadline
    assert all(t is not None and 0 < t <= 10.0 for t in fake.timeouts)


def test_publish_confirmed_resends_only_what_a_broken_pipeline_did_not_acknowledge():
    fake = FakeRedis()
    actor = opened(fake)
    fake.acknowledge = 1
    events = (pattern(0.5), stopped())
    assert actor.on_receive(PublishConfirmed(events, actor.wall() + 10.0)) is True
    assert [c for c, _ in fake.published()] == [STREAMING, CH.session_stopped]  # no duplicate
    assert actor.on_receive(GetStats()).published == 2


def test_publish_confirmed_is_false_at_the_deadline_and_the_event_is_not_sent_later():
    fake = FakeRedis()
    actor = opened(fake, retry_interval=5.0)
    fake.fail = True
    started = actor.wall()
    assert actor.on_receive(PublishConfirmed((stopped(),), started + 3.0)) is False
    assert actor.wall() >= started + 3.0  # it kept trying until the deadline
    assert fake.attempts >= 3
    assert actor.on_receive(GetStats()).buffered == 0  # the caller falls back: not kept
    fake.fail = False
    actor.mono.advance(10.0)
    actor.on_receive(Publish((indicator(2.0),)))
    assert [c for c, _ in fake.published()] == [CH.indicators]  # no late session_stopped


def test_publish_confirmed_keeps_older_buffered_events_when_it_fails():
    fake = FakeRedis()
    actor = opened(fake, retry_interval=5.0)
    fake.fail = True
    actor.on_receive(Publish((indicator(1.0),)))
    assert actor.on_receive(PublishConfirmed((stopped(),), actor.wall() + 1.0)) is False
    assert actor.on_receive(GetStats()).buffered == 1
    fake.fail = False
    actor.mono.advance(5.0)
    actor.on_receive(TimerTick(0.0))
    assert [c for c, _ in fake.published()] == [CH.indicators]


def test_publish_confirmed_whose_deadline_passed_in_the_mailbox_sends_nothing():
    fake = FakeRedis()
    actor = opened(fake)
    assert actor.on_receive(PublishConfirmed((stopped(),), actor.wall() - 0.5)) is False
    assert fake.attempts == 0 and actor.on_receive(GetStats()).buffered == 0


def test_publish_confirmed_counts_results_like_publish():
    fake = FakeRedis()
    actor = opened(fake)
    actor.on_receive(PublishConfirmed((pattern(0.9), indicator()), actor.wall() + 1.0))
    stats = actor.on_receive(GetStats())
    assert (stats.patterns, stats.indicators, stats.published) == (1, 1, 3)


# -- reports to the supervisor, final stats --------------------------------------------------------


def start_supervised(fake: FakeRedis, supervisor: Recorder, **kwargs):
    kwargs.setdefault("retry_interval", 30.0)
    ref = PublisherActor.start(supervisor, "sid", CH, KEYS, 30.0, 0.8, lambda: fake, **kwargs)
    ref.tell(Open(incarnation=3))
    assert wait_until(lambda: supervisor.of_type(ChildOpened))
    return ref


def test_counters_are_pushed_to_the_supervisor_every_report_interval():
    fake, supervisor = FakeRedis(), Recorder("session")
    ref = start_supervised(fake, supervisor, report_interval=0.05)
    ref.tell(Publish((pattern(0.5), indicator())))
    assert wait_until(lambda: any(r.stats.published == 2 for r in supervisor.of_type(ChildReport)))
    assert wait_until(lambda: len(supervisor.of_type(ChildReport)) >= 5)
    reports = supervisor.of_type(ChildReport)
    assert all(r.child == "publisher" and r.incarnation == 3 for r in reports)
    assert all(isinstance(r.stats, PublisherStats) for r in reports)
    assert reports[-1].stats.patterns == 1 and reports[-1].stats.indicators == 1
    ats = [r.at for r in reports]
    assert ats == sorted(ats)
    ref.stop()


def test_a_dying_publisher_hands_its_totals_to_the_supervisor():
    fake, supervisor = FakeRedis(), Recorder("session")
    ref = start_supervised(fake, supervisor, report_interval=3600.0)
    ref.tell(Publish((pattern(0.9), pattern(0.5), indicator())))
    ref.tell(object())  # a message it cannot handle: the actor dies
    assert wait_until(lambda: supervisor.of_type(ChildFailed))
    [failed] = supervisor.of_type(ChildFailed)
    assert failed.child == "publisher" and failed.incarnation == 3
    assert isinstance(failed.final_stats, PublisherStats)
    assert (failed.final_stats.patterns, failed.final_stats.indicators, failed.final_stats.published) == (2, 1, 4)
    assert len(fake.published()) == 4  # what was buffered went out before it died (one bounded try)


def test_final_stats_is_the_snapshot():
    fake = FakeRedis()
    actor = opened(fake)
    actor.on_receive(Publish((pattern(0.5),)))
    assert actor.final_stats() == actor.on_receive(GetStats())
