"""Read ``COPY ... TO STDOUT (FORMAT binary)`` output of fixed-width columns straight into numpy.

PostgreSQL's binary copy format: an 11-byte signature, a 32-bit flags word, a 32-bit header
extension length (and that many bytes), then per row a 16-bit field count and per field a 32-bit
byte length and the value in network byte order, and a 16-bit -1 trailer. When every column is a
fixed-width type and never NULL, every row has the same layout, so the whole body is one numpy
structured array: two million rows decode in milliseconds, where a text cursor builds 14 million
Python objects.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["BinaryCopyError", "decode_rows"]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_WIDTHS = {"i2": 2, "i4": 4, "i8": 8, "f4": 4, "f8": 8}


class BinaryCopyError(ValueError):
    """The bytes are not binary COPY rows of the expected columns (the message says where)."""


def decode_rows(data: bytes, columns: Sequence[tuple[str, str]]) -> np.ndarray:
    """``data`` (a whole binary COPY output) as a structured array with the named ``columns``
    (name, numpy type code among i2/i4/i8/f4/f8), in native byte order.

    Raises ``BinaryCopyError`` for a bad signature, a row with another field count, a NULL or a
    field of another width, or a missing trailer: never a silently misread value.
    """
    if not data.startswith(SIGNATURE) or len(data) < len(SIGNATURE) + 8 + 2:
        raise BinaryCopyError("not PostgreSQL binary COPY output (bad signature)")
    ext = int.from_bytes(data[len(SIGNATURE) + 4:len(SIGNATURE) + 8], "big")
    body = memoryview(data)[len(SIGNATURE) + 8 + ext:]
    if bytes(body[-2:]) != b"\xff\xff":
        raise BinaryCopyError("binary COPY output is truncated (no trailer)")
    body = body[:-2]
    layout: list[tuple[str, str]] = [("_count", ">i2")]
    for name, code in columns:
        if code not in _WIDTHS:
            raise ValueError(f"column {name!r}: unsupported type code {code!r}")
        layout += [(f"_len_{name}", ">i4"), (name, ">" + code)]
    row_type = np.dtype(layout)
    if len(body) % row_type.itemsize:
        raise BinaryCopyError(f"{len(body)} body bytes are not whole rows of {row_type.itemsize} bytes "
                              "(a NULL or a variable-width column?)")
    raw = np.frombuffer(body, dtype=row_type)
    if raw.size and not (raw["_count"] == len(columns)).all():
        raise BinaryCopyError(f"a row does not have {len(columns)} fields")
    for name, code in columns:
        if raw.size and not (raw[f"_len_{name}"] == _WIDTHS[code]).all():
            raise BinaryCopyError(f"column {name!r}: a value is NULL or not {_WIDTHS[code]} bytes wide")
    out = np.empty(raw.size, dtype=[(name, code) for name, code in columns])
    for name, _ in columns:
        out[name] = raw[name]
    return out
