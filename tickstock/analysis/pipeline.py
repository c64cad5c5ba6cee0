"""AnalysisPipeline: every configured component for ONE symbol, fed that symbol's closed bars.

Guarantees:

- Fresh component instances per pipeline (components hold per-symbol state).
- ``prime(bars)`` feeds history (e.g. the previous session's last 200 bars) through every component
  and returns nothing: RSI seeding, candle averages and the RSI crossing state end up as if those
  bars had been live, but no result or alert from them is ever published. Each component is fed
  only its ``warmup`` trailing bars when it declares them (the bars its state depends on; every bar
  otherwise), one component at a time: a 10,000-symbol start primes in seconds, not half a minute.
- Gating is per component: a component's results are published once the pipeline has seen at least
  its definition's ``min_bars_required`` bars (primed ones included), or the component's own
  ``min_bars`` when the definition leaves it NULL. No component waits for another's count, so a Doji
  can be published on a session's first bar while RSI is still seeding.
- Pattern results below the definition's ``confidence_threshold`` are dropped.
- Isolation: an exception from a component (or a malformed result: wrong type, NaN, confidence
  outside 0..1) is caught at that component's call and returned as a ``ComponentError``; the other
  components still run on that bar. After ``max_failures`` consecutive failures the component is
  disabled for this symbol; the failure that disables it is reported with ``disabled=True``, and
  nothing more is heard from it. Errors during priming are reported with the first live bar's output.
- RSI alerts fire only on a crossing: previous RSI <= overbought and now > overbought
  (RSI_OVERBOUGHT, "above"), previous >= oversold and now < oversold (RSI_OVERSOLD, "below"). Every
  RSI value updates the crossing state (primed ones and ones still gated included), but only a
  published RSI can raise an alert.
- Bars must arrive in time order: a bar whose start is not after the last one seen (a duplicate from
  history overlapping the live feed, a replay) is ignored and the output is flagged ``stale``.
"""

from __future__ import annotations

from math import isfinite
from dataclasses import dataclass, field
from typing import Iterable

from tickstock.analysis.base import Component, IndicatorResult, PatternResult, Result
from tickstock.analysis.definitions import Definition, DefinitionSet
from tickstock.messages.bars import Bar

__all__ = ["AnalysisPipeline", "ComponentError", "IndicatorAlert", "PipelineOutput", "short_repr"]

_MAX_PENDING_ERRORS = 50   # errors kept from priming; a broken component is disabled long before
_MAX_ERROR_REPR = 500


@dataclass(frozen=True, slots=True)
class IndicatorAlert:
    """An RSI threshold crossing on ``bar``."""

    alert_type: str   # "RSI_OVERBOUGHT" | "RSI_OVERSOLD"
    indicator: str    # "RSI"
    value: float
    threshold: float
    direction: str    # "above" | "below"
    bar: Bar


@dataclass(frozen=True, slots=True)
class ComponentError:
    """One component failure on one bar; ``disabled`` is True on the failure that disabled it."""

    name: str
    symbol: str
    bar_start: int
    error_repr: str
    disabled: bool


@dataclass(slots=True)
class PipelineOutput:
    """What one live bar produced. ``stale`` is True when the bar was ignored (not after the last)."""

    patterns: list[PatternResult] = field(default_factory=list)
    indicators: list[IndicatorResult] = field(default_factory=list)
    alerts: list[IndicatorAlert] = field(default_factory=list)
    errors: list[ComponentError] = field(default_factory=list)
    stale: bool = False


class _Slot:
    """One component and its gating/failure/crossing state."""

    __slots__ = ("definition", "component", "required", "threshold", "failures", "disabled", "is_rsi", "last_rsi",
                 "warmup")

    def __init__(self, definition: Definition, component: Component) -> None:
        self.definition = definition
        self.component = component
        self.required = (definition.min_bars_required if definition.min_bars_required is not None
                         else component.min_bars)
        self.threshold = definition.confidence_threshold
        self.failures = 0
        self.disabled = False
        self.is_rsi = component.name == "RSI"
        self.last_rsi: float | None = None
        self.warmup = component.warmup


