"""Single-candle patterns with TA-Lib's exact semantics (default candle settings): Doji, Hammer.

Parity guarantee: fed the same bars from the same first bar, ``Doji`` detects exactly where
``talib.CDLDOJI`` is non-zero at every index >= 10, and ``Hammer`` exactly where ``talib.CDLHAMMER``
is non-zero at every index >= 11 -- bit for bit, including ties and float drift, because the running
totals are kept with the same floating-point operations in the same order as TA-Lib's C code.

Warm-up (the part TA-Lib leaves undefined): TA-Lib cannot judge a session's first 10/11 bars at all.
These detectors judge them with the same rules applied to the prior bars that exist (the mean over
1..9 bars instead of 10), so a Doji can be reported on a session's very first bar. Priming with the
previous session's bars (the pipeline's ``prime``) makes even those first bars TA-Lib-exact.
"""

from __future__ import annotations

from collections import deque

from tickstock.analysis.base import Component, PatternResult, Result, unit_interval
from tickstock.messages.bars import Bar

__all__ = ["Doji", "Hammer"]

# TA-Lib default candle settings (ta_global.c): (average period, factor); all HighLow or RealBody
# range types, so TA_CANDLEAVERAGE's "/ 2.0 for Shadows" never applies here.
_BODY_DOJI_PERIOD, _BODY_DOJI_FACTOR = 10, 0.1          # BodyDoji: HighLow range
_BODY_SHORT_PERIOD, _BODY_SHORT_FACTOR = 10, 1.0        # BodyShort: RealBody
_SHADOW_VSHORT_PERIOD, _SHADOW_VSHORT_FACTOR = 10, 0.1  # ShadowVeryShort: HighLow
_NEAR_PERIOD, _NEAR_FACTOR = 5, 0.2                     # Near: HighLow
# ShadowLong (RealBody, period 0, factor 1.0): period 0 means "this candle's own body", so the
# long-lower-shadow rule is simply lower > 1.0 * body.

DOJI_LOOKBACK = 10    # talib.CDLDOJI's first defined index
HAMMER_LOOKBACK = 11  # talib.CDLHAMMER's first defined index


class _PriorMean:
    """Mean of the last ``period`` values pushed, with TA-Lib's exact running-total arithmetic.

    TA-Lib seeds a candle-average total by summing its first full window left to right, then slides
    it with ``total += new - oldest`` (the difference computed first). The slide accumulates rounding
    error; matching TA-Lib bit for bit means accumulating the *same* error, so the total is re-summed
    left to right at exactly the push TA-Lib seeds at (``seed_at``) and slid TA-Lib's way after it.
    Before that (warm-up) the mean is over the values available, re-summed each push: O(period), and
    only for the first ``seed_at`` bars. O(1) per push afterwards.
    """

    __slots__ = ("seed_at", "_window", "_total", "_pushed")

    def __init__(self, period: int, seed_at: int) -> None:
        assert seed_at >= period  # TA-Lib's window is full when it seeds
        self.seed_at = seed_at
        self._window: deque[float] = deque(maxlen=period)
        self._total = 0.0
        self._pushed = 0

    def __len__(self) -> int:
        return len(self._window)

    def mean(self) -> float:
        """Mean of the window; only call when ``len(self) > 0``. Same rounding as TA-Lib's SUM/period."""
        return self._total / len(self._window)

    def push(self, x: float) -> None:
        self._pushed += 1
        if self._pushed > self.seed_at:
            self._total += x - self._window[0]
            self._window.append(x)  # evicts the value just subtracted
            return
        self._window.append(x)
        total = 0.0
        for v in self._window:  # explicit loop: left to right, like C (sum() may compensate in 3.12+)
            total += v
        self._total = total


