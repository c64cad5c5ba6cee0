"""TalibBatch: one TA-Lib definition stepped for many symbols gives each symbol exactly what its own
pipeline gives, under the pipeline's rules (gating, threshold, stale bars, isolation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import talib

from tickstock.analysis import AnalysisPipeline, Definition, IndicatorResult, PatternResult, create
from tickstock.analysis.talib_batch import TalibBatch
from tickstock.analysis.talib_functions import TalibComponent
from tickstock.messages.bars import Bar

from .series import candles, to_bars

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
PRIME, LIVE = 120, 80


def definition(name: str, params: dict[str, Any] | None = None, **gating: Any) -> Definition:
    component = create(name, params or {})
    return Definition(component.name, component.kind, params or {}, **gating)


def series(n: int = PRIME + LIVE) -> dict[str, list[Bar]]:
    """Random walks with dojis and hammers among them: the candle functions tried fire in them."""
    return {s: to_bars(*candles(10 + k, n, 50.0 + 20 * k, 0.004, tick=0.01), symbol=s) for k, s in enumerate(SYMBOLS)}


def closes(bars_by_symbol: dict[str, list[Bar]], symbols=SYMBOLS) -> list[list[Bar]]:
    """Each live minute's bars, one per symbol, as a close hands them over."""
    return [[bars_by_symbol[s][k] for s in symbols] for k in range(PRIME, PRIME + LIVE)]


def batch_results(d: Definition, bars_by_symbol: dict[str, list[Bar]]) -> list[list[Any]]:
    batch = TalibBatch(d, SYMBOLS)
    for s in SYMBOLS:
        assert batch.prime(s, bars_by_symbol[s][:PRIME]) == []
    out = []
    for close in closes(bars_by_symbol):
        step = batch.step(close)
        assert step.errors == []
        out.append(step.results)
    return out


def pipeline_results(d: Definition, bars_by_symbol: dict[str, list[Bar]]) -> list[list[Any]]:
    pipelines = {s: AnalysisPipeline([d], symbol=s) for s in SYMBOLS}
    for s in SYMBOLS:
        pipelines[s].prime(bars_by_symbol[s][:PRIME])
    out = []
    for close in closes(bars_by_symbol):
        results = []
        for bar in close:
            o = pipelines[bar.symbol].on_bar(bar)
            results += o.patterns + o.indicators
        out.append(results)
    return out


CASES = [
    ("EMA", {"timeperiod": 20}, {}), ("MACD", {}, {}), ("BBANDS", {"timeperiod": 20}, {}),
    ("ATR", {"timeperiod": 14}, {}), ("Engulfing", {}, {}), ("Harami", {}, {}), ("CDLDOJI", {}, {}),
    ("EMA", {"timeperiod": 20}, {"min_bars_required": 150}), ("Engulfing", {}, {"confidence_threshold": 0.5}),
]


@pytest.mark.parametrize(("name", "params", "gating"), CASES)
def test_each_symbol_gets_exactly_what_its_own_pipeline_gives(name, params, gating) -> None:
    bars = series()
    d = definition(name, params, **gating)
    got, want = batch_results(d, bars), pipeline_results(d, bars)
    assert got == want
    assert sum(map(len, got)) > 0  # not vacuous: every case publishes something


def test_indicator_values_are_talib_s_own_over_all_bars() -> None:
    bars = series()
    got = batch_results(definition("MACD"), bars)[-1]
    assert [r.bar.symbol for r in got] == list(SYMBOLS)  # in the order of the close's bars
    for r in got:
        closes_ = np.array([b.close for b in bars[r.bar.symbol]])
        macd, signal, hist = talib.MACD(closes_)
        assert isinstance(r, IndicatorResult)
        assert r.values == {"macd": macd[-1], "signal": signal[-1], "hist": hist[-1]}
        assert r.value == macd[-1] and r.metadata["bars_used"] == PRIME + LIVE


