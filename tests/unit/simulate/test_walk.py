"""The random walk: determinism, event-time contract, the intraday U-shape from the NYSE calendar,
heavy-tailed trade sizes in lots, volatility as configured."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from tickstock.market.calendar import MarketCalendar
from tickstock.simulate.activity import IntradayActivity
from tickstock.simulate.walk import SESSION_SECONDS_PER_YEAR, RandomWalk, TradeSizes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # exchange_calendars on pandas 3

T0 = 1_760_000_017.0


def utc(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


@pytest.fixture(scope="module")
def activity() -> IntradayActivity:
    return IntradayActivity(MarketCalendar(utc("2026-03-10T12:00:00+00:00")))


def walk(seed: int = 7, **kw) -> RandomWalk:
    kw.setdefault("rate", 20.0)
    kw.setdefault("start", T0)
    return RandomWalk(kw.pop("symbols", ["AAPL", "MSFT", "NVDA"]), seed=seed, **kw)


# -- determinism and the event-time contract ------------------------------------------------------

def test_same_seed_same_ticks_other_seed_other_ticks() -> None:
    a, b, c = walk(7).advance(T0 + 120), walk(7).advance(T0 + 120), walk(8).advance(T0 + 120)
    assert a == b
    assert a != c


def test_how_time_is_stepped_changes_nothing() -> None:
    whole = walk().advance(T0 + 300)
    w, rng, got, t = walk(), np.random.default_rng(1), [], T0
    while t < T0 + 300:
        t = min(T0 + 300, t + float(rng.exponential(3.0)))
        got += w.advance(t)
    assert got == whole


def test_each_tick_once_in_time_order_inside_the_interval() -> None:
    w = walk()
    first, second = w.advance(T0 + 60), w.advance(T0 + 120)
    assert first == sorted(first) and second == sorted(second)
    assert all(T0 <= t.timestamp < T0 + 60 for t in first)
    assert all(T0 + 60 <= t.timestamp < T0 + 120 for t in second)
    assert w.advance(T0 + 120) == [] and w.cursor == T0 + 120


def test_rate_is_the_average_ticks_per_second() -> None:
    ticks = walk(rate=50.0).advance(T0 + 600)
    assert len(ticks) == pytest.approx(50.0 * 600, rel=0.03)  # Poisson: sd ~0.6 %


def test_prices_are_cents_and_positive_sizes_whole_lots() -> None:
    ticks = walk().advance(T0 + 600)
    assert all(t.price > 0 and round(t.price, 2) == t.price for t in ticks)
    assert all(t.volume > 0 and t.volume % 100 == 0 for t in ticks)
    assert {t.symbol for t in ticks} == {"AAPL", "MSFT", "NVDA"}


def test_set_price_is_where_the_symbol_continues() -> None:
    w = walk(rate=30.0)
    w.advance(T0 + 10)
    w.set_price("NVDA", 1000.0)
    nxt = next(t for t in w.advance(T0 + 60) if t.symbol == "NVDA")
    assert abs(nxt.price / 1000.0 - 1) < 0.005
    assert w.price("NVDA") == pytest.approx(w.price("NVDA"))
    with pytest.raises(ValueError):
        w.set_price("NVDA", float("nan"))


def test_given_start_prices_are_used() -> None:
    w = walk(prices={"AAPL": 250.0})
    assert w.price("AAPL") == 250.0


def test_bad_arguments_are_refused() -> None:
    for kw in ({"symbols": []}, {"symbols": ["A", "A"]}, {"rate": 0.0}, {"rate": math.inf},
               {"volatility": -1.0}, {"prices": {"AAPL": -1.0}}):
        with pytest.raises(ValueError):
            walk(**kw)


# -- volatility ------------------------------------------------------------------------------------

def test_volatility_per_session_second_is_as_configured() -> None:
    """One symbol at a flat rate: the realised volatility of 1-minute log returns over a session's
    worth of event time matches the symbol's volatility (its draw around ``volatility``)."""
    w = RandomWalk(["ZZZ"], rate=5.0, seed=3, start=T0, volatility=0.3, prices={"ZZZ": 5000.0})
    closes = []
    for m in range(1, 2 * 390 + 1):
        ticks = w.advance(T0 + 60 * m)
        if ticks:
            closes.append(ticks[-1].price)
    returns = np.diff(np.log(closes))
    realised = float(np.std(returns)) * math.sqrt(SESSION_SECONDS_PER_YEAR / 60)
    assert realised == pytest.approx(w.volatility("ZZZ"), rel=0.1)
    assert 0.3 / 2 < w.volatility("ZZZ") < 0.3 * 2


