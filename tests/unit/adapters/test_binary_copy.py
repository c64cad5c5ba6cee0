"""binary_copy.decode_rows: PostgreSQL binary COPY bytes -> numpy, or a loud error, never a misread."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tickstock.adapters.postgres.binary_copy import SIGNATURE, BinaryCopyError, decode_rows

COLUMNS = (("i", "i4"), ("close", "f8"))


def copy_bytes(rows, *, ext: bytes = b"", trailer: bool = True) -> bytes:
    out = SIGNATURE + struct.pack(">ii", 0, len(ext)) + ext
    for row in rows:
        out += struct.pack(">h", len(row))
        for kind, value in row:
            if value is None:
                out += struct.pack(">i", -1)
            else:
                data = struct.pack(">" + kind, value)
                out += struct.pack(">i", len(data)) + data
    return out + (struct.pack(">h", -1) if trailer else b"")


def test_rows_decode_to_native_columns_after_a_header_extension():
    data = copy_bytes([(("i", 1), ("d", 10.5)), (("i", 2), ("d", -0.25))], ext=b"xyz")
    got = decode_rows(data, COLUMNS)
    assert got["i"].tolist() == [1, 2] and got["close"].tolist() == [10.5, -0.25]
    assert got.dtype["close"].byteorder in ("=", "<", "|") or got.dtype["close"].isnative


def test_no_rows_is_an_empty_array():
    assert decode_rows(copy_bytes([]), COLUMNS).size == 0


@pytest.mark.parametrize("data, reason", [
    (b"COPY" + bytes(30), "signature"),
    (copy_bytes([(("i", 1), ("d", 1.0))], trailer=False), "truncated"),
    (copy_bytes([(("i", 1), ("d", None))]), "NULL"),
    (copy_bytes([(("q", 1), ("f", 1.0))]), "'i': a value is NULL or not 4 bytes"),  # same row size, other widths
    (copy_bytes([(("i", 1), ("i", 2), ("d", 1.0))]), "whole rows"),
])
def test_anything_but_the_expected_rows_is_refused_with_the_reason(data, reason):
    with pytest.raises(BinaryCopyError, match=reason):
        decode_rows(data, COLUMNS)


def test_an_unsupported_column_type_is_a_caller_error():
    with pytest.raises(ValueError, match="unsupported"):
        decode_rows(copy_bytes([]), (("name", "U8"),))
