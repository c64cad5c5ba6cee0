"""Writing a bar as its session's part of the minute, and re-merging the minute in ``ohlcv_1min``.

One ``BarParts.execute`` call, for a page of bars (inside the caller's transaction):

1. upsert each bar's part in ``ohlcv_1min_parts`` keyed by (symbol, minute, session): a part
   written again (retry, replay) replaces itself, so it is never counted twice;
2. re-make each touched minute's row of ``ohlcv_1min`` from ALL its parts (the merge rule of
   ``tickstock.bars.merge``): ``INSERT ... ON CONFLICT (symbol, timestamp) DO UPDATE``.

``prepare`` first takes a transaction-scoped advisory lock per touched (symbol, minute), in a fixed
order: two transactions writing parts of the same minute at once (two sessions' writers) are
serialised, so the later merge sees the earlier part instead of overwriting it with a merge that
missed it (READ COMMITTED snapshots are per statement). A lock waits at most ``lock_timeout``.

A bar the dashboard refuses (its foreign key from ``ohlcv_1min.symbol`` to ``symbols``) fails in
step 2; the batch writer then retries row by row under savepoints, and the refused bar's part is
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

UPSERT_PARTS_SQL = (
    "INSERT INTO ohlcv_1min_parts (symbol, timestamp, session_id, open, high, low, close, volume, "
    "first_tick_at, last_tick_at) VALUES %s "
    "ON CONFLICT (symbol, timestamp, session_id) DO UPDATE SET open = EXCLUDED.open, "
    "high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, "
    "first_tick_at = EXCLUDED.first_tick_at, last_tick_at = EXCLUDED.last_tick_at, written_at = now()"
)
# Times travel as epoch seconds (cheaper to send than datetimes: this is most of a batch's
# client-side cost) and become TIMESTAMPTZ on the server.
UPSERT_PARTS_TEMPLATE = (
    "(%s, to_timestamp(%s), %s::uuid, %s, %s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s))"
)

# The keys arrive de-duplicated (a key twice would count its parts twice). A LATERAL lookup per
# key walks the parts' primary key whatever the table statistics say. A part without tick times
# counts as covering the whole minute; ties go to the session id, so the result never depends on
# the order in which parts were written. Rows are produced in key order, so concurrent merges
# take ohlcv_1min's row locks in the same order. A row whose values did not change is not
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
    FROM ohlcv_1min_parts AS p
    WHERE p.symbol = k.symbol AND p.timestamp = to_timestamp(k.start)
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
        keys = sorted({minute_lock_key(row[0], row[1]) for row in rows})
        cur.execute(LOCK_MINUTES_SQL, (BAR_LOCK_SPACE, keys))

    def execute(self, cur: Any, rows: list[tuple[Any, ...]]) -> int:
        psycopg2.extras.execute_values(
            cur, UPSERT_PARTS_SQL, rows, template=UPSERT_PARTS_TEMPLATE, page_size=PAGE_SIZE
        )
        minutes = list(dict.fromkeys((row[0], row[1]) for row in rows))
        cur.execute(MERGE_MINUTES_SQL, ([m[0] for m in minutes], [m[1] for m in minutes]))
        return len(rows)
