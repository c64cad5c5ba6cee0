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
