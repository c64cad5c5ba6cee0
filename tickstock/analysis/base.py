"""The one interface every analysis component implements, and the results it returns.

A component is a small stateful object fed closed 1-minute bars of ONE symbol, in order, one
``update(bar)`` at a time. It returns zero or more results for that bar and never looks ahead: a
result, once returned, is final (nothing is withdrawn or repainted later).

Guarantees shared by every component in this package:

- ``update`` costs O(1) or O(window) per bar, does no I/O, starts no threads, keeps bounded state.
- Results carry only finite numbers (``confidence`` in 0..1, indicator values finite), so they can go
  on the wire with ``allow_nan=False`` untouched.
- Construction takes keyword parameters only (they come from a database row's JSON); an unknown
  parameter raises ``TypeError`` naming it, a bad value ``ValueError`` naming it.
- ``min_bars`` is the number of bars (the current one included) the component needs before it can
  return anything at all. The pipeline may demand more (a definition's ``min_bars_required``), never
  less.

Inputs are assumed to be well-formed bars (finite, positive prices, ``low <= open, close <= high``):
the bar aggregator guarantees that.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Union

import msgspec

from tickstock.messages.bars import Bar

__all__ = [
    "Component", "IndicatorResult", "PatternResult", "Result", "check_bool", "check_float",
    "check_int", "unit_interval",
]


class PatternResult(msgspec.Struct, frozen=True):
    """One detection (a frozen Struct, not a dataclass: one is built per result of every bar close,
    ~0.2 us against ~1.5 us). ``parameters`` is JSON-safe (str/int/bool/finite float, nested dicts/lists).

    A result owns its dicts (here and in ``IndicatorResult``): a component builds them afresh for
    every result and never touches them again, so the events made from a result take them as they
    are, without a copy (``result_events``; tested for every component)."""

    name: str                     # canonical component name, e.g. "Doji"
    confidence: float             # 0..1, never NaN
    bar: Bar                      # the bar on which the pattern was detected (completed)
    parameters: dict[str, Any]
    levels: tuple[float, ...] = ()


class IndicatorResult(msgspec.Struct, frozen=True):
    """One indicator value for one bar: ``values`` is what the dashboard shows, e.g. {"value": 72.5},
    floats only (a count, such as VWAP's volume, too: the wire shows floats)."""

    name: str                     # canonical component name, e.g. "RSI"
    value: float                  # finite
    values: dict[str, float]
    bar: Bar
    metadata: dict[str, Any]      # e.g. {"period": 14, "bars_used": 15}


Result = Union[PatternResult, IndicatorResult]


class Component(ABC):
    """Base of every pattern detector and indicator: same constructor style, same ``update``."""

    name: ClassVar[str]           # canonical name; also the registry key (case-insensitively)
    kind: ClassVar[str]           # "pattern" | "indicator"
    min_bars: int                 # bars needed (current one included) before any result is possible
    # The trailing bars that determine this component's state, or None when every bar does (Wilder
    # smoothing, a zigzag). Priming feeds a component only these: 10,000 symbols x 200 bars of
    # history is two million updates per component otherwise. Older bars could change at most the
    # last bits of a running total (which TA-Lib itself accumulates from whatever its first bar is).
    warmup: int | None = None

    @abstractmethod
    def update(self, bar: Bar) -> list[Result]:
        """Consume the next closed bar of this symbol; return the results it completes (often none)."""

    def advance(self, bar: Bar) -> object:
        """Consume ``bar`` for its effect on the state alone (priming): whatever it returns is
        ignored. Override where building results costs more than computing them."""
        return self.update(bar)

    def __repr__(self) -> str:  # handy in logs: "RSI(period=14)"
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({params})"

    def params(self) -> dict[str, Any]:
        """The effective constructor parameters (defaults filled in)."""
        return {}


# -- parameter checking -------------------------------------------------------------------------
# Parameters arrive from JSON in a database row: be strict (a typo or a string "14" must be loud at
# load time, not a silent default), but accept 14.0 for 14 because JSON tools produce it.

def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int within [minimum, maximum]; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"parameter {name!r} must be an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"parameter {name!r} must be an integer, got {value!r}")
        value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"within {minimum}..{maximum}"
        raise ValueError(f"parameter {name!r} must be {bound}, got {value!r}")
    return value


def check_float(
    name: str, value: Any, minimum: float, maximum: float | None = None, *, exclusive_min: bool = False
) -> float:
    """``value`` as a finite float within bounds; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"parameter {name!r} must be a finite number, got {value!r}")
    value = float(value)
    too_low = value <= minimum if exclusive_min else value < minimum
    if too_low or (maximum is not None and value > maximum):
        low = f"> {minimum}" if exclusive_min else f">= {minimum}"
        bound = low if maximum is None else f"{low} and <= {maximum}"
        raise ValueError(f"parameter {name!r} must be {bound}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a real bool (JSON true/false); ``ValueError`` naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise ValueError(f"parameter {name!r} must be true or false, got {value!r}")
    return value


def unit_interval(x: float) -> float:
    """Clamp a confidence to 0..1. NaN (a bug upstream, never expected) maps to 0.0, never through."""
    if not x >= 0.0:  # also catches NaN
        return 0.0
    return 1.0 if x > 1.0 else float(x)
