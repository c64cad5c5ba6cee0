"""Read-only queries for tools (the chart): one symbol's stored bars, detections and indicator
values, by time range or by session.

Guarantees:
- Read-only: the connection is opened with ``default_transaction_read_only`` (a write through it
  fails with ``ReadOnlySqlTransaction``), in autocommit, with ``statement_timeout`` set and the
  session time zone UTC. Nothing here writes, locks or migrates.
- Every time in and out is epoch seconds UTC; prices and values are floats.
- A time range is half-open, ``[start, end)``; ``None`` leaves that side open.
- Detections and indicator values are selected by the bar they were computed on (the
  ``bar_timestamp`` the service stores in ``pattern_data`` / ``metadata``), not by when they were
  computed, so a replayed day is found under its own date. Rows without a readable
  ``bar_timestamp`` are not returned for a time range (a session filter alone returns them; the
  caller decides).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions

from tickstock.messages.bars import Bar
from tickstock.messages.records import IndicatorRecord, PatternRecord
from tickstock.messages.wire import iso_utc, parse_iso_utc


@dataclass(frozen=True, slots=True)
class SessionWindow:
    """A session's row of ``streaming_sessions``; ``stopped_at`` None while it runs (or if it died)."""

    session_id: str
    universe: str | None
    started_at: float | None
    stopped_at: float | None
    final_status: str | None


_BARS = """
SELECT extract(epoch FROM timestamp)::float8, open::float8, high::float8, low::float8, close::float8, volume
FROM ohlcv_1min
WHERE symbol = %(symbol)s
  AND (%(start)s::float8 IS NULL OR timestamp >= to_timestamp(%(start)s::float8))
  AND (%(end)s::float8 IS NULL OR timestamp < to_timestamp(%(end)s::float8))
ORDER BY timestamp
"""

_LATEST_BAR = "SELECT extract(epoch FROM max(timestamp))::float8 FROM ohlcv_1min WHERE symbol = %s"

_SESSION = """
SELECT session_id::text, universe, extract(epoch FROM started_at)::float8, extract(epoch FROM stopped_at)::float8,
       final_status
FROM streaming_sessions WHERE session_id::text = %s
"""

# The bar_timestamp text is compared on its first 19 characters (YYYY-MM-DDTHH:MM:SS), which
# orders UTC times correctly whatever their suffix ('Z', '.000Z', '+00:00'); each row's exact time
# is then parsed and checked in Python, so a malformed value can never fail the query.
_PATTERNS = """
SELECT symbol, pattern_type, confidence::float8, pattern_data, extract(epoch FROM detection_timestamp)::float8,
       extract(epoch FROM expiration_timestamp)::float8, levels::float8[], metadata, timeframe
FROM intraday_patterns
WHERE symbol = %(symbol)s
  AND (%(session)s::text IS NULL OR metadata->>'session_id' = %(session)s::text)
  AND (%(start)s::text IS NULL OR left(pattern_data->>'bar_timestamp', 19) >= %(start)s::text)
  AND (%(end)s::text IS NULL OR left(pattern_data->>'bar_timestamp', 19) <= %(end)s::text)
ORDER BY detection_timestamp, id
"""

_INDICATORS = """
SELECT symbol, indicator_type, value::float8, value_data, extract(epoch FROM calculation_timestamp)::float8,
       extract(epoch FROM expiration_timestamp)::float8, metadata, timeframe
FROM intraday_indicators
WHERE symbol = %(symbol)s
  AND (%(session)s::text IS NULL OR metadata->>'session_id' = %(session)s::text)
  AND (%(start)s::text IS NULL OR left(metadata->>'bar_timestamp', 19) >= %(start)s::text)
  AND (%(end)s::text IS NULL OR left(metadata->>'bar_timestamp', 19) <= %(end)s::text)
ORDER BY calculation_timestamp, id
"""


def _prefix(epoch: float | None) -> str | None:
    """The 19-character UTC prefix for a text comparison (seconds resolution, inclusive)."""
    if epoch is None:
        return None
    return iso_utc(math.floor(epoch))[:19]


def bar_time(mapping: Any) -> float | None:
    """``mapping['bar_timestamp']`` as epoch seconds, or None when absent or unreadable."""
    if not isinstance(mapping, dict):
        return None
    try:
        return parse_iso_utc(mapping.get("bar_timestamp"))
    except ValueError:
        return None


def _within(t: float | None, start: float | None, end: float | None) -> bool:
    if start is None and end is None:
        return True
    if t is None:
        return False
    return (start is None or t >= start) and (end is None or t < end)


