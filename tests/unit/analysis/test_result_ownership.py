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


CANDLE_BARS = shape_bars(7, 3000, start=SESSION_OPEN)
COMPONENTS = [
    ("Doji", {}, CANDLE_BARS), ("Hammer", {}, CANDLE_BARS),
    ("HeadShoulders", {"pivot_pct": 0.003}, [b for seed in range(8) for b in walk(seed)]),
    ("InverseHeadShoulders", {"pivot_pct": 0.003}, [b for seed in range(8) for b in walk(seed)]),
    ("RSI", {"period": 14}, CANDLE_BARS[:300]), ("SMA", {"period": 20}, CANDLE_BARS[:300]),
    ("VWAP", {}, CANDLE_BARS[:300]),
    ("Engulfing", {}, CANDLE_BARS), ("CDLDOJI", {}, CANDLE_BARS),          # TA-Lib candles
    ("EMA", {"period": 20}, CANDLE_BARS[:300]), ("MACD", {}, CANDLE_BARS[:300]),  # one and three outputs
]


def results_of(name: str, params: dict, bars: list[Bar]) -> list:
    if name in ("HeadShoulders", "InverseHeadShoulders"):  # one detector per walk: each walk restarts the clock
        walks = [bars[i:i + 1500] for i in range(0, len(bars), 1500)]
        return [r for w in walks for component in [create(name, params)] for b in w for r in component.update(b)]
    component = create(name, params)
    return [r for b in bars for r in component.update(b)]


@pytest.mark.parametrize("name,params,bars", COMPONENTS, ids=[c[0] for c in COMPONENTS])
def test_every_result_has_dicts_of_its_own(name: str, params: dict, bars: list[Bar]) -> None:
    results = results_of(name, params, bars)
    assert len(results) >= 2, f"{name}: too few results for the check to mean anything"
    dicts = [d for r in results for d in ((r.parameters,) if isinstance(r, PatternResult) else (r.values, r.metadata))]
    assert len({id(d) for d in dicts}) == len(dicts)  # all alive at once: equal ids would be one dict shared


@pytest.mark.parametrize("name,params,bars", [c for c in COMPONENTS if create(c[0], c[1]).kind == "indicator"],
                         ids=[c[0] for c in COMPONENTS if create(c[0], c[1]).kind == "indicator"])
def test_indicator_values_are_floats(name: str, params: dict, bars: list[Bar]) -> None:
    results = results_of(name, params, bars)
    assert results
    assert all(type(v) is float for r in results for v in r.values.values())
