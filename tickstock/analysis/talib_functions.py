"""Any TA-Lib function as an analysis component: candle patterns and indicators served by TA-Lib.

A component holds one TA-Lib stream handle (``talib.stream``, ta-lib >= 0.8.1): opened on the
symbol's first ``lookback + 1`` bars, then carried forward by one ``update`` per closed bar. So:

- **Exact.** Every value is bit-identical to the Function API (``talib.X(all bars so far)[-1]``)
  over every bar the component has seen, primed ones included -- memory effects (EMA seeding,
  Wilder smoothing, cumulative OBV/AD, SAR's path) included. Tested per function against
  ``talib.X`` over the same bars.
- **Priming.** Indicators are primed with every history bar (``warmup`` None: EMA seeding and
  the like depend on all of them); candle functions with their last ``lookback + 1`` (``warmup``),
  which is all their output depends on, up to the last bits of TA-Lib's running totals.
- **O(1) per bar, O(1) memory per symbol.** Before the handle opens the component keeps at most
  ``lookback + 1`` bars (more only if TA-Lib asks for a longer seed: ``InsufficientHistory``; then
  the Function API is called on the bars kept, at most ``2 * (lookback + 1) + 64`` of them); after
  that, only the handle (a few hundred bytes of C state). ``lookback`` is TA-Lib's own
  (``abstract.Function(name, **params).lookback``); ``min_bars = lookback + 1``, TA-Lib's first
  defined output.
- **Parameters are TA-Lib's.** A definition's parameters are checked against the function's own
  parameter list (``abstract.Function(name).info["parameters"]``): an unknown name raises
  ``TypeError`` listing the accepted ones, a wrong type (a string, a bool, 2.5 for an integer)
  ``ValueError`` naming it, and a value TA-Lib rejects (``timeperiod: 1`` for ADX) ``ValueError``
  with TA-Lib's reason -- found by opening a handle on synthetic bars once per function and
  parameter set, when the definition is loaded. ``period`` (the ``indicator_definitions.period``
  column) means ``timeperiod``; for a function without one it is an error. An input TA-Lib takes
  from one column may be re-pointed (``{"price": "high"}`` for EMA of highs). Extra parameters of
  this service: ``confidence`` and ``confirmed_confidence`` (patterns, see ``TalibPattern``).

Patterns (``TalibPattern``): a non-zero output is one ``PatternResult`` with ``parameters``
``{"direction", "signal", "confirmed", "function", **TA-Lib parameters}``. ``direction`` is
``bullish`` for a positive output and ``bearish`` for a negative one, except for the functions
whose TA-Lib source says their sign is not a direction (``NON_DIRECTIONAL``: always +100 for the
doji family and takuri; the candle's colour for spinning top, high wave, short line), which say
``neutral``. ``confirmed`` is True for TA-Lib's +-200 (e.g. a confirmed hikkake).

Indicators (``TalibIndicator``): one ``IndicatorResult`` per bar with every output in ``values``
(keys: ``FunctionSpec.value_keys``) and ``value`` the first output. Nothing is published while the
first output is not finite (TA-Lib's lookback, NaN from the math itself); a later output that is
not finite is left out of ``values`` (the wire never carries NaN or infinity). ``metadata``:
``{"function", **TA-Lib parameters, "period" (= timeperiod, where there is one), "bars_used"}``.
"""

from __future__ import annotations

from math import isfinite
from functools import lru_cache
from operator import attrgetter
from typing import Any, Callable, ClassVar

import numpy as np
import talib
from talib import abstract, stream

from tickstock.analysis.base import (
    Component, IndicatorResult, PatternResult, Result, check_float, check_int, unit_interval,
)
from tickstock.analysis.talib_catalog import BAR_COLUMNS, FunctionSpec
from tickstock.messages.bars import Bar

__all__ = ["MAX_LOOKBACK", "NON_DIRECTIONAL", "TalibIndicator", "TalibPattern", "TalibComponent", "component_class"]

