"""Deterministic row ids of the records the store writes at most once."""

from __future__ import annotations

import uuid

from tickstock.messages.records import (
    HealthRecord, IndicatorRecord, PatternRecord, health_row_id, indicator_row_id, pattern_row_id,
)

SID = "3f2c9a1e-0000-4000-8000-000000000001"


def test_ids_are_uuids_stable_and_distinguish_every_input():
    base = pattern_row_id(SID, "AAPL", "Doji", 1_700_000_040)
    assert str(uuid.UUID(base)) == base
    assert pattern_row_id(SID, "AAPL", "Doji", 1_700_000_040) == base
    others = {
        pattern_row_id("other", "AAPL", "Doji", 1_700_000_040),
        pattern_row_id(SID, "MSFT", "Doji", 1_700_000_040),
        pattern_row_id(SID, "AAPL", "Hammer", 1_700_000_040),
        pattern_row_id(SID, "AAPL", "Doji", 1_700_000_100),
        pattern_row_id(SID, "AAPL", "Doji", 1_700_000_040, "5min"),
        indicator_row_id(SID, "AAPL", "Doji", 1_700_000_040),  # same inputs, another table
    }
    assert base not in others and len(others) == 6


def test_health_record_derives_its_id_from_session_and_time():
    a = HealthRecord(SID, 1_700_000_050.25, "healthy", 1, 2.0, 3.0, None, 0, 0)
    b = HealthRecord(SID, 1_700_000_050.25, "warning", 9, 9.0, 9.0, 1.0, 5, 5, {"x": 1})
    c = HealthRecord(SID, 1_700_000_060.25, "healthy", 1, 2.0, 3.0, None, 0, 0)
    assert a.row_id == b.row_id == health_row_id(SID, 1_700_000_050.25)
    assert c.row_id != a.row_id
    assert HealthRecord(SID, 5, "healthy", 0, 0.0, 0.0, None, 0, 0).row_id == health_row_id(SID, 5.0)
    given = str(uuid.uuid4())
    assert HealthRecord(SID, 1.0, "healthy", 0, 0.0, 0.0, None, 0, 0, row_id=given).row_id == given


def test_records_made_without_an_id_get_one_from_their_content():
    p1 = PatternRecord("AAPL", "Doji", 0.85, 1_700_000_100.5, {"bar_timestamp": "x"}, metadata={"session_id": SID})
    p2 = PatternRecord("AAPL", "Doji", 0.85, 1_700_000_100.5, {"bar_timestamp": "x"}, metadata={"session_id": SID})
    p3 = PatternRecord("AAPL", "Doji", 0.86, 1_700_000_100.5, {"bar_timestamp": "x"}, metadata={"session_id": SID})
    assert p1.row_id == p2.row_id and str(uuid.UUID(p1.row_id)) == p1.row_id
    assert p3.row_id != p1.row_id
    i1 = IndicatorRecord("AAPL", "RSI", 70.0, 1.0)
    assert i1.row_id == IndicatorRecord("AAPL", "RSI", 70.0, 1.0).row_id != IndicatorRecord("AAPL", "RSI", 71.0, 1.0).row_id
    assert PatternRecord("AAPL", "Doji", 0.85, 1.0, row_id="given").row_id == "given"


def test_row_ids_are_exactly_uuid5_in_the_row_id_namespace():
    import uuid

    from hypothesis import given, strategies as st

    from tickstock.messages.records import ROW_ID_NAMESPACE, _SEP, _uuid5

    @given(st.lists(st.text(), min_size=1, max_size=6))
    def check(parts):
        assert _uuid5(*parts) == str(uuid.uuid5(ROW_ID_NAMESPACE, _SEP.join(parts)))

    check()


def test_event_records_are_the_rows_of_detections_and_values_in_order_and_skip_alerts():
    from tickstock.messages.bars import Bar
    from tickstock.messages.events import IndicatorAlertRaised, IndicatorCalculated, PatternDetected
    from tickstock.messages.records import event_records, indicator_record, pattern_record

    bar = Bar("AAPL", 1_700_000_040, 1.0, 2.0, 0.5, 1.5, 100, 3)
    rsi = IndicatorCalculated("AAPL", "RSI", 71.0, {"value": 71.0}, 1_700_000_102.0, bar, SID, {"period": 14})
    alert = IndicatorAlertRaised("RSI_OVERBOUGHT", "AAPL", "RSI", 71.0, 70.0, "above", 1_700_000_102.0, SID)
    doji = PatternDetected("AAPL", "Doji", 0.8, 1_700_000_102.0, bar, SID, {}, (), None, "5min")
    rows = event_records([rsi, alert, doji], pattern_ttl=1800.0, indicator_ttl=900.0)
    assert rows == [indicator_record(rsi, 900.0), pattern_record(doji, 1800.0)]
    assert [type(r) for r in rows] == [IndicatorRecord, PatternRecord]
    assert rows[1].expiration_timestamp == 1_700_000_102.0 + 1800.0 and rows[1].timeframe == "5min"


def test_ids_already_stored_never_change():
    """Ids are in the database and in write-ahead logs of earlier versions: a replay must make the
    same ones, so each kind of id is pinned to the value its first version gave."""
    assert pattern_row_id(SID, "BRK.B", "Doji", 1_700_000_040, "5min") == "64fd38a9-1a28-50fb-94a4-b35c50b3ef78"
    assert indicator_row_id(SID, "AAPL", "RSI", 1_700_000_040.0) == "fb04e3c2-ed0c-5ea0-bd93-4bf4500b5311"
    assert HealthRecord(SID, 1_700_000_050.25, "healthy", 1, 2.0, 3.0, None, 0, 0).row_id == \
        "a810fd97-e412-5516-be9e-dee4a4a08c0d"
    content = PatternRecord("AAPL", "Doji", 0.85, 1_700_000_100.5, {"bar_timestamp": "x"}, levels=(1.5, 2.0),
                            metadata={"session_id": SID})
    assert content.row_id == "0a0aad39-dba7-5579-a78c-4535db70bbae"
    assert IndicatorRecord("AAPL", "RSI", 70.0, 1.0, {"value": 70.0}).row_id == "4d4b3dca-ce70-5036-98df-bf0d78cb0a39"


def test_pattern_and_indicator_ids_are_uuid5_of_their_joined_parts():
    from hypothesis import given, strategies as st

    from tickstock.messages.records import ROW_ID_NAMESPACE, _SEP

    names = st.text(min_size=1, max_size=12)

    @given(names, names, names, st.integers(0, 2**40), st.sampled_from(["1min", "5min", "15min", "60min"]))
    def check(session_id, symbol, kind, start, timeframe):
        for table, make in (("pattern", pattern_row_id), ("indicator", indicator_row_id)):
            joined = _SEP.join([table, session_id, symbol, kind, str(start), timeframe])
            assert make(session_id, symbol, kind, start, timeframe) == str(uuid.uuid5(ROW_ID_NAMESPACE, joined))

    check()


def test_records_are_immutable():
    import pytest

    row = IndicatorRecord("AAPL", "RSI", 70.0, 1.0, row_id="given")
    with pytest.raises(AttributeError):
        row.value = 71.0  # type: ignore[misc]
