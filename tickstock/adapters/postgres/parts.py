"""Writing a bar as its session's part of the minute, and re-making the minute in ``ohlcv_1min``.

The rule (what the dashboard reads in ``ohlcv_1min`` for a minute):

- Every bar is its session's PART of the minute, kept in ``ohlcv_1min_parts`` under (symbol,
  minute, session) with its ``partial`` flag (``Bar.partial``: the session saw only part of the
  minute -- it started or stopped inside it, or its subscription had a gap there). A part written
  again (retry, write-ahead-log replay) replaces itself: never counted twice.
- A COMPLETE part (``partial`` false) is the whole truth of its minute: if the minute has one, its
  row is the complete part written last (``written_at``; ties to the larger session id), whole, and
  the partial parts do not count. So replaying a day already stored -- from ``ohlcv_1min`` (which
  ``python -m tickstock.simulate --replay-db`` does), a CSV, or the same ticks -- replaces each
  minute instead of adding to it, and two sessions that both saw a whole minute never double it.
- Otherwise (only partial parts) the row is their merge (``tickstock.bars.merge``: open of the
  earliest first tick, close of the latest last tick, max high, min low, summed volume): a session
  stopped and started again inside a minute holds every tick of both.
- A row found in ``ohlcv_1min`` with no parts at all (another producer's bar, seeded history, a
  bar stored before the parts existed) is adopted first as a complete part of the pseudo-session
  ``STORED_ROW_SESSION``, written before the new part: a complete part then replaces it, a partial
  part leaves it as it was (a bar of the whole minute outweighs a part known to be incomplete). It
  is never added to.
- ``written_at`` moves only when a part's values change: an identical part written again (a retry,
  an old write-ahead log replayed) does not become "written last" again.

A part written before migration 006 counts as partial (it merges as it always did). Known limit:
ticks of a minute that reach a second session after a first one stored the minute complete (two
instances at once, or a tick delivered across a restart later than its minute's end) do not count.

One ``BarParts`` call, for a page of bars (inside the caller's transaction):

1. ``prepare``: a transaction-scoped advisory lock per touched (symbol, minute), in a fixed order
   (two transactions writing parts of the same minute at once, two sessions' writers, are
   serialised, so the later merge sees the earlier part instead of overwriting it with a merge that
   missed it: READ COMMITTED snapshots are per statement; a lock waits at most ``lock_timeout``),
   then the adoption of rows without parts;
2. ``execute``: upsert each bar's part, keyed by (symbol, minute, session);
3. re-make each touched minute's row of ``ohlcv_1min`` from its parts by the rule above
   (``INSERT ... ON CONFLICT (symbol, timestamp) DO UPDATE``; a row whose values did not change is
   not rewritten).

A bar the dashboard refuses (its foreign key from ``ohlcv_1min.symbol`` to ``symbols``) fails in
step 3; the batch writer then retries row by row under savepoints, and the refused bar's part is
rolled back with it: the bar fails alone and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg2.extras

from .batch import PAGE_SIZE

# First half of the two-int advisory-lock key (a space of its own, apart from the one-bigint
# migration lock): ASCII "tsbm", TickStock bar minute.
BAR_LOCK_SPACE = 0x7473626D

# The pseudo-session of a part adopted from a row of ohlcv_1min that had no parts (see above).
STORED_ROW_SESSION = "00000000-0000-0000-0000-000000000001"

# written_at is clock_timestamp(): distinct per row even within one statement, so of two complete
# parts of one minute in one batch (a write-ahead log holding two sessions) the later one is last.
UPSERT_PARTS_SQL = (
    "INSERT INTO ohlcv_1min_parts AS p (symbol, timestamp, session_id, open, high, low, close, volume, "
    "first_tick_at, last_tick_at, partial, written_at) VALUES %s "
    "ON CONFLICT (symbol, timestamp, session_id) DO UPDATE SET open = EXCLUDED.open, "
    "high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, "
    "first_tick_at = EXCLUDED.first_tick_at, last_tick_at = EXCLUDED.last_tick_at, "
    "partial = EXCLUDED.partial, written_at = EXCLUDED.written_at "
    "WHERE (p.open, p.high, p.low, p.close, p.volume, p.first_tick_at, p.last_tick_at, p.partial) "
    "IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume, "
    "EXCLUDED.first_tick_at, EXCLUDED.last_tick_at, EXCLUDED.partial)"
)
# Times travel as epoch seconds (cheaper to send than datetimes: this is most of a batch's
# client-side cost) and become TIMESTAMPTZ on the server.
UPSERT_PARTS_TEMPLATE = (
    "(%s, to_timestamp(%s), %s::uuid, %s, %s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s), %s, clock_timestamp())"
)

# Rows of the touched minutes that have no part yet become one complete part of STORED_ROW_SESSION
# (under the minute locks, before the new parts are written). The keys arrive de-duplicated. Each
# is one primary-key probe into each table (the LIMIT keeps the LATERAL a nested loop whatever the
# statistics say: a join would scan a whole table); a live minute (no row yet) finds nothing.
ADOPT_STORED_ROWS_SQL = """
INSERT INTO ohlcv_1min_parts (symbol, timestamp, session_id, open, high, low, close, volume, partial, written_at)
SELECT o.symbol, o.timestamp, %s::uuid, o.open, o.high, o.low, o.close, o.volume, false, clock_timestamp()
FROM unnest(%s::varchar[], %s::float8[]) AS k(symbol, start)
CROSS JOIN LATERAL (
    SELECT r.symbol, r.timestamp, r.open, r.high, r.low, r.close, r.volume
    FROM ohlcv_1min AS r
    WHERE r.symbol = k.symbol AND r.timestamp = to_timestamp(k.start)
      AND NOT EXISTS (SELECT 1 FROM ohlcv_1min_parts AS q
                      WHERE q.symbol = k.symbol AND q.timestamp = to_timestamp(k.start))
    LIMIT 1
) AS o
ON CONFLICT DO NOTHING
"""

# The keys arrive de-duplicated (a key twice would count its parts twice). A LATERAL lookup per
# key walks the parts' primary key whatever the table statistics say. The parts that count: the
# complete part written last if any (n = 1 orders complete parts first, the latest first), else
# every (partial) part. Their merge: a part without tick times counts as covering the whole
# minute; ties go to the session id, so a merge never depends on the order in which parts were
# written (and the merge of one part is that part). Rows are produced in key order, so concurrent
# merges take ohlcv_1min's row locks in the same order. A row whose values did not change is not
# rewritten (a replay costs no table churn).
MERGE_MINUTES_SQL = """
INSERT INTO ohlcv_1min (symbol, timestamp, open, high, low, close, volume)
SELECT k.symbol, to_timestamp(k.start), m.open, m.high, m.low, m.close, m.volume
FROM unnest(%s::varchar[], %s::float8[]) AS k(symbol, start)
CROSS JOIN LATERAL (
    SELECT (array_agg(p.open ORDER BY COALESCE(p.first_tick_at, p.timestamp), p.session_id))[1] AS open,
           max(p.high) AS high,
           min(p.low) AS low,
           (array_agg(p.close ORDER BY COALESCE(p.last_tick_at, p.timestamp + interval '1 minute') DESC,
                                       p.session_id DESC))[1] AS close,
           sum(p.volume) AS volume
    FROM (
        SELECT q.*, bool_or(NOT q.partial) OVER () AS any_complete,
               row_number() OVER (ORDER BY q.partial, q.written_at DESC, q.session_id DESC) AS n
        FROM ohlcv_1min_parts AS q
        WHERE q.symbol = k.symbol AND q.timestamp = to_timestamp(k.start)
    ) AS p
    WHERE NOT p.any_complete OR p.n = 1
) AS m
WHERE m.volume IS NOT NULL
ORDER BY k.symbol, k.start
ON CONFLICT (symbol, timestamp) DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high,
    low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume
