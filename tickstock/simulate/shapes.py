"""Injected shapes: 1-minute bars drawn so that the engine's own detectors fire on them.

A shape is a short run of bars for one symbol, from a minute start, scaled to the symbol's price
when it begins. Each is built against the detectors' written rules (tickstock/analysis) with the
default definitions (config.yaml ``analysis.fallback_definitions`` = the seeded rows), and made to
fire whatever bars the symbol had before -- none at all, or a primed history of ordinary bars:

``doji``  (1 bar)  open == close exactly, a range of ~0.2-0.5 %. CDLDOJI's rule ``body <= 0.1 *
    mean range`` holds for any history (0 <= anything), and a first bar with a range is a doji too.
``hammer`` (2 bars) a down bar falling ``D`` (>= 0.4 %, at least 20 cents) with no lower wick,
    then the hammer: open ``b`` (< D/10) below that low, close == high at the prior low, a lower
    shadow of ``2D``. Every CDLHAMMER rule follows from the first bar alone, whatever came before:
    the prior body mean is >= D/10 > b, the upper shadow is 0 < 0.1 * (a mean range >= D/10), and
    the body's bottom is below the prior low. Hammer on bar 2.
``head_shoulders`` (24 bars) closes through seven swing points three bars apart -- a lower peak
    and trough (Osler's prior trend), left shoulder, trough, head (+1.5 % over the shoulders), an
    equal trough, an equal right shoulder -- then a fall through the flat neckline. Every swing is
    >= 1 % (the zigzag confirms at 0.5 %); the first leg rises 1.5 % so that a history's unconfirmed
    extreme is either overtaken or confirmed before the pattern starts. HeadShoulders fires on bar
    23 (>= 20 bars, its min_bars_required, even with no history).
``rsi_overbought`` (36 bars) a sawtooth, four times over: 3 bars down 0.5 % each, then 6 bars up
    0.7 % each. Each decline pulls RSI(14) down (below 70 from any ordinary history); during a
    rally RSI only rises, and six such bars lift it over 70 from there. RSI_OVERBOUGHT fires in the
    first rally (by bar 9) after a primed history of ordinary bars, and in the third (bar 23; 24
    when cent rounding coarsens a price under ~$12) with no history at all (RSI's first value
    needs 15 bars, so no alert is possible before bar 16).
    A history ending far from the shape's price (a 5-10 % gap) delays it to a later rally.

Guarantee (tested in tests/unit/simulate/test_shapes.py by folding the expanded ticks with the
service's MinuteBarAggregator and running an AnalysisPipeline with the default definitions): each
shape's detection is published by bar ``Shape.fires_by`` with no history, and by
``Shape.fires_by_primed`` after a primed history of random-walk bars ("ordinary": moves per minute
well below the shape's own).

Prices are rounded to cents (the guarantee is tested for start prices from $5 up; the walk starts
at $20-500); every bar has ``low <= open, close <= high``.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.simulate.expand import MAX_TICKS_PER_BAR, expand_bar
from tickstock.simulate.tick import SimTick
from tickstock.simulate.walk import RandomWalk

__all__ = ["SHAPES", "Injection", "InjectedMarket", "Shape", "Started", "shape_bars"]

# (open, high, low, close) as multiples of the start price.
_Ohlc = tuple[float, float, float, float]


@dataclass(frozen=True)
class Shape:
    """A shape's name, the detection it provokes and the bar (1-based) by which it appears."""

    name: str
    expect: str           # what the engine publishes: a pattern name or an alert type
    fires_by: int         # the detection is on or before this bar of the shape, with no history
    fires_by_primed: int  # ... and this one after a primed history of ordinary bars
    bars: int             # length of the shape in bars


def _wick(rng: np.random.Generator, size: float = 0.0006) -> float:
    return abs(float(rng.normal(0.0, size)))