#: The longest warm-up accepted (bars before the first value): the service primes far fewer.
MAX_LOOKBACK = 5000
#: Candle functions whose output sign TA-Lib's C source documents as "not bullish/bearish".
NON_DIRECTIONAL = frozenset({
    "CDLDOJI", "CDLDRAGONFLYDOJI", "CDLGRAVESTONEDOJI", "CDLLONGLEGGEDDOJI", "CDLRICKSHAWMAN", "CDLTAKURI",
    "CDLSPINNINGTOP", "CDLHIGHWAVE", "CDLSHORTLINE",
})
DEFAULT_CONFIDENCE = 0.7
DEFAULT_CONFIRMED_CONFIDENCE = 0.9
_OWN_PATTERN_PARAMS = ("confidence", "confirmed_confidence")


class TalibComponent(Component):
    """Shared engine: parameter checking, the warm-up, the stream handle. Subclasses are made per
    function by ``component_class`` (``spec`` set)."""

    spec: ClassVar[FunctionSpec]
    _own_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        spec = self.spec
        if spec.unservable:
            raise ValueError(f"{spec.function} cannot be served: it {spec.unservable}")
        own, talib_params, columns = _split_params(spec, params, self._own_params)
        self.talib_params = talib_params
        self.columns = columns
        self.lookback = _checked_lookback(spec.function, tuple(sorted(talib_params.items())))
        self.min_bars = self.lookback + 1
        self._own = own
        self._get: Callable[[Bar], Any] = attrgetter(*columns)
        self._single_input = len(columns) == 1
        self._opener = getattr(stream, spec.function)
        self._batch = getattr(talib, spec.function)
        self._handle: Any = None
        self._history: list[tuple[float, ...]] | None = []
        self._max_history = 2 * self.min_bars + 64
        self._count = 0

    def params(self) -> dict[str, Any]:
        overrides = {name: column for (name, default), column in zip(self.spec.inputs, self.columns)
                     if name in self.spec.column_params and column != default}
        return {**self.talib_params, **overrides, **self._own}

    def output(self, bar: Bar) -> Any:
        """Step the state one bar: TA-Lib's output for ``bar`` (a scalar or a tuple), or None while
        there is none. ``update(bar)`` is ``result_of(output(bar), bar)``; a caller stepping many
        symbols' components (``TalibBatch``) calls the two apart."""
        self._count += 1
        handle = self._handle
        if handle is not None:  # every bar after the warm-up: one C call, nothing else
            return handle.update(self._get(bar)) if self._single_input else handle.update(*self._get(bar))
        return self._warming_value(bar)

    def _warming_value(self, bar: Bar) -> Any:
        """Until the stream handle opens: keep the bars, open the handle once there are enough."""
        row = self._get(bar)
        if self._single_input:
            row = (row,)
        history = self._history
        assert history is not None
        history.append(tuple(float(x) for x in row))
        if len(history) > self._max_history:
            del history[0]  # bounded even if a caller keeps feeding a component that failed below
        if len(history) < self.min_bars:
            return None
        arrays = [np.array(col, dtype=np.float64) for col in zip(*history)]
        try:
            self._handle = self._opener(*arrays, **self.talib_params)
        except talib.InsufficientHistory:
            if len(history) >= self._max_history:
                raise RuntimeError(f"{self.spec.function}: no stream after {len(history)} bars") from None
            out = self._batch(*arrays, **self.talib_params)
            return tuple(o[-1] for o in out) if isinstance(out, tuple) else out[-1]
        self._history = None  # the handle holds what it needs from here on
        return self._handle.value

    def advance(self, bar: Bar) -> object:
        """Priming: the state moves, no result is built."""
        return self.output(bar)

    def update(self, bar: Bar) -> list[Result]:
        return self.result_of(self.output(bar), bar)

    def result_of(self, value: Any, bar: Bar) -> list[Result]:
        """The results of TA-Lib's output ``value`` on ``bar`` (what ``output`` returned for it)."""
        raise NotImplementedError


