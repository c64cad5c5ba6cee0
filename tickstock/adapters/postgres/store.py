"""PostgresStore: the service's only door to PostgreSQL. A thin adapter: SQL in, rows out.

Connection guarantees (every method):

- One psycopg2 connection, opened lazily on first use, autocommit off: each method is exactly one
  transaction, committed before it returns, or rolled back if it raises.
- Connection-level failures (``psycopg2.OperationalError``, ``psycopg2.InterfaceError``) are
  RAISED, never swallowed; the broken connection is dropped and the next call opens a new one.
  There is no hidden retry: the caller decides when to try again (and keeps its buffer meanwhile).
- Calls are serialised by an internal lock, so one store may be shared between threads, but it
  gives no parallelism.
- Times leave as aware UTC datetimes or as epoch numbers the statement converts, and the session
  time zone is UTC, so nothing depends on the server's ``TimeZone`` setting.
- Every connection sets ``statement_timeout`` and ``lock_timeout`` (constructor arguments): a
  statement that runs too long or waits too long for a lock (a table locked by another client)
  fails with ``psycopg2.errors.QueryCanceled`` (57014) or ``LockNotAvailable`` (55P03), both
  ``OperationalError``s, instead of hanging; the transaction is rolled back and the connection
  stays usable.
- Writes are idempotent: a bar is its session's part of the minute (see parts.py), and pattern,
  indicator and health rows are written only if their ``row_id`` is new to the write ledger
  ``tickstock_written_rows``, in the same transaction. A batch retried after an unknown commit
  outcome, or replayed from the write-ahead log, writes nothing twice.
- Pattern and indicator rows travel by COPY into a TEMP staging table of the transaction
  (batch.StagedCopy): the role needs the TEMP privilege on the database (PUBLIC has it by default).
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from tickstock.messages.bars import Bar
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord

from . import copy_rows, rows
from .binary_copy import decode_rows
from .batch import StagedCopy, Statement, WriteResult, write_batch
from .parts import BarParts
from .schema import LEDGER_RETENTION_SECONDS, PRUNE_LEDGER
from .universe import UniverseNotFound, parse_universe_value, split_key

T = TypeVar("T")

# Connection-level errors; after those that carry no SQLSTATE, or a connection one (see
# _connection_broken), the connection cannot be trusted: drop it, reconnect on the next call.
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)

UPSERT_BARS = BarParts()

# The write ledger (migration 004): a row goes into the dashboard's table only if this statement
# newly inserted its row_id. Rows arrive in a staging table (batch.StagedCopy, lines from
# copy_rows.py), those of this call marked by ``call``; ``n`` keeps the input order for the SERIAL ids.
def _ledger(stage: str) -> str:
    return (
        f"WITH new AS (INSERT INTO tickstock_written_rows (row_id) SELECT row_id FROM {stage} "
        "WHERE call = %(call)s ON CONFLICT (row_id) DO NOTHING RETURNING row_id) "
    )


def timestamptz(micros: str) -> str:
    """SQL for epoch microseconds (bigint) as TIMESTAMPTZ, exact at every magnitude: whole seconds
    (``to_timestamp`` of an integral float8 is exact) plus whole microseconds. NULL stays NULL."""
    return f"(to_timestamp({micros} / 1000000) + mod({micros}, 1000000) * interval '1 microsecond')"


_PATTERN_STAGE = "tickstock_stage_patterns"
INSERT_PATTERNS = StagedCopy(
    stage=_PATTERN_STAGE,
    columns=(
        "row_id uuid, symbol text, pattern_type text, confidence numeric, pattern_data jsonb, "
        "detection_us int8, expiration_us int8, levels numeric[], metadata jsonb, timeframe text"
    ),
    insert=(
        _ledger(_PATTERN_STAGE)
        + "INSERT INTO intraday_patterns (symbol, pattern_type, confidence, pattern_data, "
        "detection_timestamp, expiration_timestamp, levels, metadata, timeframe) "
        f"SELECT s.symbol, s.pattern_type, s.confidence, s.pattern_data, {timestamptz('s.detection_us')}, "
        f"{timestamptz('s.expiration_us')}, s.levels, s.metadata, s.timeframe "
        f"FROM {_PATTERN_STAGE} AS s JOIN new USING (row_id) WHERE s.call = %(call)s ORDER BY s.n"
    ),
)

_INDICATOR_STAGE = "tickstock_stage_indicators"
INSERT_INDICATORS = StagedCopy(
    stage=_INDICATOR_STAGE,
    columns=(
        "row_id uuid, symbol text, indicator_type text, value numeric, value_data jsonb, "
        "calculation_us int8, expiration_us int8, metadata jsonb, timeframe text"
    ),
    insert=(
        _ledger(_INDICATOR_STAGE)
        + "INSERT INTO intraday_indicators (symbol, indicator_type, value, value_data, "
        "calculation_timestamp, expiration_timestamp, metadata, timeframe) "
        f"SELECT s.symbol, s.indicator_type, s.value, s.value_data, {timestamptz('s.calculation_us')}, "
        f"{timestamptz('s.expiration_us')}, s.metadata, s.timeframe "
        f"FROM {_INDICATOR_STAGE} AS s JOIN new USING (row_id) WHERE s.call = %(call)s ORDER BY s.n"
    ),
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
    "WITH new AS (INSERT INTO tickstock_written_rows (row_id) VALUES (%(row_id)s::uuid) "
    "ON CONFLICT (row_id) DO NOTHING RETURNING row_id) "
    "INSERT INTO streaming_health_metrics (session_id, recorded_at, status, active_symbols, "
    "ticks_per_second, bars_per_minute, processing_lag_ms, patterns_detected, "
    "indicators_calculated, payload) SELECT %(session_id)s::uuid, %(recorded_at)s::timestamptz, "
    "%(status)s::text, %(active_symbols)s::int, %(ticks_per_second)s::float8, "
    "%(bars_per_minute)s::float8, %(processing_lag_ms)s::float8, %(patterns_detected)s::bigint, "
    "%(indicators_calculated)s::bigint, %(payload)s::jsonb FROM new"
)

# LATERAL + LIMIT walks the (symbol, timestamp) primary key backwards once per symbol: cost is
# symbols x limit, however long the history is.
# One row per bar, the symbol as its position in the list asked for, the minute as epoch seconds and
# prices as float8: fixed-width columns, read by binary COPY straight into numpy (binary_copy.py).
# The order of rows is not promised by SQL without a sort here; they are sorted in numpy instead.
# ``{before}`` is empty or RECENT_BARS_BEFORE: a bound written into the statement only when asked, so
# that it is an index condition of the backward walk (an ``IS NULL OR`` would be a filter instead).
RECENT_BARS = """
SELECT s.i::int4, extract(epoch FROM b.timestamp)::int8, b.open::float8, b.high::float8, b.low::float8,
       b.close::float8, b.volume::int8
