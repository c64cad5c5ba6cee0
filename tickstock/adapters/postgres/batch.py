"""Batched writes with per-row isolation: the one write path shared by bars, patterns, indicators.

Scheme, inside the caller's transaction (the caller commits):

1. Convert every item to parameters; an item that cannot be converted is rejected on the spot.
2. Let the statement ``prepare`` the batch (e.g. take the locks it needs, in a fixed order).
3. Send the rest with the statement's ``execute`` (bars: ``execute_values``, multi-row
   statements of ``PAGE_SIZE`` rows, parts.py; patterns and indicators: ``StagedCopy``, one COPY
   into a staging table; a statement may run several SQL statements per call).
4. If the server refuses the batch for a DATA reason (``ROW_ERRORS``: bad value, constraint or
   foreign-key violation), roll back to before step 3 and send the rows one at a time, each under
   a SAVEPOINT, so only the refused rows fail (with everything their statement did) and every
   other row is written.

Anything else (connection lost, deadlock, statement cancelled, schema missing) is raised as is:
the transaction is then not committed, so nothing of the batch is written and the caller can keep
its buffer and retry the whole batch later. Nothing is ever half-written and unreported.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import psycopg2

T = TypeVar("T")

PAGE_SIZE = 500

# Errors that condemn a row, not the connection: SQLSTATE class 22 (data exception) and 23
# (integrity constraint violation).
ROW_ERRORS: tuple[type[Exception], ...] = (psycopg2.DataError, psycopg2.IntegrityError)

# Client-side conversion failures (see rows.py, copy_rows.py).
CONVERSION_ERRORS: tuple[type[Exception], ...] = (TypeError, ValueError, OverflowError, OSError)


@dataclass(frozen=True, slots=True)
class WriteResult(Generic[T]):
    """Outcome of a batch write: ``written + len(rejected) == len(items)`` always holds.

    ``rejected`` holds ``(item, reason)`` for each refused item, in input order; ``reason`` names
    the problem (e.g. ``23503 ForeignKeyViolation: insert or update ... violates foreign key``).
    A rejected item will be refused again on a retry: it is for logging, not for re-queueing.
    ``duplicates`` counts the items of ``written`` that were found already written (same
    ``row_id``, by an earlier attempt) and so were not written again.
    """

    written: int
    rejected: list[tuple[T, str]] = field(default_factory=list)
    duplicates: int = 0


class Statement(Protocol):
    """What ``write_batch`` sends. ``prepare`` runs once per batch, before the savepoint that a
    row-by-row fallback returns to (what it takes, e.g. locks, is kept); ``execute`` writes some
    rows and returns how many of them were new (not already written)."""

    def prepare(self, cur: Any, rows: list[tuple[Any, ...]]) -> None: ...

    def execute(self, cur: Any, rows: list[tuple[Any, ...]]) -> int: ...


# Numbers the calls of StagedCopy.execute (unique within a process, hence within a transaction).
_calls = itertools.count(1)


@dataclass(frozen=True, slots=True)
class StagedCopy:
    """Rows sent by ``COPY ... FROM STDIN`` into a staging table, then moved on by ``insert``.

    Each row is ``(line,)``: one line of COPY text format, UTF-8 (see copy_rows.py), to which
    ``execute`` prefixes two columns: ``call``, the same for all rows of one ``execute`` and new
    for each, and ``n``, the row's position in ``rows`` (0, 1, ...). ``insert`` reads only the
    rows ``WHERE call = %(call)s`` and keeps the input order with ``ORDER BY n``.

    - The staging table is the connection's own: ``TEMP ... ON COMMIT DELETE ROWS``, indexed on
      ``call``. ``prepare`` creates it when the connection has none (a new connection after a
      reconnect, or the transaction that created it was rolled back), before write_batch's
      savepoint, so a rollback to that savepoint keeps it. It is empty at the start of every
      transaction: a commit empties it (in place: a table created and dropped per transaction
      cost ~2 ms more per batch, and dozens of catalog rows), a rollback removes the rows it
      copied.
    - ``execute`` COPYs the rows in, runs ``insert`` and returns its row count: ``insert`` is one
      INSERT statement (its CTEs, e.g. the write ledger's, do not count) that inserts the rows that
      are new. Two calls in one transaction (write_batch's rounds, its row-by-row fallback) never
      see each other's rows: ``call`` tells them apart, and the index finds a call's rows directly.
      Emptying the table between calls instead (DELETE or TRUNCATE) made the fallback's thousands
      of one-row calls cost seconds per thousand rows: dead rows scanned again, a new file per
      TRUNCATE.

    A value the server refuses (bad UUID, NOT NULL, constraint) fails the COPY or the INSERT with
    a ``ROW_ERRORS`` error, which write_batch isolates row by row as for any statement.
    ``columns`` is the staging table's column list after ``call`` and ``n``.
    """

    stage: str
    columns: str
    insert: str

    def prepare(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        cur.execute("SELECT to_regclass(%s) IS NULL", (f"pg_temp.{self.stage}",))
        if cur.fetchone()[0]:
            cur.execute(
                f"CREATE TEMP TABLE {self.stage} (call int8, n int4, {self.columns}) ON COMMIT DELETE ROWS; "
                f"CREATE INDEX ON {self.stage} (call)"
            )

    def execute(self, cur: Any, rows: list[tuple[Any, ...]]) -> int:
        call = next(_calls)
        prefix = b"%d\t" % call
        data = b"".join([b"%b%d\t%b" % (prefix, n, line) for n, (line,) in enumerate(rows)])
        cur.copy_expert(f"COPY {self.stage} FROM STDIN WITH (ENCODING 'UTF8')", io.BytesIO(data), size=1 << 20)
        cur.execute(self.insert, {"call": call})
        return cur.rowcount


def describe(exc: Exception) -> str:
    """A one-line reason for a rejection."""
    if isinstance(exc, psycopg2.Error):
        message = exc.diag.message_primary or str(exc).strip()
        detail = f" ({exc.diag.message_detail})" if exc.diag.message_detail else ""
        return f"{exc.pgcode} {type(exc).__name__}: {message}{detail}"
    return f"{type(exc).__name__}: {exc}"


def write_batch(
    conn: Any,
    statement: Statement,
    items: Sequence[T],
    to_row: Callable[[T], tuple[Any, ...]],
    key: Callable[[T], Hashable] | None = None,
) -> WriteResult[T]:
    """Write ``items`` in the open transaction of ``conn`` (not committed here).

    ``key`` (for upserts) gives each item's conflict key. ``INSERT ... ON CONFLICT DO UPDATE``
    refuses a statement that touches one row twice, so items sharing a key are sent in successive
    statements, in input order: the result is that of upserting them one after another (the later
    item wins), and every item counts as written.
    """
    rejected: list[tuple[int, T, str]] = []
    prepared: list[tuple[int, T, tuple[Any, ...]]] = []
    for index, item in enumerate(items):
        try:
            prepared.append((index, item, to_row(item)))
        except CONVERSION_ERRORS as exc:
            rejected.append((index, item, describe(exc)))

    written = new = 0
    if prepared:
        with conn.cursor() as cur:
            # A DEFERRABLE constraint would otherwise fail only at COMMIT, where it condemns the
            # whole batch instead of one row.
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            statement.prepare(cur, [row for _, _, row in prepared])
            cur.execute("SAVEPOINT tickstock_batch")
            try:
                for rows in _conflict_free_rounds(prepared, key):
                    new += statement.execute(cur, rows)
                written = len(prepared)
            except ROW_ERRORS:
                # A savepoint, not a full rollback: SET CONSTRAINTS and prepare's locks stay.
                cur.execute("ROLLBACK TO SAVEPOINT tickstock_batch")
                written, new, refused = _write_one_by_one(cur, statement, prepared)
                rejected.extend(refused)
    rejected.sort(key=lambda entry: entry[0])
    return WriteResult(written, [(item, reason) for _, item, reason in rejected], written - new)


def _conflict_free_rounds(
    prepared: list[tuple[int, T, tuple[Any, ...]]], key: Callable[[T], Hashable] | None
) -> list[list[tuple[Any, ...]]]:
    """Rows split so that no round holds a key twice; round n holds each key's n-th occurrence."""
    if key is None:
        return [[row for _, _, row in prepared]]
    rounds: list[list[tuple[Any, ...]]] = []
    seen: dict[Hashable, int] = {}
    for _, item, row in prepared:
        k = key(item)
        occurrence = seen.get(k, 0)
        seen[k] = occurrence + 1
        if occurrence == len(rounds):
            rounds.append([])
        rounds[occurrence].append(row)
    return rounds


def _write_one_by_one(
    cur: Any, statement: Statement, prepared: list[tuple[int, T, tuple[Any, ...]]]
) -> tuple[int, int, list[tuple[int, T, str]]]:
    """Each row under its own savepoint, in input order; returns (written, new, rejected)."""
    written = new = 0
    refused: list[tuple[int, T, str]] = []
    for index, item, row in prepared:
        cur.execute("SAVEPOINT tickstock_row")
        try:
            fresh = statement.execute(cur, [row])
        except ROW_ERRORS as exc:
            cur.execute("ROLLBACK TO SAVEPOINT tickstock_row")
            refused.append((index, item, describe(exc)))
        else:
            cur.execute("RELEASE SAVEPOINT tickstock_row")
            written += 1
            new += fresh
    return written, new, refused