class AnalysisPipeline:
    """Per-symbol runner. ``definitions``: a ``DefinitionSet`` or any iterable of ``Definition``."""

    def __init__(
        self,
        definitions: DefinitionSet | Iterable[Definition],
        *,
        symbol: str,
        max_failures: int = 3,
        rsi_overbought: float = 70.0,
        rsi_oversold: float = 30.0,
    ) -> None:
        if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1:
            raise ValueError(f"max_failures must be an integer >= 1, got {max_failures!r}")
        if not (0.0 <= rsi_oversold < rsi_overbought <= 100.0):
            raise ValueError(f"need 0 <= rsi_oversold < rsi_overbought <= 100, got {rsi_oversold}, {rsi_overbought}")
        self.symbol = symbol
        self.max_failures = max_failures
        self.rsi_overbought = float(rsi_overbought)
        self.rsi_oversold = float(rsi_oversold)
        self.bars_seen = 0
        self.stale_bars = 0
        self._last_start: int | None = None
        self._pending: list[ComponentError] = []
        self._slots: list[_Slot] = []
        for definition in definitions:
            try:
                component = definition.create()
            except Exception as exc:  # validated at load time; still, one bad row must not stop a symbol
                self._pending.append(ComponentError(definition.name, symbol, 0, short_repr(exc), True))
                continue
            self._slots.append(_Slot(definition, component))

    @property
    def components(self) -> tuple[Component, ...]:
        return tuple(slot.component for slot in self._slots)

    @property
    def disabled(self) -> tuple[str, ...]:
        """Names of the components disabled for this symbol."""
        return tuple(slot.definition.name for slot in self._slots if slot.disabled)

    def prime(self, bars: Iterable[Bar]) -> None:
        """Feed history; publish nothing. Errors are kept and reported with the next ``on_bar``."""
        fresh = self._in_order(bars)
        if not fresh:
            return
        for slot in self._slots:
            if not slot.disabled:
                self._prime_slot(slot, fresh if slot.warmup is None else fresh[-slot.warmup:])
        self.bars_seen += len(fresh)
        self._last_start = fresh[-1].start

    def on_bar(self, bar: Bar) -> PipelineOutput:
        """Run every enabled component on the next closed bar and return what is publishable."""
        out = PipelineOutput()
        if self._pending:
            out.errors.extend(self._pending)
            self._pending.clear()
        self._step(bar, out)
        return out

    # -- internals --------------------------------------------------------------------------------

    def _in_order(self, bars: Iterable[Bar]) -> list[Bar]:
        """The bars that are each after the last one seen (the others are counted stale)."""
        fresh: list[Bar] = []
        last = self._last_start
        for bar in bars:
            if self._is_fresh(bar, last):
                fresh.append(bar)
                last = bar.start
        return fresh

    def _is_fresh(self, bar: Bar, last: int | None) -> bool:
        """Whether ``bar`` comes after the bar that started at ``last``; a stale one is counted."""
        if bar.symbol != self.symbol:  # a routing bug: mixing symbols would corrupt every state
            raise ValueError(f"pipeline for {self.symbol!r} got a bar for {bar.symbol!r}")
        if last is not None and bar.start <= last:
            self.stale_bars += 1
            return False
        return True

    def _prime_slot(self, slot: _Slot, bars: list[Bar]) -> None:
        advance = slot.component.advance  # state only: no results are built for history
        for bar in bars:
            try:
                advance(bar)
            except Exception as exc:
                slot.failures += 1
                slot.disabled = slot.failures >= self.max_failures
                if len(self._pending) < _MAX_PENDING_ERRORS:
                    self._pending.append(ComponentError(slot.definition.name, self.symbol, bar.start,
                                                        short_repr(exc), slot.disabled))
                if slot.disabled:
                    return
                continue
            slot.failures = 0
        if slot.is_rsi:  # the crossing state: the last primed RSI
            slot.last_rsi = slot.component.value

    def _step(self, bar: Bar, out: PipelineOutput) -> None:
        # The hottest loop of a bar close (every component of every symbol): locals, and no work
        # for the common case of a component that found nothing.
        if not self._is_fresh(bar, self._last_start):
            out.stale = True
            return
        self._last_start = bar.start
        self.bars_seen = bars_seen = self.bars_seen + 1
        for slot in self._slots:
            if slot.disabled:
                continue
            try:
                results = slot.component.update(bar)
                if type(results) is not list or results:
                    _check_results(results)
            except Exception as exc:  # isolation: one component's bug costs only its own result
                slot.failures += 1
                slot.disabled = slot.failures >= self.max_failures
                out.errors.append(ComponentError(slot.definition.name, self.symbol, bar.start,
                                                 short_repr(exc), slot.disabled))
                continue
            if slot.failures:
                slot.failures = 0
            if not results:
                continue
            publish = bars_seen >= slot.required
            for result in results:
                if isinstance(result, PatternResult):
                    if publish and (slot.threshold is None or result.confidence >= slot.threshold):
                        out.patterns.append(result)
                    continue
                alert = self._crossing(slot, result) if slot.is_rsi else None
                if publish:
                    out.indicators.append(result)
                    if alert is not None:
                        out.alerts.append(alert)

    def _crossing(self, slot: _Slot, result: IndicatorResult) -> IndicatorAlert | None:
        previous, value = slot.last_rsi, result.value
        slot.last_rsi = value
        if previous is None:
            return None  # no previous value: nothing was crossed
        if previous <= self.rsi_overbought < value:
            return IndicatorAlert("RSI_OVERBOUGHT", result.name, value, self.rsi_overbought, "above", result.bar)
        if previous >= self.rsi_oversold > value:
            return IndicatorAlert("RSI_OVERSOLD", result.name, value, self.rsi_oversold, "below", result.bar)
        return None


def _check_results(results: list[Result]) -> None:
    """Reject what must never reach the wire; raising here counts as the component's failure.
    Runs on every result of every bar close: the well-formed case (a float value or confidence) is
    decided by type checks alone, anything else by the full checks."""
    if not isinstance(results, list):
        raise TypeError(f"update() must return a list, got {type(results).__name__}")
    for r in results:
        kind = type(r)
        if kind is IndicatorResult:
            value = r.value
            if type(value) is float and isfinite(value):
                continue
        elif kind is PatternResult:
            confidence = r.confidence
            if type(confidence) is float and 0.0 <= confidence <= 1.0:
                continue
        _check_result(r)


def _check_result(r: Result) -> None:
    if isinstance(r, PatternResult):
        if not (isinstance(r.confidence, (int, float)) and 0.0 <= r.confidence <= 1.0):
            raise ValueError(f"{r.name}: confidence {r.confidence!r} outside 0..1")
    elif isinstance(r, IndicatorResult):
        if not (isinstance(r.value, (int, float)) and isfinite(r.value)):
            raise ValueError(f"{r.name}: non-finite value {r.value!r}")
    else:
        raise TypeError(f"update() returned a {type(r).__name__}, not a PatternResult/IndicatorResult")


def short_repr(exc: BaseException) -> str:
    text = repr(exc)
    return text if len(text) <= _MAX_ERROR_REPR else text[: _MAX_ERROR_REPR - 3] + "..."
