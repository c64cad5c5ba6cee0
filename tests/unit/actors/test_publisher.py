"""PublisherActor: channels, one JSON object per PUBLISH, buffering through a Redis outage, keys."""

from __future__ import annotations

import json
import math
import threading

from tickstock.adapters.redis.resp import RedisUnavailable
import pytest

from tickstock.actors.publisher import PublisherActor, channels_for, encode_for_redis
from tickstock.config import ChannelSettings, KeySettings
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    ClearSession, GetStats, Heartbeat, Open, Publish, RetainSession, TimerTick,
)
from tickstock.messages.events import (
    CriticalAlert, IndicatorAlertRaised, IndicatorCalculated, PatternDetected, SessionStarted, SessionStopped,
)

from .fakes import M, FakeRedis, wait_until

pytestmark = pytest.mark.timeout(10)

CH = ChannelSettings()
KEYS = KeySettings()
BAR = Bar("NVDA", M, 125.5, 125.75, 125.45, 125.52, 250_000, 30)
STREAMING = "tickstock:patterns:streaming"
DETECTED = "tickstock:patterns:detected"


def opened(fake: FakeRedis, **kwargs) -> PublisherActor:
    kwargs.setdefault("retry_interval", 3600.0)
    actor = PublisherActor(None, "sid", CH, KEYS, 30.0, 0.8, lambda: fake, **kwargs)
    actor.open()
    actor._ticker.stop()  # the test drives TimerTick itself
    return actor


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


def test_redis_outage_keeps_events_and_a_timer_tick_resends_them_in_order():
    fake = FakeRedis()
    actor = opened(fake)
    fake.fail = True
    actor.on_receive(Publish((pattern(0.9),)))
    actor.on_receive(Publish((indicator(1.0),)))
    stats = actor.on_receive(GetStats())
    assert stats.buffered == 3 and stats.published == 0
    assert stats.redis_connected is False and "RedisUnavailable" in stats.last_error
    assert stats.patterns == 1 and stats.indicators == 1  # counted once, even if not yet sent
    actor.on_receive(TimerTick(0.0))  # still down: still kept
    assert actor.on_receive(GetStats()).buffered == 3
    fake.fail = False
    actor.on_receive(TimerTick(0.0))
    [batch] = fake.batches
    assert [c for c, _ in batch] == [STREAMING, DETECTED, CH.indicators]
    assert strict_json(batch[2][1])["calculation"]["value"] == 1.0
    stats = actor.on_receive(GetStats())
    assert stats.buffered == 0 and stats.published == 3 and stats.redis_connected is True


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
    actor.on_receive(TimerTick(0.0))
    values = [strict_json(p)["calculation"]["value"] for _, p in fake.published()]
    assert values == [2.0, 3.0]


def test_heartbeat_writes_the_heartbeat_key_and_refreshes_the_session_key_ttl():
    fake = FakeRedis()
    actor = opened(fake)
    actor.on_receive(Heartbeat(1_760_000_000.5))
    assert fake.refreshes == [("tickstock:producer:heartbeat", "1760000000.5", "tickstock:streaming:session", 30.0)]


def test_heartbeat_also_flushes_buffered_events_once_redis_is_back():
    fake = FakeRedis()
    actor = opened(fake)
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


def test_key_operations_never_raise_on_a_redis_outage():
    fake = FakeRedis()
    actor = opened(fake)
    fake.fail = True
    actor.on_receive(Heartbeat(1.0))
    actor.on_receive(RetainSession({"a": 1}))
    actor.on_receive(ClearSession())
    assert actor.on_receive(GetStats()).redis_connected is False


def test_pure_helpers_match_the_actor():
    assert channels_for(pattern(0.95), CH, 0.8) == [STREAMING, DETECTED]
    assert channels_for(indicator(), CH, 0.0) == [CH.indicators]
    pairs = encode_for_redis([pattern(0.5), indicator()], CH, 0.8)
    assert [c for c, _ in pairs] == [STREAMING, CH.indicators]


def test_heartbeat_arriving_before_open_is_not_fatal():
    fake = FakeRedis()
    actor = PublisherActor(None, "sid", CH, KEYS, 30.0, 0.8, lambda: fake, retry_interval=3600.0)
    actor.on_receive(Heartbeat(1.0))  # replayed by ChildHandle.replace before Open
    actor.open()
    actor._ticker.stop()
    actor.on_receive(Heartbeat(2.0))
    assert fake.refreshes[-1][1] == "2.0"


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
