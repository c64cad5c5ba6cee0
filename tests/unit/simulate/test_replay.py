"""Replay sources: CSV ticks or bars (by the header), timestamps, event-time order, and bad rows
named by file and line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tickstock.messages.bars import Bar
from tickstock.simulate.replay import (
    ReplayError, exchange_day_bounds, parse_timestamp, read_csv, source_from_bars,
)

from .engine import fold

M = 1_760_000_040  # 2025-10-09T08:54:00Z


def write(tmp_path: Path, text: str, name: str = "day.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, expected", [
    ("1760000040", 1760000040.0),
    ("1760000040.25", 1760000040.25),
    ("1760000040250", 1760000040.25),                 # milliseconds, as the contract normalises
    ("2025-10-09T08:54:00Z", 1760000040.0),
    ("2025-10-09T08:54:00", 1760000040.0),            # no offset: UTC
    ("2025-10-09 08:54:00.500", 1760000040.5),
    ("2025-10-09T04:54:00-04:00", 1760000040.0),
    (" 2025-10-09T08:54:00+00:00 ", 1760000040.0),
])
def test_timestamps_iso_or_epoch(text: str, expected: float) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "nan", "inf", "2025-13-01T00:00:00"])
def test_bad_timestamps_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(text)


def test_ticks_by_the_header_sorted_by_event_time(tmp_path: Path) -> None:
    path = write(tmp_path, "Symbol,Timestamp,Price,Volume,exchange\n"
                           "AAPL,2025-10-09T08:54:10Z,257.01,150,X\n"
                           "MSFT,1760000041,410.5,0,Y\n"
                           "AAPL,1760000040.5,257.00,100,X\n")
    src = read_csv(path)
    assert src.kind == "ticks" and src.rows == 3 and src.symbols == ["AAPL", "MSFT"]
    assert [(t.timestamp, t.symbol, t.price, t.volume) for t in src.ticks] == [
        (1760000040.5, "AAPL", 257.0, 100), (1760000041.0, "MSFT", 410.5, 0), (1760000050.0, "AAPL", 257.01, 150)]


def test_bars_by_the_header_expand_to_ticks_that_give_the_bars_back(tmp_path: Path) -> None:
    path = write(tmp_path, "symbol,timestamp,open,high,low,close,volume\n"
                           "AAPL,2025-10-09T08:55:00Z,257.5,258.0,257.0,257.25,1001\n"
                           "AAPL,2025-10-09T08:54:00Z,257.0,257.6,256.9,257.5,2000\n"
                           "MSFT,1760000040,410,410,410,410,0\n")
    src = read_csv(path, ticks_per_bar=6)
    assert src.kind == "bars" and src.rows == 3
    assert [t.timestamp for t in src.ticks] == sorted(t.timestamp for t in src.ticks)
    rebuilt = {(b.symbol, b.start): (b.open, b.high, b.low, b.close, b.volume) for b in fold(src.ticks)}
    assert rebuilt == {("AAPL", M + 60): (257.5, 258.0, 257.0, 257.25, 1001),
                       ("AAPL", M): (257.0, 257.6, 256.9, 257.5, 2000),
                       ("MSFT", M): (410.0, 410.0, 410.0, 410.0, 0)}


def test_symbols_filter(tmp_path: Path) -> None:
    path = write(tmp_path, "symbol,timestamp,price,volume\nAAPL,1760000040,1,1\nMSFT,1760000041,2,2\n")
    src = read_csv(path, symbols=["msft"])
    assert [t.symbol for t in src.ticks] == ["MSFT"] and src.rows == 1


@pytest.mark.parametrize("text, where, problem", [
    ("symbol,timestamp,price,volume\nAAPL,1760000040,-3,1\n", 2, "price '-3' is not a finite positive price"),
    ("symbol,timestamp,price,volume\nAAPL,1760000040,1,1\n\nAAPL,soon,1,1\n", 4, "timestamp 'soon'"),
    ("symbol,timestamp,price,volume\naapl,1760000040,1,1\n", 2, "bad_symbol"),
    ("symbol,timestamp,price,volume\nAAPL,1760000040,1,1.5\n", 2, "volume '1.5' is not an integer"),
    ("symbol,timestamp,price,volume\nAAPL,1760000040,1,-1\n", 2, "volume '-1' is negative"),
    ("symbol,timestamp,price,volume\nAAPL,1760000040,1\n", 2, "3 columns"),
    ("symbol,timestamp,open,high,low,close,volume\nAAPL,1760000041,1,2,1,1,1\n", 2, "not a minute start"),
    ("symbol,timestamp,open,high,low,close,volume\nAAPL,1760000040,1,2,1.5,1,1\n", 2, "prices out of order"),
    ("symbol,timestamp,open,high,low,close,volume\nAAPL,1760000040,1,2,1,1,1\nAAPL,1760000040,1,2,1,1,1\n",
     3, "a second bar for AAPL at 2025-10-09T08:54:00Z \\(the first is on line 2\\)"),
    ("ticker,time,last\nAAPL,1,1\n", 1, "neither ticks"),
])
def test_bad_rows_name_the_file_and_line(tmp_path: Path, text: str, where: int, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ReplayError, match=f"^{path}:{where}: .*{problem}"):
        read_csv(path)


def test_an_empty_or_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="empty"):
        read_csv(write(tmp_path, ""))
    with pytest.raises(ReplayError, match="cannot read"):
        read_csv(tmp_path / "nope.csv")


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffsymbol,timestamp,price,volume\nAAPL,1760000040,1,1\n".encode())
    assert read_csv(path).rows == 1


def test_exchange_day_is_new_york_midnight_to_midnight() -> None:
    start, end = exchange_day_bounds(dt.date(2026, 3, 8))  # the DST change: a 23-hour day
    assert start.astimezone(dt.timezone.utc).isoformat() == "2026-03-08T05:00:00+00:00"
    assert end.timestamp() - start.timestamp() == 23 * 3600


def test_source_from_bars_orders_ticks_by_event_time() -> None:
    bars = [Bar("B", M + 60, 2.0, 2.0, 2.0, 2.0, 1), Bar("A", M, 1.0, 1.5, 0.5, 1.2, 10)]
    src = source_from_bars(bars, "mem")
    assert src.first < M + 60 <= src.last and src.symbols == ["A", "B"] and src.rows == 2
