"""Which components run: definition rows (database or config.yaml) -> validated ``Definition``s.

Pure functions, no I/O: the caller reads ``pattern_definitions`` / ``indicator_definitions`` (or the
YAML fallback) and passes the rows here. Selection mirrors the documented SQL:

    WHERE enabled AND (applicable_timeframes IS NULL OR <tf> = ANY(applicable_timeframes))

with ``intraday`` and ``1min`` treated as one timeframe, compared in any letter case. A row also
runs on every higher timeframe it names (``5min``, ``15min``, ``60min``, any letter case), on the
bars of tickstock/bars/timeframes.py; ``Definition.timeframes`` says where, ``for_timeframe``
picks a timeframe's set. NULL keeps its documented meaning for the streaming timeframe and nothing
more: 1min only (the interface's load query is the streaming one, <tf> = intraday), so a row runs on
a higher timeframe only when it names it and the baseline set costs nothing extra. Unrecognised tags
(``daily``) select nothing. Rows map to
components by ``name``, case-insensitively (``code_reference`` is never imported). Every row is
validated by constructing its component once, so a bad parameter is reported at load time, with the
row's name, instead of failing on the first bar of every symbol.

Nothing is dropped silently: each row ends up in exactly one of ``definitions``, ``skipped``
(disabled or another timeframe: intentional), ``unknown`` (no such component) or ``invalid``
(rejected parameters or columns); ``problems()`` words everything that needs attention, including
"nothing loaded" -- an incident that once went unnoticed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Iterable, Iterator, Mapping

from tickstock.analysis import registry
from tickstock.analysis.base import Component
from tickstock.bars.timeframes import BASE_TIMEFRAME, HIGHER_TIMEFRAMES, TIMEFRAMES

__all__ = ["Definition", "DefinitionSet", "definitions_from_config", "select_definitions", "timeframe_aliases"]

# Streaming rows are tagged "intraday"; "1min" is accepted as the same thing (interface.md).
_ALIASES: tuple[frozenset[str], ...] = (frozenset({"intraday", "1min"}),)


@dataclass(frozen=True)
class Definition:
    """One component to run for every symbol: canonical ``name``, its ``kind`` (from the registry),
    constructor ``params``, and the pipeline's gating: results are published once the symbol has
    ``min_bars_required`` bars (None: the component's own ``min_bars``), patterns only when their
    confidence is >= ``confidence_threshold`` (None: all)."""

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    min_bars_required: int | None = None
    confidence_threshold: float | None = None
    timeframes: tuple[str, ...] = (BASE_TIMEFRAME,)  # where it runs, in TIMEFRAMES order

    def create(self) -> Component:
        """A fresh component instance (one per symbol: components hold per-symbol state)."""
        return registry.create(self.name, self.params)


@dataclass(frozen=True)
class DefinitionSet:
    """The outcome of a load. Iterating yields the usable definitions."""

    definitions: tuple[Definition, ...] = ()
    unknown: tuple[str, ...] = ()                 # names with no component (as written in the row)
    skipped: tuple[str, ...] = ()                 # disabled, or not for this timeframe, or duplicate
    invalid: tuple[tuple[str, str], ...] = ()     # (name, error in words)

    def __iter__(self) -> Iterator[Definition]:
        return iter(self.definitions)

    def __len__(self) -> int:
        return len(self.definitions)

    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.definitions)

    def for_timeframe(self, timeframe: str) -> tuple[Definition, ...]:
        """The definitions that run on ``timeframe`` (one of ``TIMEFRAMES``), in load order."""
        return tuple(d for d in self.definitions if timeframe in d.timeframes)

    @property
    def timeframes(self) -> tuple[str, ...]:
        """The timeframes with at least one definition, in ``TIMEFRAMES`` order."""
        used = {tf for d in self.definitions for tf in d.timeframes}
        return tuple(tf for tf in TIMEFRAMES if tf in used)

    def problems(self) -> list[str]:
        """Everything an operator must hear about, in words; empty when all is well."""
        out: list[str] = []
        if not self.definitions:
            out.append(
                f"{NO_DEFINITIONS_LOADED}: nothing will be detected or calculated"
                f" (unknown: {len(self.unknown)}, invalid: {len(self.invalid)}, skipped: {len(self.skipped)})"
            )
        for name in self.unknown:
            out.append(f"definition {name!r} matches no known component (known: {', '.join(registry.known_names())})")
        for name, error in self.invalid:
            out.append(f"definition {name!r} is invalid and was not loaded: {error}")
        return out


NO_DEFINITIONS_LOADED = "no pattern or indicator definitions loaded"


def timeframe_aliases(timeframe: str) -> frozenset[str]:
    """The lower-case tags that select rows for ``timeframe`` (itself plus its aliases)."""
    tf = timeframe.strip().lower()
    for group in _ALIASES:
        if tf in group:
            return group
    return frozenset({tf})


def select_definitions(
    pattern_rows: Iterable[Mapping[str, Any]] | None,
    indicator_rows: Iterable[Mapping[str, Any]] | None,
    timeframe: str = "intraday",
) -> DefinitionSet:
    """Filter and validate database rows (dicts keyed by column name).

    Pattern rows: ``name``, ``enabled``, ``applicable_timeframes`` (list or None),
    ``min_bars_required``, ``confidence_threshold``, ``instantiation_params`` (dict or None).
    Indicator rows: the same common columns plus ``period`` and ``parameters``; their params are
    ``parameters`` with ``period`` set from the column when it is not NULL (the column wins).
    """
    builder = _Builder(timeframe_aliases(timeframe))
    for row in pattern_rows or ():
        builder.add(row, _params_of_pattern)
    for row in indicator_rows or ():
        builder.add(row, _params_of_indicator)
    return builder.result()


_PATTERN_KEYS = frozenset({"name", "params", "min_bars_required", "confidence_threshold", "enabled",
                           "applicable_timeframes"})
_INDICATOR_KEYS = _PATTERN_KEYS | {"period", "parameters"}


def definitions_from_config(cfg: Mapping[str, Any] | None, timeframe: str = "intraday") -> DefinitionSet:
    """The config.yaml fallback, shape::

        {"patterns":   [{"name": "Doji", "min_bars_required": 1, "params": {...}}, ...],
         "indicators": [{"name": "RSI", "period": 14, "min_bars_required": 15}, ...]}

    Entries may also carry ``confidence_threshold``, ``enabled`` and ``applicable_timeframes``; any
    other key makes the entry invalid (a typo must not silently become a default). Same validation
    and result as ``select_definitions``.
    """
    builder = _Builder(timeframe_aliases(timeframe))
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, Mapping):
        builder.invalid.append(("<fallback_definitions>", f"must be a mapping, got {type(cfg).__name__}"))
        return builder.result()
    for key in cfg:
        if key not in ("patterns", "indicators"):
            builder.invalid.append((f"<fallback_definitions.{key}>", "unknown key (expected patterns, indicators)"))
    for section, allowed, to_params in (("patterns", _PATTERN_KEYS, _params_of_config_pattern),
                                        ("indicators", _INDICATOR_KEYS, _params_of_config_indicator)):
        entries = cfg.get(section) or []
        if not isinstance(entries, list):
            builder.invalid.append((f"<fallback_definitions.{section}>", "must be a list"))
            continue
        for entry in entries:
            if not isinstance(entry, Mapping):
                builder.invalid.append((f"<fallback_definitions.{section}>", f"entry {entry!r} is not a mapping"))
                continue
            extra = sorted(str(k) for k in entry if k not in allowed)
            if extra:
                builder.invalid.append((str(entry.get("name", "<no name>")), f"unknown key(s): {', '.join(extra)}"))
                continue
            builder.add(entry, to_params)
    return builder.result()


# -- internals ------------------------------------------------------------------------------------

class _RowError(ValueError):
    """A column that cannot be used; the message names it."""


class _Builder:
    def __init__(self, accepted: frozenset[str]) -> None:
        self.accepted = accepted
        self.definitions: list[Definition] = []
        self.unknown: list[str] = []
        self.skipped: list[str] = []
        self.invalid: list[tuple[str, str]] = []

    def result(self) -> DefinitionSet:
        return DefinitionSet(tuple(self.definitions), tuple(self.unknown), tuple(self.skipped), tuple(self.invalid))

    def add(self, row: Mapping[str, Any], to_params: Any) -> None:
        if not isinstance(row, Mapping):
            self.invalid.append(("<row>", f"row {row!r} is not a mapping"))
            return
        name = row.get("name")
        if not isinstance(name, str) or not name.strip():
            self.invalid.append((repr(name), "row has no name"))
            return
        # Intentional exclusions first: a disabled row for a detector we lack is not a problem.
        enabled = row.get("enabled", True)  # the column defaults to true
        if isinstance(enabled, str):  # a hand-written config value
            enabled = enabled.strip().lower() in ("true", "t", "yes", "on", "1")
        if not enabled:  # False, NULL, 0
            self.skipped.append(name)
            return
        try:
            timeframes = _timeframes_of(row.get("applicable_timeframes"), self.accepted)
        except _RowError as exc:
            self.invalid.append((name, str(exc)))
            return
        if not timeframes:
            self.skipped.append(name)
            return
        try:
            cls = registry.lookup(name)
        except registry.UnknownComponent:
            self.unknown.append(name)
            return
        try:
            params = to_params(row)
            definition = Definition(
                cls.name, cls.kind, params,
                _min_bars(row.get("min_bars_required")), _threshold(row.get("confidence_threshold")), timeframes,
            )
        except _RowError as exc:
            self.invalid.append((cls.name, str(exc)))
            return
        try:
            definition.create()  # validate once, here, rather than on every symbol's first bar
        except Exception as exc:  # a constructor must not be able to break loading
            self.invalid.append((cls.name, f"{type(exc).__name__}: {exc}"))
            return
        # The same component twice on a timeframe would publish everything twice there.
        fresh = tuple(tf for tf in timeframes if not any(
            d.name == definition.name and d.params == definition.params and tf in d.timeframes
            for d in self.definitions))
        if not fresh:
            self.skipped.append(name)
            return
        if fresh != timeframes:
            definition = replace(definition, timeframes=fresh)
        self.definitions.append(definition)


def _timeframes_of(value: Any, accepted: frozenset[str]) -> tuple[str, ...]:
    """The timeframes a row runs on: the base one for NULL or a tag in ``accepted``, plus every
    higher timeframe it names; empty when it names none of them."""
    if value is None:
        return (BASE_TIMEFRAME,)
    if isinstance(value, str):  # an unparsed PostgreSQL array literal: "{intraday,daily}"
        value = [v.strip().strip('"') for v in value.strip().strip("{}").split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise _RowError(f"applicable_timeframes must be a list or NULL, got {value!r}")
    tags = {v.strip().lower() for v in value if isinstance(v, str)}
    found = {BASE_TIMEFRAME} if tags & accepted else set()
    found.update(tf for tf in HIGHER_TIMEFRAMES if tf in tags)
    return tuple(tf for tf in TIMEFRAMES if tf in found)


def _json_dict(column: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, (str, bytes)):  # JSONB not decoded by the driver
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise _RowError(f"{column} is not valid JSON: {exc}") from None
        if value is None:
            return {}
    if not isinstance(value, Mapping):
        raise _RowError(f"{column} must be a JSON object, got {value!r}")
    return dict(value)


def _params_of_pattern(row: Mapping[str, Any]) -> dict[str, Any]:
    return _json_dict("instantiation_params", row.get("instantiation_params"))


def _params_of_indicator(row: Mapping[str, Any]) -> dict[str, Any]:
    params = _json_dict("parameters", row.get("parameters"))
    if row.get("period") is not None:
        params["period"] = row["period"]
    return params


def _params_of_config_pattern(entry: Mapping[str, Any]) -> dict[str, Any]:
    return _json_dict("params", entry.get("params"))


def _params_of_config_indicator(entry: Mapping[str, Any]) -> dict[str, Any]:
    params = _json_dict("parameters", entry.get("parameters"))
    params.update(_json_dict("params", entry.get("params")))
    if entry.get("period") is not None:
        params["period"] = entry["period"]
    return params


def _min_bars(value: Any) -> int | None:
    if value is None:
        return None
    try:
        integral = not isinstance(value, bool) and isinstance(value, (int, float, Decimal)) and value == int(value)
    except (ValueError, OverflowError, ArithmeticError):  # NaN, infinity
        integral = False
    if not integral:
        raise _RowError(f"min_bars_required must be an integer or NULL, got {value!r}")
    # 0 or less cannot mean anything but "from the first bar": the same as 1.
    return max(1, int(value))


def _threshold(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise _RowError(f"confidence_threshold must be a number within 0..1 or NULL, got {value!r}")
    value = float(value)  # NUMERIC(3,2) arrives as Decimal
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise _RowError(f"confidence_threshold must be within 0..1, got {value!r}")
    return value
