"""wire.iso_utc: ISO-8601 UTC with milliseconds, the same from its cache as freshly formatted."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, strategies as st

from tickstock.messages import wire
from tickstock.messages.wire import iso_utc


def reference(t: float) -> str:
    moment = datetime.fromtimestamp(t, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_known_instants():
    assert iso_utc(1_759_844_490) == "2025-10-07T13:41:30.000Z"
    assert iso_utc(1_759_844_490.4129) == "2025-10-07T13:41:30.412Z"
    assert iso_utc(1_759_844_490.9999996) == "2025-10-07T13:41:31.000Z"  # microsecond rounding carries


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_cached_or_not_it_matches_datetime(t):
    assert iso_utc(t) == reference(t)
    assert iso_utc(t) == reference(t)  # the second call comes from the cache


def test_the_cache_is_bounded():
    wire._ISO_BY_INSTANT.clear()
    for i in range(wire._ISO_CACHE_SIZE + 10):
        assert iso_utc(1_700_000_000 + i * 0.001) == reference(1_700_000_000 + i * 0.001)
    assert len(wire._ISO_BY_INSTANT) <= wire._ISO_CACHE_SIZE


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.floats(), st.none(), st.integers(-10**6, 10**6)), max_size=6))
def test_finite_values_is_finite_or_none_value_by_value(values):
    out = wire.finite_values(values)
    assert out.keys() == values.keys()
    for key, value in values.items():
        expected = wire.finite_or_none(value)
        assert out[key] == expected and (expected is None) == (out[key] is None)


@given(st.dictionaries(st.text(max_size=5), st.floats(-1e300, 1e300), max_size=6))
def test_finite_values_passes_finite_floats_through_without_a_copy(values):
    # (Values near 1e308 whose sum overflows take the value-by-value path: the same result, a copy.)
    assert wire.finite_values(values) is values


def test_finite_values_copies_rather_than_changes_what_it_cleans():
    values = {"value": 1.0, "upper": float("nan"), "lower": float("-inf")}
    assert wire.finite_values(values) == {"value": 1.0, "upper": None, "lower": None}
    assert values["upper"] != values["upper"] and values["lower"] == float("-inf")  # the input is untouched
