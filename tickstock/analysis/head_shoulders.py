"""Head-and-shoulders (top) and inverse head-and-shoulders (bottom), detected causally on a stream.

Method (domain.md, "Head-and-shoulders"):

1. Pivots: a percent-reversal zigzag on closes. A swing high becomes a pivot only once a close has
   fallen ``pivot_pct`` below it (a swing low once a close has risen ``pivot_pct`` above it). Confirmed
   pivots never move; the provisional extreme is never used. Closes, not wicks: one stray print in a
   thin minute must not become a shoulder.
2. A ring of the last seven confirmed pivots: E1..E5 (the pattern) and the two before it (Osler's
   prior trend).
3. When a pivot of the right-shoulder kind (a peak for the top) is confirmed, the predicate is tested:
   - Lo, Mamaysky & Wang (2000): E3 > E1 and E3 > E5; E1 and E5 each within ``shoulder_tolerance`` of
     THEIR mean; E2 and E4 each within ``trough_tolerance`` of THEIR OWN mean (not the shoulders').
   - head prominence: E3 at least ``min_head_prominence`` (relative) beyond the higher shoulder.
   - Osler (1998) horizontal symmetry: bars(E1->E3) / bars(E3->E5) within 1/k..k, k =
     ``max_symmetry_ratio``.
   - Osler vertical symmetry (``require_vertical_symmetry``): each shoulder beyond the opposite
     trough (E1 > E4 and E5 > E2 for the top).
   - Osler prior trend (``require_prior_trend``): the pivot of E1's kind before the pattern is lower
     than E1 and the pivot of E2's kind before it is lower than E2 (price rose into the top). With
     fewer than seven pivots seen the rule cannot be checked and the candidate is rejected.
4. A candidate that passes is armed. It is reported exactly once, on the first bar whose close is
   beyond the neckline (the line through E2 and E4, extrapolated in bar counts, so overnight gaps do
   not tilt it). It is dropped without a report if, first, the opposite pivot after E5 is confirmed
   (price turned back by ``pivot_pct`` without breaking) or ``max_break_bars`` bars pass after E5
   (default: the pattern's own width, E1->E5).

Nothing is repainted: a report is final, the pivots it names are confirmed, and the detector never
emits twice for the same E5. The inverse pattern is the exact mirror (every comparison flipped).

Cost: O(1) per bar (the predicate runs once per confirmed pivot, on seven numbers).

Confidence = 0.5 + 0.5 * mean(q_shoulders, q_troughs, q_symmetry), where
q_shoulders = 1 - shoulder_deviation / shoulder_tolerance, q_troughs likewise, and
q_symmetry = 1 - |ln(ratio)| / ln(max_symmetry_ratio) (each term 1.0 when the tolerance is 0 or
the ratio bound is 1, since the rule then only passes exactly). Range 0.5..1.0, never NaN.

``levels`` = (left shoulder, head, right shoulder, neckline at the breaking bar).
``parameters`` = the five pivot prices and their times as ISO-8601 UTC strings (``left_shoulder``,
``left_shoulder_at``, ``left_trough``, ``head``, ``right_trough``, ``right_shoulder`` and ``*_at``;
the inverse says ``left_peak``/``right_peak``), ``neckline``, ``neckline_slope_per_bar``, the measured
``shoulder_deviation``/``trough_deviation``, ``head_prominence``, ``symmetry_ratio``, ``pattern_bars``,
``bars_since_right_shoulder``, and the detector settings.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from tickstock.analysis.base import (
    Component, PatternResult, Result, check_bool, check_float, check_int, unit_interval,
)
from tickstock.messages.bars import Bar
from tickstock.messages.wire import iso_utc

__all__ = ["HeadShoulders", "InverseHeadShoulders", "Pivot", "ZigZag"]

PEAK, TROUGH = 1, -1


@dataclass(frozen=True, slots=True)
class Pivot:
    """A confirmed swing point. ``index`` counts bars seen by the detector (0-based)."""

    kind: int      # PEAK or TROUGH
    price: float
    index: int
    start: int     # the pivot bar's minute start, epoch seconds UTC


class ZigZag:
    """Percent-reversal zigzag. ``update`` returns the pivot confirmed by this price, if any.

    Invariant: the candidate extreme is the most extreme price since the last confirmed pivot, so a
    pivot is confirmed on the first bar that reverses by ``pct`` from it, and that bar's price is the
    opposite extreme so far (every bar in between stayed within ``pct``).
    """

    __slots__ = ("pct", "_direction", "_hi", "_lo")

    def __init__(self, pct: float) -> None:
        self.pct = pct
        self._direction = 0  # 0: no pivot yet; +1: rising, seeking a peak; -1: falling, seeking a trough
        self._hi: tuple[float, int, int] | None = None  # (price, index, start)
        self._lo: tuple[float, int, int] | None = None

    def update(self, price: float, index: int, start: int) -> Pivot | None:
        point = (price, index, start)
        hi, lo = self._hi, self._lo
        if hi is None or lo is None:
            self._hi = self._lo = point
            return None
        if self._direction >= 0 and price > hi[0]:
            self._hi = hi = point
        if self._direction <= 0 and price < lo[0]:
            self._lo = lo = point
        if self._direction >= 0 and price <= hi[0] * (1.0 - self.pct):
            self._direction, self._lo = -1, point
            return Pivot(PEAK, hi[0], hi[1], hi[2])
        if self._direction <= 0 and price >= lo[0] * (1.0 + self.pct):
            self._direction, self._hi = 1, point
            return Pivot(TROUGH, lo[0], lo[1], lo[2])
        return None


@dataclass(frozen=True, slots=True)
class _Armed:
    """A pattern that passed every rule and waits for its neckline break."""

    pivots: tuple[Pivot, ...]   # E1..E5
    deadline: int               # last bar index at which a break still counts
    shoulder_dev: float
    trough_dev: float
    prominence: float
    ratio: float
    confidence: float

    def neckline(self, index: int) -> float:
        e2, e4 = self.pivots[1], self.pivots[3]
        return e2.price + (e4.price - e2.price) * (index - e2.index) / (e4.index - e2.index)


class _ShoulderPattern(Component):
    """Shared engine; ``_sign`` = +1 for the top, -1 for the inverse (all comparisons go through it)."""

    kind = "pattern"
    _sign: ClassVar[int]
    _names: ClassVar[tuple[str, str, str, str, str]]

    def __init__(
        self,
        *,
        pivot_pct: float = 0.005,
        shoulder_tolerance: float = 0.015,
        trough_tolerance: float = 0.015,
        min_head_prominence: float = 0.005,
        max_symmetry_ratio: float = 2.5,
        require_prior_trend: bool = True,
        require_vertical_symmetry: bool = True,
        max_break_bars: int | None = None,
    ) -> None:
        self.pivot_pct = check_float("pivot_pct", pivot_pct, 0.0, 0.5, exclusive_min=True)
        self.shoulder_tolerance = check_float("shoulder_tolerance", shoulder_tolerance, 0.0, 0.5)
        self.trough_tolerance = check_float("trough_tolerance", trough_tolerance, 0.0, 0.5)
        self.min_head_prominence = check_float("min_head_prominence", min_head_prominence, 0.0, 1.0)
        self.max_symmetry_ratio = check_float("max_symmetry_ratio", max_symmetry_ratio, 1.0, 1000.0)
        self.require_prior_trend = check_bool("require_prior_trend", require_prior_trend)
        self.require_vertical_symmetry = check_bool("require_vertical_symmetry", require_vertical_symmetry)
        self.max_break_bars = None if max_break_bars is None else check_int("max_break_bars", max_break_bars, 1)
        # Seven pivots need at least seven bars; 20 keeps a session's first minutes quiet.
        self.min_bars = 20
        self._zigzag = ZigZag(self.pivot_pct)
        self._pivots: deque[Pivot] = deque(maxlen=7)
        self._armed: _Armed | None = None
        self._index = -1

    def params(self) -> dict[str, Any]:
        return {
            "pivot_pct": self.pivot_pct, "shoulder_tolerance": self.shoulder_tolerance,
            "trough_tolerance": self.trough_tolerance, "min_head_prominence": self.min_head_prominence,
            "max_symmetry_ratio": self.max_symmetry_ratio, "require_prior_trend": self.require_prior_trend,
            "require_vertical_symmetry": self.require_vertical_symmetry, "max_break_bars": self.max_break_bars,
        }

    def update(self, bar: Bar) -> list[Result]:
        self._index += 1
        index = self._index
        pivot = self._zigzag.update(bar.close, index, bar.start)
        if pivot is not None:
            self._pivots.append(pivot)
            # A new right-shoulder-kind pivot replaces any candidate; the opposite kind means price
            # turned back by pivot_pct after E5 without breaking the neckline: that candidate failed.
            self._armed = self._evaluate() if pivot.kind == self._sign else None
        armed = self._armed
        if armed is None:
            return []
        if index > armed.deadline:
            self._armed = None
            return []
        neck = armed.neckline(index)
        if self._sign * bar.close >= self._sign * neck:
            return []
        self._armed = None  # reported exactly once
        return [self._result(armed, bar, index, neck)]

    # -- the predicate ---------------------------------------------------------------------------

    def _evaluate(self) -> _Armed | None:
        pivots = self._pivots
        if len(pivots) < (7 if self.require_prior_trend else 5):
            return None
        s = self._sign
        e1, e2, e3, e4, e5 = list(pivots)[-5:]
        p1, p2, p3, p4, p5 = e1.price, e2.price, e3.price, e4.price, e5.price
        # Lo-Mamaysky-Wang: head beyond both shoulders.
        if not (s * p3 > s * p1 and s * p3 > s * p5):
            return None
        shoulder_dev = _deviation_from_mean(p1, p5)
        if shoulder_dev > self.shoulder_tolerance:
            return None
        trough_dev = _deviation_from_mean(p2, p4)  # against the troughs' OWN mean
        if trough_dev > self.trough_tolerance:
            return None
        outer = max(s * p1, s * p5)  # the shoulder nearest the head, in mirrored terms
        prominence = (s * p3 - outer) / abs(outer)
        if prominence < self.min_head_prominence:
            return None
        left, right = e3.index - e1.index, e5.index - e3.index
        ratio = left / right
        k = self.max_symmetry_ratio
        if not (1.0 / k <= ratio <= k):
            return None
        if self.require_vertical_symmetry and not (s * p1 > s * p4 and s * p5 > s * p2):
            return None
        if self.require_prior_trend:
            before_e1, before_e2 = pivots[-7], pivots[-6]  # same kind as E1, same kind as E2
            if not (s * before_e1.price < s * p1 and s * before_e2.price < s * p2):
                return None
        width = e5.index - e1.index
        deadline = e5.index + (self.max_break_bars if self.max_break_bars is not None else width)
        q_shoulders = 1.0 - shoulder_dev / self.shoulder_tolerance if self.shoulder_tolerance > 0 else 1.0
        q_troughs = 1.0 - trough_dev / self.trough_tolerance if self.trough_tolerance > 0 else 1.0
        q_symmetry = 1.0 - abs(math.log(ratio)) / math.log(k) if k > 1.0 else 1.0
        confidence = unit_interval(0.5 + 0.5 * (q_shoulders + q_troughs + q_symmetry) / 3.0)
        return _Armed((e1, e2, e3, e4, e5), deadline, shoulder_dev, trough_dev, prominence, ratio, confidence)

    def _result(self, armed: _Armed, bar: Bar, index: int, neck: float) -> PatternResult:
        e1, e2, e3, e4, e5 = armed.pivots
        slope = (e4.price - e2.price) / (e4.index - e2.index)
        parameters: dict[str, Any] = {}
        for label, pivot in zip(self._names, armed.pivots):
            parameters[label] = pivot.price
            parameters[f"{label}_at"] = iso_utc(pivot.start)
        parameters.update({
            "neckline": neck,
            "neckline_slope_per_bar": slope,
            "shoulder_deviation": armed.shoulder_dev,
            "trough_deviation": armed.trough_dev,
            "head_prominence": armed.prominence,
            "symmetry_ratio": armed.ratio,
            "pattern_bars": e5.index - e1.index,
            "bars_since_right_shoulder": index - e5.index,
            **self.params(),
        })
        if parameters["max_break_bars"] is None:
            del parameters["max_break_bars"]  # keep the JSON free of nulls that mean "default"
        return PatternResult(self.name, armed.confidence, bar, parameters, (e1.price, e3.price, e5.price, neck))


def _deviation_from_mean(a: float, b: float) -> float:
    """max(|a-m|, |b-m|) / |m| with m = (a+b)/2 -- both distances are equal; relative to the mean."""
    m = (a + b) / 2.0
    return abs(a - m) / abs(m)


class HeadShoulders(_ShoulderPattern):
    """Head-and-shoulders top: peaks E1 < E3 > E5, reported when a close falls below the neckline."""

    name = "HeadShoulders"
    _sign = PEAK
    _names = ("left_shoulder", "left_trough", "head", "right_trough", "right_shoulder")


class InverseHeadShoulders(_ShoulderPattern):
    """Inverse head-and-shoulders (bottom): troughs E1 > E3 < E5, reported when a close rises above
    the neckline through the two intervening peaks."""

    name = "InverseHeadShoulders"
    _sign = TROUGH
    _names = ("left_shoulder", "left_peak", "head", "right_peak", "right_shoulder")
