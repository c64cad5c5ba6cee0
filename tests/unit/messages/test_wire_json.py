"""``wire_json()`` of the per-result events: exactly the bytes of ``dumps(to_wire())``, for any event
(fuzzed: NaN and infinities, ints where floats are expected, nested parameters, optional fields,
any text), so the faster Struct encoding can never change what the dashboard reads."""

from __future__ import annotations

import math

import orjson
from hypothesis import given, settings, strategies as st

from tickstock.actors.publisher import encode_for_redis
from tickstock.config import ChannelSettings
from tickstock.messages.bars import Bar
from tickstock.messages.events import IndicatorAlertRaised, IndicatorCalculated, PatternDetected
from tickstock.messages.wire import dumps

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12))
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
times = st.floats(min_value=0, max_value=4e9)
text = st.text(max_size=12)
json_values = st.recursive(st.one_of(st.none(), st.booleans(), numbers, text),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(text, inner, max_size=3)), max_leaves=8)
bars = st.builds(Bar, symbol=text, start=st.integers(0, 4_000_000_000).map(lambda t: t // 60 * 60), open=finite,
                 high=finite, low=finite, close=finite, volume=st.integers(0, 10**9))
timeframes = st.sampled_from(["1min", "5min", "15min", "60min"])

patterns = st.builds(
    PatternDetected, symbol=text, pattern=text, confidence=numbers, detected_at=times, bar=bars, session_id=text,
    parameters=st.dictionaries(text, json_values, max_size=4), levels=st.lists(numbers, max_size=3).map(tuple),
    bar_closed_at=st.one_of(st.none(), times), timeframe=timeframes)
indicators = st.builds(
    IndicatorCalculated, symbol=text, indicator=text, value=numbers, values=st.dictionaries(text, numbers, max_size=4),
    calculated_at=times, bar=bars, session_id=text, metadata=st.dictionaries(text, json_values, max_size=4),
    bar_closed_at=st.one_of(st.none(), times), timeframe=timeframes)


@settings(max_examples=300, deadline=None)
@given(patterns)
def test_a_pattern_encodes_to_the_bytes_of_its_wire_dict(event):
    assert event.wire_json() == dumps(event.to_wire())


@settings(max_examples=300, deadline=None)
@given(indicators)
def test_an_indicator_encodes_to_the_bytes_of_its_wire_dict(event):
    assert event.wire_json() == dumps(event.to_wire())


def test_the_wire_never_carries_nan_or_infinity_and_keys_keep_their_order():
    bar = Bar("AAPL", 1_796_040_000, 1.0, 2.0, 0.5, 1.5, 100)
    event = IndicatorCalculated("AAPL", "MACD", math.nan, {"macd": math.inf, "signal": 1.5, "hist": 2}, 1_796_040_062.5,
                                bar, "s-1", {"function": "MACD"}, 1_796_040_062.0, "5min")
    decoded = orjson.loads(event.wire_json())
    assert list(decoded) == ["type", "calculation"]
    calc = decoded["calculation"]
    assert list(calc) == ["symbol", "indicator", "indicator_type", "value", "values", "timestamp", "timeframe",
                          "metadata"]
    assert calc["value"] is None and calc["values"] == {"macd": None, "signal": 1.5, "hist": 2.0}
    assert calc["metadata"] == {"function": "MACD", "session_id": "s-1", "bar_timestamp": "2026-11-30T12:00:00.000Z",
                                "bar_closed_at": "2026-11-30T12:01:02.000Z"}


def test_the_publisher_sends_the_fast_encoding_and_the_alerts_as_before():
    channels = ChannelSettings()
    bar = Bar("AAPL", 1_796_040_000, 1.0, 2.0, 0.5, 1.5, 100)
    detected = PatternDetected("AAPL", "Doji", 0.9, 1_796_040_062.5, bar, "s-1", {"direction": "neutral"})
    calculated = IndicatorCalculated("AAPL", "RSI", 71.0, {"value": 71.0}, 1_796_040_062.5, bar, "s-1")
    alert = IndicatorAlertRaised("RSI_OVERBOUGHT", "AAPL", "RSI", 71.0, 70.0, "above", 1_796_040_062.5, "s-1")
    out = encode_for_redis([detected, calculated, alert], channels, high_confidence=0.8)
    assert out == [(channels.patterns, dumps(detected.to_wire())),
                   (channels.patterns_high_confidence, dumps(detected.to_wire())),
                   (channels.indicators, dumps(calculated.to_wire())),
                   (channels.indicator_alerts, dumps(alert.to_wire()))]
