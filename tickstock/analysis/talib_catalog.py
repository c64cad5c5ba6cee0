"""What TA-Lib offers, named the way definition rows name it: one ``FunctionSpec`` per function.

Everything here is read from TA-Lib itself (``talib.get_function_groups()`` and
``talib.abstract.Function(name).info``): no list of names is written by hand, so a TA-Lib upgrade
that adds a function makes it available by name.

Names (``Catalog.find``), compared after ``normalize`` (lower case, letters and digits only, so
``Morning Star``, ``morning_star`` and ``MORNINGSTAR`` are one key):

- the function name: ``CDLENGULFING``, ``EMA``;
- its friendly name, derived from TA-Lib's ``display_name`` by ``friendly_name``: words joined in
  CamelCase, a parenthesised remark and a trailing "Pattern" dropped (``Engulfing Pattern`` ->
  ``Engulfing``, ``Morning Star`` -> ``MorningStar``, ``Takuri (Dragonfly Doji ...)`` -> ``Takuri``);
  the display name itself is accepted too (``EngulfingPattern``);
- for candles, the function name without its ``CDL`` prefix (``ENGULFING``), also with its digits
  spelled out (``CDL3WHITESOLDIERS`` -> ``ThreeWhiteSoldiers``, ``CDL2CROWS`` -> ``TwoCrows``).

Names reserved for the hand-written components (``Doji``, ``Hammer``, ``RSI``, ``SMA``, ``VWAP``, ...)
are never TA-Lib aliases: those components win for exactly their own names. A key two TA-Lib
functions share goes to the one for which it is the function name, else the one for which it is
TA-Lib's display name; otherwise it is dropped (``Catalog.ambiguous``), never resolved by luck.

The canonical ``name`` (what events, rows and ``row_id`` carry): for candles the friendly name, for
other functions the function name; when that is a reserved name, the other one (TA-Lib's
``CDLDOJI`` is published as ``CDLDOJI``, TA-Lib's ``RSI`` as ``RelativeStrengthIndex``).

Indicator ``values`` keys (``FunctionSpec.value_keys``): ``value`` for a single output; otherwise
TA-Lib's output names with a prefix that is the function's name or another output's name removed,
and a trailing ``band`` removed (MACD: ``macd``, ``signal``, ``hist``; BBANDS: ``upper``,
``middle``, ``lower``; AROON: ``down``, ``up``), TA-Lib's own names if that would not stay unique.

``python -m tickstock.analysis [pattern|indicator]`` prints the catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import talib
from talib import abstract

__all__ = ["BAR_COLUMNS", "Catalog", "FunctionSpec", "catalog", "friendly_name", "normalize"]

#: The bar fields a TA-Lib input can be fed from (``Bar`` attributes).
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
PATTERN_GROUP = "Pattern Recognition"
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class FunctionSpec:
    """One TA-Lib function as the service serves it.

    ``inputs``: (input name, bar column) in TA-Lib's call order; an input whose name is listed in
    ``column_params`` takes one column and may be re-pointed by a definition parameter of that
    name (``{"price": "high"}``). ``parameters``: TA-Lib's optional inputs and their defaults
    (an ``int`` default means an integer parameter). ``unservable``: why bars cannot feed it
    (None when they can)."""

    function: str
    kind: str                                   # "pattern" | "indicator"
    name: str                                   # canonical published name
    friendly: str
    display_name: str
    group: str
    inputs: tuple[tuple[str, str], ...]
    column_params: tuple[str, ...]
    parameters: dict[str, int | float] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    value_keys: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    unservable: str | None = None


@dataclass(frozen=True)
class Catalog:
    """Every TA-Lib function, its lookup keys, and the keys dropped as ambiguous."""

    specs: dict[str, FunctionSpec]              # function name -> spec
    keys: dict[str, str]                        # normalized key -> function name
    ambiguous: dict[str, tuple[str, ...]]       # normalized key -> the functions that share it

    def find(self, name: str) -> FunctionSpec | None:
        """The function ``name`` designates (any spelling listed in the module doc), or None."""
        function = self.keys.get(normalize(name))
        return None if function is None else self.specs[function]

    def by_kind(self, kind: str) -> list[FunctionSpec]:
        return [s for s in self.specs.values() if s.kind == kind]


def normalize(name: str) -> str:
    """The lookup key of a name: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def friendly_name(display_name: str) -> str:
    """``'Engulfing Pattern'`` -> ``'Engulfing'``; ``'Up/Down-gap side-by-side white lines'`` ->
    ``'UpDownGapSideBySideWhiteLines'``; ``'Takuri (Dragonfly Doji ...)'`` -> ``'Takuri'``."""
    text = re.sub(r"\([^)]*\)", " ", display_name).strip()
    text = re.sub(r"\s+Pattern$", "", text)
    return "".join(w[:1].upper() + w[1:] for w in re.findall(r"[A-Za-z0-9]+", text))


