"""PersistenceActor: every row it is told goes to the write-ahead log first, then to PostgreSQL.

Guarantees:
- Logged first. Each row of ``PersistBars``, ``PersistEvents`` (rows derived from the published
  events here), ``PersistResults``, ``RecordSession`` and ``RecordHealth`` is appended to the
  write-ahead log in ``spill_dir`` (``adapters/disk/wal.py``)
  when the message is handled, before it is queued for the database. The log is fsynced every
  ``fsync_interval`` seconds and at stop, so a process killed (even -9) loses no row it handled and a
  machine crash at most ``fsync_interval`` seconds of rows. A row leaves the log only once committed,
  or refused and reported.
- Nothing lost, nothing twice. A later actor on the same directory (the next session, the restart
  after a crash, the next process after a kill -9) re-queues every row still in the log, before any
  new row, and writes it; replay is idempotent in the store (a bar is its session's part of the
  minute, upserted; other rows carry a ``row_id`` written at most once).
- Errors by meaning (``adapters/postgres/errors.py``); no database error ends the actor:
  TRANSIENT keeps the rows and retries after ``retry_interval`` (a lost connection holds every table,
  a lock or cancelled statement only its own); ROW refuses that row, reported once, and the others
  are written (batches isolate refused rows in the store); TABLE sets that table aside: its rows
  stay (log and memory), it is retried every ``table_retry_seconds``, stats name it with its error
  and since when, the log says so once per change of state, and the other tables go on being written.
- Bounded memory. At most ``max_rows_in_memory`` rows per table are held; further rows of that
  table wait in the log only (counted in ``rows_on_disk_only``) and are read back as its queue drains.
  Only if the log itself cannot be written are rows held in memory beyond that (never dropped).
- Reports, not asks. Every ``report_interval`` seconds its timer pushes ``PersistenceStats`` (true
  figures: rows waiting per table, since when writes fail, set-aside tables, log size) to the
  supervisor; ``GetStats`` is answered with the same snapshot.
- Stopping never waits on the database: ``on_stop`` stops the timer, fsyncs and closes the log
  (unwritten rows stay in it for the next session) and closes the store. ``Drain(timeout)`` writes
  what it can and returns by its timeout: no call is started after it (a call already running is
  bounded by the store's statement and lock timeouts).
- Order: session rows before results; within a table, the order told.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable

import pykka

from tickstock.actors.base import SupervisedActor, handles
from tickstock.actors.faults import InjectedFault, maybe_fail
from tickstock.actors.timer import Ticker
from tickstock.adapters.disk.wal import Position, WriteAheadLog
from tickstock.adapters.postgres.errors import ErrorKind, classify, connection_lost, describe
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    Drain, GetStats, PersistBars, PersistEvents, PersistResults, RecordHealth, RecordSession, TimerTick,
)
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord, event_records

_QUIET_SECONDS = 0.1      # no new rows for this long: a good moment to write
_MAX_DELAY_SECONDS = 1.0  # ...but no row waits longer than this while the database is up
_WRITE_SLICE_SECONDS = 0.5  # one timer tick writes at most this long, then reports and reads mail

# (table, store method, rows per call: None = batch_size). Write order: session rows first.
_TABLES = (
    ("streaming_sessions", "session", 1),
    ("ohlcv_1min", "upsert_bars", None),
    ("intraday_patterns", "insert_patterns", None),
    ("intraday_indicators", "insert_indicators", None),
    ("streaming_health_metrics", "insert_health", 1),
)
_TABLE_OF_TYPE: dict[type, str] = {
    SessionRecord: "streaming_sessions", Bar: "ohlcv_1min", PatternRecord: "intraday_patterns",
    IndicatorRecord: "intraday_indicators", HealthRecord: "streaming_health_metrics",
}


@dataclass(frozen=True, slots=True)
class TableStats:
    """One table's figures. ``waiting`` counts rows not yet committed or refused (in memory or only
    in the write-ahead log); ``error``/``error_kind``/``failing_since`` describe the current trouble
    ("", "", None when the last write went through)."""

    table: str
    waiting: int
    in_memory: int
    written: int
    refused: int
    error: str = ""
    error_kind: str = ""  # "transient" | "table" | ""
    failing_since: float | None = None
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class IsolatedTable:
    """A table set aside by a non-transient error (permission, missing column...): its rows are
    kept and it is retried at ``retry_at``; the other tables are written meanwhile."""

    table: str
    error: str
    since: float
    rows_waiting: int
    retry_at: float


@dataclass(frozen=True, slots=True)
class PersistenceStats:
    """What the persistence actor reports (``ChildReport.stats``) and answers to ``GetStats``.

    - ``backlog``: rows received and not yet committed or refused, all tables, memory and log.
    - ``failing_since``: epoch seconds of the first failure of the current database outage (a
      transient error on any table); None once writes go through again. ``db_connected`` is False
      while the connection itself is lost. ``last_error``: the most recent error of any kind.
    - ``isolated``: tables set aside by a non-transient error, with the error and since when.
    - ``tables``: per table figures, in write order (``waiting`` gives the rows per table).
    - ``rows_on_disk_only``: rows waiting in the write-ahead log but not held in memory.
    - ``wal_*``: the log on disk (segment files, bytes, rows not done); ``wal_error`` is set while
      the log cannot be written (rows are then held in memory only).
    - ``at``: epoch seconds when the figures were taken.
    """

    backlog: int
    bars_written: int
    patterns_written: int
    indicators_written: int
    rows_rejected: int
    db_connected: bool
    failing_since: float | None
    last_error: str
    health_written: int = 0
    sessions_written: int = 0
    rows_written: int = 0
    rows_on_disk_only: int = 0
    tables: tuple[TableStats, ...] = ()
    isolated: tuple[IsolatedTable, ...] = ()
    wal_segments: int = 0
    wal_bytes: int = 0
    wal_pending: int = 0
    wal_error: str = ""
    at: float = 0.0

    @property
    def waiting_by_table(self) -> dict[str, int]:
        return {t.table: t.waiting for t in self.tables}


class _Table:
    """A table's queue and state. ``queue`` holds (log position or None, row), oldest first: the
    oldest rows not yet written. ``disk_from`` is where rows of this table that are only in the log
    begin (None: every waiting row is in ``queue``)."""

    def __init__(self, name: str, method: str, rows_per_call: int | None) -> None:
        self.name = name
        self.method = method
        self.rows_per_call = rows_per_call
        self.queue: deque[tuple[Position | None, Any]] = deque()
        self.waiting = 0
        self.disk_from: Position | None = None
        self.written = 0
        self.refused = 0
        self.one_by_one = 0  # rows to send singly (a batch failed for a row's reason)
        self.retry_at = 0.0
        self.error = ""
        self.error_kind: ErrorKind | None = None
        self.failing_since: float | None = None

    @property
    def isolated(self) -> bool:
        return self.error_kind is ErrorKind.TABLE


class PersistenceActor(SupervisedActor):
    def __init__(
        self,
        supervisor: pykka.ActorRef | None,
        session_id: str,
        connect: Callable[[], Any],
        batch_size: int = 500,
        flush_interval: float = 0.25,
        retry_interval: float = 2.0,
        observe_latency: Callable[[float], None] | None = None,
        spill_dir: str | Path | None = None,
        *,
        fsync_interval: float = 1.0,
        table_retry_seconds: float = 60.0,
        report_interval: float = 1.0,
        max_rows_in_memory: int = 100_000,
        wal_segment_rows: int = 20_000,
        wal_segment_age: float = 60.0,
        pattern_ttl: float = 3600.0,
        indicator_ttl: float = 3600.0,
    ) -> None:
        """``spill_dir`` is the write-ahead log's directory; None (tests only) keeps rows in memory
        only. ``connect()`` returns the store (``PostgresStore`` or a fake)."""
        super().__init__(supervisor, "persistence", session_id)
        self._spill_dir = Path(spill_dir) if spill_dir else None
        self._observe_latency = observe_latency
        self._connect = connect
        self._store: Any = None
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.fsync_interval = fsync_interval
        self.table_retry_seconds = table_retry_seconds
        self.report_interval = report_interval
        self.max_rows_in_memory = max_rows_in_memory
        self.pattern_ttl = pattern_ttl      # rows derived from events expire this long after them
        self.indicator_ttl = indicator_ttl
        self._wal_segment_rows = wal_segment_rows
        self._wal_segment_age = wal_segment_age
        self._tables: dict[str, _Table] = {name: _Table(name, method, n) for name, method, n in _TABLES}
        self.rows_rejected = 0
        self.db_connected = False
        self.failing_since: float | None = None
        self.last_error = ""
        self._retry_at = 0.0        # the connection is lost: no table is tried before this
        self._last_message_at = 0.0
        self._oldest_at: float | None = None  # when the oldest row not yet tried arrived
        self._ticker: Ticker | None = None
        self._wal: WriteAheadLog | None = None
        self._wal_tried = False
        self._wal_error = ""
        self._synced_at = 0.0
        self._reported_at = 0.0
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        self._open_wal()
        self._store = self._connect()
        now = time.time()
        self._synced_at = self._reported_at = now
        try:
            self._store.ping()
            self.db_connected = True
        except InjectedFault:
            raise
        except Exception as exc:  # start anyway: rows wait in the log until the database is back
            self._transient_failure(None, exc, now, connection=True)
        tick = min(self.flush_interval, self.fsync_interval, self.report_interval)
        self._ticker = Ticker(self.actor_ref, tick, TimerTick, "persistence").start()

    def on_stop(self) -> None:
        self._shut()

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        # The log first: the next incarnation re-reads it as soon as it hears of this death.
        try:
            self._shut()
        finally:
            super().on_failure(exception_type, exception_value, traceback)

    def _shut(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.stop()
        memory_only = sum(1 for t in self._tables.values() for position, _ in t.queue if position is None)
        logged = self.backlog - memory_only
        if self._wal is not None:
            try:
                self._wal.close()
            except OSError as exc:
                self.log.error("write-ahead log close failed: {!r}", exc)
        if logged:
            self.log.warning("persistence stopped with {} rows unwritten ({}); they stay in the write-ahead "
                             "log in {} for the next session", logged, self.last_error or "no error", self._spill_dir)
        if memory_only:
            self.log.error("persistence stopped with {} rows unwritten that were held in memory only (no "
                           "write-ahead log: {}); they are LOST", memory_only, self._wal_error or "none configured")
        if self._store is not None:
            try:
                self._store.close()
            except Exception as exc:  # closing is tidying up: never fail the stop for it
                self.log.warning("closing the store failed: {!r}", exc)

    def _open_wal(self) -> None:
        """Open the log (once) and re-queue what earlier processes left in it, before any new row."""
        if self._wal_tried or self._spill_dir is None:
            return
        self._wal_tried = True
        wal = WriteAheadLog(self._spill_dir, max_segment_rows=self._wal_segment_rows,
                            max_segment_age=self._wal_segment_age, log=self.log)
        try:
            pending = wal.open()
        except OSError as exc:
            self._wal_failed(exc)
            return
        self._wal = wal
        if not pending:
            return
        before = {t.name: t.waiting for t in self._tables.values()}
        try:
            for position, row in wal.rows():
                table = self._tables.get(_TABLE_OF_TYPE.get(type(row), ""))
                if table is None:
                    self.log.error("write-ahead log row of unknown type ignored: {!r}", row)
                    wal.done([position])
                    continue
                self._admit(table, position, row)
        except OSError as exc:
            self.log.error("write-ahead log replay interrupted: {!r}", exc)
        counts = ", ".join(f"{t.name}: {t.waiting - before[t.name]}" for t in self._tables.values()
                           if t.waiting > before[t.name])
        self.log.warning("re-queued {} rows left in the write-ahead log by an earlier process ({})",
                         pending, counts)

    # -- messages -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, (PersistBars, PersistEvents, PersistResults, RecordSession, RecordHealth)):
            self._last_message_at = time.time()
            if self._oldest_at is None:
                self._oldest_at = self._last_message_at
        return super().on_receive(message)

    @handles(PersistBars)
    def _bars(self, message: PersistBars) -> None:
        self._accept(message.bars)
        self._write_if_full()

    @handles(PersistResults)
    def _results(self, message: PersistResults) -> None:
        self._accept(message.patterns + message.indicators)
        self._write_if_full()

    @handles(PersistEvents)
    def _events(self, message: PersistEvents) -> None:
        self._accept(event_records(message.events, self.pattern_ttl, self.indicator_ttl))
        self._write_if_full()

    @handles(RecordSession)
    def _session(self, message: RecordSession) -> None:
        self._accept((message.record,))
        self._write(time.monotonic() + _WRITE_SLICE_SECONDS)

    @handles(RecordHealth)
    def _health(self, message: RecordHealth) -> None:
        self._accept((message.record,))

    @handles(TimerTick)
    def _timer(self, message: TimerTick) -> None:
        now = time.time()  # the clock, not the tick: a tick may have waited in the mailbox
        self._maintain_wal(now)
        if self._due(now):
            self._write(time.monotonic() + _WRITE_SLICE_SECONDS)
        now = time.time()
        if now - self._reported_at >= self.report_interval:
            self._reported_at = now
            self.report(self._snapshot())

    @handles(Drain)
    def _drain(self, message: Drain) -> PersistenceStats:
        deadline = time.monotonic() + message.timeout
        # One attempt for every table now, whatever its back-off (a set-aside table gets one try).
        self._retry_at = 0.0
        for table in self._tables.values():
            table.retry_at = 0.0
        while self._store is not None:
            self._write(deadline)
            left = deadline - time.monotonic()
            if left <= 0 or not self._backing_off():
                break  # done, out of time, or only set-aside tables left
            if not self._writable(time.time()):
                time.sleep(min(self.retry_interval, left))
            self._retry_at = 0.0
            for table in self._tables.values():
                if table.error_kind is ErrorKind.TRANSIENT:
                    table.retry_at = 0.0
        self._sync_wal(time.time())
        return self._snapshot()

    @handles(GetStats)
    def _stats(self, message: GetStats) -> PersistenceStats:
        return self._snapshot()

    # -- receiving ----------------------------------------------------------------------------

    def _accept(self, rows: Iterable[Any]) -> None:
        rows = list(rows)
        if not rows:
            return
        self._open_wal()
        positions = self._log(rows)
        for position, row in zip(positions, rows):
            self._admit(self._tables[_TABLE_OF_TYPE[type(row)]], position, row)

    def _log(self, rows: list[Any]) -> list[Position | None]:
        if self._wal is None:
            return [None] * len(rows)
        try:
            positions = self._wal.append(rows)
        except OSError as exc:
            self._wal_failed(exc)
            return [None] * len(rows)
        if self._wal_error:
            self.log.warning("write-ahead log writable again ({})", self._spill_dir)
            self._wal_error = ""
        return positions

    def _admit(self, table: _Table, position: Position | None, row: Any) -> None:
        table.waiting += 1
        if position is None:
            # Not in the log: memory is the only copy, so it is kept whatever the cap.
            table.queue.append((position, row))
        elif table.disk_from is None and len(table.queue) < self.max_rows_in_memory:
            table.queue.append((position, row))
        elif table.disk_from is None:
            table.disk_from = position
            self.log.warning("{}: {} rows held in memory; further rows wait in the write-ahead log only",
                             table.name, len(table.queue))

    def _refill(self, table: _Table) -> None:
        """Read back rows of ``table`` that wait only in the log, as its queue drains."""
        if table.disk_from is None or self._wal is None or len(table.queue) > self.max_rows_in_memory // 2:
            return
        try:
            found, table.disk_from = self._wal.scan(
                table.disk_from, lambda row: _TABLE_OF_TYPE.get(type(row)) == table.name,
                self.max_rows_in_memory - len(table.queue))
        except OSError as exc:
            self.log.error("{}: reading waiting rows back from the write-ahead log failed: {!r}", table.name, exc)
            return
        table.queue.extend(found)

    # -- the log --------------------------------------------------------------------------------

    def _maintain_wal(self, now: float) -> None:
        if self._wal is None:
            return
        if now - self._synced_at >= self.fsync_interval:
            self._sync_wal(now)
        self._wal.rotate_if_old()

    def _sync_wal(self, now: float) -> None:
        if self._wal is None:
            return
        self._synced_at = now
        try:
            self._wal.sync()
        except OSError as exc:
            self._wal_failed(exc)

    def _wal_failed(self, exc: OSError) -> None:
        error = repr(exc)
        if not self._wal_error:
            self.log.critical("write-ahead log in {} cannot be written ({}): rows are held in memory only "
                              "until it can", self._spill_dir, error)
        self._wal_error = error

    # -- writing --------------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return sum(t.waiting for t in self._tables.values())

    def _has_rows(self, table: _Table) -> bool:
        return bool(table.queue) or table.disk_from is not None

    def _writable(self, now: float) -> bool:
        """Rows of some table may be written now (connected or due to retry, not backing off)."""
        if now < self._retry_at:
            return False
        return any(self._has_rows(t) and now >= t.retry_at for t in self._tables.values())

    def _backing_off(self) -> bool:
        """After a write pass: rows wait that a transient error held back (a Drain keeps trying for
        those; a set-aside table's rows wait for its own retry)."""
        return any(self._has_rows(t) and not t.isolated for t in self._tables.values())

    def _due(self, now: float) -> bool:
        # Write in a quiet moment: right after a bar close the analysis burst is still publishing,
        # and a row may wait a second where an event may not. Rows waiting longer than
        # ``_MAX_DELAY_SECONDS`` (or waiting for a retry that is now due) go regardless.
        if self._store is None or not self._writable(now):
            return False
        if self._oldest_at is None:
            return True
        return now - self._last_message_at >= _QUIET_SECONDS or now - self._oldest_at >= _MAX_DELAY_SECONDS

    def _write_if_full(self) -> None:
        # Writes normally go on the timer: at a bar close the analysis burst needs the CPU first.
        # Only a backlog of several batches is written at once.
        if any(len(t.queue) >= 4 * self.batch_size for t in self._tables.values()):
            self._write(time.monotonic() + _WRITE_SLICE_SECONDS)

    def _write(self, deadline: float) -> None:
        """Write batches, table by table in order, until nothing writable is left or the monotonic
        ``deadline`` passes; no call is started after it."""
        if self._store is None:
            return
        maybe_fail("persistence:write")
        finished = True
        for table in self._tables.values():
            while True:
                now = time.time()
                if now < self._retry_at:
                    return  # the connection is lost: no table can be written
                if now < table.retry_at:
                    break
                self._refill(table)
                if not table.queue:
                    break
                if time.monotonic() >= deadline:
                    finished = False
                    break
                if not self._write_batch(table, now):
                    break
            if not finished:
                break
        if finished:
            self._oldest_at = None

    def _write_batch(self, table: _Table, now: float) -> bool:
        """One call to the store with the oldest rows of ``table``. True if it went through."""
        size = table.rows_per_call or self.batch_size
        if table.one_by_one:
            size = 1
        entries = list(islice(table.queue, size))
        rows = [row for _, row in entries]
        started = time.perf_counter()
        rejected: list[tuple[Any, str]] = []
        try:
            if table.rows_per_call == 1:
                self._write_one(table, rows[0])
                written = 1
            else:
                result = getattr(self._store, table.method)(rows)
                written, rejected = result.written, list(result.rejected)
        except InjectedFault:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind is ErrorKind.ROW and len(entries) > 1:
                # The store isolates refused rows itself; if one still sank the batch, send these
                # rows one at a time to find it.
                table.one_by_one = len(entries)
                return True
            if kind is ErrorKind.ROW:
                written, rejected = 0, [(rows[0], describe(exc))]
            elif kind is ErrorKind.TRANSIENT:
                self._transient_failure(table, exc, time.time(), connection_lost(exc))
                return False
            else:
                self._table_failure(table, exc, time.time())
                return False
        if self._observe_latency is not None:
            self._observe_latency(time.perf_counter() - started)
        for _ in entries:
            table.queue.popleft()
        if table.one_by_one:
            table.one_by_one -= 1
        if self._wal is not None:
            self._wal.done(position for position, _ in entries)
        table.waiting -= len(entries)
        table.written += written
        for row, reason in rejected:
            table.refused += 1
            self.rows_rejected += 1
            # One line per refused row: these are rare and each one is a lost fact worth seeing.
            self.log.error("{}: database refused {!r}: {}", table.name, row, reason)
        self._succeeded(table, time.time())
        return True

    def _write_one(self, table: _Table, record: Any) -> None:
        if table.method == "insert_health":
            self._store.insert_health(record)
        elif record.final_status is None:
            self._store.start_session(record)
        else:
            self._store.finish_session(record)

    # -- state ----------------------------------------------------------------------------------

    def _succeeded(self, table: _Table, now: float) -> None:
        if table.isolated:
            self.log.warning("{}: writable again after {:.0f}s ({}); {} rows waiting", table.name,
                             now - (table.failing_since or now), table.error, table.waiting)
        table.error, table.error_kind, table.failing_since, table.retry_at = "", None, None, 0.0
        self.db_connected = True
        self._end_outage_if_over(now)

    def _end_outage_if_over(self, now: float) -> None:
        """The database answered: the outage is over unless a table still waits on a transient error."""
        if self.failing_since is not None and not any(
                t.error_kind is ErrorKind.TRANSIENT for t in self._tables.values()):
            self.log.info("database writes succeed again after {:.1f}s ({} rows waiting)",
                          now - self.failing_since, self.backlog)
            self.failing_since = None

    def _transient_failure(self, table: _Table | None, exc: BaseException, now: float, connection: bool) -> None:
        error = describe(exc)
        self.last_error = error
        if self.failing_since is None:
            self.failing_since = now
            self.log.error("database write failed ({}), keeping {} rows and retrying every {}s",
                           error, self.backlog, self.retry_interval)
        if connection:
            self.db_connected = False
            self._retry_at = now + self.retry_interval
        if table is not None:
            if table.error_kind is not ErrorKind.TRANSIENT:
                table.failing_since = now
            table.error, table.error_kind = error, ErrorKind.TRANSIENT
            table.retry_at = now + self.retry_interval

    def _table_failure(self, table: _Table, exc: BaseException, now: float) -> None:
        error = describe(exc)
        self.last_error = error
        if not table.isolated or table.error != error:
            if not table.isolated:
                table.failing_since = now
            self.log.error("{}: cannot be written ({}); its {} rows are kept and it is retried every {:.0f}s, "
                           "other tables go on", table.name, error, table.waiting, self.table_retry_seconds)
        table.error, table.error_kind = error, ErrorKind.TABLE
        table.retry_at = now + self.table_retry_seconds
        self.db_connected = True  # the database answered: it is the statement that cannot work
        self._end_outage_if_over(now)

    def _snapshot(self) -> PersistenceStats:
        now = time.time()
        t = self._tables
        tables = tuple(
            TableStats(x.name, x.waiting, len(x.queue), x.written, x.refused, x.error,
                       x.error_kind.value if x.error_kind else "", x.failing_since, x.retry_at or None)
            for x in t.values()
        )
        isolated = tuple(
            IsolatedTable(x.name, x.error, x.failing_since or now, x.waiting, x.retry_at)
            for x in t.values() if x.isolated
        )
        wal = self._wal.stats() if self._wal is not None else None
        return PersistenceStats(
            backlog=self.backlog,
            bars_written=t["ohlcv_1min"].written,
            patterns_written=t["intraday_patterns"].written,
            indicators_written=t["intraday_indicators"].written,
            rows_rejected=self.rows_rejected,
            db_connected=self.db_connected,
            failing_since=self.failing_since,
            last_error=self.last_error,
            health_written=t["streaming_health_metrics"].written,
            sessions_written=t["streaming_sessions"].written,
            rows_written=sum(x.written for x in t.values()),
            rows_on_disk_only=sum(x.waiting - len(x.queue) for x in t.values()),
            tables=tables,
            isolated=isolated,
            wal_segments=wal.segments if wal else 0,
            wal_bytes=wal.bytes if wal else 0,
            wal_pending=wal.pending if wal else 0,
            wal_error=self._wal_error,
            at=now,
        )