class ReadbackQueries:
    """One read-only connection, opened lazily; ``close`` (or ``with``) ends it. Not thread-safe."""

    def __init__(self, dsn: str, *, connect_timeout: float = 5, statement_timeout_seconds: float = 30.0,
                 application_name: str = "tickstock-readback") -> None:
        if not (math.isfinite(statement_timeout_seconds) and statement_timeout_seconds > 0):
            raise ValueError(f"statement_timeout_seconds must be > 0, got {statement_timeout_seconds!r}")
        given = psycopg2.extensions.parse_dsn(dsn)  # validates the syntax now
        defaults = {"connect_timeout": math.ceil(connect_timeout), "application_name": application_name}
        self._dsn = dsn
        self._kwargs = {k: v for k, v in defaults.items() if k not in given}
        self._statement_timeout_ms = max(1, round(statement_timeout_seconds * 1000))
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            conn = psycopg2.connect(self._dsn, **self._kwargs)
            try:
                conn.set_session(readonly=True, autocommit=True)
                with conn.cursor() as cur:
                    cur.execute("SET TIME ZONE 'UTC'")
                    cur.execute("SELECT set_config('statement_timeout', %s, false)", (f"{self._statement_timeout_ms}ms",))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """A cursor on the read-only connection (also for callers' own SELECTs)."""
        with self._connection().cursor() as cur:
            yield cur

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None

    def __enter__(self) -> ReadbackQueries:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- queries ------------------------------------------------------------------------------

    def session(self, session_id: str) -> SessionWindow | None:
        """The ``streaming_sessions`` row of ``session_id``, or None."""
        with self.cursor() as cur:
            cur.execute(_SESSION, (session_id,))
            row = cur.fetchone()
        return None if row is None else SessionWindow(*row)

    def latest_bar_start(self, symbol: str) -> float | None:
        """The start of ``symbol``'s newest stored bar, or None when it has none."""
        with self.cursor() as cur:
            cur.execute(_LATEST_BAR, (symbol,))
            row = cur.fetchone()
        return None if row is None else row[0]

    def bars(self, symbol: str, start: float | None = None, end: float | None = None) -> list[Bar]:
        """``symbol``'s 1-minute bars (``ohlcv_1min``) starting in ``[start, end)``, oldest first."""
        with self.cursor() as cur:
            cur.execute(_BARS, {"symbol": symbol, "start": start, "end": end})
            return [Bar(symbol=symbol, start=int(round(t)), open=o, high=h, low=lo, close=c, volume=v)
                    for t, o, h, lo, c, v in cur.fetchall()]

    def detections(self, symbol: str, start: float | None = None, end: float | None = None,
                   session_id: str | None = None) -> list[PatternRecord]:
        """``symbol``'s ``intraday_patterns`` rows whose bar starts in ``[start, end)`` and, when
        given, whose ``metadata.session_id`` is ``session_id``; in detection order."""
        with self.cursor() as cur:
            cur.execute(_PATTERNS, {"symbol": symbol, "session": session_id, "start": _prefix(start),
                                    "end": _prefix(end)})
            rows = cur.fetchall()
        out = []
        for sym, kind, confidence, data, detected, expires, levels, metadata, timeframe in rows:
            if not _within(bar_time(data), start, end):
                continue
            out.append(PatternRecord(
                symbol=sym, pattern_type=kind, confidence=confidence, detection_timestamp=detected,
                pattern_data=data if isinstance(data, dict) else {}, expiration_timestamp=expires,
                levels=tuple(levels or ()), metadata=metadata if isinstance(metadata, dict) else {},
                timeframe=timeframe or "",
            ))
        return out

    def indicator_values(self, symbol: str, start: float | None = None, end: float | None = None,
                         session_id: str | None = None) -> list[IndicatorRecord]:
        """``symbol``'s ``intraday_indicators`` rows whose bar (``metadata.bar_timestamp``) starts in
        ``[start, end)`` and, when given, whose ``metadata.session_id`` is ``session_id``; in
        calculation order."""
        with self.cursor() as cur:
            cur.execute(_INDICATORS, {"symbol": symbol, "session": session_id, "start": _prefix(start),
                                      "end": _prefix(end)})
            rows = cur.fetchall()
        out = []
        for sym, kind, value, value_data, calculated, expires, metadata, timeframe in rows:
            metadata = metadata if isinstance(metadata, dict) else {}
            if not _within(bar_time(metadata), start, end):
                continue
            out.append(IndicatorRecord(
                symbol=sym, indicator_type=kind, value=value, calculation_timestamp=calculated,
                value_data=value_data if isinstance(value_data, dict) else {}, expiration_timestamp=expires,
                metadata=metadata, timeframe=timeframe or "",
            ))
        return out
