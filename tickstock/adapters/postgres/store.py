"""PostgresStore: the service's only door to PostgreSQL. A thin adapter: SQL in, rows out.

Connection guarantees (every method):

- One psycopg2 connection, opened lazily on first use, autocommit off: each method is exactly one
  transaction, committed before it returns, or rolled back if it raises.
- Connection-level failures (``psycopg2.OperationalError``, ``psycopg2.InterfaceError``) are
  RAISED, never swallowed; the broken connection is dropped and the next call opens a new one.
  There is no hidden retry: the caller decides when to try again (and keeps its buffer meanwhile).
- Calls are serialised by an internal lock, so one store may be shared between threads, but it
  gives no parallelism.
- Times leave as aware UTC datetimes and the session time zone is UTC, so nothing depends on the
  server's ``TimeZone`` setting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from tickstock.messages.bars import Bar
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord

from . import rows
from .batch import BatchStatement, WriteResult, write_batch
from .universe import UniverseNotFound, parse_universe_value, split_key

T = TypeVar("T")

# Errors after which the connection cannot be trusted: drop it, reconnect on the next call.
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)

UPSERT_BARS = BatchStatement(
    sql=(
        "INSERT INTO ohlcv_1min (symbol, timestamp, open, high, low, close, volume) VALUES %s "
        "ON CONFLICT (symbol, timestamp) DO UPDATE SET open = EXCLUDED.open, "
        "high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume"
    ),
    template="(%s, %s, %s, %s, %s, %s, %s)",
)

INSERT_PATTERNS = BatchStatement(
    sql=(
        "INSERT INTO intraday_patterns (symbol, pattern_type, confidence, pattern_data, "
        "detection_timestamp, expiration_timestamp, levels, metadata, timeframe) VALUES %s"
    ),
    # Explicit casts: an empty levels list arrives as an untyped '{}'.
    template="(%s, %s, %s, %s::jsonb, %s, %s, %s::numeric[], %s::jsonb, %s)",
)

INSERT_INDICATORS = BatchStatement(
    sql=(
        "INSERT INTO intraday_indicators (symbol, indicator_type, value, value_data, "
        "calculation_timestamp, expiration_timestamp, metadata, timeframe) VALUES %s"
    ),
    template="(%s, %s, %s, %s::jsonb, %s, %s, %s::jsonb, %s)",
)

_SESSION_INSERT = (
    "INSERT INTO streaming_sessions (session_id, universe, started_at, stopped_at, symbol_count, "
    "total_patterns, total_indicators, final_status) VALUES (%(session_id)s::uuid, %(universe)s, "
    "%(started_at)s, %(stopped_at)s, %(symbol_count)s, %(total_patterns)s, %(total_indicators)s, "
    "%(final_status)s) ON CONFLICT (session_id) DO UPDATE SET "
)
START_SESSION = _SESSION_INSERT + (
    "universe = EXCLUDED.universe, started_at = EXCLUDED.started_at, "
    "symbol_count = EXCLUDED.symbol_count"
)
FINISH_SESSION = _SESSION_INSERT + (
    "stopped_at = EXCLUDED.stopped_at, total_patterns = EXCLUDED.total_patterns, "
    "total_indicators = EXCLUDED.total_indicators, final_status = EXCLUDED.final_status"
)

INSERT_HEALTH = (
    "INSERT INTO streaming_health_metrics (session_id, recorded_at, status, active_symbols, "
    "ticks_per_second, bars_per_minute, processing_lag_ms, patterns_detected, "
    "indicators_calculated, payload) VALUES (%(session_id)s::uuid, %(recorded_at)s, %(status)s, "
    "%(active_symbols)s, %(ticks_per_second)s, %(bars_per_minute)s, %(processing_lag_ms)s, "
    "%(patterns_detected)s, %(indicators_calculated)s, %(payload)s::jsonb)"
)

# LATERAL + LIMIT walks the (symbol, timestamp) primary key backwards once per symbol: cost is
# symbols x limit, however long the history is.
RECENT_BARS = """
SELECT s.symbol, b.timestamp, b.open, b.high, b.low, b.close, b.volume
FROM unnest(%(symbols)s::text[]) AS s(symbol)
CROSS JOIN LATERAL (
    SELECT o.timestamp, o.open, o.high, o.low, o.close, o.volume
    FROM ohlcv_1min AS o
    WHERE o.symbol = s.symbol
    ORDER BY o.timestamp DESC
    LIMIT %(limit)s
) AS b
ORDER BY s.symbol, b.timestamp
"""

# Several rows for one universe are not expected; if there are, the newest (highest id) wins.
UNIVERSE_VALUE = """
SELECT value FROM cache_entries
WHERE type = 'stock_universe' AND name = %s AND key = %s
ORDER BY id DESC LIMIT 1
"""


class PostgresStore:
    """Reads and writes of the streaming service. See the module docstring for the connection
    guarantees every method shares."""

    def __init__(self, dsn: str, *, connect_timeout: int = 5, application_name: str = "tickstock") -> None:
        """Nothing is opened here. ``connect_timeout`` and ``application_name`` apply only when
        ``dsn`` does not set them itself (a hung connect must not block a flush forever)."""
        self._dsn = dsn
        given = psycopg2.extensions.parse_dsn(dsn)  # also validates the DSN's syntax now
        defaults = {"connect_timeout": connect_timeout, "application_name": application_name}
        self._connect_kwargs = {k: v for k, v in defaults.items() if k not in given}
        self._conn: Any = None
        self._lock = threading.RLock()

    # -- connection -------------------------------------------------------------------------

    def _connection(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        conn = psycopg2.connect(self._dsn, **self._connect_kwargs)
        try:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass  # already broken: closing is only tidying up

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """The connection, inside one transaction: committed on success, otherwise rolled back
        (or the connection dropped) and the error re-raised."""
        with self._lock:
            conn = self._connection()
            try:
                yield conn
                conn.commit()
            except BaseException as exc:
                if isinstance(exc, CONNECTION_ERRORS) or conn.closed:
                    self._discard()
                else:
                    try:
                        conn.rollback()
                    except psycopg2.Error:
                        self._discard()
                raise

    def close(self) -> None:
        """Close the connection. Idempotent; a later call on the store simply reconnects."""
        with self._lock:
            self._discard()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ping(self) -> None:
        """Return if the database answers a query; raise the psycopg2 error otherwise."""
        with self._transaction() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    # -- batched writes ---------------------------------------------------------------------

    def upsert_bars(self, bars: Sequence[Bar]) -> WriteResult[Bar]:
        """Insert or replace bars in ``ohlcv_1min`` keyed by (symbol, minute start).

        Guarantees: ``written + len(rejected) == len(bars)``; a bar refused for a data reason
        (unknown symbol under the dashboard's foreign key, over-long symbol, non-finite price) is
        in ``rejected`` with the reason and every other bar is written. Two bars with the same key
        in one batch are applied in order (the later wins). Connection errors are raised and then
        nothing of the batch is committed.
        """
        return self._write(UPSERT_BARS, bars, rows.bar_row, rows.bar_key)

    def insert_patterns(self, records: Sequence[PatternRecord]) -> WriteResult[PatternRecord]:
        """Append rows to ``intraday_patterns``; same guarantees as :meth:`upsert_bars`.

        Not idempotent (SERIAL key): only in the rare case of a connection lost during COMMIT can a
        retried batch duplicate rows, since the outcome of that commit is unknowable.
        """
        return self._write(INSERT_PATTERNS, records, rows.pattern_row)

    def insert_indicators(self, records: Sequence[IndicatorRecord]) -> WriteResult[IndicatorRecord]:
        """Append rows to ``intraday_indicators``; same guarantees as :meth:`insert_patterns`."""
        return self._write(INSERT_INDICATORS, records, rows.indicator_row)

    def _write(
        self,
        statement: BatchStatement,
        items: Sequence[T],
        to_row: Callable[[T], tuple[Any, ...]],
        key: Callable[[T], Hashable] | None = None,
    ) -> WriteResult[T]:
        if not items:
            return WriteResult(0, [])
        with self._transaction() as conn:
            return write_batch(conn, statement, items, to_row, key)

    # -- single-row writes ------------------------------------------------------------------

    def start_session(self, rec: SessionRecord) -> None:
        """Record a session's start. Re-announcing the same session is harmless: on conflict only
        universe, started_at and symbol_count are refreshed, never the stop fields. Raises on any
        error (a malformed session_id is a ``psycopg2.DataError``)."""
        with self._transaction() as conn, conn.cursor() as cur:
            cur.execute(START_SESSION, rows.session_params(rec))

    def finish_session(self, rec: SessionRecord) -> None:
        """Record a session's end: stopped_at, total_patterns, total_indicators, final_status.
        If the start was never written (database down at the time) the whole row is inserted, so
        the end of a session is never lost. Raises on any error."""
        with self._transaction() as conn, conn.cursor() as cur:
            cur.execute(FINISH_SESSION, rows.session_params(rec))

    def insert_health(self, rec: HealthRecord) -> None:
        """Append one ``streaming_health_metrics`` row (``payload`` as JSONB). Raises on any error,
        including ValueError for a non-finite number."""
        params = rows.health_params(rec)
        with self._transaction() as conn, conn.cursor() as cur:
            cur.execute(INSERT_HEALTH, params)

    # -- reads ------------------------------------------------------------------------------

    def load_definitions(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(pattern_rows, indicator_rows)``: EVERY row of ``pattern_definitions`` and
        ``indicator_definitions`` with all their columns, ordered by display_order then id.

        No filtering here (enabled, timeframe and empty-set checks belong to the caller).
        ``applicable_timeframes`` is a list (or None), JSONB columns are dicts, NUMERIC is float.
        """
        with self._transaction() as conn, conn.cursor(
            cursor_factory=psycopg2.extras.RealDictCursor
        ) as cur:
            result = []
            for table in ("pattern_definitions", "indicator_definitions"):
                cur.execute(f"SELECT * FROM {table} ORDER BY display_order NULLS LAST, id")
                result.append([rows.plain_row(row) for row in cur.fetchall()])
            return result[0], result[1]

    def load_recent_bars(self, symbols: Sequence[str], limit: int) -> dict[str, list[Bar]]:
        """The most recent ``limit`` bars of each symbol, oldest first, in one query.

        Every requested symbol is a key of the result (an empty list when it has no bars);
        duplicates in ``symbols`` are ignored. Prices are floats; ``tick_count`` is 0 (not stored).
        ValueError if ``limit`` is negative.
        """
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        result: dict[str, list[Bar]] = {symbol: [] for symbol in symbols}
        if not result or limit == 0:
            return result
        with self._transaction() as conn, conn.cursor() as cur:
            cur.execute(RECENT_BARS, {"symbols": list(result), "limit": limit})
            for row in cur.fetchall():
                result[row[0]].append(rows.bar_from_row(*row))
        return result

    def load_universe(self, key: str) -> list[str]:
        """Tickers of the universe ``key`` (``'market_leaders:top_500'``) from the dashboard's
        ``cache_entries`` row ``type='stock_universe' AND name='market_leaders' AND key='top_500'``.

        Returns upper-case tickers, de-duplicated, in stored order (possibly empty: the caller
        decides whether an empty universe is fatal). Raises ``UniverseNotFound`` when there is no
        such row or no cache_entries table, ValueError for a malformed key or an unrecognised
        value shape (the message names the shape).
        """
        name, sub = split_key(key)
        try:
            with self._transaction() as conn, conn.cursor() as cur:
                cur.execute(UNIVERSE_VALUE, (name, sub))
                row = cur.fetchone()
        except psycopg2.errors.UndefinedTable:
            raise UniverseNotFound(key, "this database has no cache_entries table") from None
        if row is None:
            raise UniverseNotFound(
                key, f"no cache_entries row type='stock_universe' name={name!r} key={sub!r}"
            )
        return parse_universe_value(key, row[0])