# -- trade sizes -----------------------------------------------------------------------------------

def hill(sample: np.ndarray, k: int) -> float:
    """Hill's estimator of the tail index from the k largest values."""
    top = np.sort(sample)[-(k + 1):]
    return 1.0 / float(np.mean(np.log(top[1:] / top[0])))


def test_trade_sizes_have_a_pareto_tail_in_whole_lots() -> None:
    sizes = TradeSizes(lot=100, alpha=1.5).sample(np.random.default_rng(0), 400_000)
    assert sizes.min() == 100 and np.all(sizes % 100 == 0)
    assert hill(sizes, 2000) == pytest.approx(1.5, abs=0.15)
    # Heavy tail in plain words: the largest 1 % of trades carry a large share of the volume
    # (a thin-tailed size such as an exponential gives ~5 %).
    top = np.sort(sizes)[-len(sizes) // 100:]
    assert top.sum() / sizes.sum() > 0.15
    assert np.median(sizes) <= 200


def test_sizes_are_capped() -> None:
    sizes = TradeSizes(alpha=0.5, maximum=10_000).sample(np.random.default_rng(0), 10_000)
    assert sizes.max() == 10_000


# -- the intraday shape ----------------------------------------------------------------------------

def counts(ticks, start: float, minutes: int) -> int:
    return sum(1 for t in ticks if start <= t.timestamp < start + 60 * minutes)


def test_activity_averages_one_over_a_session() -> None:
    shape = IntradayActivity(None).shape  # the curve itself; the calendar only places it
    grid = np.linspace(0.0, 1.0, 20_001)
    assert float(np.mean([shape(u) for u in grid])) == pytest.approx(1.0, abs=1e-3)
    assert shape(0.0) > 2.4 and shape(1.0) > 1.8 and shape(0.5) < 0.9


def test_more_trades_at_the_open_and_the_close(activity: IntradayActivity) -> None:
    """2026-03-10 (New York on daylight time: 09:30-16:00 = 13:30-20:00Z), a whole session."""
    open_, close = utc("2026-03-10T13:30:00+00:00"), utc("2026-03-10T20:00:00+00:00")
    ticks = RandomWalk(["AAPL", "MSFT"], rate=4.0, seed=1, start=open_, activity=activity).advance(close)
    assert len(ticks) == pytest.approx(4.0 * (close - open_), rel=0.03)  # the session's average
    first = counts(ticks, open_, 15)
    midday = counts(ticks, utc("2026-03-10T16:00:00+00:00"), 15)
    last = counts(ticks, close - 900, 15)
    assert first > 1.8 * midday
    assert last > 1.4 * midday


def test_an_early_close_moves_the_closing_burst() -> None:
    """2026-11-27 closes at 13:00 New York (18:00Z): the burst is before that, not before 16:00."""
    cal = IntradayActivity(MarketCalendar(utc("2026-11-27T12:00:00+00:00")))
    assert cal.at(utc("2026-11-27T17:59:00+00:00")) > 1.8
    assert cal.at(utc("2026-11-27T16:30:00+00:00")) < 1.0
    assert cal.at(utc("2026-11-27T20:59:00+00:00")) == 1.0  # after the close: the average


def test_outside_a_session_the_rate_is_the_average(activity: IntradayActivity) -> None:
    saturday = utc("2026-03-14T15:00:00+00:00")
    assert activity.at(saturday) == 1.0
    ticks = RandomWalk(["AAPL"], rate=10.0, seed=1, start=saturday, activity=activity).advance(saturday + 600)
    assert len(ticks) == pytest.approx(6000, rel=0.05)


def test_bad_activity_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        IntradayActivity(None, decay=0.0)
    with pytest.raises(ValueError):
        IntradayActivity(None, open_boost=-1.0)
