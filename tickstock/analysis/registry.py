"""Name -> component class. The only place that knows which detectors exist.

Two sources, in this order:

1. The hand-written incremental components (Doji, Hammer, HeadShoulders, InverseHeadShoulders,
   RSI, SMA, VWAP), by their own name, case-insensitively, surrounding whitespace ignored
   (database rows say ``Doji`` or ``doji``). They win over TA-Lib for exactly these names.
2. Any other TA-Lib function, by its function name or friendly name in any spelling
   (``CDLENGULFING``, ``Engulfing``, ``morning star``; see ``talib_catalog``), served by
   ``talib_functions``. A name TA-Lib knows is never unknown: a function bars cannot feed (MAVP)
   is found and then refuses to be built, which makes its definition invalid with the reason.

Every other name is unknown, loudly (``UnknownComponent``). ``code_reference`` columns are never
imported: a row can only select a class listed here or a TA-Lib function.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

from tickstock.analysis.base import Component
from tickstock.analysis.candles import Doji, Hammer
from tickstock.analysis.head_shoulders import HeadShoulders, InverseHeadShoulders
from tickstock.analysis.rsi import RSI
from tickstock.analysis.sma import SMA
from tickstock.analysis.talib_catalog import Catalog, catalog, normalize
from tickstock.analysis.talib_functions import TalibComponent, component_class
from tickstock.analysis.vwap import VWAP

__all__ = ["UnknownComponent", "canonical_name", "create", "known_names", "lookup", "served_by_talib", "talib_catalog"]

_CLASSES: tuple[type[Component], ...] = (Doji, Hammer, HeadShoulders, InverseHeadShoulders, RSI, SMA, VWAP)
_BY_KEY: dict[str, type[Component]] = {cls.name.lower(): cls for cls in _CLASSES}
_RESERVED = frozenset(normalize(cls.name) for cls in _CLASSES)


class UnknownComponent(KeyError):
    """No component of that name. ``name`` is the name as given."""

    def __init__(self, name: object) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:  # KeyError's default str() is just the repr of the key
        return (f"unknown analysis component {self.name!r} (known: {', '.join(known_names())},"
                f" or a TA-Lib function by name, e.g. CDLENGULFING/Engulfing, EMA, MACD)")


def lookup(name: str) -> type[Component]:
    """The class registered under ``name`` (case-insensitive); ``UnknownComponent`` otherwise."""
    if not isinstance(name, str):
        raise UnknownComponent(name)
    cls = _BY_KEY.get(name.strip().lower())
    if cls is not None:
        return cls
    spec = talib_catalog().find(name)
    if spec is None:
        raise UnknownComponent(name)
    return component_class(spec)


def canonical_name(name: str) -> str:
    """``"doji"`` -> ``"Doji"``; ``UnknownComponent`` for names not registered."""
    return lookup(name).name


def create(name: str, params: Mapping[str, Any] | None = None) -> Component:
    """A fresh instance. Unknown params raise ``TypeError``, bad values ``ValueError``, both naming
    the parameter (they come from the constructor's keyword-only signature and its checks)."""
    cls = lookup(name)
    params = dict(params or {})
    for key in params:
        if not isinstance(key, str):
            raise TypeError(f"{cls.name}: parameter names must be strings, got {key!r}")
    return cls(**params)


@functools.cache  # the registry never changes; a plan asks once per symbol (0.4 ms a split uncached)
def served_by_talib(name: str) -> bool:
    """Whether ``name`` is served by TA-Lib (not a hand-written component); False for unknown names."""
    try:
        return issubclass(lookup(name), TalibComponent)
    except UnknownComponent:
        return False


def known_names() -> tuple[str, ...]:
    """Canonical names of the hand-written components, in registration order (TA-Lib's are in
    ``talib_catalog()``)."""
    return tuple(cls.name for cls in _CLASSES)


def talib_catalog() -> Catalog:
    """TA-Lib's functions with the hand-written components' names reserved (built once)."""
    return catalog(_RESERVED)
