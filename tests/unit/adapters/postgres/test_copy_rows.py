"""copy_rows: records as COPY text lines, with the values and refusals of the parameters they replace."""

from __future__ import annotations

import enum
import json
import math
import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tickstock.adapters.postgres import copy_rows, rows
from tickstock.adapters.postgres.batch import CONVERSION_ERRORS
from tickstock.messages.records import IndicatorRecord, PatternRecord

T0 = 1_728_309_600
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def fields(line: tuple[bytes]) -> list[str]:
    (data,) = line
    assert data.endswith(b"\n") and data.count(b"\n") == 1  # one line, whatever the values hold
    return data[:-1].decode().split("\t")


# -- text -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, escaped", [
    ("AAPL", "AAPL"),
    ("a\\b", "a\\\\b"),
    ("tab\there", "tab\\there"),
    ("new\nline", "new\\nline"),
    ("cr\rhere", "cr\\rhere"),
    ("\\N", "\\\\N"),  # the two characters, not NULL
    ("quote'\"", "quote'\""),
    ("Zürich €", "Zürich €"),
    ("", ""),
    (None, "\\N"),
])
def test_text_is_escaped_for_copy(value, escaped) -> None:
    assert copy_rows.text(value) == escaped


def test_text_refuses_what_is_not_a_string_or_holds_nul() -> None:
    with pytest.raises(TypeError):
        copy_rows.text(5)
    with pytest.raises(ValueError, match="NUL"):
        copy_rows.text("a\x00b")


# -- numbers ----------------------------------------------------------------------------------

def test_numbers_are_finite_floats_written_as_repr() -> None:
    assert copy_rows.number(0.85, "x") == "0.85"
    assert copy_rows.number(3, "x") == "3.0"
    assert copy_rows.number(1e-05, "x") == "1e-05"
    assert copy_rows.number_or_null(None, "x") == "\\N"
    assert copy_rows.numbers((125.5, -1), "level") == "{125.5,-1.0}"
    assert copy_rows.numbers((), "level") == "{}"
    for bad in (math.nan, math.inf, -math.inf, 1e400):
        with pytest.raises(ValueError, match="not finite"):
            copy_rows.number(bad, "confidence")
        with pytest.raises(ValueError, match="not finite"):
            copy_rows.numbers((1.0, bad), "level")
    with pytest.raises(TypeError):
        copy_rows.number(None, "confidence")


# -- times ------------------------------------------------------------------------------------

def utc_micros(value: float) -> int:
    """What the parameters held before: rows.utc's datetime, in epoch microseconds."""
    return (rows.utc(value) - EPOCH) // timedelta(microseconds=1)


def test_micros_round_as_datetime_fromtimestamp_does() -> None:
    rng = random.Random(7)
    values = [T0 + 60.412345, T0 + 0.5e-6, T0 + 1.5e-6, 0.5e-6, 1.5e-6, 2.5e-6, -0.5e-6, -1.5e-6, -1e-7,
              -86_400.25, 0, 1, True, "1728309660.5"]
    values += [rng.uniform(-6e10, 2.5e11) for _ in range(2000)] + [rng.uniform(1.6e9, 1.9e9) for _ in range(2000)]
    values += [math.floor(v) + (k + 0.5) / 1e6 for v in values[14:200] for k in (0, 1, 499_999, 999_998)]  # ties
    for value in values:
        assert copy_rows.micros(value, "t") == utc_micros(value), value


def test_micros_refuse_what_a_datetime_cannot_hold() -> None:
    first, last = -62_135_596_800, 253_402_300_799  # 0001-01-01 00:00:00, 9999-12-31 23:59:59
    for value in (first, first + 0.25, last, last + 0.5, math.nextafter(last + 1, 0)):
        assert copy_rows.micros(value, "t") == utc_micros(value)
    for value in (first - 1, math.nextafter(first, -math.inf), last + 1, 1e20, -1e20, math.inf, -math.inf,
                  math.nan, None, "x"):
        with pytest.raises(CONVERSION_ERRORS):
            rows.utc(value)
        with pytest.raises(CONVERSION_ERRORS):
            copy_rows.micros(value, "t")
    assert copy_rows.micros_or_null(None, "t") == "\\N"


# -- JSON -------------------------------------------------------------------------------------

class Colour(enum.Enum):
    RED = 1


class Kind(str, enum.Enum):
    DOJI = "doji"


