"""Which timeframes a definition row runs on: ``applicable_timeframes`` -> ``Definition.timeframes``."""

from __future__ import annotations

import pytest

from tickstock.analysis.definitions import definitions_from_config, select_definitions


def row(name="Doji", timeframes=None, **extra):
    return {"name": name, "enabled": True, "applicable_timeframes": timeframes, **extra}


def indicator(name="RSI", timeframes=None, period=14):
    return {"name": name, "enabled": True, "applicable_timeframes": timeframes, "period": period, "parameters": {}}


@pytest.mark.parametrize("tags, expected", [
    (None, ("1min",)),                                  # NULL: the streaming timeframe only (as before)
    (["intraday"], ("1min",)),                          # the seeded baseline tag
    (["1MIN"], ("1min",)),
    (["5min"], ("5min",)),
    (["15Min", " 60MIN "], ("15min", "60min")),
    (["60min", "intraday", "5min"], ("1min", "5min", "60min")),  # TIMEFRAMES order, whatever the row's
    ("{intraday,15min}", ("1min", "15min")),             # an unparsed PostgreSQL array literal
])
def test_a_row_runs_on_the_timeframes_it_names(tags, expected):
    definitions = select_definitions([row("Doji", tags)], [])
    [d] = definitions
    assert d.timeframes == expected
    assert definitions.problems() == []


@pytest.mark.parametrize("tags", [["daily"], ["1h"], [], ["weekly", "5m"]])
def test_a_row_naming_no_engine_timeframe_is_skipped_not_loaded(tags):
    definitions = select_definitions([row("Doji", tags)], [indicator("RSI", ["intraday"])])
    assert definitions.names() == ("RSI",)
    assert definitions.skipped == ("Doji",)


def test_for_timeframe_and_timeframes_split_a_mixed_set():
    definitions = select_definitions(
        [row("Doji", ["intraday"]), row("Hammer", ["5min", "15min"]), row("HeadShoulders", None)],
        [indicator("RSI", ["intraday", "60min"]), indicator("SMA", ["5min"], period=20)],
    )
    assert [d.name for d in definitions.for_timeframe("1min")] == ["Doji", "HeadShoulders", "RSI"]
    assert [d.name for d in definitions.for_timeframe("5min")] == ["Hammer", "SMA"]
    assert [d.name for d in definitions.for_timeframe("15min")] == ["Hammer"]
    assert [d.name for d in definitions.for_timeframe("60min")] == ["RSI"]
    assert definitions.timeframes == ("1min", "5min", "15min", "60min")
    assert len(definitions) == 5  # one definition per row, whatever its timeframes


def test_the_baseline_set_is_1min_only():
    """The seeded rows ({intraday}) and the config.yaml fallback (no tags) run on 1min and nowhere else."""
    seeded = select_definitions([row("Doji", ["intraday"]), row("Hammer", ["intraday"])],
                                [indicator("RSI", ["intraday"]), indicator("SMA", ["intraday"], 20)])
    fallback = definitions_from_config({"patterns": [{"name": "Doji"}, {"name": "Hammer"}],
                                        "indicators": [{"name": "RSI", "period": 14}]})
    for definitions in (seeded, fallback):
        assert definitions.timeframes == ("1min",)
        assert all(d.timeframes == ("1min",) for d in definitions)
        assert definitions.for_timeframe("5min") == definitions.for_timeframe("60min") == ()


def test_only_5min_definitions_are_still_definitions_loaded():
    """A set with nothing on 1min is not the 'no definitions loaded' incident."""
    definitions = select_definitions([row("Doji", ["5min"])], [])
    assert definitions.problems() == []
    assert definitions.timeframes == ("5min",)
    assert definitions.for_timeframe("1min") == ()


def test_the_same_component_twice_runs_once_per_timeframe():
    """Two rows with the same component and parameters (names differ in case): each timeframe gets it
    once; the second row keeps only the timeframes the first lacks, or is skipped."""
    definitions = select_definitions([], [indicator("RSI", ["intraday", "5min"]), indicator("rsi", ["5min", "15min"]),
                                          indicator("Rsi", ["15min"])])
    assert [(d.name, d.timeframes) for d in definitions] == [("RSI", ("1min", "5min")), ("RSI", ("15min",))]
    assert definitions.skipped == ("Rsi",)
    assert [d.name for d in definitions.for_timeframe("15min")] == ["RSI"]


def test_config_fallback_entries_take_applicable_timeframes():
    definitions = definitions_from_config({"patterns": [{"name": "Doji", "applicable_timeframes": ["15min"]}]})
    [d] = definitions
    assert d.timeframes == ("15min",)


def test_a_malformed_applicable_timeframes_is_still_invalid():
    definitions = select_definitions([row("Doji", 5)], [])
    assert definitions.invalid == (("Doji", "applicable_timeframes must be a list or NULL, got 5"),)
