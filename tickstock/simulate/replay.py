"""Replay sources: ticks or 1-minute bars from a CSV file, or bars from the ``ohlcv_1min`` table,
turned into ticks in event-time order.

CSV: a header line, then one row per tick or bar; which it is comes from the header --
``symbol,timestamp,price,volume`` (ticks) or ``symbol,timestamp,open,high,low,close,volume``
(bars). Column names are matched in any order and letter case; other columns are ignored.
Timestamps are ISO-8601 (UTC when the text has no offset) or epoch seconds (a value above 1e11 is
milliseconds, as the tick contract says). A bar's timestamp is its minute's start.

Guarantees:
- A bad row raises ``ReplayError`` naming the file, the line and the problem (``prices.csv:7:
  price '-3' is not a finite positive price``); nothing is published from a file that has one.
  Every tick row passes the contract's own validation (``tickstock.messages.ticks.decode_tick``),
  so whatever a replay publishes, the service accepts.
- Bars are expanded with ``expand_bar``: their ticks re-aggregate to exactly the bar. Two bars for
  the same symbol and minute are an error (they would be merged into one).
- ``ReplaySource.ticks`` is sorted by event time (stable: rows with equal times keep file order).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tickstock.market.calendar import EXCHANGE_TZ
from tickstock.messages.bars import Bar
from tickstock.messages.ticks import MILLISECONDS_THRESHOLD, TickRejected, decode_tick, encode_tick
from tickstock.simulate.expand import check_bar, expand_bar
from tickstock.simulate.tick import SimTick

__all__ = [
    "BAR_COLUMNS", "TICK_COLUMNS", "ReplayError", "ReplaySource", "bars_to_ticks", "load_db_bars",
    "parse_timestamp", "read_csv", "source_from_bars",
]

TICK_COLUMNS = ("symbol", "timestamp", "price", "volume")
BAR_COLUMNS = ("symbol", "timestamp", "open", "high", "low", "close", "volume")


class ReplayError(ValueError):
    """A replay source that cannot be used; the message names the file and line where known."""


@dataclass
class ReplaySource:
    """What a replay publishes: ``ticks`` in event-time order, and where they came from."""

    kind: str                       # "ticks" | "bars"
    origin: str                     # the file, or "ohlcv_1min <date>"
    ticks: list[SimTick]
    rows: int                       # ticks or bars read (after the symbol filter)
    symbols: list[str] = field(default_factory=list)

    @property
    def first(self) -> float | None:
        return self.ticks[0].timestamp if self.ticks else None

    @property
    def last(self) -> float | None:
        return self.ticks[-1].timestamp if self.ticks else None


def parse_timestamp(text: str) -> float:
    """Epoch seconds from ISO-8601 (UTC when no offset is given) or epoch seconds/milliseconds.

    ValueError naming the text otherwise (including non-finite numbers)."""
    raw = text.strip()
    if not raw:
        raise ValueError("timestamp is empty")
    try:
        number = float(raw)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number):
            raise ValueError(f"timestamp {raw!r} is not a finite number")
        return number / 1000.0 if number > MILLISECONDS_THRESHOLD else number
    iso = raw[:-1] + "+00:00" if raw[-1:] in ("Z", "z") else raw
    try:
        parsed = dt.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"timestamp {raw!r} is neither ISO-8601 nor epoch seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def _price(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text.strip()!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} {text.strip()!r} is not a finite positive price")
    return value


def _volume(text: str) -> int:
    raw = text.strip()
    try:
        value = int(raw)
    except ValueError:
        try:
            as_float = float(raw)
        except ValueError:
            raise ValueError(f"volume {raw!r} is not an integer") from None
        if not (math.isfinite(as_float) and as_float.is_integer()):
            raise ValueError(f"volume {raw!r} is not an integer") from None
        value = int(as_float)
    if value < 0:
        raise ValueError(f"volume {raw!r} is negative")
    return value


def _header(path: Path, row: list[str]) -> tuple[str, dict[str, int]]:
    names = [c.strip().lower().lstrip("\ufeff") for c in row]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    if all(c in index for c in BAR_COLUMNS):
        return "bars", index
    if all(c in index for c in TICK_COLUMNS):
        return "ticks", index
    raise ReplayError(
        f"{path}:1: header {','.join(names)!r} is neither ticks ({','.join(TICK_COLUMNS)}) "
        f"nor 1-minute bars ({','.join(BAR_COLUMNS)})")


def read_csv(path: str | Path, *, symbols: Sequence[str] | None = None, ticks_per_bar: int = 4) -> ReplaySource:
    """Read a tick or bar CSV (see the module docstring). ``symbols`` keeps only those (every row
    is still validated). ``ReplayError`` names the file and line of the first bad row."""
    path = Path(path)
    wanted = {s.upper() for s in symbols} if symbols else None
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise ReplayError(f"{path}: the file is empty (expected a header line)")
            kind, index = _header(path, header)
            width = max(index[c] for c in (BAR_COLUMNS if kind == "bars" else TICK_COLUMNS)) + 1
            ticks: list[SimTick] = []
            bars: list[Bar] = []
            seen_bars: dict[tuple[str, int], int] = {}
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) < width:
                    raise ReplayError(f"{path}:{line}: {len(row)} columns, the header has {len(header)}")
                try:
                    if kind == "ticks":
                        tick = _tick_row(row, index)
                        if wanted is None or tick.symbol in wanted:
                            ticks.append(tick)
                    else:
                        bar = _bar_row(row, index)
                        key = (bar.symbol, bar.start)
                        if key in seen_bars:
                            raise ValueError(f"a second bar for {bar.symbol} at {_iso(bar.start)} "
                                             f"(the first is on line {seen_bars[key]})")
                        seen_bars[key] = line
                        if wanted is None or bar.symbol in wanted:
                            bars.append(bar)
                except ValueError as exc:
                    raise ReplayError(f"{path}:{line}: {exc}") from None
        except csv.Error as exc:
            raise ReplayError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ReplayError(f"{path}: not UTF-8 text: {exc}") from None
    if kind == "bars":
        return source_from_bars(bars, str(path), ticks_per_bar)
    ticks.sort(key=lambda t: t.timestamp)
    return ReplaySource("ticks", str(path), ticks, len(ticks), sorted({t.symbol for t in ticks}))


def _tick_row(row: list[str], index: dict[str, int]) -> SimTick:
    symbol = row[index["symbol"]].strip()
    ts = parse_timestamp(row[index["timestamp"]])
    price = _price("price", row[index["price"]])
    volume = _volume(row[index["volume"]])
    # The contract's own checks (symbol form, volume range, ...): what passes here, the service takes.
    try:
        decode_tick(encode_tick(symbol, price, volume, ts), received_at=ts)
    except TickRejected as exc:
        raise ValueError(str(exc)) from None
    return SimTick(ts, symbol, price, volume)


def _bar_row(row: list[str], index: dict[str, int]) -> Bar:
    symbol = row[index["symbol"]].strip()
    ts = parse_timestamp(row[index["timestamp"]])
    if ts % 60:
        raise ValueError(f"bar timestamp {row[index['timestamp']].strip()!r} is not a minute start (second 0)")
    o, h, l, c = (_price(n, row[index[n]]) for n in ("open", "high", "low", "close"))
    bar = Bar(symbol, int(ts), o, h, l, c, _volume(row[index["volume"]]))
    try:
        decode_tick(encode_tick(symbol, c, bar.volume, ts), received_at=ts)
    except TickRejected as exc:
        raise ValueError(str(exc)) from None
    check_bar(bar)
    return bar


def bars_to_ticks(bars: Iterable[Bar], ticks_per_bar: int = 4) -> list[SimTick]:
    """Every bar expanded (exactly re-aggregating), all ticks in event-time order."""
    ticks = [t for bar in bars for t in expand_bar(bar, ticks_per_bar)]
    ticks.sort(key=lambda t: t.timestamp)
    return ticks


def source_from_bars(bars: Sequence[Bar], origin: str, ticks_per_bar: int = 4) -> ReplaySource:
    return ReplaySource("bars", origin, bars_to_ticks(bars, ticks_per_bar), len(bars),
                        sorted({b.symbol for b in bars}))


def exchange_day_bounds(date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[00:00, next 00:00) America/New_York on ``date``, as aware datetimes (DST-correct)."""
    start = dt.datetime.combine(date, dt.time(), tzinfo=EXCHANGE_TZ)
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=EXCHANGE_TZ)
    return start, end


