"""Pattern and indicator records as lines of ``COPY ... FROM STDIN`` text format (UTF-8 bytes).

Pure functions, no I/O: each record becomes one line for a staging table of ``batch.StagedCopy``
(``store.INSERT_PATTERNS`` / ``INSERT_INDICATORS`` name its columns, in the order written here).
The values stored are exactly those of the parameters these records were sent as before:

- text is escaped for COPY (backslash, tab, newline, carriage return) and None is ``\\N`` (NULL);
  text that is not a ``str`` (other than None), or that holds NUL, is refused;
- numbers are finite floats written as ``repr`` (so NUMERIC gets the float's shortest digits),
  arrays are ``{1.5,2.5}``;
- times are integer epoch MICROseconds, rounded exactly as ``datetime.fromtimestamp`` rounds
  (half to even on the fraction); the statement turns them into TIMESTAMPTZ on the server, exactly
  (``to_timestamp`` of whole seconds plus whole microseconds; see ``store.timestamptz``);
- JSON is strict: NaN or Infinity anywhere inside is refused, as anything ``json.dumps`` refuses.
  A plain value (dicts with ``str`` keys, lists, tuples, ``str``, ``int``, finite ``float``,
  ``bool``, None; exact types) is written by orjson (walk included, ~3x faster than the
  standard library's encoder for the small dicts of a row); anything else by ``json.dumps``'s
  encoder, so every value is written, or refused, as the standard library does. The JSONB stored
  is the same: orjson differs only in spelling (raw UTF-8 for ``\\u00e9``, ``1e-5`` for ``1e-05``).

Like rows.py, a record that cannot become a valid row raises TypeError/ValueError/OverflowError
here (a ``UnicodeEncodeError`` for a lone surrogate is a ValueError), so the batch writer rejects
that record alone before anything reaches the server. Each line is encoded on its own for that
reason. The line carries no row number: ``StagedCopy`` prefixes its call and row numbers.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from tickstock.messages.records import IndicatorRecord, PatternRecord

from .rows import finite

NULL = "\\N"

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile("[\\\\\t\n\r\x00]")


def text(value: Any) -> str:
    """A text field: ``str`` escaped for COPY, None as NULL."""
    if type(value) is str and _SPECIAL.search(value) is None:
        return value
    if value is None:
        return NULL
    if not isinstance(value, str):
        raise TypeError(f"text expected, got {type(value).__name__}: {value!r}")
    if "\x00" in value:
        raise ValueError(f"text contains NUL: {value!r}")
    return str.translate(value, _ESCAPES)


def number(value: Any, what: str) -> str:
    """A finite number for a NUMERIC field (``rows.finite``, inline: the hot path)."""
    as_float = float(value)
    if as_float - as_float != 0.0:  # inf and NaN
        raise ValueError(f"{what} is not finite: {as_float!r}")
    return repr(as_float)


def number_or_null(value: Any, what: str) -> str:
    return NULL if value is None else number(value, what)


def numbers(values: Any, what: str) -> str:
    """A NUMERIC[] field: ``{1.5,2.5}``, ``{}`` when empty."""
    return "{" + ",".join([repr(finite(v, what)) for v in values]) + "}"


# Epoch microseconds a datetime can hold (years 1..9999), as rows.utc would accept them.
MICROS_MIN, MICROS_MAX = -62_135_596_800_000_000, 253_402_300_799_999_999


def micros(value: Any, what: str) -> int:
    """Epoch seconds as integer epoch microseconds: the value of ``rows.utc(value)``, which
    rounds ``fromtimestamp``'s way (the fraction times 1e6, half to even)."""
    fraction, whole = math.modf(float(value))
    us = int(whole) * 1_000_000 + round(fraction * 1e6)  # int()/round() refuse inf and NaN
    if not MICROS_MIN <= us <= MICROS_MAX:
        raise ValueError(f"{what} out of range: {value!r}")
    return us


def micros_or_null(value: Any, what: str) -> str:
    return NULL if value is None else str(micros(value, what))


_STDLIB = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _plain(value: Any) -> bool:
    """True if orjson writes ``value`` as ``json.dumps`` would (JSONB-equal): exact JSON types,
    ``str`` keys, finite floats (orjson would write NaN and Infinity as null). Plain loops with
    the scalar tests inline: this runs for two dicts of every row."""
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str:
                return False
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        items = (value,)
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if item - item != 0.0:  # inf and NaN
                return False
        elif not ((kind is dict or kind is list or kind is tuple) and _plain(item)):
            return False
    return True


def json_field(value: Any) -> str:
    """Strict JSON for a JSONB field, escaped for COPY."""
    try:
        plain = _plain(value)
    except RecursionError:  # nested too deep, or circular: json.dumps says which
        plain = False
    encoded = None
    if plain:
        try:
            encoded = orjson.dumps(value).decode()
        except orjson.JSONEncodeError:  # an int beyond 64 bits, nesting orjson refuses, a surrogate
            pass
    if encoded is None:
        encoded = _STDLIB.encode(value)  # raises as rows.json_text does
    # JSON escapes every control character: only its backslashes need escaping again.
    return encoded.replace("\\", "\\\\") if "\\" in encoded else encoded


def pattern_line(rec: PatternRecord) -> tuple[bytes]:
    """``(row_id, symbol, pattern_type, confidence, pattern_data, detection_us, expiration_us,
    levels, metadata, timeframe)`` as one COPY line."""
    line = (
        f"{text(rec.row_id)}\t{text(rec.symbol)}\t{text(rec.pattern_type)}\t"
        f"{number(rec.confidence, 'confidence')}\t{json_field(rec.pattern_data)}\t"
        f"{micros(rec.detection_timestamp, 'detection_timestamp')}\t"
        f"{micros_or_null(rec.expiration_timestamp, 'expiration_timestamp')}\t"
        f"{numbers(rec.levels, 'level')}\t{json_field(rec.metadata)}\t{text(rec.timeframe)}\n"
    )
    return (line.encode(),)


def indicator_line(rec: IndicatorRecord) -> tuple[bytes]:
    """``(row_id, symbol, indicator_type, value, value_data, calculation_us, expiration_us,
    metadata, timeframe)`` as one COPY line."""
    line = (
        f"{text(rec.row_id)}\t{text(rec.symbol)}\t{text(rec.indicator_type)}\t"
        f"{number_or_null(rec.value, 'value')}\t{json_field(rec.value_data)}\t"
        f"{micros(rec.calculation_timestamp, 'calculation_timestamp')}\t"
        f"{micros_or_null(rec.expiration_timestamp, 'expiration_timestamp')}\t"
        f"{json_field(rec.metadata)}\t{text(rec.timeframe)}\n"
    )
    return (line.encode(),)
