"""Name -> component class. The only place that knows which detectors exist.

Lookup is case-insensitive and ignores surrounding whitespace (database rows say ``Doji`` or
``doji``); every other spelling is unknown, loudly (``UnknownComponent``). ``code_reference``
columns are never imported: a row can only select a class listed here.
"""

from __future__ import annotations

from typing import Any, Mapping

from tickstock.analysis.base import Component
from tickstock.analysis.candles import Doji, Hammer
from tickstock.analysis.head_shoulders import HeadShoulders, InverseHeadShoulders
from tickstock.analysis.rsi import RSI
from tickstock.analysis.sma import SMA

__all__ = ["UnknownComponent", "canonical_name", "create", "known_names", "lookup"]

_CLASSES: tuple[type[Component], ...] = (Doji, Hammer, HeadShoulders, InverseHeadShoulders, RSI, SMA)
_BY_KEY: dict[str, type[Component]] = {cls.name.lower(): cls for cls in _CLASSES}


class UnknownComponent(KeyError):
    """No component of that name. ``name`` is the name as given."""

    def __init__(self, name: object) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:  # KeyError's default str() is just the repr of the key
        return f"unknown analysis component {self.name!r} (known: {', '.join(known_names())})"


def lookup(name: str) -> type[Component]:
    """The class registered under ``name`` (case-insensitive); ``UnknownComponent`` otherwise."""
    if not isinstance(name, str):
        raise UnknownComponent(name)
    try:
        return _BY_KEY[name.strip().lower()]
    except KeyError:
        raise UnknownComponent(name) from None


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


def known_names() -> tuple[str, ...]:
    """Canonical names, in registration order."""
    return tuple(cls.name for cls in _CLASSES)
