"""Priming: each component is fed only its ``warmup`` trailing bars, and what it then reports on
live bars is what it would have reported after the whole history (up to a running total's last
bits); RSI's result-free ``advance`` leaves exactly the state ``update`` would."""

from __future__ import annotations

import pytest

from tickstock.analysis import AnalysisPipeline, Definition, IndicatorResult
from tickstock.analysis.base import Component
from tickstock.analysis.candles import Doji, Hammer
from tickstock.analysis.rsi import RSI
from tickstock.analysis.sma import SMA

from .series import candles, to_bars
from .test_pipeline import BASELINE


def series(seed: int, n: int = 320):
    return to_bars(*candles(seed, n, price=100.0, vol=0.004, tick=0.01))


def outputs(component: Component, bars) -> list:
    return [[(r.name, getattr(r, "value", None), getattr(r, "confidence", None)) for r in component.update(b)]
            for b in bars]


@pytest.mark.parametrize("make", [Doji, Hammer, lambda: SMA(period=20)], ids=["Doji", "Hammer", "SMA"])
@pytest.mark.parametrize("seed", range(6))
def test_a_component_primed_from_its_warmup_window_reports_what_full_priming_would(make, seed):
    bars = series(seed)
    history, live = bars[:200], bars[200:]
    full, windowed = make(), make()
    assert windowed.warmup is not None and windowed.warmup < 200
    for bar in history:
        full.update(bar)
    for bar in history[-windowed.warmup:]:
        windowed.update(bar)
    got, want = outputs(windowed, live), outputs(full, live)
    assert [[r[0] for r in out] for out in got] == [[r[0] for r in out] for out in want]  # same detections
    for g, w in zip(got, want):
        for (_, gv, gc), (_, wv, wc) in zip(g, w):
            assert gv == pytest.approx(wv, rel=1e-12) if gv is not None else wv is None
            assert gc == pytest.approx(wc, rel=1e-9) if gc is not None else wc is None


@pytest.mark.parametrize("seed", range(4))
def test_rsi_advance_leaves_exactly_the_state_update_would(seed):
    bars = series(seed)
    by_update, by_advance = RSI(period=14), RSI(period=14)
    for bar in bars[:200]:
        by_update.update(bar)
        by_advance.advance(bar)
    assert by_advance.value == by_update.value
    assert outputs(by_advance, bars[200:]) == outputs(by_update, bars[200:])  # bit for bit


class Recording(Component):
    """Counts the bars it is given; ``warmup`` as constructed."""

    name = "Recording"
    kind = "indicator"

    def __init__(self, warmup: int | None) -> None:
        self.min_bars, self.warmup, self.starts = 1, warmup, []

    def update(self, bar):
        self.starts.append(bar.start)
        return []


def test_the_pipeline_feeds_each_component_only_its_warmup_bars_but_counts_them_all():
    bounded, unbounded = Recording(3), Recording(None)
    definitions = [Definition("Bounded", "indicator"), Definition("Unbounded", "indicator")]
    made = iter([bounded, unbounded])
    p = AnalysisPipeline([_Def(d, next(made)) for d in definitions], symbol="TEST")
    bars = series(0, 50)
    p.prime(bars)
    assert bounded.starts == [b.start for b in bars[-3:]]
    assert unbounded.starts == [b.start for b in bars]
    assert p.bars_seen == 50  # gating counts every primed bar


def test_priming_skips_bars_not_after_the_last_one_and_counts_them_stale():
    p = AnalysisPipeline(BASELINE, symbol="TEST")
    bars = series(1, 30)
    p.prime(bars[:20])
    p.prime(bars[10:30])  # 10 overlap the first call
    assert p.bars_seen == 30 and p.stale_bars == 10


class _Def:
    """A definition that hands out a prepared component instance."""

    def __init__(self, definition: Definition, component: Component) -> None:
        self.name, self.kind, self._component = definition.name, definition.kind, component
        self.min_bars_required = self.confidence_threshold = None

    def create(self) -> Component:
        return self._component