WHERE (ohlcv_1min.open, ohlcv_1min.high, ohlcv_1min.low, ohlcv_1min.close, ohlcv_1min.volume)
      IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
"""

LOCK_MINUTES_SQL = "SELECT count(pg_advisory_xact_lock(%s, k)) FROM unnest(%s::int[]) AS k"


def minute_lock_key(symbol: str, start: float) -> int:
    """A stable signed 32-bit key for (symbol, minute start in epoch seconds). Two minutes sharing
    a key only make their writers wait for each other, never merge them."""
    digest = hashlib.blake2b(f"{symbol}\x1f{int(start)}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class BarParts:
    """The ``Statement`` (see batch.py) writing ``rows.bar_part_row`` parameters."""

    def prepare(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        """Lock the touched minutes, then adopt their rows that have no parts (kept even if a row
        of the batch is refused later: they only restate what ``ohlcv_1min`` already holds)."""
        keys = sorted({minute_lock_key(row[0], row[1]) for row in rows})
        cur.execute(LOCK_MINUTES_SQL, (BAR_LOCK_SPACE, keys))
        minutes = list(dict.fromkeys((row[0], row[1]) for row in rows))
        cur.execute(ADOPT_STORED_ROWS_SQL, (STORED_ROW_SESSION, [m[0] for m in minutes], [m[1] for m in minutes]))

    def execute(self, cur: Any, rows: list[tuple[Any, ...]]) -> int:
        psycopg2.extras.execute_values(
            cur, UPSERT_PARTS_SQL, rows, template=UPSERT_PARTS_TEMPLATE, page_size=PAGE_SIZE
        )
        minutes = list(dict.fromkeys((row[0], row[1]) for row in rows))
        cur.execute(MERGE_MINUTES_SQL, ([m[0] for m in minutes], [m[1] for m in minutes]))
        return len(rows)
