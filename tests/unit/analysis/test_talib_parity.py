"""TA-Lib is the oracle: Doji/Hammer detections and RSI/SMA values against talib on 25,000 bars.

Candles: zero disagreements (nonzero TA-Lib output <-> a detection) at every index from TA-Lib's
lookback (10 for CDLDOJI, 11 for CDLHAMMER) on. Before that TA-Lib says nothing and our warm-up rule
applies (tested in test_candles.py).
Indicators: equal to 1e-9 from TA-Lib's first defined value, except exactly one documented case: a
flat RSI (average gain and loss both 0), where TA-Lib returns 0.0 and we return 50.0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstock.analysis import RSI, SMA, Doji, Hammer
from tickstock.analysis.candles import DOJI_LOOKBACK, HAMMER_LOOKBACK
from tickstock.analysis.rsi import FLAT_RSI

from .series import arrays, parity_series, to_bars

SERIES = parity_series()


def test_parity_data_is_big_and_varied() -> None:
    bars = [b for _, s in SERIES for b in s]
    assert len(bars) >= 20_000
    assert sum(b.high == b.low for b in bars) > 1000                       # zero ranges / flat bars
    assert min(b.low for b in bars) < 1e-3 and max(b.high for b in bars) > 1e6 * 0.9


def _detections(component, bars) -> np.ndarray:
    hits = np.zeros(len(bars), dtype=bool)
    for i, bar in enumerate(bars):
        results = component.update(bar)
        if results:
            (r,) = results
            assert r.name == component.name and r.bar is bar
            assert 0.0 <= r.confidence <= 1.0
            assert all(math.isfinite(v) for v in r.parameters.values() if isinstance(v, float))
            hits[i] = True
    return hits


@pytest.mark.parametrize("label,bars", SERIES, ids=[s[0] for s in SERIES])
@pytest.mark.parametrize("cls,oracle,lookback", [
    (Doji, talib.CDLDOJI, DOJI_LOOKBACK), (Hammer, talib.CDLHAMMER, HAMMER_LOOKBACK),
], ids=["Doji", "Hammer"])
def test_candle_parity(label, bars, cls, oracle, lookback) -> None:
    o, h, l, c = arrays(bars)
    expected = oracle(o, h, l, c) != 0
    mine = _detections(cls(), bars)
    disagree = np.nonzero(expected[lookback:] != mine[lookback:])[0] + lookback
    assert disagree.size == 0, f"{label}: first disagreements at {disagree[:10].tolist()}"
    assert expected[lookback:].sum() > 20  # the comparison is not vacuous


def test_parity_detects_plenty_overall() -> None:
    doji = hammer = 0
    for _, bars in SERIES:
        o, h, l, c = arrays(bars)
        doji += int((talib.CDLDOJI(o, h, l, c) != 0).sum())
        hammer += int((talib.CDLHAMMER(o, h, l, c) != 0).sum())
    assert doji > 2000 and hammer > 500


def _values(component, bars) -> np.ndarray:
    out = np.full(len(bars), np.nan)
    for i, bar in enumerate(bars):
        results = component.update(bar)
        if results:
            (r,) = results
            assert r.values == {"value": r.value} and r.metadata["period"] == component.period
            out[i] = r.value
    return out


def _flat_mask(closes: np.ndarray, n: int) -> np.ndarray:
    """Independent of the code under test: True where Wilder's average gain + loss is exactly 0."""
    flat = np.zeros(len(closes), dtype=bool)
    gain = loss = 0.0
    for i in range(1, len(closes)):
        d = closes[i] - closes[i - 1]
        g, lo = max(d, 0.0), max(-d, 0.0)
        if i <= n:
            gain, loss = gain + g, loss + lo
            if i < n:
                continue
            gain, loss = gain / n, loss / n
        else:
            gain, loss = (gain * (n - 1) + g) / n, (loss * (n - 1) + lo) / n
        flat[i] = gain + loss == 0.0
    return flat


@pytest.mark.parametrize("label,bars", SERIES, ids=[s[0] for s in SERIES])
@pytest.mark.parametrize("period", [14, 2, 9])
def test_rsi_parity(label, bars, period) -> None:
    closes = arrays(bars)[3]
    expected = talib.RSI(closes, timeperiod=period)
    mine = _values(RSI(period=period), bars)
    assert np.isnan(mine[:period]).all() and not np.isnan(mine[period:]).any()
    flat = _flat_mask(closes, period)
    # The one documented difference: flat RSI. TA-Lib says 0.0 (oversold); we say 50.0 (neutral).
    assert (expected[flat] == 0.0).all() and (mine[flat] == FLAT_RSI).all()
    rest = ~flat
    rest[:period] = False
    assert np.abs(mine[rest] - expected[rest]).max() <= 1e-9


def test_rsi_flat_case_is_exercised() -> None:
    label, bars = SERIES[-1]
    assert label == "flat_heavy"
    assert _flat_mask(arrays(bars)[3], 14).sum() >= 10


@pytest.mark.parametrize("label,bars", SERIES, ids=[s[0] for s in SERIES])
@pytest.mark.parametrize("period", [20, 5, 1])
def test_sma_parity(label, bars, period) -> None:
    closes = arrays(bars)[3]
    expected = talib.SMA(closes, timeperiod=period) if period > 1 else closes
    mine = _values(SMA(period=period), bars)
    assert np.isnan(mine[: period - 1]).all()
    assert np.abs(mine[period - 1:] - expected[period - 1:]).max() <= 1e-9


# Small integer price grids make exact ties (body == threshold, upper == threshold) common: the
# comparisons' strictness (<= vs <) must be TA-Lib's.
_grid_bar = st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 4), st.integers(0, 4))


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(_grid_bar, min_size=HAMMER_LOOKBACK + 1, max_size=40), st.sampled_from([1.0, 0.01, 0.1]))
def test_candle_parity_on_tie_heavy_grids(raw, unit) -> None:
    o_, h_, l_, c_ = [], [], [], []
    for a, b, up, down in raw:
        o, c = 100 + a, 100 + b
        o_.append(o * unit); c_.append(c * unit)
        h_.append((max(o, c) + up) * unit); l_.append((min(o, c) - down) * unit)
    bars = to_bars(o_, h_, l_, c_)
    o, h, l, c = arrays(bars)
    for cls, oracle, lookback in ((Doji, talib.CDLDOJI, DOJI_LOOKBACK), (Hammer, talib.CDLHAMMER, HAMMER_LOOKBACK)):
        expected = oracle(o, h, l, c) != 0
        mine = _detections(cls(), bars)
        assert (expected[lookback:] == mine[lookback:]).all()