class TalibPattern(TalibComponent):
    """A TA-Lib candle function. Confidence, from TA-Lib's output s (+-80, +-100, +-200):
    piecewise linear in |s| through (0, 0), (100, ``confidence``), (200, ``confirmed_confidence``),
    capped at 200; defaults 0.7 and 0.9. So a plain detection is 0.7 (shown by the dashboard, which
    hides < 0.6; not on ``patterns:detected``, which needs >= 0.8), a confirmed one 0.9, the weaker
    +-80 form TA-Lib reports for some functions (engulfing, harami) 0.56. Both are definition
    parameters (0..1)."""

    kind = "pattern"
    _own_params = _OWN_PATTERN_PARAMS

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.confidence = self._own.setdefault("confidence", DEFAULT_CONFIDENCE)
        self.confirmed_confidence = self._own.setdefault("confirmed_confidence", DEFAULT_CONFIRMED_CONFIDENCE)
        self._neutral = self.spec.function in NON_DIRECTIONAL
        # A candle function's state is its averaging windows: priming needs only its lookback + 1
        # trailing bars (older ones could change at most the last bits of TA-Lib's running totals).
        self.warmup = self.min_bars

    def confidence_of(self, signal: int) -> float:
        strength = min(abs(signal), 200)
        if strength <= 100:
            return unit_interval(self.confidence * strength / 100.0)
        share = (strength - 100) / 100.0
        return unit_interval(self.confidence + (self.confirmed_confidence - self.confidence) * share)

    def result_of(self, value: Any, bar: Bar) -> list[Result]:
        if not value:  # None (warming up) or 0 (no pattern)
            return []
        signal = int(value)
        direction = "neutral" if self._neutral else ("bullish" if signal > 0 else "bearish")
        return [PatternResult(self.name, self.confidence_of(signal), bar, {
            "direction": direction, "signal": signal, "confirmed": abs(signal) >= 200,
            "function": self.spec.function, **self.talib_params,
        })]


class TalibIndicator(TalibComponent):
    """A TA-Lib indicator: every output in ``values``, the first as ``value`` (module doc)."""

    kind = "indicator"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        meta: dict[str, Any] = {"function": self.spec.function, **self.talib_params}
        if "timeperiod" in self.talib_params:
            meta["period"] = self.talib_params["timeperiod"]
        self._metadata = meta
        self._keys = self.spec.value_keys

    def result_of(self, value: Any, bar: Bar) -> list[Result]:
        if value is None:
            return []
        if type(value) is tuple:
            primary = float(value[0])
            if not isfinite(primary):
                return []
            if all(map(isfinite, value)):  # the common case: every output defined
                values = dict(zip(self._keys, map(float, value)))
            else:
                values = {k: float(v) for k, v in zip(self._keys, value) if isfinite(v)}
        else:
            primary = float(value)
            if not isfinite(primary):
                return []
            values = {"value": primary}
        metadata = self._metadata.copy()
        metadata["bars_used"] = self._count
        return [IndicatorResult(self.name, primary, values, bar, metadata)]


_CLASSES: dict[tuple[str, str], type[TalibComponent]] = {}


def component_class(spec: FunctionSpec) -> type[TalibComponent]:
    """The component class serving ``spec`` (one per function and name, cached)."""
    key = (spec.function, spec.name)
    cls = _CLASSES.get(key)
    if cls is None:
        base = TalibPattern if spec.kind == "pattern" else TalibIndicator
        cls = _CLASSES.setdefault(key, type(f"Talib_{spec.function}", (base,), {
            "name": spec.name, "spec": spec, "__doc__": f"TA-Lib {spec.function} ({spec.display_name}).",
        }))
    return cls


# -- parameters -----------------------------------------------------------------------------------

