"""Injected shapes fire the engine's own detectors: the injected ticks are folded into bars by the
service's MinuteBarAggregator and analysed by an AnalysisPipeline with the default definitions
(tests/unit/simulate/engine.py), with no history and after a primed history of walk bars; a
plain walk over the same minutes, same seed, does not produce the detection (the control)."""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickstock.messages.bars import BAR_SECONDS
from tickstock.simulate.shapes import SHAPES, InjectedMarket, Injection, shape_bars
from tickstock.simulate.walk import RandomWalk

from .engine import detect, fold

T0 = 1_760_000_000 + 17.0   # mid-minute: the injection starts at the next minute
SYMBOLS = ["NVDA", "AAPL", "MSFT"]
SEEDS = (1, 4, 11)  # seeds whose plain walk has none of the four in the window (the control)
RATE = 4.0


def _bar_index(start: int, inj_start: int) -> int:
    return (start - inj_start) // BAR_SECONDS + 1


@functools.lru_cache(maxsize=None)
def _history(seed: int, minutes: int) -> tuple[list, RandomWalk]:
    walk = RandomWalk(SYMBOLS, rate=RATE, seed=seed, start=T0 - 60 * minutes)
    return (fold(walk.advance(T0)) if minutes else []), walk


def _run(shape: str | None, seed: int, history_minutes: int, extra_minutes: int = 2):
    """(history bars, live bars, injection start) for NVDA: the walk from ``history_minutes``
    before T0, a session starting at T0, the injection (if any) from the next minute."""
    history, walk = _history(seed, history_minutes)
    walk = copy.deepcopy(walk)  # the cached walk stays at T0
    market = InjectedMarket(walk, [Injection("NVDA", shape)] if shape else [], seed=seed)
    inj_start = int(math.ceil(T0 / 60) * 60)
    length = SHAPES[shape].bars if shape else 36
    ticks = market.advance(inj_start + 60 * (length + extra_minutes))
    if shape:
        assert market.started[0].start == inj_start
    return history, fold(ticks, started_at=T0), inj_start


