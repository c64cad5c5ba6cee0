"""The messages built on every bar close are immutable, whatever they are built with (msgspec
Structs since the close path was made cheaper): a handler cannot change what another actor holds."""

from __future__ import annotations

import msgspec
import pytest

from tickstock.analysis.base import IndicatorResult, PatternResult
from tickstock.messages.bars import Bar
from tickstock.messages.events import IndicatorAlertRaised, IndicatorCalculated, PatternDetected

BAR = Bar("AAPL", 1_795_738_920, 1.0, 2.0, 0.5, 1.5, 100, 3, "s")


@pytest.mark.parametrize("message, field", [
    (BAR, "close"),
    (PatternDetected("AAPL", "Doji", 0.9, 1.0, BAR, "s"), "confidence"),
    (IndicatorCalculated("AAPL", "RSI", 55.0, {"value": 55.0}, 1.0, BAR, "s"), "value"),
    (IndicatorAlertRaised("RSI_OVERBOUGHT", "AAPL", "RSI", 71.0, 70.0, "above", 1.0, "s"), "value"),
    (PatternResult("Doji", 0.9, BAR, {}), "confidence"),
    (IndicatorResult("RSI", 55.0, {"value": 55.0}, BAR, {}), "value"),
])
def test_a_close_path_message_cannot_be_changed(message, field):
    with pytest.raises(AttributeError):
        setattr(message, field, 0.0)


def test_a_bar_is_equal_by_value_hashable_and_copied_with_a_change():
    same = Bar("AAPL", 1_795_738_920, 1.0, 2.0, 0.5, 1.5, 100, 3, "s")
    assert BAR == same and hash(BAR) == hash(same)
    partial = msgspec.structs.replace(BAR, partial=True)
    assert partial.partial and not BAR.partial and partial != BAR
    assert BAR.end == BAR.start + 60 and BAR.start_datetime.timestamp() == BAR.start


def test_default_dict_fields_are_not_shared_between_events():
    a = PatternDetected("AAPL", "Doji", 0.9, 1.0, BAR, "s")
    b = PatternDetected("MSFT", "Doji", 0.9, 1.0, BAR, "s")
    assert a.parameters == {} and a.parameters is not b.parameters