def _split_params(spec: FunctionSpec, params: dict[str, Any],
                  own_names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:
    """(own params, TA-Lib params with defaults filled, bar columns in call order)."""
    params = dict(params)
    if "period" in params:
        period = params.pop("period")
        if "timeperiod" not in spec.parameters:
            accepted = ", ".join(spec.parameters) or "none"
            raise TypeError(f"{spec.function} has no timeperiod, so 'period' cannot be set"
                            f" (its parameters: {accepted}; leave the period column NULL)")
        if "timeperiod" in params and params["timeperiod"] != period:
            raise ValueError(f"{spec.function}: period {period!r} and timeperiod {params['timeperiod']!r} disagree")
        params.setdefault("timeperiod", period)
    accepted = (*spec.parameters, *spec.column_params, *own_names)
    unknown = sorted(str(k) for k in params if k not in accepted)
    if unknown:
        raise TypeError(f"{spec.function}: unknown parameter(s) {', '.join(map(repr, unknown))}"
                        f" (accepted: {', '.join(accepted) or 'none'})")
    own: dict[str, Any] = {}
    for name in own_names:
        if name in params:
            own[name] = check_float(name, params[name], 0.0, 1.0)
    talib_params: dict[str, Any] = {}
    for name, default in spec.parameters.items():
        if name not in params:
            talib_params[name] = default
        elif isinstance(default, int) and not isinstance(default, bool):
            talib_params[name] = check_int(name, params[name], -2**31 + 1, 2**31 - 1)
        else:
            talib_params[name] = _real(name, params[name])
    columns = []
    for input_name, column in spec.inputs:
        if input_name in spec.column_params and input_name in params:
            column = params[input_name]
            if column not in BAR_COLUMNS:
                raise ValueError(f"parameter {input_name!r} must be one of {', '.join(BAR_COLUMNS)}, got {column!r}")
        columns.append(column)
    return own, talib_params, tuple(columns)


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not isfinite(value):
        raise ValueError(f"parameter {name!r} must be a finite number, got {value!r}")
    return float(value)


@lru_cache(maxsize=4096)
def _checked_lookback(function: str, params: tuple[tuple[str, Any], ...]) -> int:
    """TA-Lib's lookback for these parameters, after TA-Lib accepted them on synthetic bars
    (ValueError with TA-Lib's reason otherwise). Cached: a definition is checked once, not once
    per symbol."""
    kwargs = dict(params)
    try:
        lookback = int(abstract.Function(function, **kwargs).lookback)
    except Exception as exc:  # TA-Lib's own type/parameter errors
        raise ValueError(f"TA-Lib rejects {function}({_show(kwargs)}): {exc}") from None
    if lookback < 0:
        raise ValueError(f"TA-Lib rejects {function}({_show(kwargs)}): no valid lookback")
    if lookback + 1 > MAX_LOOKBACK:
        raise ValueError(f"{function}({_show(kwargs)}) needs {lookback + 1} bars before its first value;"
                         f" at most {MAX_LOOKBACK} are supported")
    n = 2 * (lookback + 1) + 64
    i = np.arange(n, dtype=np.float64)
    close = 100.0 + 5.0 * np.sin(i / 7.0) + 0.01 * i
    synthetic = {"open": close - 0.3 * np.cos(i), "high": close + 1.0, "low": close - 1.0, "close": close,
                 "volume": 1000.0 + 100.0 * np.cos(i / 3.0)}
    info = abstract.Function(function).info
    arrays = []
    for columns in info["input_names"].values():
        for column in ([columns] if isinstance(columns, str) else columns):
            arrays.append(synthetic.get(column, close))
    try:
        stream_open = getattr(stream, function)
        try:
            stream_open(*[a[: lookback + 1] for a in arrays], **kwargs)
        except talib.InsufficientHistory:
            stream_open(*arrays, **kwargs)
    except Exception as exc:
        raise ValueError(f"TA-Lib rejects {function}({_show(kwargs)}): {exc}") from None
    return lookback


def _show(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
