"""Unit tests for tickstock.messages.ticks: decode_tick / encode_tick.

Contract: /work/shared/docs/interface.md, section "Input: ticks".
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import msgspec
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tickstock.messages.ticks import (
    DEFAULT_MAX_SKEW_SECONDS,
    MILLISECONDS_THRESHOLD,
    Tick,
    TickRejected,
    decode_tick,
    encode_tick,
)

# 2026-03-10T14:30:00Z, a realistic receive time.
NOW = datetime(2026, 3, 10, 14, 30, tzinfo=timezone.utc).timestamp()
SKEW = DEFAULT_MAX_SKEW_SECONDS
# No example database in the shared checkout; no deadline (shared, loaded machine).
FUZZ = settings(database=None, deadline=None)


def wire(**overrides) -> bytes:
    """A valid upstream tick message (as in the interface example) with fields overridden/removed."""
    msg = {
        "type": "market_tick",
        "symbol": "AAPL",
        "price": 257.01,
        "volume": 150,
        "timestamp": NOW - 0.5,
        "source": "massive",
    }
    for key, value in overrides.items():
        if value is _DROP:
            msg.pop(key)
        else:
            msg[key] = value
    return json.dumps(msg).encode()


_DROP = object()


def reject_reason(raw, received_at: float = NOW, max_skew_seconds: float = SKEW) -> str:
    with pytest.raises(TickRejected) as info:
        decode_tick(raw, received_at, max_skew_seconds)
    exc = info.value
    assert exc.reason in TickRejected.REASONS
    assert isinstance(exc.detail, str) and exc.detail
    assert str(exc).startswith(exc.reason + ":")
    return exc.reason


# --------------------------------------------------------------------------- valid input


def test_valid_tick_decodes_all_fields():
    tick = decode_tick(wire(), received_at=NOW)
    assert tick == Tick(symbol="AAPL", price=257.01, volume=150, timestamp=NOW - 0.5, received_at=NOW)
    assert isinstance(tick.price, float)
    assert isinstance(tick.volume, int) and not isinstance(tick.volume, bool)


def test_valid_tick_from_str_input():
    tick = decode_tick(wire().decode(), received_at=NOW)
    assert tick.symbol == "AAPL" and tick.price == 257.01


def test_exact_interface_example_message():
    raw = (
        b'{"type": "market_tick", "symbol": "AAPL", "price": 257.01, "volume": 150,\n'
        b' "timestamp": 1728300000.123, "source": "massive"}'
    )
    tick = decode_tick(raw, received_at=1728300001.0)
    assert (tick.symbol, tick.price, tick.volume, tick.timestamp) == ("AAPL", 257.01, 150, 1728300000.123)


def test_type_and_source_are_optional_and_ignored():
    tick = decode_tick(wire(type=_DROP, source=_DROP), received_at=NOW)
    assert tick.symbol == "AAPL"
    tick2 = decode_tick(wire(source={"nested": [1, 2]}, extra="x"), received_at=NOW)
    assert tick2.price == 257.01


def test_int_price_accepted_as_float():
    tick = decode_tick(wire(price=257), received_at=NOW)
    assert tick.price == 257.0
    assert isinstance(tick.price, float)


def test_zero_volume_quote_accepted():
    assert decode_tick(wire(volume=0), received_at=NOW).volume == 0


def test_int_timestamp_accepted():
    tick = decode_tick(wire(timestamp=int(NOW)), received_at=NOW)
    assert tick.timestamp == float(int(NOW))


def test_millisecond_timestamp_normalised_to_seconds():
    ms = int(NOW * 1000) + 123
    tick = decode_tick(wire(timestamp=ms), received_at=NOW)
    assert tick.timestamp == pytest.approx(NOW + 0.123, abs=1e-6)
    # Seconds, not year 56000.
    assert datetime.fromtimestamp(tick.timestamp, tz=timezone.utc).year == 2026
    assert tick.timestamp < MILLISECONDS_THRESHOLD


def test_millisecond_float_timestamp_normalised():
    tick = decode_tick(wire(timestamp=NOW * 1000 + 999.0), received_at=NOW)
    assert datetime.fromtimestamp(tick.timestamp, tz=timezone.utc).year == 2026
    assert abs(tick.timestamp - (NOW + 0.999)) < 1e-6


def test_millisecond_timestamp_far_off_still_rejected_after_normalisation():
    ms = int((NOW + 3 * SKEW) * 1000)
    assert reject_reason(wire(timestamp=ms)) == "bad_timestamp"


def test_seconds_timestamp_is_not_divided():
    # Values at or below the threshold are seconds; a 2026 timestamp must not be scaled.
    tick = decode_tick(wire(timestamp=NOW), received_at=NOW)
    assert tick.timestamp == NOW


@pytest.mark.parametrize("symbol", ["BRK.B", "A", "BF.B", "BRK-B", "X1", "ABCDEFGHIJKLMNOPQRST"])
def test_valid_symbols_accepted(symbol):
    assert decode_tick(wire(symbol=symbol), received_at=NOW).symbol == symbol


def test_received_at_is_recorded_not_timestamp():
    tick = decode_tick(wire(timestamp=NOW - 10), received_at=NOW)
    assert tick.received_at == NOW
    assert tick.timestamp == NOW - 10


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all",
        b'{"symbol": "AAPL", "price": 1',  # truncated
        b"",
        b'{"symbol": "AAPL", "price": NaN, "volume": 1, "timestamp": 1}',  # NaN is not JSON
        b"\x00\x01\x02",
    ],
    ids=["garbage", "truncated", "empty", "nan-literal", "binary"],
)
def test_non_json_is_malformed_json(raw):
    assert reject_reason(raw) == "malformed_json"


def test_invalid_utf8_is_malformed_json():
    raw = b'{"symbol": "AA\xff\xfePL", "price": 1.0, "volume": 1, "timestamp": ' + str(NOW).encode() + b"}"
    assert reject_reason(raw) == "malformed_json"


def test_lone_surrogate_in_str_input_is_malformed_json():
    raw = '{"symbol": "A\ud800", "price": 1.0, "volume": 1, "timestamp": 1}'
    assert reject_reason(raw) == "malformed_json"


@pytest.mark.parametrize("raw", [b"[]", b'[{"symbol": "AAPL"}]', b"null", b"42", b'"AAPL"'])
def test_json_non_object_is_wrong_type(raw):
    assert reject_reason(raw) == "wrong_type"


@pytest.mark.parametrize("field", ["symbol", "price", "volume", "timestamp"])
def test_missing_field(field):
    assert reject_reason(wire(**{field: _DROP})) == "missing_field"


def test_empty_object_is_missing_field():
    assert reject_reason(b"{}") == "missing_field"


@pytest.mark.parametrize(
    "overrides",
    [
        {"volume": 1.5},
        {"volume": True},
        {"volume": "150"},
        {"volume": None},
        {"price": "257.01"},
        {"price": True},
        {"price": None},
        {"symbol": 123},
        {"symbol": None},
        {"timestamp": "1772953200"},
        {"timestamp": None},
        {"timestamp": [NOW]},
    ],
    ids=lambda o: f"{next(iter(o))}={next(iter(o.values()))!r}",
)
def test_wrong_type(overrides):
    assert reject_reason(wire(**overrides)) == "wrong_type"


def test_float_volume_with_zero_fraction_is_wrong_type():
    # The contract says volume is an int; 150.0 is not silently accepted.
    assert reject_reason(wire(volume=150.0)) == "wrong_type"


@pytest.mark.parametrize("price", [0, 0.0, -0.0, -1.0, -257.01])
def test_non_positive_price_is_bad_price(price):
    assert reject_reason(wire(price=price)) == "bad_price"


def test_price_infinity_1e999_is_bad_price():
    raw = wire(price=0).replace(b'"price": 0', b'"price": 1e999')
    assert b"1e999" in raw
    assert reject_reason(raw) == "bad_price"


def test_price_underflowing_to_zero_is_bad_price():
    raw = wire(price=0).replace(b'"price": 0', b'"price": 1e-400')
    assert reject_reason(raw) == "bad_price"


@pytest.mark.parametrize("volume", [-1, -150, -(2**40)])
def test_negative_volume_is_bad_volume(volume):
    assert reject_reason(wire(volume=volume)) == "bad_volume"


@pytest.mark.parametrize(
    "symbol",
    ["aapl", "Aapl", "", "BRK B", " AAPL", "AAPL ", "ABCDEFGHIJKLMNOPQRSTU", "1ABC", ".A", "AA/PL", "ÄAPL"],
    ids=["lower", "mixed", "empty", "inner-space", "lead-space", "trail-space", "too-long-21",
         "leading-digit", "leading-dot", "slash", "non-ascii"],
)
def test_bad_symbol(symbol):
    assert reject_reason(wire(symbol=symbol)) == "bad_symbol"


def test_symbol_with_trailing_newline_is_bad_symbol():
    assert reject_reason(wire(symbol="AAPL\n")) == "bad_symbol"


def test_timestamp_far_in_future_is_bad_timestamp():
    assert reject_reason(wire(timestamp=NOW + SKEW + 1)) == "bad_timestamp"
    assert reject_reason(wire(timestamp=NOW + 30.0), max_skew_seconds=10.0) == "bad_timestamp"


def test_timestamp_far_in_past_is_bad_timestamp():
    assert reject_reason(wire(timestamp=NOW - SKEW - 1)) == "bad_timestamp"
    assert reject_reason(wire(timestamp=0)) == "bad_timestamp"
    assert reject_reason(wire(timestamp=-1.0)) == "bad_timestamp"


def test_timestamp_exactly_at_skew_limit_accepted():
    assert decode_tick(wire(timestamp=NOW + 10.0), NOW, max_skew_seconds=10.0).timestamp == NOW + 10.0
    assert decode_tick(wire(timestamp=NOW - 10.0), NOW, max_skew_seconds=10.0).timestamp == NOW - 10.0


def test_volume_beyond_bigint_is_bad_volume():
    assert reject_reason(wire(volume=2**63)) == "bad_volume"
    assert decode_tick(wire(volume=2**63 - 1), NOW, SKEW).volume == 2**63 - 1


def test_volume_1e999_is_bad_volume():
    raw = wire(volume=0).replace(b'"volume": 0', b'"volume": 1e999')
    assert reject_reason(raw) == "bad_volume"


def test_timestamp_1e999_is_bad_timestamp():
    raw = wire(timestamp=0).replace(b'"timestamp": 0', b'"timestamp": 1e999')
    assert reject_reason(raw) == "bad_timestamp"


def test_timestamp_as_string_is_wrong_type():
    assert reject_reason(wire(timestamp=str(NOW))) == "wrong_type"


def test_each_reason_is_reachable():
    """Every label in REASONS is produced by some realistic input."""
    samples = {
        "malformed_json": b"{oops",
        "missing_field": wire(price=_DROP),
        "wrong_type": wire(volume=1.5),
        "bad_symbol": wire(symbol="aapl"),
        "bad_price": wire(price=-1.0),
        "bad_volume": wire(volume=-5),
        "bad_timestamp": wire(timestamp=NOW + 10 * SKEW),
    }
    assert set(samples) == set(TickRejected.REASONS)
    for reason, raw in samples.items():
        assert reject_reason(raw) == reason


def test_tick_rejected_is_value_error():
    exc = TickRejected("bad_price", "x")
    assert isinstance(exc, ValueError)
    assert (exc.reason, exc.detail) == ("bad_price", "x")


# --------------------------------------------------------------------------- encode_tick


def test_encode_tick_matches_wire_format():
    raw = encode_tick("AAPL", 257.01, 150, 1728300000.123, source="massive")
    assert json.loads(raw) == {
        "type": "market_tick", "symbol": "AAPL", "price": 257.01, "volume": 150,
        "timestamp": 1728300000.123, "source": "massive",
    }


def test_encode_decode_roundtrip_simple():
    tick = decode_tick(encode_tick("BRK.B", 412.5, 3, NOW - 1.25), received_at=NOW)
    assert tick == Tick("BRK.B", 412.5, 3, NOW - 1.25, NOW)


symbols = st.from_regex(r"\A[A-Z][A-Z0-9.\-]{0,19}\Z")
prices = st.floats(min_value=0.0, exclude_min=True, allow_nan=False, allow_infinity=False)
volumes = st.integers(min_value=0, max_value=2**63 - 1)


@FUZZ
@given(
    symbol=symbols,
    price=prices,
    volume=volumes,
    offset=st.floats(min_value=-SKEW, max_value=SKEW, allow_nan=False),
)
def test_encode_decode_roundtrip_property(symbol, price, volume, offset):
    ts = NOW + offset
    assume(abs(ts - NOW) <= SKEW)
    tick = decode_tick(encode_tick(symbol, price, volume, ts), received_at=NOW)
    assert tick == Tick(symbol=symbol, price=price, volume=volume, timestamp=ts, received_at=NOW)


@FUZZ
@given(symbol=symbols, price=prices, volume=volumes, ms_offset=st.integers(-86_400_000, 86_400_000))
def test_encode_decode_roundtrip_milliseconds(symbol, price, volume, ms_offset):
    ms = int(NOW) * 1000 + ms_offset
    tick = decode_tick(encode_tick(symbol, price, volume, ms), received_at=NOW)
    assert tick.timestamp == ms / 1000.0
    assert (tick.symbol, tick.price, tick.volume) == (symbol, price, volume)


# --------------------------------------------------------------------------- fuzzing


def check_total(raw, received_at=NOW, max_skew=SKEW):
    """decode_tick returns a valid Tick or raises TickRejected with a known reason; nothing else."""
    try:
        tick = decode_tick(raw, received_at, max_skew)
    except TickRejected as exc:
        assert exc.reason in TickRejected.REASONS
        return None
    assert isinstance(tick, Tick)
    assert isinstance(tick.price, float)
    assert math.isfinite(tick.price) and tick.price > 0.0
    assert isinstance(tick.volume, int) and not isinstance(tick.volume, bool)
    assert tick.volume >= 0
    assert math.isfinite(tick.timestamp)
    assert abs(tick.timestamp - received_at) <= max_skew
    assert tick.received_at == received_at
    assert isinstance(tick.symbol, str) and tick.symbol and tick.symbol[0].isupper()
    return tick


@FUZZ
@given(st.binary(max_size=300))
@example(b"\xff")
@example(b"{")
@example(b'{"symbol":"A","price":1,"volume":1,"timestamp":1e999}')
def test_fuzz_arbitrary_bytes(raw):
    check_total(raw)


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(raw):
    check_total(raw)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=25)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

FIELDS = ("symbol", "price", "volume", "timestamp", "type", "source")


def field_values(name):
    plausible = {
        "symbol": symbols | st.text(max_size=25),
        "price": st.floats() | st.integers(-(2**70), 2**70),
        "volume": st.integers(-(2**70), 2**70) | st.floats(),
        "timestamp": st.floats(min_value=NOW - 3 * SKEW, max_value=NOW + 3 * SKEW)
        | st.integers(int(NOW - 3 * SKEW) * 1000, int(NOW + 3 * SKEW) * 1000)
        | st.floats(),
    }.get(name, st.nothing())
    return plausible | json_values


tick_like_objects = st.fixed_dictionaries(
    {},
    optional={name: field_values(name) for name in FIELDS},
).flatmap(
    lambda d: st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(lambda extra: {**extra, **d})
)


def dumps(obj) -> bytes:
    # allow_nan: json.dumps emits NaN/Infinity literals, which are not JSON; the decoder must cope.
    return json.dumps(obj, allow_nan=True).encode()


@settings(database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_fuzz_arbitrary_json_objects(obj):
    check_total(dumps(obj))


@settings(database=None, deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(obj=tick_like_objects)
def test_fuzz_tick_like_json_objects(obj):
    check_total(dumps(obj))


@FUZZ
@given(obj=json_values)
def test_fuzz_arbitrary_json_values(obj):
    check_total(dumps(obj))


@FUZZ
@given(
    symbol=symbols,
    price=st.floats() | st.integers(-(2**40), 2**40),
    volume=st.integers(-(2**40), 2**40),
    timestamp=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**50), 2**50),
    received_at=st.floats(min_value=1e9, max_value=4e9),
    max_skew=st.floats(min_value=0.0, max_value=1e6),
)
def test_valid_tick_invariants(symbol, price, volume, timestamp, received_at, max_skew):
    tick = check_total(dumps({"symbol": symbol, "price": price, "volume": volume, "timestamp": timestamp}),
                       received_at, max_skew)
    if tick is not None:
        assert tick.symbol == symbol
        assert tick.volume == volume


def test_tick_is_frozen_and_hashable():
    # Tick is a frozen struct: it is hashable and immutable.
    tick = decode_tick(wire(), received_at=NOW)
    with pytest.raises(AttributeError):
        tick.price = 1.0  # type: ignore[misc]
    assert hash(tick) == hash(msgspec.structs.replace(tick))
