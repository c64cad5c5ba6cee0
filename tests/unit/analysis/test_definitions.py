"""Registry and definition selection: names, timeframes, enabled flags, params, loud problems."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from tickstock.analysis import (
    RSI, Definition, DefinitionSet, Doji, UnknownComponent, create, definitions_from_config, known_names,
    lookup, select_definitions,
)
from tickstock.analysis.registry import canonical_name

CONFIG = Path(__file__).resolve().parents[3] / "config.yaml"


def prow(name, **kw):
    row = {"name": name, "enabled": True, "applicable_timeframes": None, "min_bars_required": None,
           "confidence_threshold": None, "instantiation_params": None}
    row.update(kw)
    return row


def irow(name, period=None, **kw):
    row = {"name": name, "enabled": True, "applicable_timeframes": None, "min_bars_required": None,
           "confidence_threshold": None, "period": period, "parameters": None}
    row.update(kw)
    return row


# -- registry ----------------------------------------------------------------------------------

def test_registry_names_and_case_insensitive_lookup() -> None:
    assert known_names() == ("Doji", "Hammer", "HeadShoulders", "InverseHeadShoulders", "RSI", "SMA", "VWAP")
    assert lookup("doji") is Doji and lookup(" DOJI ") is Doji and lookup("rsi") is RSI
    assert canonical_name("headshoulders") == "HeadShoulders"
    assert isinstance(create("sma", {"period": 5}), type(create("SMA")))
    assert create("RSI", {"period": 9}).period == 9


def test_unknown_component_is_a_keyerror_naming_it() -> None:
    with pytest.raises(UnknownComponent) as info:
        lookup("ThreeBlackCrowz")  # TA-Lib's ThreeBlackCrows is known (test_talib_functions.py)
    assert isinstance(info.value, KeyError) and info.value.name == "ThreeBlackCrowz"
    assert "ThreeBlackCrowz" in str(info.value)


def test_create_rejects_unknown_params_by_name() -> None:
    with pytest.raises(TypeError, match="window"):
        create("SMA", {"window": 5})


# -- select_definitions ------------------------------------------------------------------------

def test_baseline_rows_load_with_case_insensitive_names() -> None:
    ds = select_definitions(
        [prow("doji"), prow("HAMMER", min_bars_required=2), prow("HeadShoulders", confidence_threshold=Decimal("0.70"))],
        [irow("rsi", 14), irow("Sma", 20)],
    )
    assert ds.names() == ("Doji", "Hammer", "HeadShoulders", "RSI", "SMA")
    assert ds.problems() == [] and not ds.unknown and not ds.invalid and not ds.skipped
    by_name = {d.name: d for d in ds}
    assert by_name["Doji"].kind == "pattern" and by_name["RSI"].kind == "indicator"
    assert by_name["Hammer"].min_bars_required == 2
    assert by_name["HeadShoulders"].confidence_threshold == 0.7
    assert by_name["RSI"].params == {"period": 14}


def test_disabled_rows_are_skipped_not_problems() -> None:
    ds = select_definitions([prow("Doji"), prow("Hammer", enabled=False)], [irow("RSI", 14, enabled=False)])
    assert ds.names() == ("Doji",)
    assert ds.skipped == ("Hammer", "RSI") and ds.problems() == []


@pytest.mark.parametrize("tags,loaded", [
    (None, True), (["intraday"], True), (["1MIN"], True), (["Intraday", "daily"], True), (["1min"], True),
    (["daily"], False), (["weekly", "daily"], False), ([], False), ("{daily,INTRADAY}", True), ("{daily}", False),
])
def test_timeframe_tags(tags, loaded) -> None:
    ds = select_definitions([prow("Doji", applicable_timeframes=tags)], [])
    assert ds.names() == (("Doji",) if loaded else ())
    assert ds.skipped == (() if loaded else ("Doji",))


def test_other_timeframes_select_their_own_rows() -> None:
    ds = select_definitions([prow("Doji", applicable_timeframes=["daily"]), prow("Hammer", applicable_timeframes=["intraday"])],
                            [], timeframe="Daily")
    assert ds.names() == ("Doji",)
    assert select_definitions([prow("Doji", applicable_timeframes=["intraday"])], [], timeframe="1min").names() == ("Doji",)


def test_unknown_names_are_problems() -> None:
    ds = select_definitions([prow("Doji"), prow("MorningStarz")], [irow("MACDZ", 12)])
    assert ds.unknown == ("MorningStarz", "MACDZ")
    problems = ds.problems()
    assert len(problems) == 2 and "MorningStarz" in problems[0] and "MACDZ" in problems[1]


def test_disabled_unknown_name_is_not_a_problem() -> None:
    ds = select_definitions([prow("Doji"), prow("MorningStar", enabled=False)], [])
    assert ds.unknown == () and ds.problems() == []


@pytest.mark.parametrize("pattern_rows,indicator_rows", [([], []), (None, None)])
def test_empty_input_is_a_loud_problem(pattern_rows, indicator_rows) -> None:
    ds = select_definitions(pattern_rows, indicator_rows)
    assert len(ds) == 0
    assert len(ds.problems()) == 1 and "no pattern or indicator definitions loaded" in ds.problems()[0]


def test_everything_disabled_is_also_a_problem() -> None:
    ds = select_definitions([prow("Doji", enabled=False)], [irow("RSI", 14, applicable_timeframes=["daily"])])
    assert ds.names() == () and ds.skipped == ("Doji", "RSI")
    assert any("no pattern or indicator definitions loaded" in p for p in ds.problems())


def test_indicator_period_column_wins_over_parameters() -> None:
    ds = select_definitions([], [irow("RSI", 9, parameters={"period": 14}), irow("SMA", None, parameters={"period": 50})])
    assert [d.params for d in ds] == [{"period": 9}, {"period": 50}]


def test_params_rejected_by_the_constructor_are_invalid_with_the_reason() -> None:
    ds = select_definitions(
        [prow("Doji", instantiation_params={"lookback": 5}),
         prow("HeadShoulders", instantiation_params={"shoulder_tolerance": "wide"}),
         prow("Hammer", instantiation_params='{"not": "json"'),
         prow("InverseHeadShoulders", instantiation_params='{"pivot_pct": 0.01}')],
        [irow("RSI", 1), irow("SMA", 20, min_bars_required="twenty")],
    )
    assert ds.names() == ("InverseHeadShoulders",)                 # JSON given as text is decoded
    assert [d.params for d in ds] == [{"pivot_pct": 0.01}]
    invalid = dict(ds.invalid)
    assert "lookback" in invalid["Doji"]
    assert "shoulder_tolerance" in invalid["HeadShoulders"]
    assert "instantiation_params" in invalid["Hammer"]
    assert "period" in invalid["RSI"]
    assert "min_bars_required" in invalid["SMA"]
    assert len(ds.problems()) == 5


def test_bad_threshold_and_min_bars_values() -> None:
    ds = select_definitions([prow("Doji", confidence_threshold=1.5), prow("Hammer", min_bars_required=0)], [])
    assert ds.names() == ("Hammer",) and ds.definitions[0].min_bars_required == 1
    assert "confidence_threshold" in dict(ds.invalid)["Doji"]


def test_exact_duplicates_load_once_but_different_params_both_load() -> None:
    ds = select_definitions([prow("Doji"), prow("doji")], [irow("RSI", 14), irow("RSI", 7)])
    assert ds.names() == ("Doji", "RSI", "RSI") and ds.skipped == ("doji",)


def test_definition_set_iterates_and_creates_fresh_instances() -> None:
    ds = DefinitionSet((Definition("RSI", "indicator", {"period": 5}),))
    (d,) = list(ds)
    a, b = d.create(), d.create()
    assert a is not b and a.period == 5


# -- config.yaml fallback ----------------------------------------------------------------------

def test_fallback_from_the_shipped_config() -> None:
    cfg = yaml.safe_load(CONFIG.read_text())["analysis"]["fallback_definitions"]
    ds = definitions_from_config(cfg)
    assert ds.names() == ("Doji", "Hammer", "HeadShoulders", "InverseHeadShoulders", "RSI", "SMA")
    assert ds.problems() == []
    by_name = {d.name: d for d in ds}
    assert by_name["RSI"].params == {"period": 14} and by_name["RSI"].min_bars_required == 15
    assert by_name["Doji"].min_bars_required == 1


def test_fallback_shapes_and_mistakes() -> None:
    ds = definitions_from_config({
        "patterns": [{"name": "doji", "params": {}}, {"name": "Hammer", "min_bars": 2}, {"name": "Nope"}],
        "indicators": [{"name": "RSI", "period": 7, "confidence_threshold": 0.5}, {"name": "SMA", "params": {"period": 3}}],
    })
    assert ds.names() == ("Doji", "RSI", "SMA")
    assert [d.params for d in ds] == [{}, {"period": 7}, {"period": 3}]
    assert ds.unknown == ("Nope",)
    assert "min_bars" in dict(ds.invalid)["Hammer"]


@pytest.mark.parametrize("cfg", [{}, None, {"patterns": [], "indicators": []}])
def test_empty_fallback_is_a_problem(cfg) -> None:
    ds = definitions_from_config(cfg)
    assert len(ds) == 0 and ds.problems()


def test_fallback_with_wrong_types_is_invalid_not_a_crash() -> None:
    ds = definitions_from_config({"patterns": "Doji", "indicators": [["RSI"]], "extras": 1})
    assert len(ds) == 0 and len(ds.invalid) == 3