FROM unnest(%(symbols)s::text[]) WITH ORDINALITY AS s(symbol, i)
CROSS JOIN LATERAL (
    SELECT o.timestamp, o.open, o.high, o.low, o.close, o.volume
    FROM ohlcv_1min AS o
    WHERE o.symbol = s.symbol{before}
    ORDER BY o.timestamp DESC
    LIMIT %(limit)s
) AS b
"""
RECENT_BARS_BEFORE = " AND o.timestamp < to_timestamp(%(before)s)"
RECENT_BAR_COLUMNS = (("i", "i4"), ("start", "i8"), ("open", "f8"), ("high", "f8"), ("low", "f8"),
                      ("close", "f8"), ("volume", "i8"))

# Several rows for one universe are not expected; if there are, the newest (highest id) wins.
UNIVERSE_VALUE = """
SELECT value FROM cache_entries
WHERE type = 'stock_universe' AND name = %s AND key = %s
ORDER BY id DESC LIMIT 1
"""


def _row_id(record: PatternRecord | IndicatorRecord) -> str:
    return record.row_id


def _milliseconds(seconds: float) -> int:
    return 0 if seconds == 0 else max(1, math.ceil(seconds * 1000))


# SQLSTATEs after which the server has ended the session (57P01..57P05) or the link is broken (08).
_SESSION_ENDED = ("57P0",)


def _connection_broken(exc: BaseException) -> bool:
    """True when the connection cannot be reused after ``exc``: a connection-level error from the
    client (no SQLSTATE), class 08, or the server ending the session. A statement cancelled by
    ``statement_timeout`` or refused by ``lock_timeout`` leaves it usable (rolled back)."""
    if not isinstance(exc, CONNECTION_ERRORS):
        return False
    code = getattr(exc, "pgcode", None)
    return code is None or code.startswith("08") or code.startswith(_SESSION_ENDED)


def _bars_by_symbol(symbols: list[str], found: np.ndarray) -> Iterator[tuple[str, list[Bar]]]:
    """Rows sorted by (symbol position, minute) as one ``(symbol, bars)`` per symbol found."""
    if not found.size:
        return
    for part in np.split(found, np.flatnonzero(np.diff(found["i"])) + 1):
        symbol = symbols[int(part["i"][0]) - 1]
        yield symbol, [Bar(symbol, start, o, h, lo, c, v) for start, o, h, lo, c, v in zip(
            part["start"].tolist(), part["open"].tolist(), part["high"].tolist(), part["low"].tolist(),
            part["close"].tolist(), part["volume"].tolist())]


class PostgresStore:
    """Reads and writes of the streaming service. See the module docstring for the connection
    guarantees every method shares."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5,
        statement_timeout_seconds: float = 10.0,
        lock_timeout_seconds: float = 5.0,
        application_name: str = "tickstock",
    ) -> None:
        """Nothing is opened here. ``connect_timeout`` (seconds, rounded up to whole seconds as
        libpq wants) and ``application_name`` apply only when ``dsn`` does not set them itself (a
        hung connect must not block a flush forever). ``statement_timeout_seconds`` and
        ``lock_timeout_seconds`` are set on every connection (0 disables one). ValueError for a
        negative or non-finite timeout."""
        for name, value in (("connect_timeout", connect_timeout),
                            ("statement_timeout_seconds", statement_timeout_seconds),
                            ("lock_timeout_seconds", lock_timeout_seconds)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self._dsn = dsn
        given = psycopg2.extensions.parse_dsn(dsn)  # also validates the DSN's syntax now
        defaults = {"connect_timeout": math.ceil(connect_timeout), "application_name": application_name}
        self._connect_kwargs = {k: v for k, v in defaults.items() if k not in given}
        # Milliseconds, at least 1 unless disabled: "0.0004 s" must not turn into "no timeout".
        self._session_settings = {
            "statement_timeout": _milliseconds(statement_timeout_seconds),
            "lock_timeout": _milliseconds(lock_timeout_seconds),
        }
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
                cur.execute(
                    "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false)",
                    (f"{self._session_settings['statement_timeout']}ms", f"{self._session_settings['lock_timeout']}ms"),
                )
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
                if conn.closed or _connection_broken(exc):
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
        """Write each bar as its session's part of the minute and re-merge the minute in
        ``ohlcv_1min`` from all its parts, in one transaction (see parts.py).

        A minute written by several sessions holds every tick of all of them (open of the earliest
        part, close of the latest, high/low over all, volumes summed), whatever the order in which
        the parts arrive; the same part (same session, symbol and minute; "" is one session of its
        own) written again replaces itself, so a retry or replay never counts it twice.

        Guarantees: ``written + len(rejected) == len(bars)``; a bar refused for a data reason
        (unknown symbol under the dashboard's foreign key, over-long symbol, non-finite price) is
        in ``rejected`` with the reason, leaves no part behind, and every other bar is written.
        Two bars with the same part key in one batch are applied in order (the later wins).
        Connection errors and timeouts are raised and then nothing of the batch is committed.
        """
        return self._write(UPSERT_BARS, bars, rows.bar_part_row, rows.bar_part_key)

    def insert_patterns(self, records: Sequence[PatternRecord]) -> WriteResult[PatternRecord]:
        """Append rows to ``intraday_patterns``, each at most once per ``row_id``; same
        guarantees as :meth:`upsert_bars`. A record whose ``row_id`` was written before (by an
        earlier attempt, or earlier in the same batch) counts as written and in ``duplicates``.
        A ``row_id`` that is not a UUID is a refused row."""
        return self._write(INSERT_PATTERNS, records, copy_rows.pattern_line, _row_id)

    def insert_indicators(self, records: Sequence[IndicatorRecord]) -> WriteResult[IndicatorRecord]:
        """Append rows to ``intraday_indicators``; same guarantees as :meth:`insert_patterns`."""
        return self._write(INSERT_INDICATORS, records, copy_rows.indicator_line, _row_id)

    def _write(
        self,
        statement: Statement,
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

    def insert_health(self, rec: HealthRecord) -> bool:
        """Append one ``streaming_health_metrics`` row (``payload`` as JSONB), at most once per
        ``row_id``: returns False (and writes nothing) if that row was written before. Raises on
        any error, including ValueError for a non-finite number."""
        params = rows.health_params(rec)
        with self._transaction() as conn, conn.cursor() as cur:
            cur.execute(INSERT_HEALTH, params)
            return cur.rowcount == 1

    def prune_written_rows(self, older_than_seconds: float = LEDGER_RETENTION_SECONDS) -> int:
        """Delete write-ledger ids older than ``older_than_seconds``; returns how many. A row of
        that age written again (a replay of a very old log) would then be written twice, so keep
        the retention well above any replay delay. Cheap (BRIN on ``written_at``); ``migrate``
        calls it at every start-up."""
        with self._transaction() as conn, conn.cursor() as cur:
            cur.execute(PRUNE_LEDGER, (float(older_than_seconds),))
            return cur.rowcount

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

    def load_recent_bars(self, symbols: Sequence[str], limit: int, *,
                         before: float | None = None) -> dict[str, list[Bar]]:
        """The most recent ``limit`` bars of each symbol (only those starting before ``before``,
        epoch seconds, if given), oldest first (read as ``iter_recent_bars`` streams them).

        Every requested symbol is a key of the result (an empty list when it has no bars);
        duplicates in ``symbols`` are ignored. Prices are floats; ``tick_count`` is 0 (not stored).
        ValueError if ``limit`` is negative or ``before`` not finite.
        """
        result: dict[str, list[Bar]] = {symbol: [] for symbol in symbols}
        for symbol, bars in self.iter_recent_bars(list(result), limit, before=before):
            result[symbol] = bars
        return result

    def iter_recent_bars(self, symbols: Sequence[str], limit: int, symbols_per_query: int = 1_000, *,
                         before: float | None = None) -> Iterator[tuple[str, list[Bar]]]:
        """``(symbol, bars)`` for each symbol that has bars, in the order asked, its most recent
        ``limit`` bars oldest first.

        ``before`` (epoch seconds): only bars whose minute starts strictly before it, the most
        recent of THOSE -- the history that preceded a bar, whatever the table holds after it (a
        replay of a past day into a database that already has later days). None: the latest bars.

        Read by binary COPY into numpy, ``symbols_per_query`` symbols at a time: memory is bounded
        by two such chunks plus one symbol's bars, whatever the universe (10,000 symbols x 200 bars
        read as text rows once held 2.3 GB and took 20 s). Each chunk is its own transaction, the
        next one read on a helper thread while the caller consumes this one.
        ValueError if ``limit`` < 0 or ``before`` is not finite.
        """
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if before is not None and not math.isfinite(before):
            raise ValueError(f"before must be finite epoch seconds, got {before!r}")
        wanted = list(dict.fromkeys(symbols))
        if not wanted or limit == 0:
            return
        chunks = [wanted[i:i + symbols_per_query] for i in range(0, len(wanted), symbols_per_query)]
        if len(chunks) == 1:  # one symbol's history (a restart, event time's first bar): no thread
            yield from _bars_by_symbol(chunks[0], self._recent_bar_rows(chunks[0], limit, before))
            return
        # The next chunk's query runs (in PostgreSQL, on the other core) while this one's bars are
        # built and consumed: at 10,000 symbols the SQL is ~3-4 s that would otherwise be waited out.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="recent-bars") as prefetch:
            pending = prefetch.submit(self._recent_bar_rows, chunks[0], limit, before)
            try:
                for n, chunk in enumerate(chunks):
                    found = pending.result()
                    if n + 1 < len(chunks):
                        pending = prefetch.submit(self._recent_bar_rows, chunks[n + 1], limit, before)
                    yield from _bars_by_symbol(chunk, found)
            finally:
                pending.cancel()

    def _recent_bar_rows(self, symbols: list[str], limit: int, before: float | None = None) -> np.ndarray:
        """The chunk's rows sorted by (symbol position, minute)."""
        buffer = io.BytesIO()
        sql = RECENT_BARS.format(before="" if before is None else RECENT_BARS_BEFORE)
        with self._transaction() as conn, conn.cursor() as cur:
            query = cur.mogrify(sql, {"symbols": symbols, "limit": limit, "before": before}).decode()
            cur.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT binary)", buffer)
        found = decode_rows(buffer.getvalue(), RECENT_BAR_COLUMNS)
        return found[np.lexsort((found["start"], found["i"]))]

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
