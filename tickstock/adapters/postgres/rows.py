"""Conversions between the service's records and database parameters/rows.

Pure functions, no I/O. A conversion raises TypeError/ValueError/OverflowError for an item that
cannot become a valid row (non-finite number, epoch outside the datetime range, non-JSON dict):
the batch writer turns that into a rejection of that item alone, before anything reaches the
server. Pattern and indicator records become COPY lines instead (copy_rows.py), by the same rules.
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from tickstock.messages.bars import Bar
from tickstock.messages.records import ROW_ID_NAMESPACE, HealthRecord, SessionRecord


def utc(epoch_seconds: float) -> datetime:
    """Epoch seconds (UTC) as an aware datetime, so TIMESTAMPTZ never depends on a session time zone."""
    return datetime.fromtimestamp(float(epoch_seconds), tz=timezone.utc)


def utc_or_none(epoch_seconds: float | None) -> datetime | None:
    return None if epoch_seconds is None else utc(epoch_seconds)


# The range of a TIMESTAMPTZ a datetime can also hold (years 1..9999): beyond it, refuse the row here.
_EPOCH_MIN, _EPOCH_MAX = -62_135_596_800, 253_402_300_799


def epoch(value: Any, what: str = "time") -> float:
    """``value`` as finite epoch seconds within the years 1..9999 (an int stays an int)."""
    number = value if isinstance(value, int) and not isinstance(value, bool) else finite(value, what)
    if not _EPOCH_MIN <= number <= _EPOCH_MAX:
        raise ValueError(f"{what} out of range: {number!r}")
    return number


def epoch_or_none(value: Any, what: str = "time") -> float | None:
    return None if value is None else epoch(value, what)


def finite(value: Any, what: str) -> float:
    """``value`` as a finite float. NUMERIC accepts 'NaN' and 'Infinity', which would then poison
    every reader, so the adapter refuses them like the database refuses a bad foreign key."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} is not finite: {number!r}")
    return number


def finite_or_none(value: Any, what: str) -> float | None:
    return None if value is None else finite(value, what)


def json_text(value: Any) -> str:
    """Strict JSON for a JSONB parameter (no NaN/Infinity: PostgreSQL rejects them anyway)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


# The part of a bar that names no session (a spill line older than ``Bar.session_id``).
NIL_SESSION = "00000000-0000-0000-0000-000000000000"


@functools.lru_cache(maxsize=64)  # a handful of sessions, 500 bars each per minute
def session_uuid(session_id: str) -> str:
    """A bar's ``session_id`` as the UUID of its part: the nil UUID for "", the UUID itself
    (canonical form) for a UUID, and for anything else a UUID derived from it, so that a
    session id that is not a UUID still names one part and never makes its bar unwritable."""
    if not session_id:
        return NIL_SESSION
    text = str(session_id)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return str(uuid.uuid5(ROW_ID_NAMESPACE, "session\x1f" + text))


def bar_part_row(bar: Bar) -> tuple[Any, ...]:
    """Parameters for ``ohlcv_1min_parts (symbol, timestamp, session_id,
    open, high, low, close, volume, first_tick_at, last_tick_at, partial)``.

    Times are epoch seconds (the statement converts them): ``start`` an int, the tick times
    finite floats or None. ``partial`` decides how the part counts (see parts.py)."""
    return (
        bar.symbol,
        epoch(bar.start),
        session_uuid(bar.session_id),
        finite(bar.open, "open"),
        finite(bar.high, "high"),
        finite(bar.low, "low"),
        finite(bar.close, "close"),
        int(bar.volume),
        epoch_or_none(bar.first_tick_at),
        epoch_or_none(bar.last_tick_at),
        bool(bar.partial),
    )


def bar_part_key(bar: Bar) -> tuple[str, int, str]:
    """The primary key of a bar's part: (symbol, minute start, session UUID)."""
    return (bar.symbol, bar.start, session_uuid(bar.session_id))


def session_params(rec: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": rec.session_id,
        "universe": rec.universe,
        "started_at": utc(rec.started_at),
        "stopped_at": utc_or_none(rec.stopped_at),
        "symbol_count": int(rec.symbol_count),
        "total_patterns": int(rec.total_patterns),
        "total_indicators": int(rec.total_indicators),
        "final_status": rec.final_status,
    }


def health_params(rec: HealthRecord) -> dict[str, Any]:
    return {
        "row_id": rec.row_id,
        "session_id": rec.session_id,
        "recorded_at": utc(rec.recorded_at),
        "status": rec.status,
        "active_symbols": int(rec.active_symbols),
        "ticks_per_second": finite(rec.ticks_per_second, "ticks_per_second"),
        "bars_per_minute": finite(rec.bars_per_minute, "bars_per_minute"),
        "processing_lag_ms": finite_or_none(rec.processing_lag_ms, "processing_lag_ms"),
        "patterns_detected": int(rec.patterns_detected),
        "indicators_calculated": int(rec.indicators_calculated),
        "payload": json_text(rec.payload),
    }


def plain_row(row: dict[str, Any]) -> dict[str, Any]:
    """A definitions row as plain Python: NUMERIC (Decimal) becomes float; arrays stay lists and
    JSONB stays dicts/lists (psycopg2 already decodes both)."""
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
