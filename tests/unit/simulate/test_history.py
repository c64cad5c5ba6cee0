"""The simulated past (tickstock/simulate/history.py): where it ends, how it moves, and that a calm
history makes the demo's hammer raise RSI_OVERSOLD on its first bar -- checked through the engine's
own path (MinuteBarAggregator + AnalysisPipeline with the default definitions, tests/unit/simulate/engine.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib

from tickstock.analysis import AnalysisPipeline
from tickstock.demo import plan
from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.simulate.history import (
    CALM_CROSSING_DROP,
    CALM_RSI,
    HISTORY_SESSION,
    SymbolPast,
    history_bars,
    walk_pasts,
)
from tickstock.simulate.shapes import InjectedMarket, Injection
from tickstock.simulate.walk import RandomWalk

from .engine import DEFAULTS, detect, fold

END = 1_760_000_040          # a minute start
SYMBOLS = list(plan.SYMBOLS)
RATE = 2.0 * len(SYMBOLS)    # the simulator's default rate for them


def _rsi_after(bars: list[Bar]) -> float:
    """TA-Lib's RSI(14) on the bars' closes (the engine's RSI is bit-identical to it)."""
    return float(talib.RSI(np.array([b.close for b in bars], dtype=float), timeperiod=14)[-1])


def test_bars_end_in_the_minute_before_end_at_the_walks_start_price_in_cents_and_lots() -> None:
    pasts = walk_pasts(SYMBOLS, seed=3, rate=RATE)
    walk = RandomWalk(SYMBOLS, rate=RATE, seed=3, start=END + 17.0)  # the simulator's walk, later
    for past in pasts:
        for calm in (False, True):
            bars = history_bars(past, end=END, minutes=60, calm=calm, seed=3)
            assert [b.start for b in bars] == [END - BAR_SECONDS * (60 - i) for i in range(60)]
            assert bars[-1].close == past.price == walk.price(past.symbol)
            for prev, bar in zip(bars, bars[1:]):
                assert bar.open == prev.close  # no gaps inside the history
            for b in bars:
                assert b.symbol == past.symbol and b.session_id == HISTORY_SESSION
                assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
                for price in (b.open, b.high, b.low, b.close):
                    assert price > 0 and round(price, 2) == price
                assert b.volume > 0 and b.volume % 100 == 0


def test_start_prices_do_not_depend_on_the_rate_but_on_the_symbols_order_and_seed() -> None:
    prices = {p.symbol: p.price for p in walk_pasts(SYMBOLS, seed=1, rate=RATE)}
    assert prices == {p.symbol: p.price for p in walk_pasts(SYMBOLS, seed=1, rate=500.0)}
    assert prices != {p.symbol: p.price for p in walk_pasts(SYMBOLS, seed=2, rate=RATE)}
    assert prices != {p.symbol: p.price for p in walk_pasts(SYMBOLS[::-1], seed=1, rate=RATE)}


def test_the_same_arguments_give_the_same_bars() -> None:
    past = walk_pasts(SYMBOLS, seed=5, rate=RATE)[0]
    for calm in (False, True):
        assert history_bars(past, end=END, minutes=40, calm=calm, seed=5) == \
            history_bars(past, end=END, minutes=40, calm=calm, seed=5)
    assert history_bars(past, end=END, minutes=40, calm=False, seed=5) != \
        history_bars(past, end=END, minutes=40, calm=False, seed=6)


def test_an_ordinary_history_moves_with_the_walks_minute_volatility() -> None:
    past = SymbolPast("X", 150.0, 0.001, 100.0)
    bars = history_bars(past, end=END, minutes=5000, calm=False, seed=1)
    returns = np.diff(np.log([b.close for b in bars]))
    assert 0.9 * past.minute_volatility < float(np.std(returns)) < 1.1 * past.minute_volatility
    calm = history_bars(past, end=END, minutes=5000, calm=True, seed=1)
    assert float(np.std(np.diff(np.log([b.close for b in calm])))) < 0.3 * past.minute_volatility


@pytest.mark.parametrize("price", [round(float(p), 2) for p in np.exp(np.linspace(math.log(5), math.log(5000), 25))])
@pytest.mark.parametrize("seed", [1, 2, 3, 7])
def test_a_calm_history_leaves_rsi_near_40_and_the_next_drop_crosses_30(price: float, seed: int) -> None:
    bars = history_bars(SymbolPast("X", price, 0.001, 100.0), end=END, minutes=60, calm=True, seed=seed)
    assert CALM_RSI[0] <= _rsi_after(bars) <= CALM_RSI[1]
    pipeline = AnalysisPipeline(DEFAULTS, symbol="X")
    pipeline.prime(bars)
    close = round(price - max(CALM_CROSSING_DROP * price, 0.20), 2)
    out = pipeline.on_bar(Bar("X", END, price, price, close, close, 100))
    assert [a.alert_type for a in out.alerts] == ["RSI_OVERSOLD"]


def test_without_the_calm_history_the_same_drop_does_not_cross() -> None:
    """The control: an ordinary (walk-like) history with the same price leaves the drop harmless."""
    price = 223.87
    crossed = 0
    for seed in range(1, 11):
        bars = history_bars(SymbolPast("X", price, 0.001, 100.0), end=END, minutes=60, calm=False, seed=seed)
        pipeline = AnalysisPipeline(DEFAULTS, symbol="X")
        pipeline.prime(bars)
        close = round(price * (1 - CALM_CROSSING_DROP), 2)
        crossed += bool(pipeline.on_bar(Bar("X", END, price, price, close, close, 100)).alerts)
    assert crossed <= 2


@pytest.mark.parametrize("seconds_into_minute", [3.0, 31.0, 55.0])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_the_demos_plan_gives_rsi_oversold_and_a_doji_on_the_first_bar_and_the_hammer_on_the_second(
        seconds_into_minute: float, seed: int) -> None:
    """What ``python -m tickstock.demo`` runs: the history (AAPL calm), a session starting mid-minute
    (its first minute partial), the simulator started in that minute with the demo's injections."""
    session_start = END + seconds_into_minute
    pasts = walk_pasts(SYMBOLS, seed=seed, rate=RATE)
    history = [b for p in pasts
               for b in history_bars(p, end=END, minutes=plan.HISTORY_MINUTES, calm=p.symbol in plan.CALM, seed=seed)]
    walk = RandomWalk(SYMBOLS, rate=RATE, seed=seed, start=session_start + 1.0)
    market = InjectedMarket(walk, [Injection.parse(s) for s in plan.INJECTIONS], seed=seed)
    first = plan.first_minute(session_start + 0.5)
    ticks = market.advance(first + 3 * BAR_SECONDS)
    assert {s.start for s in market.started} == {first}
    bars = fold(ticks, started_at=session_start)

    def on(symbol: str) -> list[tuple[int, str]]:
        return [((s.start - first) // BAR_SECONDS + 1, s.name) for s in detect(bars, symbol, history)]

    assert (1, "RSI_OVERSOLD") in on("AAPL") and (2, "Hammer") in on("AAPL")
    assert (1, "Doji") in on("NVDA")
    assert not [a for a in on("AAPL") if a[0] < 1]  # nothing before the shapes start


def test_refuses_too_short_a_history_and_an_end_off_the_minute() -> None:
    past = SymbolPast("X", 100.0, 0.001, 100.0)
    with pytest.raises(ValueError, match="at least 16"):
        history_bars(past, end=END, minutes=15, calm=False, seed=1)
    with pytest.raises(ValueError, match="minute start"):
        history_bars(past, end=END + 1, minutes=60, calm=False, seed=1)
