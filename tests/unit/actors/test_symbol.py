"""SymbolActor: one bar in, one Publish and one PersistEvents out, with a fake analysis pipeline."""

from __future__ import annotations

import json
import math
import re
import time

import pytest

from tickstock.actors.symbol import SymbolActor
from tickstock.messages.bars import Bar
from tickstock.messages.commands import BarClosed, GetStats, PersistEvents, Publish
from tickstock.messages.events import IndicatorAlertRaised, IndicatorCalculated, PatternDetected
from tickstock.messages.records import IndicatorRecord, PatternRecord, indicator_record, pattern_record
from tickstock.messages.wire import dumps, iso_utc

from .fakes import (
    M, FakeClock, FakePipeline, PipelineOutput, Recorder, alert_result, error_result, indicator_result,
    pattern_result,
)

pytestmark = pytest.mark.timeout(10)

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")
SID = "3f2c9a1e-0000-4000-8000-000000000001"


def bar(start=M, symbol="AAPL", o=125.50, h=125.75, low=125.45, c=125.52, v=250_000) -> Bar:
    return Bar(symbol, start, o, h, low, c, v, 42)


def rich_output(b: Bar) -> PipelineOutput:
    return PipelineOutput(
        patterns=[pattern_result(b, "Doji", 0.85, {"body_ratio": 0.04}, (125.5, 125.6))],
        indicators=[indicator_result(b, "RSI", 72.5, {"value": 72.5}, {"period": 14, "bars_used": 15}),
                    indicator_result(b, "SMA", 125.1, {"value": 125.1}, {"period": 20})],
        alerts=[alert_result("RSI_OVERBOUGHT", "RSI", 72.5, 70.0, "above")],
    )


def make(outputs=None, history=(), clock=None, **kwargs):
    pipeline = FakePipeline(outputs)
    publisher, persistence = Recorder("publisher"), Recorder("persistence")
    actor = SymbolActor(None, SID, "AAPL", pipeline, publisher, persistence, history,
                        clock=clock or FakeClock(M + 60.2), **kwargs)
    return actor, pipeline, publisher, persistence


def rows(persist: PersistEvents, pattern_ttl: float = 3600.0, indicator_ttl: float = 3600.0):
    """The rows persistence derives from a ``PersistEvents`` (records.pattern_record/indicator_record)."""
    assert isinstance(persist, PersistEvents)
    return ([pattern_record(e, pattern_ttl) for e in persist.events if isinstance(e, PatternDetected)],
            [indicator_record(e, indicator_ttl) for e in persist.events if isinstance(e, IndicatorCalculated)])


def strict_json(payload: bytes):
    def no_constants(name):
        raise AssertionError(f"non-JSON constant {name} on the wire")
    return json.loads(payload, parse_constant=no_constants)


def test_one_bar_with_results_gives_exactly_one_publish_and_one_persist():
    actor, pipeline, publisher, persistence = make(rich_output)
    b = bar()
    assert actor.on_receive(BarClosed(b, M + 62.0)) is None
    assert pipeline.seen == [b]
    [publish] = publisher.messages
    [persist] = persistence.messages
    assert isinstance(publish, Publish) and isinstance(persist, PersistEvents)
    kinds = [type(e) for e in publish.events]
    assert kinds == [PatternDetected, IndicatorCalculated, IndicatorCalculated, IndicatorAlertRaised]
    assert persist.events == publish.events[:3]  # the very same objects, built once; alerts are not stored


def test_pattern_event_wire_fields_follow_the_interface():
    actor, _, publisher, _ = make(rich_output)
    b = bar()
    actor.on_receive(BarClosed(b, M + 62.0))
    event = publisher.messages[0].events[0]
    wire = strict_json(dumps(event.to_wire()))
    assert wire["type"] == "streaming_pattern"
    d = wire["detection"]
    assert {"symbol", "pattern", "pattern_type", "confidence", "timestamp", "timeframe", "parameters",
            "bar_data", "metadata"} <= set(d)
    assert d["symbol"] == "AAPL"
    assert d["pattern"] == d["pattern_type"] == "Doji"
    assert d["confidence"] == 0.85
    assert d["timeframe"] == "1min"
    assert d["timestamp"] == iso_utc(M + 60.2) and ISO_Z.match(d["timestamp"])
    assert d["parameters"]["bar_timestamp"] == iso_utc(M) and ISO_Z.match(d["parameters"]["bar_timestamp"])
    assert d["parameters"]["body_ratio"] == 0.04
    assert d["bar_data"] == {"open": 125.50, "high": 125.75, "low": 125.45, "close": 125.52, "volume": 250_000}
    assert d["metadata"]["session_id"] == SID
    assert d["metadata"]["bar_closed_at"] == iso_utc(M + 62.0)