def _bars_from_closes(closes: Sequence[float], rng: np.random.Generator) -> list[_Ohlc]:
    """Bars that open at the previous close (1.0 for the first) with small random wicks."""
    out: list[_Ohlc] = []
    prev = 1.0
    for c in closes:
        o = prev
        out.append((o, max(o, c) + _wick(rng), min(o, c) - _wick(rng), c))
        prev = c
    return out


def _doji(rng: np.random.Generator) -> list[_Ohlc]:
    up, down = 0.001 + 0.0015 * float(rng.random()), 0.001 + 0.0015 * float(rng.random())
    return [(1.0, 1.0 + up, 1.0 - down, 1.0)]


def _legs(points: Sequence[float], per_leg: int) -> list[float]:
    """Closes moving in straight lines from 1.0 through ``points``, ``per_leg`` bars per leg."""
    closes: list[float] = []
    prev = 1.0
    for p in points:
        closes.extend(prev + (p - prev) * (k + 1) / per_leg for k in range(per_leg))
        prev = p
    return closes


# Prior peak, prior trough, left shoulder, left trough, head, right trough, right shoulder.
_HS_PIVOTS = (1.015, 1.005, 1.025, 1.012, 1.040, 1.012, 1.025)
_HS_BREAK = (1.018, 1.008, 1.000)  # E5 confirmed on the first, the neckline (1.012) broken on the second


def _head_shoulders(rng: np.random.Generator) -> list[_Ohlc]:
    return _bars_from_closes(_legs(_HS_PIVOTS, 3) + list(_HS_BREAK), rng)


# A sawtooth: 3 bars down 0.5 % each, 6 bars up 0.7 % each, four times.
_RSI_DOWN, _RSI_DROP = 3, 0.005
_RSI_UP, _RSI_RISE = 6, 0.007
_RSI_CYCLES = 4


def _rsi_overbought(rng: np.random.Generator) -> list[_Ohlc]:
    closes: list[float] = []
    price = 1.0
    for _ in range(_RSI_CYCLES):
        for _ in range(_RSI_DOWN):
            price *= 1.0 - _RSI_DROP
            closes.append(price)
        for _ in range(_RSI_UP):
            price *= 1.0 + _RSI_RISE
            closes.append(price)
    return _bars_from_closes(closes, rng)


SHAPES: dict[str, Shape] = {
    "doji": Shape("doji", "Doji", 1, 1, 1),
    "hammer": Shape("hammer", "Hammer", 2, 2, 2),
    "head_shoulders": Shape("head_shoulders", "HeadShoulders", 23, 23, len(_HS_PIVOTS) * 3 + len(_HS_BREAK)),
    "rsi_overbought": Shape("rsi_overbought", "RSI_OVERBOUGHT", 24, 9, _RSI_CYCLES * (_RSI_DOWN + _RSI_UP)),
}

_RELATIVE: dict[str, Callable[[np.random.Generator], list[_Ohlc]]] = {
    "doji": _doji,
    "head_shoulders": _head_shoulders,
    "rsi_overbought": _rsi_overbought,
}


def _cents(x: float) -> float:
    return max(0.01, round(x, 2))


def _hammer_bars(price: float) -> list[tuple[float, float, float, float]]:
    """Absolute prices (see the module docstring): the setup bar, then the hammer."""
    d = max(_cents(0.004 * price), 0.20)
    b = max(0.01, round(d / 20.0, 2))
    assert 10 * b < d
    p = max(price, d + b + 2 * d + 0.05)  # room below for the hammer's shadow on a cheap stock
    setup = (p, _cents(p + 0.0005 * p), _cents(p - d), _cents(p - d))
    o, c = _cents(p - d - b), _cents(p - d)
    hammer = (o, c, _cents(o - 2 * d), c)
    return [setup, hammer]