class Doji(Component):
    """TA-Lib CDLDOJI: ``|C-O| <= 0.1 * mean(H-L over the 10 prior bars)``.

    Warm-up: with 1..9 prior bars the mean is over those bars. With no prior bar at all (a pipeline's
    very first bar) the bar's own range is the reference: ``|C-O| <= 0.1 * (H-L)`` and ``H-L > 0``.
    Decision on zero ranges: a first bar with H == L (one traded price, no shape) is NOT a doji -- there
    is nothing to judge it against. With prior bars TA-Lib's rule applies as is: a zero-body bar is a
    doji even when the reference mean range is 0 (0 <= 0), because that is what TA-Lib reports once 10
    prior bars exist, and the warm-up rule is the same rule over fewer bars.

    Confidence = 0.5 + 0.5 * (1 - body / threshold): 1.0 for a body of exactly 0, 0.5 at the
    threshold. When the threshold is 0 (every reference bar flat; only a zero body qualifies) the
    confidence is 0.5: such a "doji" says nothing about indecision, so it should not rank high.

    ``parameters``: body, range, avg_range, threshold, bars_in_average (0 = own range used).
    """

    name = "Doji"
    kind = "pattern"

    def __init__(self) -> None:
        self.min_bars = 1
        self.warmup = DOJI_LOOKBACK  # the average's window, seeded at exactly this push
        self._ranges = _PriorMean(_BODY_DOJI_PERIOD, seed_at=DOJI_LOOKBACK)

    def update(self, bar: Bar) -> list[Result]:
        body = abs(bar.close - bar.open)
        rng = bar.high - bar.low
        n = len(self._ranges)
        if n:
            avg = self._ranges.mean()
            threshold = _BODY_DOJI_FACTOR * avg
            hit = body <= threshold
        else:
            avg = rng
            threshold = _BODY_DOJI_FACTOR * rng
            hit = rng > 0.0 and body <= threshold
        self._ranges.push(rng)  # after the test: the average excludes the current bar, as in TA-Lib
        if not hit:
            return []
        confidence = 0.5 + 0.5 * (1.0 - body / threshold) if threshold > 0.0 else 0.5
        return [PatternResult(self.name, unit_interval(confidence), bar, {
            "body": body, "range": rng, "avg_range": avg, "threshold": threshold, "bars_in_average": n,
        })]


class Hammer(Component):
    """TA-Lib CDLHAMMER, all four rules (i = this bar):

    1. small body:     body[i] < 1.0 * mean(body, 10 prior bars)
    2. long lower:     lower[i] > body[i]           (ShadowLong: period 0 = the bar's own body)
    3. tiny upper:     upper[i] < 0.1 * mean(H-L, 10 prior bars)
    4. near the lows:  min(O,C)[i] <= L[i-1] + 0.2 * mean(H-L over the 5 bars before i-1)

    Like TA-Lib it does not check for a prior downtrend. ``min_bars`` is 2 (rule 4 needs bar i-1).
    Warm-up: means over the prior bars available; when bar i-1 has no bar before it, rule 4 uses bar
    i-1's own range (TA-Lib's convention for a zero-length average).

    Confidence = 0.5 + 0.5 * mean(1 - body/avg_body, 1 - body/lower, 1 - upper/upper_threshold):
    each term is the share of its rule's margin that is used, 1.0 for a bodiless hammer without an
    upper shadow, approaching 0.5 as the rules become barely true. Every denominator is > 0 whenever
    the rules hold, so the value is always finite.

    ``parameters``: body, lower_shadow, upper_shadow, avg_body, upper_threshold, near_threshold,
    prior_low, bars_in_average.
    """

    name = "Hammer"
    kind = "pattern"

    def __init__(self) -> None:
        self.min_bars = 2
        self.warmup = HAMMER_LOOKBACK + 1  # every average seeded, and the previous bar
        self._bodies = _PriorMean(_BODY_SHORT_PERIOD, seed_at=HAMMER_LOOKBACK)
        self._ranges = _PriorMean(_SHADOW_VSHORT_PERIOD, seed_at=HAMMER_LOOKBACK)
        # Ranges of the bars before i-1: bar j's range is pushed while bar j+1 is processed, so at
        # bar 11 this holds bars 5..9 after 10 pushes -- where TA-Lib seeds NearPeriodTotal.
        self._near = _PriorMean(_NEAR_PERIOD, seed_at=HAMMER_LOOKBACK - 1)
        self._prev: Bar | None = None

    def update(self, bar: Bar) -> list[Result]:
        o, h, l, c = bar.open, bar.high, bar.low, bar.close
        body = abs(c - o)
        rng = h - l
        prev = self._prev
        if prev is None:
            self._bodies.push(body)
            self._ranges.push(rng)
            self._prev = bar
            return []
        upper = h - (c if c >= o else o)
        lower = (o if c >= o else c) - l
        prev_range = prev.high - prev.low
        avg_body = _BODY_SHORT_FACTOR * self._bodies.mean()
        upper_threshold = _SHADOW_VSHORT_FACTOR * self._ranges.mean()
        near = _NEAR_FACTOR * (self._near.mean() if len(self._near) else prev_range)
        hit = (
            body < avg_body
            and lower > body
            and upper < upper_threshold
            and min(c, o) <= prev.low + near
        )
        n = len(self._bodies)
        # Slide after the test, as TA-Lib does ("compare with the previous candles").
        self._bodies.push(body)
        self._ranges.push(rng)
        self._near.push(prev_range)
        self._prev = bar
        if not hit:
            return []
        confidence = 0.5 + 0.5 * ((1.0 - body / avg_body) + (1.0 - body / lower)
                                  + (1.0 - upper / upper_threshold)) / 3.0
        return [PatternResult(self.name, unit_interval(confidence), bar, {
            "body": body, "lower_shadow": lower, "upper_shadow": upper, "avg_body": avg_body,
            "upper_threshold": upper_threshold, "near_threshold": near, "prior_low": prev.low,
            "bars_in_average": n,
        })]