def test_indicator_and_alert_wire_fields_follow_the_interface():
    actor, _, publisher, _ = make(rich_output)
    actor.on_receive(BarClosed(bar(), M + 62.0))
    events = publisher.messages[0].events
    rsi = strict_json(dumps(events[1].to_wire()))
    assert rsi["type"] == "streaming_indicator"
    c = rsi["calculation"]
    assert c["symbol"] == "AAPL"
    assert c["indicator"] == c["indicator_type"] == "RSI"
    assert c["value"] == 72.5
    assert isinstance(c["values"], dict) and c["values"] == {"value": 72.5}
    assert c["timeframe"] == "1min"
    assert ISO_Z.match(c["timestamp"])
    assert c["metadata"]["session_id"] == SID
    assert c["metadata"]["period"] == 14 and c["metadata"]["bars_used"] == 15
    assert ISO_Z.match(c["metadata"]["bar_timestamp"])
    assert strict_json(dumps(events[2].to_wire()))["calculation"]["indicator_type"] == "SMA"

    alert = strict_json(dumps(events[3].to_wire()))
    assert alert["type"] == "indicator_alert"
    assert alert["alert_type"] == "RSI_OVERBOUGHT"
    assert alert["symbol"] == "AAPL"
    assert alert["session_id"] == SID
    assert alert["severity"] == "warning"
    assert ISO_Z.match(alert["timestamp"])
    assert alert["data"] == {"indicator": "RSI", "value": 72.5, "threshold": 70.0, "direction": "above"}


def test_persisted_records_use_the_table_columns():
    clock = FakeClock(time.time())
    actor, _, _, persistence = make(rich_output, clock=clock)
    b = bar()
    actor.on_receive(BarClosed(b, M + 62.0))
    [persist] = persistence.messages
    [p], (rsi, sma) = rows(persist, pattern_ttl=1800.0, indicator_ttl=900.0)
    assert isinstance(p, PatternRecord)
    assert p.symbol == "AAPL" and p.pattern_type == "Doji" and p.confidence == 0.85
    assert p.detection_timestamp == clock()
    assert p.expiration_timestamp == clock() + 1800.0 and p.expiration_timestamp > time.time()
    assert p.pattern_data["bar_timestamp"] == iso_utc(M)
    assert p.pattern_data["bar_data"]["close"] == 125.52
    assert p.pattern_data["body_ratio"] == 0.04
    assert p.levels == (125.5, 125.6)
    assert p.metadata == {"session_id": SID}
    assert p.timeframe == "1min"
    assert isinstance(rsi, IndicatorRecord)
    assert (rsi.indicator_type, sma.indicator_type) == ("RSI", "SMA")
    assert rsi.value == 72.5 and rsi.value_data == {"value": 72.5}
    assert rsi.calculation_timestamp == clock()
    assert rsi.expiration_timestamp == clock() + 900.0 and rsi.expiration_timestamp > time.time()
    assert rsi.metadata["session_id"] == SID and rsi.metadata["period"] == 14
    assert rsi.metadata["bar_timestamp"] == iso_utc(M)


def test_no_results_tell_nothing():
    actor, pipeline, publisher, persistence = make()
    actor.on_receive(BarClosed(bar(), M + 62.0))
    assert len(pipeline.seen) == 1
    assert publisher.messages == [] and persistence.messages == []


def test_alert_only_is_published_but_not_persisted():
    actor, _, publisher, persistence = make(lambda b: PipelineOutput(alerts=[alert_result()]))
    actor.on_receive(BarClosed(bar(), M + 62.0))
    [publish] = publisher.messages
    assert [type(e) for e in publish.events] == [IndicatorAlertRaised]
    assert persistence.messages == []


def test_component_errors_are_counted_and_do_not_stop_other_results():
    def output(b):
        return PipelineOutput(indicators=[indicator_result(b)],
                              errors=[error_result(bar_start=b.start), error_result("Hammer", b.start, "KeyError()", True)])
    actor, _, publisher, persistence = make(output)
    actor.on_receive(BarClosed(bar(), M + 62.0))
    actor.on_receive(BarClosed(bar(M + 60), M + 122.0))
    stats = actor.on_receive(GetStats())
    assert stats.component_errors == 4
    assert stats.indicators == 2
    assert len(publisher.messages) == 2 and len(persistence.messages) == 2