def shape_bars(shape: str, symbol: str, start: int, price: float, rng: np.random.Generator,
               volumes: Sequence[int] | None = None) -> list[Bar]:
    """The bars of ``shape`` for ``symbol`` from the minute ``start``, at ``price`` (rounded to cents).

    ``volumes`` (one per bar) default to 0. KeyError naming the known shapes for an unknown one."""
    if shape not in SHAPES:
        raise KeyError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")
    if start % BAR_SECONDS:
        raise ValueError(f"a shape starts on a minute, got {start}")
    if shape == "hammer":
        absolute = _hammer_bars(price)
    else:
        absolute = []
        for o, h, l, c in _RELATIVE[shape](rng):
            o, c = _cents(o * price), _cents(c * price)
            absolute.append((o, max(_cents(h * price), o, c), min(_cents(l * price), o, c), c))
    vols = list(volumes) if volumes is not None else [0] * len(absolute)
    if len(vols) != len(absolute):
        raise ValueError(f"{shape} has {len(absolute)} bars, got {len(vols)} volumes")
    return [Bar(symbol, start + BAR_SECONDS * i, o, h, l, c, int(v))
            for i, ((o, h, l, c), v) in enumerate(zip(absolute, vols))]


@dataclass(frozen=True)
class Injection:
    """``SYMBOL:SHAPE`` from the command line."""

    symbol: str
    shape: str

    @classmethod
    def parse(cls, text: str) -> Injection:
        """``"NVDA:doji"`` -> Injection("NVDA", "doji"); ValueError naming the problem otherwise."""
        symbol, sep, shape = text.partition(":")
        symbol, shape = symbol.strip().upper(), shape.strip().lower()
        if not sep or not symbol or not shape:
            raise ValueError(f"injection {text!r} is not SYMBOL:SHAPE, e.g. NVDA:doji")
        if shape not in SHAPES:
            raise ValueError(f"injection {text!r}: unknown shape {shape!r} (known: {', '.join(SHAPES)})")
        return cls(symbol, shape)


@dataclass(frozen=True)
class Started:
    """A shape that began: its symbol, name, first minute and bars."""

    symbol: str
    shape: str
    start: int
    bars: tuple[Bar, ...]


@dataclass
class _Running:
    shape: Shape
    bars: list[Bar]
    ticks: list[SimTick]
    next_tick: int
    end: int  # minute after the shape's last bar


