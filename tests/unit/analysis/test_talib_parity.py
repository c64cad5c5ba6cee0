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


def test_drift_trap_really_depends_on_rounding() -> None:
    """The drift-trap series contains flat bars TA-Lib calls a doji and flat bars it does not (a
    negative residue): only an implementation with TA-Lib's exact running-total arithmetic agrees."""
    (bars,) = [s for label, s in SERIES if label == "drift_trap"]
    o, h, l, c = arrays(bars)
    doji = talib.CDLDOJI(o, h, l, c) != 0
    flat = (h == l)
    flat[:DOJI_LOOKBACK] = False
    assert (flat & doji).sum() > 100 and (flat & ~doji).sum() > 10


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


def _hammer_case(high: float) -> list:
    """Eleven identical prior bars (body 1, range 10), then a hammer candidate whose upper shadow is
    ``high - 97``: TA-Lib requires upper < 0.1 * 10 = 1.0 exactly."""
    o, h, l, c = [100.0] * 11, [105.0] * 11, [95.0] * 11, [101.0] * 11
    o.append(96.5); c.append(97.0); h.append(high); l.append(90.0)
    return to_bars(o, h, l, c)


@pytest.mark.parametrize("high,expected", [(98.0, False), (97.99, True)])
def test_hammer_upper_shadow_tie_is_strict_like_talib(high, expected) -> None:
    bars = _hammer_case(high)
    o, h, l, c = arrays(bars)
    assert bool(talib.CDLHAMMER(o, h, l, c)[-1] != 0) == expected
    assert bool(_detections(Hammer(), bars)[-1]) == expected


_SEED_KS = [1500484774845, 793986757348, 353716922441, 306679479969, 1839728054862, 2031152305378,
            1442133313185, 1678535321586, 1320891405659, 2074093161787]  # bodies, in units of 2**-40


def _seed_case(body_shift: float) -> list:
    """Bar 0 has a 1e6 body; bars 1..10 have bodies that sum EXACTLY (multiples of 2**-40); bar 11 is
    a hammer whose body equals TA-Lib's avg_body (+ ``body_shift``). TA-Lib seeds CDLHAMMER's body
    total with bars 1..10 summed left to right, so for it the body is not < the average (a tie).
    A running sum carried from bar 0 (add bar 10, subtract bar 0) keeps a rounding residue of the
    1e6 body and says "hammer"."""
    betas = [k * 2.0 ** -40 for k in _SEED_KS]
    avg = 1.0 * (sum(_SEED_KS) // 10 * 2.0 ** -40)
    body = avg + body_shift
    o = [1e6] + [100.0] * 10 + [90.0]
    c = [2e6] + [100.0 + b for b in betas] + [90.0 + body]
    h = [2e6] + [x + 5.0 for x in c[1:11]] + [90.0 + body]
    l = [1e6] + [95.0] * 10 + [80.0]
    return to_bars(o, h, l, c)


def test_hammer_seeds_its_totals_exactly_where_talib_does() -> None:
    bars = _seed_case(0.0)
    bodies = [abs(b.close - b.open) for b in bars]
    naive = 0.0
    for x in bodies[:10]:
        naive += x
    naive += bodies[10] - bodies[0]
    assert naive / 10 > bodies[11]                      # a carried running sum would detect here
    assert talib.CDLHAMMER(*arrays(bars))[-1] == 0      # TA-Lib does not (tie: not strictly below)
    assert not _detections(Hammer(), bars)[-1]
    control = _seed_case(-(2.0 ** -40))                 # one unit smaller: both detect
    assert talib.CDLHAMMER(*arrays(control))[-1] != 0
    assert _detections(Hammer(), control)[-1]


def test_doji_tie_is_inclusive_like_talib() -> None:
    # Ten prior bars of range 10 -> threshold 0.1 * 10 = 1.0; body exactly 1.0 is a doji.
    o, h, l, c = [100.0] * 10 + [100.0], [105.0] * 10 + [103.0], [95.0] * 10 + [98.0], [100.0] * 10 + [101.0]
    bars = to_bars(o, h, l, c)
    assert talib.CDLDOJI(*arrays(bars))[-1] != 0
    assert _detections(Doji(), bars)[-1]


# Small integer price grids make exact ties (body == threshold, upper == threshold) common: the
# comparisons' strictness (<= vs <) must be TA-Lib's.
_grid_bar = st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 4), st.integers(0, 4))


@settings(max_examples=150, deadline=None, database=None)
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
