"""RSI/SMA beyond parity: warm-up, the flat-series decision, metadata, parameter checks."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from tickstock.analysis import RSI, SMA

from .series import to_bars


def closes_to_bars(closes):
    return to_bars(closes, closes, closes, closes)


def feed(component, bars):
    return [component.update(b) for b in bars]


def test_rsi_nothing_before_period_plus_one_bars() -> None:
    closes = 100 + np.cumsum(np.random.default_rng(1).normal(0, 1, 40))
    out = feed(RSI(period=14), closes_to_bars(closes))
    assert all(r == [] for r in out[:14])
    (first,) = out[14]
    assert first.name == "RSI" and first.metadata == {"period": 14, "bars_used": 15}
    assert first.values == {"value": first.value}
    assert first.value == pytest.approx(talib.RSI(closes, 14)[14], abs=1e-9)
    assert RSI(period=14).min_bars == 15


def test_flat_series_rsi_is_neutral_50_not_talibs_0() -> None:
    closes = np.full(30, 42.0)
    assert talib.RSI(closes, 14)[14] == 0.0  # TA-Lib: "oversold" for a symbol that never moved
    out = feed(RSI(period=14), closes_to_bars(closes))
    assert [r[0].value for r in out[14:]] == [50.0] * 16


def test_falling_only_series_is_still_zero_like_talib() -> None:
    closes = np.linspace(120.0, 100.0, 30)
    (r,) = feed(RSI(period=14), closes_to_bars(closes))[-1]
    assert r.value == 0.0 == talib.RSI(closes, 14)[-1]


def test_rsi_leaves_flat_state_when_price_moves() -> None:
    closes = np.array([42.0] * 20 + [43.0])
    (r,) = feed(RSI(period=14), closes_to_bars(closes))[-1]
    assert r.value == 100.0 == talib.RSI(closes, 14)[-1]


def test_sma_first_value_on_the_period_th_bar() -> None:
    closes = np.arange(1.0, 31.0)
    out = feed(SMA(period=20), closes_to_bars(closes))
    assert all(r == [] for r in out[:19])
    (r,) = out[19]
    assert r.value == 10.5 and r.metadata == {"period": 20, "bars_used": 20}
    assert [o[0].value for o in out[19:]] == list(talib.SMA(closes, 20)[19:])


@pytest.mark.parametrize("cls,bad", [(RSI, 1), (RSI, 14.5), (RSI, "14"), (RSI, True), (SMA, 0), (SMA, None)])
def test_bad_periods_are_rejected_by_name(cls, bad) -> None:
    with pytest.raises(ValueError, match="period"):
        cls(period=bad)


def test_unknown_parameter_is_named_and_integral_float_is_accepted() -> None:
    with pytest.raises(TypeError, match="length"):
        RSI(length=14)
    assert RSI(period=14.0).period == 14 and SMA(period=5.0).min_bars == 5
