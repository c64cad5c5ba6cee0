"""Rows that could not be written before shutdown, kept on disk as JSON lines.

The wire format for the spill file lives here with the other formats: one object per line,
``{"kind": "<record type>", "row": {...fields...}}``. Reading back yields the same immutable
records, so a spilled row is written exactly as it would have been.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from tickstock.messages.bars import Bar
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord

_KINDS: dict[str, type] = {cls.__name__: cls for cls in (Bar, PatternRecord, IndicatorRecord, SessionRecord, HealthRecord)}


def encode_rows(rows: Iterable[Any]) -> bytes:
    return b"".join(
        orjson.dumps({"kind": type(row).__name__, "row": dataclasses.asdict(row)}) + b"\n" for row in rows
    )


def decode_rows(path: Path) -> Iterator[Any]:
    """Records from a spill file; a line that cannot be read raises ValueError naming the line."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
                cls = _KINDS[item["kind"]]
                row = item["row"]
                if "levels" in row:
                    row["levels"] = tuple(row["levels"])
                yield cls(**row)
            except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
                raise ValueError(f"{path}:{number}: not a spilled row ({exc!r})") from None
