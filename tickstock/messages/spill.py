"""The line format of the persistence write-ahead log (and of the older ``spill-*.jsonl`` files).

One row per line: ``{"kind": "<record type>", "row": {...fields...}}\\n`` (JSON, UTF-8). Reading
a line back yields the same immutable record, so a row replayed from disk is written exactly as it
would have been (including its ``row_id`` and a bar's ``session_id``). Fields a record gained after
the line was written take their defaults; tuple fields come back as tuples.

A line is written whole or not at all as far as a reader can tell: a line cut short (a process
killed mid-write) is not valid JSON or lacks its newline, and ``decode_line`` refuses it with
``ValueError`` instead of returning a wrong row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import msgspec
import orjson

from tickstock.messages.bars import Bar
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord
from tickstock.messages.wire import dumps

_KINDS: dict[str, type] = {cls.__name__: cls for cls in (Bar, PatternRecord, IndicatorRecord, SessionRecord, HealthRecord)}


def _fields(cls: type) -> Iterable[tuple[str, Any]]:
    """(name, annotation) of a record type's fields (every kind is a ``msgspec.Struct``)."""
    return ((f.name, f.type) for f in msgspec.structs.fields(cls))


# Per kind, the fields stored as tuples (JSON has only lists).
_TUPLE_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(field for field, kind in _fields(cls) if str(kind).startswith("tuple"))
    for name, cls in _KINDS.items()
}


def encode_row(row: Any) -> bytes:
    """One line (newline included). TypeError if the row cannot be encoded (a value JSON cannot hold),
    ValueError if its type is not a known record."""
    kind = type(row).__name__
    if _KINDS.get(kind) is not type(row):
        raise ValueError(f"not a persisted record type: {kind}")
    # The wire's encoder (msgspec) takes Structs itself, field by field: the same bytes as
    # ``msgspec.structs.asdict`` then ``dumps``, without the intermediate dict.
    return dumps({"kind": kind, "row": row}) + b"\n"


def decode_line(line: bytes) -> Any:
    """The record of one line. ValueError if the line is not a whole, known row."""
    if not line.endswith(b"\n"):
        raise ValueError("line is not terminated (cut short)")
    try:
        item = orjson.loads(line)
        kind = item["kind"]
        cls = _KINDS[kind]
        row = dict(item["row"])
        for name in _TUPLE_FIELDS[kind]:
            if isinstance(row.get(name), list):
                row[name] = tuple(row[name])
        return cls(**row)
    except (KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"not a persisted row ({exc!r})") from None


def encode_rows(rows: Iterable[Any]) -> bytes:
    return b"".join(encode_row(row) for row in rows)


def decode_rows(path: Path) -> Iterator[Any]:
    """Records from a file of lines; a line that cannot be read raises ValueError naming the line.
    (The write-ahead log reads line by line itself, to skip a torn line instead.)"""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield decode_line(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