def load_db_bars(dsn: str, date: dt.date, symbols: Sequence[str] | None = None,
                 connect_timeout: float = 5.0) -> list[Bar]:
    """The ``ohlcv_1min`` bars of the exchange date ``date`` (its America/New_York day), oldest
    first. ``ReplayError`` when the database cannot be read."""
    import psycopg2  # only the database replay needs it

    start, end = exchange_day_bounds(date)
    query = ("SELECT symbol, timestamp, open, high, low, close, volume FROM ohlcv_1min "
             "WHERE timestamp >= %s AND timestamp < %s")
    params: list[object] = [start, end]
    if symbols:
        query += " AND symbol = ANY(%s)"
        params.append([s.upper() for s in symbols])
    query += " ORDER BY timestamp, symbol"
    try:
        conn = psycopg2.connect(dsn, connect_timeout=max(1, int(connect_timeout)))
    except psycopg2.Error as exc:
        raise ReplayError(f"cannot connect to the database: {str(exc).strip()}") from None
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
    except psycopg2.Error as exc:
        raise ReplayError(f"cannot read ohlcv_1min: {str(exc).strip()}") from None
    finally:
        conn.close()
    return [Bar(symbol, int(ts.timestamp()), _num(o), _num(h), _num(l), _num(c), int(v))
            for symbol, ts, o, h, l, c, v in rows]


def _num(value: Decimal | float) -> float:
    return float(value)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