class InjectedMarket:
    """A ``RandomWalk`` in which the injected symbols' ticks follow their shapes.

    Guarantees:
    - Each symbol's injections run one after another in the order given, the first from the first
      minute boundary at or after the walk's cursor; with ``every_minutes`` the sequence starts
      again that many minutes after it ended (else it runs once).
    - While a shape runs (from its first minute's start to its last minute's end) the symbol's
      walk ticks are replaced by ticks expanded from the shape's bars (``expand_bar``: they
      re-aggregate exactly to those bars), as many a minute as the walk gives the symbol on average
      then (at least 6); afterwards the walk continues from the shape's last close. Other symbols
      are untouched.
    - ``advance`` has the walk's contract (every tick before ``until`` once, in time order) and is
      as deterministic as the walk: the shapes draw from a generator of their own, seeded by the
      seed and the symbol.
    - ``on_event(text)`` is called once when a shape starts (naming the detection to expect and the
      bar it is due by) and once when it ends.
    """

    def __init__(
        self,
        walk: RandomWalk,
        injections: Sequence[Injection],
        *,
        seed: int,
        every_minutes: int | None = None,
        on_event: Callable[[str], None] = lambda text: None,
    ) -> None:
        unknown = sorted({i.symbol for i in injections} - set(walk.symbols))
        if unknown:
            raise ValueError(f"injected symbol(s) not in the simulated universe: {', '.join(unknown)}")
        if every_minutes is not None and every_minutes < 1:
            raise ValueError("every_minutes must be >= 1 (or None: once)")
        self.walk = walk
        self.every_minutes = every_minutes
        self.on_event = on_event
        self._plans: dict[str, list[Shape]] = {}
        for inj in injections:
            self._plans.setdefault(inj.symbol, []).append(SHAPES[inj.shape])
        self._rngs = {s: np.random.default_rng([seed, zlib.crc32(s.encode())]) for s in self._plans}
        first = int(math.ceil(walk.cursor / BAR_SECONDS)) * BAR_SECONDS
        self._position = {s: 0 for s in self._plans}     # index of the next shape in the plan
        self._next_start: dict[str, int | None] = {s: first for s in self._plans}
        self._running: dict[str, _Running] = {}
        self.started: list[Started] = []                 # in start order

    def advance(self, until: float) -> list[SimTick]:
        """Every tick (walk and shapes) with ``timestamp < until`` not returned before, in time order."""
        out: list[SimTick] = []
        while True:
            boundary = self._next_boundary()
            if boundary is None or boundary >= until:
                break
            out.extend(self._walk_ticks(boundary))
            self._shape_ticks(boundary, out)
            self._at_boundary(boundary)
        out.extend(self._walk_ticks(until))
        self._shape_ticks(until, out)
        out.sort()
        return out

    # -- internals ------------------------------------------------------------------------------

    def _next_boundary(self) -> int | None:
        times = [r.end for r in self._running.values()]
        times += [t for s, t in self._next_start.items() if t is not None and s not in self._running]
        return min(times) if times else None

    def _shape_ticks(self, until: float, out: list[SimTick]) -> None:
        for run in self._running.values():
            ticks, i = run.ticks, run.next_tick
            while i < len(ticks) and ticks[i].timestamp < until:
                out.append(ticks[i])
                i += 1
            run.next_tick = i

    def _walk_ticks(self, until: float) -> list[SimTick]:
        ticks = self.walk.advance(until)
        if not self._running:
            return ticks
        return [t for t in ticks if t.symbol not in self._running]

    def _at_boundary(self, t: int) -> None:
        for symbol in [s for s, r in self._running.items() if r.end == t]:
            run = self._running.pop(symbol)
            self.walk.set_price(symbol, run.bars[-1].close)
            self.on_event(f"{symbol}: {run.shape.name} ended; the walk continues from {run.bars[-1].close:.2f}")
            self._schedule_next(symbol, t)
        for symbol, start in list(self._next_start.items()):
            if start == t and symbol not in self._running:
                self._start(symbol, t)

    def _schedule_next(self, symbol: str, end: int) -> None:
        plan = self._plans[symbol]
        self._position[symbol] += 1
        if self._position[symbol] < len(plan):
            self._next_start[symbol] = end
        elif self.every_minutes is not None:
            self._position[symbol] = 0
            self._next_start[symbol] = end + self.every_minutes * BAR_SECONDS
        else:
            self._next_start[symbol] = None

    def _start(self, symbol: str, start: int) -> None:
        shape = self._plans[symbol][self._position[symbol]]
        rng = self._rngs[symbol]
        # As many ticks a minute as the walk would have given the symbol then (at least 6).
        rate = self.walk.symbol_rate(symbol)
        per_bar = [max(6, min(MAX_TICKS_PER_BAR, round(rate * self.walk.activity.at(start + BAR_SECONDS * (i + 0.5))
                                                           * BAR_SECONDS)))
                   for i in range(shape.bars)]
        sizes = [self.walk.sizes.sample(rng, n).tolist() for n in per_bar]
        bars = shape_bars(shape.name, symbol, start, self.walk.price(symbol), rng, [sum(v) for v in sizes])
        ticks = [tick for bar, vols in zip(bars, sizes) for tick in expand_bar(bar, rng=rng, volumes=vols)]
        self._running[symbol] = _Running(shape, bars, ticks, 0, start + BAR_SECONDS * len(bars))
        self._next_start[symbol] = None
        self.started.append(Started(symbol, shape.name, start, tuple(bars)))
        due = start + BAR_SECONDS * (shape.fires_by - 1)
        self.on_event(f"{symbol}: {shape.name} from {_hhmm(start)}; expect {shape.expect} "
                      f"by the {_hhmm(due)} bar ({shape.bars} bar{'s' if shape.bars > 1 else ''})")


def _hhmm(t: int) -> str:
    return time.strftime("%H:%M", time.gmtime(t)) + "Z"