@functools.lru_cache(maxsize=None)
def _plain_detections(seed: int, primed: bool) -> tuple[list, int]:
    history, bars, inj_start = _run(None, seed, 200 if primed else 0)
    return detect(bars, "NVDA", history), inj_start


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("primed", [False, True], ids=["no-history", "primed-200-bars"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_injected_shape_fires_the_engines_detector(shape: str, primed: bool, seed: int) -> None:
    spec = SHAPES[shape]
    history, bars, inj_start = _run(shape, seed, 200 if primed else 0)
    seen = detect(bars, "NVDA", history)
    hits = [_bar_index(s.start, inj_start) for s in seen if s.name == spec.expect and s.start >= inj_start]
    assert hits, f"{spec.expect} never published for {shape} (seen: {seen})"
    limit = spec.fires_by_primed if primed else spec.fires_by
    assert hits[0] <= limit, f"{spec.expect} on bar {hits[0]}, promised by bar {limit}"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("primed", [False, True], ids=["no-history", "primed-200-bars"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_control_a_plain_walk_does_not_produce_it(shape: str, primed: bool, seed: int) -> None:
    """Same seed, same minutes, no injection: the detection is not there -- the shape made it."""
    spec = SHAPES[shape]
    limit = spec.fires_by_primed if primed else spec.fires_by
    seen, inj_start = _plain_detections(seed, primed)
    window = range(inj_start, inj_start + 60 * limit)
    assert not [s for s in seen if s.name == spec.expect and s.start in window]


def test_the_other_symbols_are_the_plain_walk() -> None:
    _, injected, _ = _run("head_shoulders", 3, 0)
    _, plain, _ = _run(None, 3, 0)
    others = lambda bars: [b for b in bars if b.symbol != "NVDA"]  # noqa: E731
    assert others(injected) == others(plain)[: len(others(injected))]
    assert others(injected)


def test_the_shapes_ticks_re_aggregate_to_exactly_its_bars() -> None:
    walk = RandomWalk(SYMBOLS, rate=RATE, seed=5, start=T0)
    market = InjectedMarket(walk, [Injection("NVDA", "hammer"), Injection("NVDA", "doji")], seed=5)
    bars = fold(market.advance(T0 + 60 * 6), started_at=T0)
    for started in market.started:
        got = [(b.start, b.open, b.high, b.low, b.close, b.volume) for b in bars
               if b.symbol == "NVDA" and started.start <= b.start < started.start + 60 * len(started.bars)]
        assert got == [(b.start, b.open, b.high, b.low, b.close, b.volume) for b in started.bars]
        assert all(b.volume > 0 for b in started.bars)


def test_a_shape_trades_as_often_as_the_walk_would() -> None:
    """The injected symbol keeps its rate (and the run its --rate): its walk average per minute."""
    walk = RandomWalk(SYMBOLS, rate=30.0, seed=5, start=T0)
    market = InjectedMarket(walk, [Injection("NVDA", "head_shoulders")], seed=5)
    first = int(math.ceil(T0 / 60) * 60)
    ticks = market.advance(first + 60 * 24)
    per_minute = sum(1 for t in ticks if t.symbol == "NVDA" and t.timestamp >= first) / 24
    assert per_minute == pytest.approx(walk.symbol_rate("NVDA") * 60, rel=0.02)


def test_injections_of_one_symbol_run_in_order_from_the_next_minute_then_the_walk_resumes() -> None:
    events: list[str] = []
    walk = RandomWalk(SYMBOLS, rate=RATE, seed=5, start=T0)
    market = InjectedMarket(walk, [Injection("NVDA", "doji"), Injection("NVDA", "hammer"),
                                   Injection("AAPL", "doji")], seed=5, on_event=events.append)
    ticks = market.advance(T0 + 60 * 10)
    first = int(math.ceil(T0 / 60) * 60)
    assert [(s.symbol, s.shape, s.start) for s in market.started] == [
        ("NVDA", "doji", first), ("AAPL", "doji", first), ("NVDA", "hammer", first + 60)]
    assert len(events) == 6 and "expect Doji" in events[0] and "ended" in events[-1]
    # After the hammer (ends first + 180) NVDA walks on from the hammer's close.
    hammer_close = market.started[2].bars[-1].close
    after = [t for t in ticks if t.symbol == "NVDA" and t.timestamp >= first + 180]
    assert after and abs(after[0].price / hammer_close - 1) < 0.01


def test_a_minute_start_is_the_next_boundary_itself() -> None:
    start = 1_760_000_040.0
    market = InjectedMarket(RandomWalk(SYMBOLS, rate=RATE, seed=1, start=start), [Injection("NVDA", "doji")], seed=1)
    market.advance(start + 1)
    assert market.started[0].start == start


def test_every_minutes_repeats_the_sequence_after_it_ended() -> None:
    walk = RandomWalk(SYMBOLS, rate=RATE, seed=2, start=T0)
    market = InjectedMarket(walk, [Injection("NVDA", "hammer")], seed=2, every_minutes=3)
    market.advance(T0 + 60 * 13)
    starts = [s.start for s in market.started]
    first = int(math.ceil(T0 / 60) * 60)
    assert starts == [first, first + 60 * 5, first + 60 * 10]  # 2 bars, 3 minutes' pause, again


def test_once_by_default() -> None:
    market = InjectedMarket(RandomWalk(SYMBOLS, rate=RATE, seed=2, start=T0), [Injection("NVDA", "doji")], seed=2)
    market.advance(T0 + 600)
    assert len(market.started) == 1


def test_deterministic_and_independent_of_how_time_is_stepped() -> None:
    def build():
        return InjectedMarket(RandomWalk(SYMBOLS, rate=RATE, seed=9, start=T0),
                              [Injection("NVDA", "rsi_overbought"), Injection("MSFT", "doji")], seed=9)
    whole = build().advance(T0 + 60 * 40)
    stepped_market = build()
    rng = np.random.default_rng(0)
    stepped, t = [], T0
    while t < T0 + 60 * 40:
        t = min(T0 + 60 * 40, t + float(rng.uniform(0.01, 40)))
        stepped += stepped_market.advance(t)
    assert stepped == whole
    assert whole == sorted(whole)


def test_bad_injections_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="not in the simulated universe: TSLA"):
        InjectedMarket(RandomWalk(SYMBOLS, rate=1, seed=1, start=T0), [Injection("TSLA", "doji")], seed=1)
    with pytest.raises(ValueError, match="unknown shape 'triangle'"):
        Injection.parse("NVDA:triangle")
    with pytest.raises(ValueError, match="SYMBOL:SHAPE"):
        Injection.parse("NVDA")
    assert Injection.parse(" nvda : Doji ") == Injection("NVDA", "doji")


# -- the bars alone, over price levels ------------------------------------------------------------

@settings(database=None, deadline=None, max_examples=60)
@given(price=st.floats(min_value=5.0, max_value=5000.0), seed=st.integers(0, 2**32 - 1),
       shape=st.sampled_from(list(SHAPES)))
def test_shape_bars_fire_at_any_price_level(price: float, seed: int, shape: str) -> None:
    """Rounded to cents at any price from $5 to $5000, the bars are well-formed and still fire."""
    spec = SHAPES[shape]
    start = 1_760_000_040
    bars = shape_bars(shape, "NVDA", start, round(price, 2), np.random.default_rng(seed), [100] * spec.bars)
    assert [b.start for b in bars] == [start + 60 * i for i in range(spec.bars)]
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    hits = [s for s in detect(bars, "NVDA") if s.name == spec.expect]
    assert hits and _bar_index(hits[0].start, start) <= spec.fires_by


def test_shape_bars_refuse_unknown_shapes_and_off_minute_starts() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(KeyError, match="unknown shape"):
        shape_bars("wedge", "NVDA", 1_760_000_040, 100.0, rng)
    with pytest.raises(ValueError, match="starts on a minute"):
        shape_bars("doji", "NVDA", 1_760_000_041, 100.0, rng)
