"""TA-Lib by name: the catalog's names, the components against a direct TA-Lib call over the same
bars (every candle function, every servable indicator), parameters checked against TA-Lib's own
list, the warm-up, priming, and definitions loading them (or saying why not)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import talib
from talib import abstract

from tickstock.analysis import AnalysisPipeline, Definition, Doji, Hammer, RSI, SMA, create, lookup, select_definitions
from tickstock.analysis.registry import UnknownComponent, talib_catalog
from tickstock.analysis.talib_catalog import friendly_name, normalize
from tickstock.analysis.talib_functions import (
    DEFAULT_CONFIDENCE, DEFAULT_CONFIRMED_CONFIDENCE, MAX_LOOKBACK, NON_DIRECTIONAL, TalibComponent, TalibIndicator,
    TalibPattern,
)
from tickstock.analysis.vwap import VWAP
from tickstock.messages.bars import Bar

from .candle_shapes import RARE_PATTERNS, columns, rare_pattern_bars, shape_bars
from .series import parity_series

CATALOG = talib_catalog()
CANDLES = sorted(talib.get_function_groups()["Pattern Recognition"])
# Every servable indicator; TA-Lib's RSI, SMA and VWAP by their published names (RelativeStrengthIndex, ...)
INDICATORS = sorted(s.function for s in CATALOG.by_kind("indicator") if s.unservable is None)
SHAPES = {seed: shape_bars(seed, 8000) for seed in (7, 8)}
BARS = SHAPES[7][:3000]
COLS = columns(BARS)


def inputs_of(function: str, cols: dict[str, np.ndarray], overrides: dict[str, str] | None = None) -> list[np.ndarray]:
    arrays = []
    for name, value in abstract.Function(function).info["input_names"].items():
        for column in ([(overrides or {}).get(name, value)] if isinstance(value, str) else value):
            arrays.append(cols[column])
    return arrays


def run(component, bars: list[Bar]) -> list[list]:
    return [component.update(b) for b in bars]


# -- names --------------------------------------------------------------------------------------

def test_all_61_candle_functions_are_servable_patterns() -> None:
    assert len(CANDLES) == 61
    for function in CANDLES:
        spec = CATALOG.specs[function]
        assert spec.kind == "pattern" and spec.unservable is None and lookup(function).spec is spec


@pytest.mark.parametrize("name,function", [
    ("Engulfing", "CDLENGULFING"), ("engulfing", "CDLENGULFING"), ("CDLENGULFING", "CDLENGULFING"),
    ("cdlEngulfing", "CDLENGULFING"), ("EngulfingPattern", "CDLENGULFING"), ("MorningStar", "CDLMORNINGSTAR"),
    ("morning star", "CDLMORNINGSTAR"), ("MORNING_STAR", "CDLMORNINGSTAR"), ("ShootingStar", "CDLSHOOTINGSTAR"),
    ("Harami", "CDLHARAMI"), ("EveningStar", "CDLEVENINGSTAR"), ("ThreeWhiteSoldiers", "CDL3WHITESOLDIERS"),
    ("three white soldiers", "CDL3WHITESOLDIERS"), ("3WhiteSoldiers", "CDL3WHITESOLDIERS"),
    ("ThreeAdvancingWhiteSoldiers", "CDL3WHITESOLDIERS"), ("TwoCrows", "CDL2CROWS"), ("Takuri", "CDLTAKURI"),
    ("ema", "EMA"), ("ExponentialMovingAverage", "EMA"), ("Bollinger Bands", "BBANDS"), ("macd", "MACD"),
    ("ChandeMomentumOscillator", "CMO"), ("TripleExponentialMovingAverage", "TEMA"),
])
def test_function_and_friendly_names_in_any_case(name: str, function: str) -> None:
    assert lookup(name).spec.function == function


def test_friendly_names_come_from_talibs_display_names() -> None:
    assert friendly_name("Engulfing Pattern") == "Engulfing"
    assert friendly_name("Morning Star") == "MorningStar"
    assert friendly_name("Takuri (Dragonfly Doji with very long lower shadow)") == "Takuri"
    assert friendly_name("Up/Down-gap side-by-side white lines") == "UpDownGapSideBySideWhiteLines"
    for spec in CATALOG.specs.values():
        assert spec.friendly == friendly_name(abstract.Function(spec.function).info["display_name"])


def test_hand_written_components_win_only_for_their_exact_names() -> None:
    assert (lookup("Doji"), lookup("hammer"), lookup("RSI"), lookup(" sma "), lookup("VWAP")) == (Doji, Hammer, RSI, SMA, VWAP)
    assert lookup("CDLDOJI").spec.function == "CDLDOJI" and lookup("CDLDOJI").name == "CDLDOJI"
    assert lookup("CDLHAMMER").name == "CDLHAMMER"
    assert lookup("RelativeStrengthIndex").spec.function == "RSI"
    assert lookup("RelativeStrengthIndex").name == "RelativeStrengthIndex"
    assert lookup("VolumeWeightedAveragePrice").spec.function == "VWAP"


def test_every_talib_function_is_known_and_canonical_names_are_unique() -> None:
    names = [s.name for s in CATALOG.specs.values()]
    hand = {"Doji", "Hammer", "HeadShoulders", "InverseHeadShoulders", "RSI", "SMA", "VWAP"}
    assert len(set(map(normalize, names))) == len(names) and not hand & set(names)
    for function in talib.get_functions():
        cls = lookup(function)                               # never UnknownComponent
        if function in hand:                                 # RSI, SMA, VWAP: the hand-written ones
            assert cls.name == function and not issubclass(cls, TalibComponent)
        else:
            assert cls.spec.function == function
        spec = CATALOG.specs[function]
        assert lookup(spec.name).spec is spec               # the published name finds its own function
    assert CATALOG.ambiguous == {}


def test_unknown_names_stay_unknown() -> None:
    for name in ("Engulfingg", "MACDZ", "", "CDL", "Pattern"):
        with pytest.raises(UnknownComponent):
            lookup(name)


def test_value_keys() -> None:
    keys = {s.function: s.value_keys for s in CATALOG.specs.values()}
    assert keys["MACD"] == ("macd", "signal", "hist")
    assert keys["BBANDS"] == ("upper", "middle", "lower")
    assert keys["AROON"] == ("down", "up") and keys["STOCH"] == ("slowk", "slowd") and keys["EMA"] == ("value",)
    for spec in CATALOG.specs.values():
        assert len(set(spec.value_keys)) == len(spec.outputs) and all(spec.value_keys)


# -- patterns against TA-Lib --------------------------------------------------------------------

PATTERN_SERIES = [(f"shapes{seed}", bars) for seed, bars in SHAPES.items()] + [
    (label, bars) for label, bars in parity_series() if label in ("equity_cents", "flat_heavy", "drift_trap")] + [
    ("rare", rare_pattern_bars())]
FIRED: dict[str, int] = {}


@pytest.mark.parametrize("function", CANDLES)
def test_every_candle_function_matches_talib_bar_for_bar(function: str) -> None:
    fired = 0
    for label, bars in PATTERN_SERIES:
        cols = columns(bars)
        expected = getattr(talib, function)(cols["open"], cols["high"], cols["low"], cols["close"])
        component = create(function)
        for i, (bar, results) in enumerate(zip(bars, run(component, bars))):
            if expected[i] == 0:
                assert results == [], f"{label}[{i}]: detected where TA-Lib says 0"
                continue
            assert len(results) == 1, f"{label}[{i}]: TA-Lib says {expected[i]}, nothing detected"
            (r,) = results
            signal = int(expected[i])
            assert r.bar is bar and r.name == CATALOG.specs[function].name
            assert r.parameters["signal"] == signal and r.parameters["function"] == function
            assert r.parameters["confirmed"] == (abs(signal) >= 200)
            direction = "neutral" if function in NON_DIRECTIONAL else ("bullish" if signal > 0 else "bearish")
            assert r.parameters["direction"] == direction
            assert r.confidence == component.confidence_of(signal) and 0.0 < r.confidence <= 1.0
            fired += 1
    FIRED[function] = fired


def test_the_candle_comparison_is_not_vacuous() -> None:
    if len(FIRED) < len(CANDLES):
        pytest.skip("runs after the parametrized candle comparison")
    never = sorted(f for f, n in FIRED.items() if n == 0)
    assert never == [], f"never fired on the test data: {never}"
    assert all(FIRED[f] >= 1 for f in RARE_PATTERNS)
    assert sum(FIRED.values()) > 50_000


@pytest.mark.parametrize("function,params", [
    ("CDLMORNINGSTAR", {"penetration": 0.1}), ("CDLEVENINGSTAR", {"penetration": 0.0}),
    ("CDLDARKCLOUDCOVER", {"penetration": 0.2}), ("CDLABANDONEDBABY", {"penetration": 0.1}),
])
def test_candle_parameters_reach_talib(function: str, params: dict[str, Any]) -> None:
    bars = SHAPES[7]
    cols = columns(bars)
    expected = getattr(talib, function)(*(cols[k] for k in ("open", "high", "low", "close")), **params)
    hits = [r[0] for r in run(create(function, params), bars) if r]
    got = np.zeros(len(bars), dtype=int)
    for r in hits:
        got[bars.index(r.bar)] = r.parameters["signal"]
    assert (got == expected).all() and hits  # equal, and not vacuously
    assert all(r.parameters["penetration"] == params["penetration"] for r in hits)


def test_confidence_rule_and_its_overrides() -> None:
    engulfing = create("Engulfing")
    assert engulfing.confidence_of(100) == DEFAULT_CONFIDENCE == 0.7
    assert engulfing.confidence_of(-200) == DEFAULT_CONFIRMED_CONFIDENCE == 0.9
    assert engulfing.confidence_of(80) == pytest.approx(0.56)
    assert engulfing.confidence_of(-150) == pytest.approx(0.8)
    custom = create("Hikkake", {"confidence": 0.65, "confirmed_confidence": 1.0})
    assert custom.confidence_of(100) == 0.65 and custom.confidence_of(200) == 1.0
    assert custom.params() == {"confidence": 0.65, "confirmed_confidence": 1.0}
    with pytest.raises(ValueError, match="confidence"):
        create("Engulfing", {"confidence": 1.5})


def test_non_directional_functions_are_only_the_ones_talib_documents() -> None:
    assert NON_DIRECTIONAL <= set(CANDLES) and "CDLENGULFING" not in NON_DIRECTIONAL
    doji_hits = [r[0] for r in run(create("CDLDOJI"), BARS) if r]
    assert doji_hits and {r.parameters["direction"] for r in doji_hits} == {"neutral"}
    engulfing = [r[0].parameters["direction"] for r in run(create("Engulfing"), BARS) if r]
    assert {"bullish", "bearish"} <= set(engulfing)


# -- indicators against TA-Lib ------------------------------------------------------------------

def check_indicator(function: str, params: dict[str, Any], bars: list[Bar], cols: dict[str, np.ndarray],
                    overrides: dict[str, str] | None = None, talib_params: dict[str, Any] | None = None) -> int:
    """Feed ``bars`` to the component serving ``function`` (created by its published name) and
    compare every bar with ``talib.<function>`` over the same bars: nothing while TA-Lib's output
    is undefined (inside its lookback, where integer outputs read 0, or not finite), else the same
    numbers, bit for bit."""
    if talib_params is None:
        talib_params = {k: v for k, v in params.items() if k not in (overrides or {})}
    expected = getattr(talib, function)(*inputs_of(function, cols, overrides), **talib_params)
    expected = expected if isinstance(expected, tuple) else (expected,)
    spec = CATALOG.specs[function]
    component = create(spec.name, params)
    lookback = abstract.Function(function, **talib_params).lookback
    keys = spec.value_keys
    published = 0
    for i, results in enumerate(run(component, bars)):
        first = expected[0][i]
        if i < lookback or not math.isfinite(first):
            assert results == [], f"[{i}]: published while TA-Lib says {first}"
            continue
        assert len(results) == 1, f"[{i}]: TA-Lib says {first}, nothing published"
        (r,) = results
        assert r.value == first and r.values[keys[0]] == first            # bit-identical
        assert r.values == {k: float(o[i]) for k, o in zip(keys, expected) if math.isfinite(o[i])}
        assert all(math.isfinite(v) for v in r.values.values())
        assert r.metadata["function"] == function and r.metadata["bars_used"] == i + 1
        published += 1
    return published


@pytest.mark.parametrize("function", INDICATORS)
def test_every_servable_indicator_matches_talib_bar_for_bar(function: str) -> None:
    published = check_indicator(function, {}, BARS, COLS)
    lookback = abstract.Function(function).lookback
    assert create(CATALOG.specs[function].name).min_bars == lookback + 1
    if function not in {"ACOS", "ASIN", "COSH", "EXP", "SINH"}:  # NaN/inf on prices ~100: nothing to publish
        assert published > 0


@pytest.mark.parametrize("function,params", [
    ("EMA", {"timeperiod": 9}), ("EMA", {"period": 21}), ("MACD", {"fastperiod": 5, "slowperiod": 35, "signalperiod": 5}),
    ("BBANDS", {"timeperiod": 10, "nbdevup": 1.5, "nbdevdn": 2.5, "matype": 1}), ("ATR", {"timeperiod": 7}),
    ("ADX", {"timeperiod": 21}), ("STOCH", {"fastk_period": 14, "slowk_period": 3, "slowd_period": 3}),
    ("CCI", {"timeperiod": 20}), ("MFI", {"timeperiod": 10}), ("WILLR", {"timeperiod": 21}),
    ("SAR", {"acceleration": 0.01, "maximum": 0.1}), ("KAMA", {"timeperiod": 10}),
])
def test_indicator_parameters_reach_talib(function: str, params: dict[str, Any]) -> None:
    talib_params = dict(params)
    if "period" in talib_params:
        talib_params["timeperiod"] = talib_params.pop("period")  # the period column means timeperiod
    assert check_indicator(function, params, BARS, COLS, talib_params=talib_params) > 0


def test_an_input_can_be_pointed_at_another_column() -> None:
    assert check_indicator("EMA", {"timeperiod": 9, "price": "high"}, BARS, COLS, {"price": "high"}) > 0
    assert create("EMA", {"price": "high"}).params()["price"] == "high"
    assert "price" not in create("EMA").params()
    with pytest.raises(ValueError, match="'price' must be one of"):
        create("EMA", {"price": "vwap"})


def test_memory_and_path_dependent_indicators_are_exact_after_thousands_of_bars() -> None:
    bars = SHAPES[8]
    cols = columns(bars)
    for function in ("EMA", "MACD", "ADX", "OBV", "AD", "SAR", "TEMA", "HT_TRENDLINE", "MAMA"):
        assert check_indicator(function, {}, bars, cols) > 7000


def test_multi_output_values_and_metadata() -> None:
    (r,) = run(create("MACD"), BARS)[-1]
    assert set(r.values) == {"macd", "signal", "hist"} and r.value == r.values["macd"]
    assert r.metadata == {"function": "MACD", "fastperiod": 12, "slowperiod": 26, "signalperiod": 9,
                          "bars_used": len(BARS)}
    (b,) = run(create("BBANDS", {"period": 20}), BARS)[-1]
    assert b.values["lower"] < b.values["middle"] < b.values["upper"] and b.value == b.values["upper"]
    assert b.metadata["period"] == 20


# -- O(1) state, warm-up ------------------------------------------------------------------------

def test_the_bars_kept_are_dropped_once_the_stream_opens() -> None:
    component = create("MACD")
    for i, bar in enumerate(BARS[:40]):
        component.update(bar)
        kept = component._history
        if i + 1 < component.min_bars:
            assert kept is not None and len(kept) == i + 1
        else:
            assert kept is None and component._handle is not None


def test_when_talib_wants_a_longer_seed_the_function_api_fills_in(monkeypatch: pytest.MonkeyPatch) -> None:
    component = create("EMA", {"timeperiod": 5})
    real_open, refusals = component._opener, []

    def reluctant(*arrays, **kw):
        if len(arrays[0]) < 12:
            refusals.append(len(arrays[0]))
            raise talib.InsufficientHistory("not yet")
        return real_open(*arrays, **kw)

    component._opener = reluctant
    expected = talib.EMA(COLS["close"][:50], timeperiod=5)
    got = [r[0].value if r else math.nan for r in run(component, BARS[:50])]
    assert refusals == list(range(5, 12))
    np.testing.assert_array_equal(np.array(got), expected)


def test_a_stream_that_never_opens_is_an_error_not_unbounded_memory() -> None:
    component = create("EMA", {"timeperiod": 5})

    def never(*arrays, **kw):
        raise talib.InsufficientHistory("never")

    component._opener = never
    with pytest.raises(RuntimeError, match="no stream"):
        run(component, BARS[:200])
    limit = 2 * component.min_bars + 64
    assert len(component._history) == limit
    for bar in BARS[200:300]:  # fed on regardless: still bounded
        with pytest.raises(RuntimeError):
            component.update(bar)
    assert len(component._history) == limit and component._history[-1][0] == BARS[299].close


# -- parameters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,params,error,words", [
    ("EMA", {"timeperiod": "14"}, ValueError, "'timeperiod' must be an integer"),
    ("EMA", {"timeperiod": 14.5}, ValueError, "'timeperiod' must be an integer"),
    ("EMA", {"timeperiod": True}, ValueError, "'timeperiod' must be an integer"),
    ("EMA", {"window": 5}, TypeError, "unknown parameter(s) 'window' (accepted: timeperiod, price)"),
    ("BBANDS", {"nbdevup": "2"}, ValueError, "'nbdevup' must be a finite number"),
    ("BBANDS", {"nbdevup": float("nan")}, ValueError, "'nbdevup' must be a finite number"),
    ("ADX", {"timeperiod": 1}, ValueError, "TA-Lib rejects ADX(timeperiod=1)"),
    ("EMA", {"timeperiod": 0}, ValueError, "TA-Lib rejects EMA(timeperiod=0)"),
    ("BBANDS", {"matype": 99}, ValueError, "TA-Lib rejects BBANDS("),
    ("EMA", {"timeperiod": MAX_LOOKBACK + 1}, ValueError, "at most 5000 are supported"),
    ("MACD", {"period": 14}, TypeError, "MACD has no timeperiod, so 'period' cannot be set"),
    ("EMA", {"period": 9, "timeperiod": 10}, ValueError, "disagree"),
    ("Engulfing", {"penetration": 0.3}, TypeError, "unknown parameter(s) 'penetration'"),
    ("MorningStar", {"penetration": "deep"}, ValueError, "'penetration' must be a finite number"),
    ("MAVP", {}, ValueError, "needs input(s) periods that bars do not have"),
])
def test_bad_parameters_are_named(name: str, params: dict, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        create(name, params)
    assert words in str(info.value)


def test_integral_floats_from_json_are_accepted() -> None:
    assert create("EMA", {"timeperiod": 9.0}).talib_params == {"timeperiod": 9}
    assert create("BBANDS", {"nbdevup": 2}).talib_params["nbdevup"] == 2.0


# -- definitions ----------------------------------------------------------------------------------

def prow(name: str, **kw) -> dict:
    return {"name": name, "enabled": True, "applicable_timeframes": ["intraday"], "instantiation_params": None, **kw}


def irow(name: str, period=None, **kw) -> dict:
    return {"name": name, "enabled": True, "applicable_timeframes": ["intraday"], "period": period,
            "parameters": None, **kw}


def test_definitions_load_talib_rows_by_friendly_name_in_any_case() -> None:
    ds = select_definitions(
        [prow("engulfing"), prow("Morning Star", instantiation_params={"penetration": 0.2, "confidence": 0.75}),
         prow("SHOOTINGSTAR"), prow("CDLHARAMI")],
        [irow("ema", 9), irow("MACD"), irow("BBands", 20, parameters={"nbdevup": 2.5}), irow("VWAP")],
    )
    assert ds.names() == ("Engulfing", "MorningStar", "ShootingStar", "Harami", "EMA", "MACD", "BBANDS", "VWAP")
    assert ds.problems() == [] and not ds.unknown and not ds.invalid
    kinds = {d.name: d.kind for d in ds}
    assert kinds["Engulfing"] == "pattern" and kinds["MACD"] == "indicator" and kinds["VWAP"] == "indicator"
    assert isinstance(ds.definitions[1].create(), TalibPattern) and ds.definitions[1].create().confidence == 0.75
    assert isinstance(ds.definitions[4].create(), TalibIndicator) and ds.definitions[4].create().talib_params == {"timeperiod": 9}


def test_bad_talib_rows_land_in_invalid_with_the_reason() -> None:
    ds = select_definitions(
        [prow("Doji"), prow("MorningStar", instantiation_params={"penetrate": 0.3}),
         prow("Engulfing", instantiation_params={"confidence": "high"})],
        [irow("MACD", 14), irow("ADX", 1), irow("BBANDS", parameters={"nbdevup": "2"}), irow("MAVP")],
    )
    assert ds.names() == ("Doji",) and ds.unknown == ()
    invalid = dict(ds.invalid)
    assert "unknown parameter(s) 'penetrate'" in invalid["MorningStar"] and "penetration" in invalid["MorningStar"]
    assert "'confidence' must be a finite number" in invalid["Engulfing"]
    assert "MACD has no timeperiod" in invalid["MACD"]
    assert "TA-Lib rejects ADX(timeperiod=1)" in invalid["ADX"]
    assert "'nbdevup' must be a finite number" in invalid["BBANDS"]
    assert "periods" in invalid["MAVP"]
    problems = ds.problems()
    assert len(problems) == 6 and all("is invalid and was not loaded" in p for p in problems)


def test_no_talib_name_is_ever_reported_unknown() -> None:
    rows = [prow(f) for f in CANDLES]
    ind = [irow(f) for f in talib.get_functions() if f not in CANDLES]
    ds = select_definitions(rows, ind)
    assert ds.unknown == ()
    assert {name for name, _ in ds.invalid} == {"MAVP"}


def test_two_spellings_of_one_function_load_once() -> None:
    ds = select_definitions([prow("Engulfing"), prow("CDLENGULFING")], [])
    assert ds.names() == ("Engulfing",) and ds.skipped == ("CDLENGULFING",)


# -- the pipeline ------------------------------------------------------------------------------

def test_priming_then_live_bars_give_talibs_values_over_all_of_them() -> None:
    definitions = [Definition("EMA", "indicator", {"timeperiod": 20}), Definition("MACD", "indicator", {}),
                   Definition("Engulfing", "pattern", {})]
    pipeline = AnalysisPipeline(definitions, symbol="TEST")
    history, live = BARS[:200], BARS[200:400]
    pipeline.prime(history)
    outputs = [pipeline.on_bar(b) for b in live]
    ema = talib.EMA(COLS["close"][:400], timeperiod=20)
    macd = talib.MACD(COLS["close"][:400])[0]
    engulfing = talib.CDLENGULFING(*(COLS[k][:400] for k in ("open", "high", "low", "close")))
    for k, out in enumerate(outputs):
        i = 200 + k
        by_name = {r.name: r for r in out.indicators}
        assert by_name["EMA"].value == ema[i] and by_name["MACD"].value == macd[i]
        assert [p.parameters["signal"] for p in out.patterns] == ([int(engulfing[i])] if engulfing[i] else [])
        assert not out.errors


# -- the listing --------------------------------------------------------------------------------

def test_python_m_tickstock_analysis_lists_every_usable_name(capsys: pytest.CaptureFixture) -> None:
    from tickstock.analysis.__main__ import lines, main

    patterns = lines({"pattern"})
    assert len(patterns) == 4 + 61 and any(line.split()[1] == "Engulfing" for line in patterns)
    assert any(line.split()[1:3] == ["Doji", "(hand-written)"] for line in patterns)
    indicators = lines({"indicator"})
    macd = next(line for line in indicators if line.split()[1] == "MACD")
    assert "values: macd, signal, hist" in macd and "fastperiod=12" in macd
    assert "not servable" in next(line for line in indicators if line.split()[1] == "MAVP")
    assert main(["bogus"]) == 2 and "usage" in capsys.readouterr().err