def test_gating_counts_primed_bars_and_thresholds_drop_patterns() -> None:
    bars = series()
    gated = batch_results(definition("EMA", {"timeperiod": 20}, min_bars_required=PRIME + 10), bars)
    assert all(r == [] for r in gated[:9]) and all(len(r) == len(SYMBOLS) for r in gated[9:])
    plain = [r for rs in batch_results(definition("Engulfing"), bars) for r in rs]
    assert plain and all(isinstance(r, PatternResult) and r.confidence == pytest.approx(0.56) for r in plain)
    assert [r for rs in batch_results(definition("Engulfing", confidence_threshold=0.5), bars) for r in rs] == plain
    assert all(rs == [] for rs in batch_results(definition("Engulfing", confidence_threshold=0.6), bars))


def test_a_bar_not_after_the_last_is_ignored_and_counted() -> None:
    bars = series()
    batch = TalibBatch(definition("EMA", {"timeperiod": 20}), SYMBOLS)
    for s in SYMBOLS:
        batch.prime(s, bars[s][:PRIME] + bars[s][PRIME - 3:PRIME])  # the history's last 3 bars again
    assert batch.stale_bars == 3 * len(SYMBOLS)
    first = closes(bars)[0]
    assert len(batch.step(first).results) == len(SYMBOLS)
    assert batch.step(first).results == [] and batch.stale_bars == 4 * len(SYMBOLS)


def test_a_failing_symbol_costs_only_its_own_results_and_is_disabled_after_max_failures(monkeypatch) -> None:
    original = TalibComponent.output

    def output(self, bar):
        if bar.symbol == "BBB":
            raise RuntimeError("boom")
        return original(self, bar)

    monkeypatch.setattr(TalibComponent, "output", output)
    bars = series()
    batch = TalibBatch(definition("EMA", {"timeperiod": 20}), SYMBOLS, max_failures=2)
    errors = batch.prime("BBB", bars["BBB"][:PRIME])
    assert [e.disabled for e in errors] == [False, True] and errors[0].error_repr == "RuntimeError('boom')"
    for s in ("AAA", "CCC", "DDD"):
        assert batch.prime(s, bars[s][:PRIME]) == []
    for close in closes(bars)[:3]:
        step = batch.step(close)
        assert [r.bar.symbol for r in step.results] == ["AAA", "CCC", "DDD"] and step.errors == []


def test_a_live_failure_is_reported_per_symbol_and_a_success_resets_the_count(monkeypatch) -> None:
    original = TalibComponent.output
    failing = {"CCC"}

    def output(self, bar):
        if bar.symbol in failing:
            raise ValueError("bad")
        return original(self, bar)

    monkeypatch.setattr(TalibComponent, "output", output)
    bars = series()
    batch = TalibBatch(definition("ATR", {"timeperiod": 14}), SYMBOLS, max_failures=2)
    for s in SYMBOLS:
        failing.discard("CCC") if s == "CCC" else None
        batch.prime(s, bars[s][:PRIME])
    failing.add("CCC")
    one, two, three = closes(bars)[:3]
    step = batch.step(one)
    assert [(e.symbol, e.disabled) for e in step.errors] == [("CCC", False)]
    assert [r.bar.symbol for r in step.results] == ["AAA", "BBB", "DDD"]
    failing.clear()
    assert [r.bar.symbol for r in batch.step(two).results] == list(SYMBOLS)  # back: the count starts again
    failing.add("CCC")
    assert [e.disabled for e in batch.step(three).errors] == [False]


def test_wrong_use_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="not served by TA-Lib"):
        TalibBatch(definition("RSI", {"period": 14}))
    with pytest.raises(ValueError, match="max_failures"):
        TalibBatch(definition("EMA"), max_failures=0)
    batch = TalibBatch(definition("EMA"), ["AAA"])
    with pytest.raises(KeyError, match="ZZZ"):
        batch.step([Bar("ZZZ", 60, 1.0, 1.0, 1.0, 1.0, 1)])
    batch.add("ZZZ")
    assert batch.symbols == ("AAA", "ZZZ") and batch.step([Bar("ZZZ", 60, 1.0, 1.0, 1.0, 1.0, 1)]).results == []