SAME_AS_STDLIB = [
    {}, [], {"value": 72.5}, {"a": [1, 2.5, None, True, False, "x"], "b": {"c": {"d": []}}},
    {"tiny": 1e-05, "big": 1e16, "huge": 1.2345678901234568e+20, "one": 1.0, "neg": -0.0, "i": -(2**63)},
    {"text": "tab\t nl\n cr\r bs\\ quote\" nul-free Zürich € 😀"},
    {"big_int": 2**70},                      # beyond orjson's 64 bits: the standard library writes it
    {1: "int key", 2.5: "float key", None: "none key", True: "bool key"},  # keys json.dumps converts
    {"kind": Kind.DOJI, "t": (1, 2)},        # a str subclass, a tuple
    "a string", 5, 2.5, None,
]


@pytest.mark.parametrize("value", SAME_AS_STDLIB, ids=range(len(SAME_AS_STDLIB)))
def test_json_is_the_standard_librarys_json(value) -> None:
    text = copy_rows.json_field(value).replace("\\\\", "\\")  # undo COPY's backslash escape
    assert json.loads(text) == json.loads(rows.json_text(value))
    assert "\t" not in text and "\n" not in text and "\r" not in text


def test_json_backslashes_are_escaped_for_copy() -> None:
    assert copy_rows.json_field({"a": 'q"\\\n'}) == '{"a":"q\\\\"\\\\\\\\\\\\n"}'


@pytest.mark.parametrize("value", [
    {"x": math.nan}, {"x": math.inf}, {"x": -math.inf}, [1.0, math.nan],
    {"a": [1, {"b": (2, math.nan)}]}, {"a": {"b": {"c": {"d": [math.inf]}}}}, math.nan,
])
def test_json_refuses_nan_and_infinity_at_any_depth(value) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        rows.json_text(value)
    with pytest.raises(ValueError, match="JSON compliant"):
        copy_rows.json_field(value)


@pytest.mark.parametrize("value", [
    {"when": datetime(2024, 1, 1)}, {"id": uuid.UUID(int=1)}, {"colour": Colour.RED}, {"raw": b"x"},
    {"set": {1}}, {(1, 2): "tuple key"}, {"nested": [{"obj": object()}]},
])
def test_json_refuses_what_json_dumps_refuses(value) -> None:
    with pytest.raises(TypeError):
        rows.json_text(value)
    with pytest.raises(TypeError):
        copy_rows.json_field(value)


def test_json_refuses_a_circular_value() -> None:
    loop: dict = {}
    loop["self"] = [loop]
    with pytest.raises(ValueError, match="Circular"):
        copy_rows.json_field(loop)


# -- lines ------------------------------------------------------------------------------------

def test_an_indicator_line_holds_its_columns_in_order() -> None:
    rec = IndicatorRecord("TS\tLA", "RSI", 72.5, T0 + 120.15, {"value": 72.5}, None, {"period": 14},
                          timeframe="5min", row_id="8b0f0c8e-2f0a-4a53-9d86-1c4b8a3d5e71")
    assert fields(copy_rows.indicator_line(rec)) == [
        "8b0f0c8e-2f0a-4a53-9d86-1c4b8a3d5e71", "TS\\tLA", "RSI", "72.5", '{"value":72.5}',
        str(utc_micros(T0 + 120.15)), "\\N", '{"period":14}', "5min"]
    undefined = IndicatorRecord("X", "SMA", None, T0, timeframe=None, row_id="r")
    assert fields(copy_rows.indicator_line(undefined))[3::5] == ["\\N", "\\N"]


def test_a_pattern_line_holds_its_columns_in_order() -> None:
    rec = PatternRecord("NVDA", "Doji", 0.85, T0 + 60.412, {"b": "x\ny"}, T0 + 3660.412, (125.5, 125.75),
                        {"session_id": "s"}, "1min", row_id="r")
    assert fields(copy_rows.pattern_line(rec)) == [
        "r", "NVDA", "Doji", "0.85", '{"b":"x\\\\ny"}', str(utc_micros(T0 + 60.412)),
        str(utc_micros(T0 + 3660.412)), "{125.5,125.75}", '{"session_id":"s"}', "1min"]


@pytest.mark.parametrize("changes", [
    {"confidence": math.nan}, {"confidence": None}, {"levels": (1.0, math.inf)}, {"levels": None},
    {"detection_timestamp": math.nan}, {"detection_timestamp": None}, {"expiration_timestamp": 1e13},
    {"pattern_data": {"a": [math.nan]}}, {"metadata": {"s": {1, 2}}}, {"symbol": 5}, {"symbol": "A\x00"},
    {"symbol": "\ud800"},  # a lone surrogate cannot be UTF-8
])
def test_a_record_that_cannot_be_a_row_raises_a_conversion_error(changes) -> None:
    fields_ = dict(symbol="NVDA", pattern_type="Doji", confidence=0.85, detection_timestamp=T0,
                   row_id="r")
    fields_.update(changes)
    with pytest.raises(CONVERSION_ERRORS):
        copy_rows.pattern_line(PatternRecord(**fields_))
