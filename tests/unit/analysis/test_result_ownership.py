"""A result owns its dicts (``base.PatternResult``): every component builds ``parameters``,
``values`` and ``metadata`` afresh for each result and never touches them again, so the events made
from a result take them without a copy (``actors.symbol.result_events``). And indicator ``values``
are floats, VWAP's volume included (``base.IndicatorResult``)."""

from __future__ import annotations

import numpy as np
import pytest

from tickstock.analysis import PatternResult, create
from tickstock.messages.bars import Bar

from .candle_shapes import shape_bars
from .series import to_bars

SESSION_OPEN = 1_773_149_400  # 2026-03-10 09:30 New York: VWAP publishes only inside a session


def walk(seed: int, n: int = 1500) -> list[Bar]:
    rng = np.random.default_rng(seed)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    return to_bars(closes, closes, closes, closes, start=SESSION_OPEN)


# Each entry: a component and the series it is fed, a fresh component per series (every random walk
# restarts the clock, so head-and-shoulders gets one detector per walk).
CANDLES = [shape_bars(7, 3000, start=SESSION_OPEN)]
SHORT = [CANDLES[0][:300]]
WALKS = [walk(seed) for seed in range(8)]
COMPONENTS = [
    ("Doji", {}, CANDLES), ("Hammer", {}, CANDLES),
    ("HeadShoulders", {"pivot_pct": 0.003}, WALKS), ("InverseHeadShoulders", {"pivot_pct": 0.003}, WALKS),
    ("RSI", {"period": 14}, SHORT), ("SMA", {"period": 20}, SHORT), ("VWAP", {}, SHORT),
    ("Engulfing", {}, CANDLES), ("CDLDOJI", {}, CANDLES),    # TA-Lib candles
    ("EMA", {"period": 20}, SHORT), ("MACD", {}, SHORT),     # TA-Lib indicators, one and three outputs
]
INDICATORS = [c for c in COMPONENTS if create(c[0], c[1]).kind == "indicator"]


def results_of(name: str, params: dict, series: list[list[Bar]]) -> list:
    return [r for bars in series for component in [create(name, params)] for b in bars for r in component.update(b)]


@pytest.mark.parametrize("name,params,series", COMPONENTS, ids=[c[0] for c in COMPONENTS])
def test_every_result_has_dicts_of_its_own(name: str, params: dict, series: list[list[Bar]]) -> None:
    results = results_of(name, params, series)
    assert len(results) >= 2, f"{name}: too few results for the check to mean anything"
    dicts = [d for r in results for d in ((r.parameters,) if isinstance(r, PatternResult) else (r.values, r.metadata))]
    assert len({id(d) for d in dicts}) == len(dicts)  # all alive at once: equal ids would be one dict shared


@pytest.mark.parametrize("name,params,series", INDICATORS, ids=[c[0] for c in INDICATORS])
def test_indicator_values_are_floats(name: str, params: dict, series: list[list[Bar]]) -> None:
    results = results_of(name, params, series)
    assert results
    assert all(type(v) is float for r in results for v in r.values.values())
