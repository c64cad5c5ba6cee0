"""AnalysisPipeline: warm-up and priming, per-component gating, confidence thresholds, isolation of
failing components, RSI crossing alerts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import talib

from tickstock.analysis import (
    AnalysisPipeline, Component, Definition, IndicatorResult, PatternResult, definitions_from_config,
)

from .series import T0, arrays, candles, to_bars

BASELINE = definitions_from_config({
    "patterns": [{"name": "Doji", "min_bars_required": 1}, {"name": "Hammer", "min_bars_required": 2},
                 {"name": "HeadShoulders", "min_bars_required": 20},
                 {"name": "InverseHeadShoulders", "min_bars_required": 20}],
    "indicators": [{"name": "RSI", "period": 14, "min_bars_required": 15},
                   {"name": "SMA", "period": 20, "min_bars_required": 20}],
})


def doji_bar(i, symbol="TEST"):
    return to_bars([100.0], [101.0], [99.0], [100.0], symbol=symbol, start=T0 + 60 * i)[0]


def closes_to_bars(closes, start=T0):
    return to_bars(closes, closes, closes, closes, start=start)


def live(pipeline, bars):
    return [pipeline.on_bar(b) for b in bars]


# -- warm-up and priming -------------------------------------------------------------------------

def test_doji_fires_on_the_first_bar_of_a_pipeline_without_history() -> None:
    p = AnalysisPipeline(BASELINE, symbol="TEST")
    out = p.on_bar(doji_bar(0))
    assert [r.name for r in out.patterns] == ["Doji"]
    assert out.indicators == [] and out.alerts == [] and out.errors == []


def test_rsi_publishes_nothing_before_period_plus_one_bars() -> None:
    closes = 100 + np.cumsum(np.random.default_rng(3).normal(0, 0.5, 30))
    outs = live(AnalysisPipeline(BASELINE, symbol="TEST"), closes_to_bars(closes))
    rsi_bars = [i for i, o in enumerate(outs) for r in o.indicators if r.name == "RSI"]
    sma_bars = [i for i, o in enumerate(outs) for r in o.indicators if r.name == "SMA"]
    assert rsi_bars == list(range(14, 30)) and sma_bars == list(range(19, 30))


def test_priming_with_200_bars_makes_the_first_live_bar_right_and_publishes_nothing() -> None:
    o, h, l, c = candles(11, 201, 100.0, 0.002, tick=0.01)
    # End the history in a strong rally so RSI is above 70 both before and on the live bar: a
    # pipeline that forgot the primed crossing state would raise a spurious alert here.
    for k in range(170, 201):
        o[k] = c[k - 1]
        c[k] = o[k] + 0.3
        h[k], l[k] = c[k] + 0.01, o[k] - 0.01
    bars = to_bars(o, h, l, c)
    history, bar = bars[:200], bars[200]
    expected_rsi = talib.RSI(arrays(bars)[3], 14)
    assert expected_rsi[199] > 70 and expected_rsi[200] > 70

    p = AnalysisPipeline(BASELINE, symbol="TEST")
    assert p.prime(history) is None
    assert p.bars_seen == 200
    out = p.on_bar(bar)
    assert out.alerts == [] and out.errors == []
    assert all(r.bar is bar for r in out.patterns + out.indicators)  # nothing from the history
    values = {r.name: r.value for r in out.indicators}
    assert values["RSI"] == pytest.approx(expected_rsi[200], abs=1e-9)
    assert values["SMA"] == pytest.approx(talib.SMA(arrays(bars)[3], 20)[200], abs=1e-9)
    # Candle averages are primed too: the live bar is judged exactly like TA-Lib over all 201 bars.
    doji = talib.CDLDOJI(*arrays(bars))[200] != 0
    assert ("Doji" in [r.name for r in out.patterns]) == doji


def test_primed_bar_count_satisfies_min_bars_required() -> None:
    p = AnalysisPipeline(BASELINE, symbol="TEST")
    p.prime(closes_to_bars(np.linspace(100, 101, 30)))
    out = p.on_bar(closes_to_bars([101.5], start=T0 + 60 * 30)[0])
    assert {r.name for r in out.indicators} == {"RSI", "SMA"}


def test_gating_is_per_component() -> None:
    defs = [Definition("Doji", "pattern", {}, min_bars_required=3), Definition("RSI", "indicator", {"period": 2}),
            Definition("Hammer", "pattern", {}, min_bars_required=500)]
    p = AnalysisPipeline(defs, symbol="TEST")
    outs = live(p, [doji_bar(i) for i in range(5)])
    assert [len(o.patterns) for o in outs] == [0, 0, 1, 1, 1]           # Doji waits for its own 3
    assert [len(o.indicators) for o in outs] == [0, 0, 1, 1, 1]         # RSI(2) needs 3 bars, no more


def test_stale_and_duplicate_bars_are_ignored() -> None:
    p = AnalysisPipeline(BASELINE, symbol="TEST")
    p.prime([doji_bar(0), doji_bar(1)])
    out = p.on_bar(doji_bar(1))                                          # history overlaps the feed
    assert out.stale and out.patterns == [] and p.bars_seen == 2 and p.stale_bars == 1
    assert not p.on_bar(doji_bar(2)).stale


def test_a_bar_for_another_symbol_is_refused() -> None:
    with pytest.raises(ValueError, match="OTHER"):
        AnalysisPipeline(BASELINE, symbol="TEST").on_bar(doji_bar(0, symbol="OTHER"))


# -- confidence threshold --------------------------------------------------------------------------

def test_patterns_below_the_confidence_threshold_are_dropped() -> None:
    p = AnalysisPipeline([Definition("Doji", "pattern", {}, confidence_threshold=0.9)], symbol="TEST")
    perfect = p.on_bar(doji_bar(0))                                      # body 0: confidence 1.0
    # body 0.15 vs threshold 0.2: confidence 0.625, a doji below the threshold
    weak = p.on_bar(to_bars([100.0], [101.0], [99.0], [100.15], start=T0 + 60)[0])
    assert [r.confidence for r in perfect.patterns] == [1.0]
    assert weak.patterns == []
    unfiltered = AnalysisPipeline([Definition("Doji", "pattern", {})], symbol="TEST")
    unfiltered.on_bar(doji_bar(0))
    (r,) = unfiltered.on_bar(to_bars([100.0], [101.0], [99.0], [100.15], start=T0 + 60)[0]).patterns
    assert r.confidence == pytest.approx(0.625)


# -- isolation ---------------------------------------------------------------------------------------

class Exploding(Component):
    name = "Exploding"
    kind = "pattern"

    def __init__(self, fail_on=lambda n: True, result=None) -> None:
        self.min_bars = 1
        self.calls = 0
        self.fail_on = fail_on
        self.result = result

    def update(self, bar):
        self.calls += 1
        if self.fail_on(self.calls):
            raise RuntimeError(f"boom {self.calls}")
        return [] if self.result is None else [self.result(bar)]


@dataclass(frozen=True)
class FakeDefinition(Definition):
    factory: object = None

    def create(self):
        return self.factory()


def test_a_raising_component_is_isolated_then_disabled_after_three_consecutive_failures() -> None:
    defs = [FakeDefinition("Exploding", "pattern", factory=Exploding), *BASELINE]
    p = AnalysisPipeline(defs, symbol="TEST")
    outs = live(p, [doji_bar(i) for i in range(6)])
    errors = [[(e.name, e.disabled, e.error_repr) for e in o.errors] for o in outs]
    assert errors[0] == [("Exploding", False, "RuntimeError('boom 1')")]
    assert errors[1] == [("Exploding", False, "RuntimeError('boom 2')")]
    assert errors[2] == [("Exploding", True, "RuntimeError('boom 3')")]  # reported once as disabled
    assert errors[3:] == [[], [], []]
    assert all(o.errors[0].symbol == "TEST" and o.errors[0].bar_start == T0 + 60 * i for i, o in enumerate(outs[:3]))
    assert all([r.name for r in o.patterns] == ["Doji"] for o in outs)  # the others kept running
    assert p.disabled == ("Exploding",)
    assert p.components[0].calls == 3                                    # never called again


def test_failures_must_be_consecutive_to_disable() -> None:
    fails = {1, 2, 4, 5, 7, 8, 9}
    p = AnalysisPipeline([FakeDefinition("Exploding", "pattern", factory=lambda: Exploding(lambda n: n in fails))],
                         symbol="TEST", max_failures=3)
    outs = live(p, [doji_bar(i) for i in range(10)])
    flags = [[e.disabled for e in o.errors] for o in outs]
    assert flags == [[False], [False], [], [False], [False], [], [False], [False], [True], []]


def test_malformed_results_count_as_failures() -> None:
    def nan_indicator(bar):
        return IndicatorResult("Bad", float("nan"), {"value": float("nan")}, bar, {})

    def bad_confidence(bar):
        return PatternResult("Bad", 1.5, bar, {})

    p = AnalysisPipeline([
        FakeDefinition("BadIndicator", "indicator", factory=lambda: Exploding(lambda n: False, nan_indicator)),
        FakeDefinition("BadPattern", "pattern", factory=lambda: Exploding(lambda n: False, bad_confidence)),
    ], symbol="TEST", max_failures=1)
    out = p.on_bar(doji_bar(0))
    assert out.patterns == [] and out.indicators == []
    assert [(e.name, e.disabled) for e in out.errors] == [("BadIndicator", True), ("BadPattern", True)]


def test_errors_during_priming_are_reported_with_the_first_live_bar() -> None:
    p = AnalysisPipeline([FakeDefinition("Exploding", "pattern", factory=Exploding), *BASELINE], symbol="TEST")
    p.prime([doji_bar(i) for i in range(5)])
    out = p.on_bar(doji_bar(5))
    assert [(e.bar_start, e.disabled) for e in out.errors] == [(T0, False), (T0 + 60, False), (T0 + 120, True)]
    assert p.on_bar(doji_bar(6)).errors == []


# -- RSI crossing alerts -----------------------------------------------------------------------------

def rsi_path():
    """Closes whose RSI(14) rises through 70, stays above for a while, falls through 30, stays below,
    and rises back through 70."""
    rng = np.random.default_rng(8)
    steps = np.concatenate([rng.normal(0, 0.3, 40), np.full(25, 0.4) + rng.normal(0, 0.05, 25),
                            np.full(40, -0.5) + rng.normal(0, 0.05, 40), rng.normal(0, 0.2, 10),
                            np.full(30, 0.5) + rng.normal(0, 0.05, 30)])
    return 100 + np.cumsum(steps)


def expected_crossings(rsi, upper=70.0, lower=30.0):
    over = [i for i in range(1, len(rsi)) if rsi[i - 1] <= upper < rsi[i]]
    under = [i for i in range(1, len(rsi)) if rsi[i - 1] >= lower > rsi[i]]
    return over, under


def test_rsi_alerts_fire_once_per_crossing_not_on_every_bar_beyond() -> None:
    closes = rsi_path()
    rsi = talib.RSI(closes, 14)
    over, under = expected_crossings(rsi)
    assert len(over) >= 2 and len(under) >= 1
    assert (rsi > 70).sum() > 3 * len(over) and (rsi < 30).sum() > 3 * len(under)  # long stays beyond

    outs = live(AnalysisPipeline(BASELINE, symbol="TEST"), closes_to_bars(closes))
    alerts = [(i, a) for i, o in enumerate(outs) for a in o.alerts]
    assert [i for i, a in alerts if a.alert_type == "RSI_OVERBOUGHT"] == over
    assert [i for i, a in alerts if a.alert_type == "RSI_OVERSOLD"] == under
    for i, a in alerts:
        assert a.indicator == "RSI" and a.value == pytest.approx(rsi[i], abs=1e-9)
        assert (a.threshold, a.direction) == ((70.0, "above") if a.alert_type == "RSI_OVERBOUGHT" else (30.0, "below"))
        assert a.bar.start == T0 + 60 * i


def test_alert_thresholds_are_configurable() -> None:
    closes = rsi_path()
    over, under = expected_crossings(talib.RSI(closes, 14), 60.0, 40.0)
    outs = live(AnalysisPipeline(BASELINE, symbol="TEST", rsi_overbought=60, rsi_oversold=40), closes_to_bars(closes))
    assert [i for i, o in enumerate(outs) for a in o.alerts if a.alert_type == "RSI_OVERBOUGHT"] == over
    assert [i for i, o in enumerate(outs) for a in o.alerts if a.alert_type == "RSI_OVERSOLD"] == under
    with pytest.raises(ValueError):
        AnalysisPipeline(BASELINE, symbol="TEST", rsi_overbought=30, rsi_oversold=70)


def test_a_crossing_inside_the_primed_history_is_not_alerted_later() -> None:
    closes = rsi_path()
    over, _ = expected_crossings(talib.RSI(closes, 14))
    cut = over[0] + 1                                   # prime through the first crossing
    p = AnalysisPipeline(BASELINE, symbol="TEST")
    bars = closes_to_bars(closes)
    p.prime(bars[:cut])
    outs = live(p, bars[cut:])
    assert [cut + i for i, o in enumerate(outs) for a in o.alerts if a.alert_type == "RSI_OVERBOUGHT"] == over[1:]


def test_max_failures_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_failures"):
        AnalysisPipeline(BASELINE, symbol="TEST", max_failures=0)


def test_a_crossing_between_the_last_primed_bar_and_the_first_live_bar_is_alerted() -> None:
    closes = rsi_path()
    over, _ = expected_crossings(talib.RSI(closes, 14))
    bars = closes_to_bars(closes)
    p = AnalysisPipeline(BASELINE, symbol="TEST")
    p.prime(bars[:over[0]])                             # the last primed RSI is <= 70
    (alert,) = p.on_bar(bars[over[0]]).alerts           # the first live one is > 70: a crossing
    assert alert.alert_type == "RSI_OVERBOUGHT"
