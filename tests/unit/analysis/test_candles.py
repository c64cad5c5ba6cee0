"""Doji/Hammer beyond parity: warm-up from the first bar, the zero-range decision, confidence."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from tickstock.analysis import Doji, Hammer

from .series import arrays, to_bars


def bar(o, h, l, c, i=0):
    return to_bars([o], [h], [l], [c], start=1_760_000_040 + 60 * i)[0]


def test_doji_on_the_very_first_bar_uses_its_own_range() -> None:
    (r,) = Doji().update(bar(100.0, 101.0, 99.0, 100.1))        # body 0.1 <= 0.1 * range 2.0
    assert r.name == "Doji" and r.parameters["bars_in_average"] == 0
    assert r.parameters["threshold"] == pytest.approx(0.2)
    assert r.confidence == pytest.approx(0.5 + 0.5 * (1 - 0.1 / 0.2))
    assert Doji().update(bar(100.0, 101.0, 99.0, 100.3)) == []   # body 0.3 > 0.2


def test_zero_range_first_bar_is_not_a_doji() -> None:
    assert Doji().update(bar(100.0, 100.0, 100.0, 100.0)) == []


def test_zero_body_after_flat_history_is_a_doji_like_talib() -> None:
    flat = to_bars([100.0] * 11, [100.0] * 11, [100.0] * 11, [100.0] * 11)
    assert talib.CDLDOJI(*arrays(flat))[10] != 0                 # TA-Lib: 0 <= 0.1 * 0
    d = Doji()
    results = [d.update(b) for b in flat]
    assert results[0] == []                                      # first bar: the documented decision
    assert all(len(r) == 1 and r[0].confidence == 0.5 for r in results[1:])


def test_doji_warm_up_uses_the_prior_bars_available() -> None:
    d = Doji()
    d.update(bar(100.0, 104.0, 96.0, 101.0, 0))                  # range 8
    d.update(bar(101.0, 103.0, 99.0, 100.0, 1))                  # range 4 -> mean 6, threshold 0.6
    (r,) = d.update(bar(100.0, 100.5, 99.5, 100.55, 2))          # body 0.55 <= 0.6 (own range 1 says no)
    assert r.parameters["avg_range"] == pytest.approx(6.0) and r.parameters["bars_in_average"] == 2


def test_hammer_needs_a_previous_bar_then_warms_up() -> None:
    h = Hammer()
    assert h.min_bars == 2
    assert h.update(bar(100.0, 100.1, 95.0, 100.05, 0)) == []    # perfect shape, but no bar before it
    h.update(bar(100.0, 101.0, 98.0, 99.0, 1))                   # a down bar: body 1, range 3
    (r,) = h.update(bar(98.0, 98.52, 95.0, 98.5, 2))             # body .5, lower 3, upper .02, below the low
    assert r.name == "Hammer" and r.parameters["bars_in_average"] == 2
    assert 0.5 < r.confidence <= 1.0


def test_confidence_is_always_finite_and_in_range() -> None:
    rng = np.random.default_rng(5)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, 3000)))
    o = np.roll(c, 1)
    o[0] = c[0]
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, 0.001, 3000)) * (rng.random(3000) < 0.5))
    l = np.minimum(o, c) * (1 - np.abs(rng.normal(0, 0.004, 3000)))
    seen = 0
    for cls in (Doji, Hammer):
        comp = cls()
        for b in to_bars(o, h, l, c):
            for r in comp.update(b):
                seen += 1
                assert 0.5 <= r.confidence <= 1.0
                assert all(np.isfinite(v) for v in r.parameters.values())
    assert seen > 100


def test_candles_take_no_parameters() -> None:
    with pytest.raises(TypeError, match="period"):
        Doji(period=10)
    with pytest.raises(TypeError, match="factor"):
        Hammer(factor=2)
