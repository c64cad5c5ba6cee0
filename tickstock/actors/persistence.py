"""PersistenceActor: buffers everything the session computed and writes it in batches.

Guarantees:
- A database outage never drops a result: on a connection error the batch stays buffered and is
  retried every ``retry_interval`` seconds; handlers never raise on database errors.
- A row the database refuses (a foreign key on ``symbol``, say) is reported alone; the rest of its
  batch is written (the store isolates rows).
- ``Drain`` writes everything buffered before it returns, within its timeout, and reports what
  could not be written.
- Session rows are written in the order they were told (a session's start before its end).
- Rows still unwritten when the actor stops (the database is down at shutdown) are saved to a
  spill file in ``spill_dir``; the next PersistenceActor to open loads every spill file first and
  deletes it only once its rows are queued again. Nothing computed is lost to an outage.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import pykka
import psycopg2

from tickstock.actors.base import SupervisedActor, handles
from tickstock.actors.faults import maybe_fail
from tickstock.actors.timer import Ticker
from tickstock.messages.bars import Bar
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord
from tickstock.messages.spill import decode_rows, encode_rows
from tickstock.messages.commands import (
    Drain, GetStats, PersistBars, PersistResults, RecordHealth, RecordSession, TimerTick,
)

# Connection-level failures: the data is fine, the database is not. Keep and retry.
_OUTAGE_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError, ConnectionError, OSError)


# The row itself is refused (bad value, constraint): retrying cannot help.
_DATA_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError, ValueError)
_QUEUE_OF = {SessionRecord: "session", Bar: "upsert_bars", PatternRecord: "insert_patterns",
             IndicatorRecord: "insert_indicators", HealthRecord: "insert_health"}
_QUIET_SECONDS = 0.1      # no new rows for this long: a good moment to write
_MAX_DELAY_SECONDS = 1.0  # ...but no row waits longer than this while the database is up
# Rows written one at a time (a handful per minute); the rest go in batches.
_ONE_ROW_METHODS = frozenset({"session", "insert_health"})


@dataclass(frozen=True, slots=True)
class PersistenceStats:
    backlog: int
    bars_written: int
    patterns_written: int
    indicators_written: int
    rows_rejected: int
    db_connected: bool
    failing_since: float | None
    last_error: str


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
    ) -> None:
        super().__init__(supervisor, "persistence", session_id)
        self._spill_dir = Path(spill_dir) if spill_dir else None
        self._observe_latency = observe_latency
        self._connect = connect
        self._store = None
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        # (store method name, buffer) in write order; session rows first so results follow them.
        self._queues: dict[str, deque] = {
            "session": deque(), "upsert_bars": deque(), "insert_patterns": deque(),
            "insert_indicators": deque(), "insert_health": deque(),
        }
        self._written = {"upsert_bars": 0, "insert_patterns": 0, "insert_indicators": 0, "insert_health": 0}
        self.rows_rejected = 0
        self.db_connected = False
        self.failing_since: float | None = None
        self.last_error = ""
        self._retry_at = 0.0
        self._last_message_at = 0.0
        self._oldest_at: float | None = None  # when the oldest unwritten row arrived
        self._ticker: Ticker | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        self._load_spilled()
        self._store = self._connect()
        try:
            self._store.ping()
            self.db_connected = True
        except _OUTAGE_ERRORS as exc:
            # Start anyway: results are buffered until the database is back.
            self._mark_down(exc, time.time())
        self._ticker = Ticker(self.actor_ref, self.flush_interval, TimerTick, "persistence").start()

    def on_stop(self) -> None:
        if self._ticker:
            self._ticker.stop()
        if self.backlog:
            self._spill()
        if self._store is not None:
            self._store.close()

    def _spill(self) -> None:
        rows = [row for queue in self._queues.values() for row in queue]
        if self._spill_dir is None:
            self.log.error("persistence stopped with {} rows unwritten: {}", len(rows), self.last_error)
            return
        try:
            self._spill_dir.mkdir(parents=True, exist_ok=True)
            path = self._spill_dir / f"spill-{time.time():.6f}-{self.session_id or 'none'}.jsonl"
            path.write_bytes(encode_rows(rows))
        except OSError as exc:
            self.log.critical("{} unwritten rows LOST: cannot spill to {}: {!r}", len(rows), self._spill_dir, exc)
            return
        self.log.error("database unavailable at shutdown ({}): {} rows saved to {}", self.last_error, len(rows), path)

    def _load_spilled(self) -> None:
        if self._spill_dir is None or not self._spill_dir.is_dir():
            return
        for path in sorted(self._spill_dir.glob("spill-*.jsonl")):
            try:
                rows = list(decode_rows(path))
            except (OSError, ValueError) as exc:
                self.log.error("spill file {} cannot be read, left in place: {}", path, exc)
                continue
            for row in rows:
                self._queues[_QUEUE_OF[type(row)]].append(row)
            path.unlink()
            self.log.warning("re-queued {} rows spilled by an earlier session from {}", len(rows), path.name)

    @property
    def backlog(self) -> int:
        return sum(len(q) for q in self._queues.values())

    # -- messages -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, (TimerTick, GetStats)):
            self._last_message_at = time.time()
            if self._oldest_at is None:
                self._oldest_at = self._last_message_at
        return super().on_receive(message)

    @handles(PersistBars)
    def _bars(self, message: PersistBars) -> None:
        self._queues["upsert_bars"].extend(message.bars)
        self._flush_if_full()

    @handles(PersistResults)
    def _results(self, message: PersistResults) -> None:
        self._queues["insert_patterns"].extend(message.patterns)
        self._queues["insert_indicators"].extend(message.indicators)
        self._flush_if_full()

    @handles(RecordSession)
    def _session(self, message: RecordSession) -> None:
        self._queues["session"].append(message.record)
        self._flush(time.time())

    @handles(RecordHealth)
    def _health(self, message: RecordHealth) -> None:
        self._queues["insert_health"].append(message.record)

    @handles(TimerTick)
    def _timer(self, message: TimerTick) -> None:
        # Write in a quiet moment: right after a bar close the analysis burst is still publishing,
        # and a row may wait a second where an event may not. A backlog older than
        # ``max_delay`` is written regardless.
        now = time.time()
        quiet = now - self._last_message_at >= _QUIET_SECONDS
        overdue = self._oldest_at is not None and now - self._oldest_at >= _MAX_DELAY_SECONDS
        if quiet or overdue:
            self._flush(now)

    @handles(Drain)
    def _drain(self, message: Drain) -> PersistenceStats:
        deadline = time.monotonic() + message.timeout
        while self.backlog and time.monotonic() < deadline:
            self._retry_at = 0.0
            if not self._flush(time.time()):
                time.sleep(min(self.retry_interval, max(deadline - time.monotonic(), 0)))
        return self._stats(GetStats())

    @handles(GetStats)
    def _stats(self, message: GetStats) -> PersistenceStats:
        return PersistenceStats(
            self.backlog, self._written["upsert_bars"], self._written["insert_patterns"],
            self._written["insert_indicators"], self.rows_rejected, self.db_connected,
            self.failing_since, self.last_error,
        )

    # -- writing --------------------------------------------------------------------------------

    def _flush_if_full(self) -> None:
        # Writes normally go on the timer (every flush_interval): at a bar close the analysis
        # burst needs the CPU first. Only a backlog of several batches is written at once.
        if any(len(q) >= 4 * self.batch_size for q in self._queues.values()):
            self._flush(time.time())

    def _flush(self, now: float) -> bool:
        """Write everything buffered, batch by batch. Returns False if the database is down."""
        if self._store is None or now < self._retry_at:  # not opened yet, or backing off
            return False
        try:
            maybe_fail("persistence:write")
            for method, queue in self._queues.items():
                while queue:
                    if method in _ONE_ROW_METHODS:
                        record = queue[0]
                        try:
                            self._write_one(method, record)
                        except _DATA_ERRORS as exc:  # this row can never be written: report it alone
                            self._report_rejected(method, [(record, repr(exc))])
                        queue.popleft()
                        continue
                    batch = [queue[i] for i in range(min(self.batch_size, len(queue)))]
                    started = time.perf_counter()
                    result = getattr(self._store, method)(batch)
                    if self._observe_latency is not None:
                        self._observe_latency(time.perf_counter() - started)
                    for _ in batch:
                        queue.popleft()
                    self._written[method] += result.written
                    self._report_rejected(method, result.rejected)
        except _OUTAGE_ERRORS as exc:
            self._mark_down(exc, now)
            return False
        self._oldest_at = None
        if not self.db_connected:
            self.log.info("database reachable again after {:.1f}s", now - (self.failing_since or now))
        self.db_connected = True
        self.failing_since = None
        return True

    def _write_one(self, method: str, record: Any) -> None:
        if method == "insert_health":
            self._store.insert_health(record)
            self._written[method] += 1
        elif record.final_status is None:
            self._store.start_session(record)
        else:
            self._store.finish_session(record)

    def _report_rejected(self, method: str, rejected: list) -> None:
        for item, error in rejected:
            self.rows_rejected += 1
            # One line per refused row: these are rare and each one is a lost fact worth seeing.
            self.log.error("{}: database refused {!r}: {}", method, item, error)

    def _mark_down(self, exc: Exception, now: float) -> None:
        if self.db_connected or self.failing_since is None:
            self.log.error("database write failed, keeping {} rows buffered: {!r}", self.backlog, exc)
            self.failing_since = now
        self.db_connected = False
        self.last_error = repr(exc)
        self._retry_at = now + self.retry_interval