def _spell_digits(text: str) -> str:
    return re.sub(r"\d", lambda m: _DIGITS[int(m.group())], text)


def _value_keys(function: str, outputs: tuple[str, ...]) -> tuple[str, ...]:
    if len(outputs) == 1:
        return ("value",)
    prefixes = {function.lower(), *outputs}
    keys = []
    for out in outputs:
        key = out
        for prefix in sorted(prefixes, key=len, reverse=True):
            if key != prefix and key.startswith(prefix):
                key = key[len(prefix):]
                break
        if key.endswith("band") and len(key) > 4:
            key = key[:-4]
        keys.append(key)
    return tuple(keys) if len(set(keys)) == len(keys) and all(keys) else outputs


def _spec(function: str, group: str, reserved: frozenset[str]) -> FunctionSpec:
    info = abstract.Function(function).info
    inputs: list[tuple[str, str]] = []
    column_params: list[str] = []
    for input_name, columns in info["input_names"].items():
        if isinstance(columns, str):
            inputs.append((input_name, columns))
            column_params.append(input_name)
        else:
            inputs.extend((input_name, c) for c in columns)
    missing = sorted({c for _, c in inputs if c not in BAR_COLUMNS})
    unservable = (f"needs input(s) {', '.join(missing)} that bars do not have" if missing else None)
    kind = "pattern" if group == PATTERN_GROUP else "indicator"
    friendly = friendly_name(info["display_name"]) or function
    preferred, other = (friendly, function) if kind == "pattern" else (function, friendly)
    name = other if normalize(preferred) in reserved else preferred
    outputs = tuple(info["output_names"])
    return FunctionSpec(
        function=function, kind=kind, name=name, friendly=friendly, display_name=info["display_name"],
        group=group, inputs=tuple(inputs), column_params=tuple(column_params),
        parameters=dict(info["parameters"]), outputs=outputs, value_keys=_value_keys(function, outputs),
        flags=tuple(info["function_flags"] or ()), unservable=unservable,
    )


def _aliases(spec: FunctionSpec) -> dict[str, int]:
    """Normalized key -> rank: 0 the function's own name, 1 its display name as TA-Lib writes it,
    2 a derived name. A key two functions claim goes to the one with the better rank, if only one
    has it (``Chande Momentum Oscillator`` is CMO's display name and only CMOU's derived one)."""
    derived = {spec.name, spec.friendly, _spell_digits(spec.friendly)}
    if spec.function.startswith("CDL"):
        suffix = spec.function[3:]
        derived |= {suffix, _spell_digits(suffix)}
    ranks = {normalize(n): 2 for n in derived}
    ranks[normalize(spec.display_name)] = 1
    ranks[normalize(spec.function)] = 0
    ranks.pop("", None)
    return ranks


@cache
def catalog(reserved: frozenset[str] = frozenset()) -> Catalog:
    """The catalog; ``reserved``: normalized names that belong to hand-written components."""
    specs: dict[str, FunctionSpec] = {}
    for group, functions in talib.get_function_groups().items():
        for function in functions:
            specs[function] = _spec(function, group, reserved)
    claims: dict[str, dict[str, int]] = {}
    for spec in specs.values():
        for key, rank in _aliases(spec).items():
            if key not in reserved:
                claims.setdefault(key, {})[spec.function] = rank
    keys: dict[str, str] = {}
    ambiguous: dict[str, tuple[str, ...]] = {}
    for key, by_function in claims.items():
        best = min(by_function.values())
        winners = sorted(f for f, rank in by_function.items() if rank == best)
        if len(winners) == 1:
            keys[key] = winners[0]
        else:
            ambiguous[key] = tuple(winners)
    return Catalog(specs, keys, ambiguous)