def test_errors_only_tell_nothing():
    actor, _, publisher, persistence = make(lambda b: PipelineOutput(errors=[error_result()]))
    actor.on_receive(BarClosed(bar(), M + 62.0))
    assert publisher.messages == [] and persistence.messages == []
    assert actor.on_receive(GetStats()).component_errors == 1


def test_priming_happens_at_construction_and_tells_nothing():
    history = [bar(M - 120), bar(M - 60)]
    actor, pipeline, publisher, persistence = make(rich_output, history=history)
    assert pipeline.primed == [history]
    assert pipeline.seen == []
    assert publisher.messages == [] and persistence.messages == []
    stats = actor.on_receive(GetStats())
    assert stats.bars == 2 and stats.last_bar_start == M - 60
    assert stats.patterns == 0 and stats.indicators == 0


def test_get_stats_counts_bars_patterns_indicators():
    actor, _, _, _ = make(rich_output, history=[bar(M - 60)])
    assert actor.on_receive(GetStats()).symbol == "AAPL"
    actor.on_receive(BarClosed(bar(M), M + 62.0))
    actor.on_receive(BarClosed(bar(M + 60), M + 122.0))
    stats = actor.on_receive(GetStats())
    assert stats.symbol == "AAPL"
    assert stats.bars == 3  # one primed + two live
    assert stats.last_bar_start == M + 60
    assert stats.patterns == 2 and stats.indicators == 4 and stats.component_errors == 0


def test_empty_actor_stats():
    actor, *_ = make()
    stats = actor.on_receive(GetStats())
    assert (stats.bars, stats.last_bar_start) == (0, None)


def test_nan_indicator_value_never_reaches_the_wire_as_nan():
    def output(b):
        return PipelineOutput(indicators=[indicator_result(b, "RSI", math.nan, {"value": math.nan})])
    actor, _, publisher, _ = make(output)
    actor.on_receive(BarClosed(bar(), M + 62.0))
    wire = strict_json(dumps(publisher.messages[0].events[0].to_wire()))
    assert wire["calculation"]["value"] is None
    assert wire["calculation"]["values"] == {"value": None}


# --------------------------------------------------------------------------- partial bars, row ids


def partial_bar(start=M) -> Bar:
    return Bar("AAPL", start, 125.50, 125.75, 125.45, 125.52, 1_000, 3, SID, start + 41.0, start + 59.0, partial=True)


def test_a_partial_bar_is_counted_but_not_analysed_by_default():
    actor, pipeline, publisher, persistence = make(rich_output)
    partial = partial_bar(M)
    actor.on_receive(BarClosed(partial, M + 62.0))
    assert pipeline.seen == []
    assert publisher.messages == [] and persistence.messages == []
    stats = actor.on_receive(GetStats())
    assert stats.partial_bars_skipped == 1
    assert stats.bars == 1 and stats.last_bar_start == M  # counted, not analysed
    # The next, complete bar is analysed as usual.
    whole = bar(M + 60)
    actor.on_receive(BarClosed(whole, M + 122.0))
    assert pipeline.seen == [whole]
    assert len(publisher.messages) == 1 and len(persistence.messages) == 1
    assert actor.on_receive(GetStats()).partial_bars_skipped == 1


def test_partial_bars_are_analysed_when_configured():
    actor, pipeline, publisher, persistence = make(rich_output, analyse_partial_bars=True)
    partial = partial_bar(M)
    actor.on_receive(BarClosed(partial, M + 62.0))
    assert pipeline.seen == [partial]
    assert len(publisher.messages) == 1 and len(persistence.messages) == 1
    assert actor.on_receive(GetStats()).partial_bars_skipped == 0


def test_records_carry_deterministic_row_ids():
    from tickstock.messages.records import indicator_row_id, pattern_row_id

    def results():
        actor, _, _, persistence = make(rich_output)
        actor.on_receive(BarClosed(bar(M), M + 62.0))
        actor.on_receive(BarClosed(bar(M + 60), M + 122.0))
        return [r for m in persistence.messages for kind in rows(m) for r in kind]

    first, again = results(), results()  # e.g. a restarted actor re-analysing the same bars
    assert [r.row_id for r in first] == [r.row_id for r in again]
    assert len({r.row_id for r in first}) == len(first) == 6  # every result of every bar distinct
    doji, rsi, sma = first[:3]
    assert doji.row_id == pattern_row_id(SID, "AAPL", "Doji", M, "1min")
    assert rsi.row_id == indicator_row_id(SID, "AAPL", "RSI", M, "1min")
    assert sma.row_id == indicator_row_id(SID, "AAPL", "SMA", M, "1min")
    assert first[3].row_id == pattern_row_id(SID, "AAPL", "Doji", M + 60, "1min")
