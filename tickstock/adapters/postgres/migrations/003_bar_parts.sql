-- Bars are never overwritten by a part of themselves (issue 7).
--
-- Each session writes ITS part of a minute here, keyed by (symbol, minute, session): the same
-- session re-writing the same minute (a retry, a replay of the write-ahead log) replaces its part,
-- another session (a stop and start within a minute, a crash and restart) adds a part. In the same
-- transaction the minute's row in ohlcv_1min is re-made from all its parts: open of the part with
-- the earliest first tick, close of the part with the latest last tick, max high, min low, summed
-- volume. The dashboard reads ohlcv_1min as before and never needs this table.
-- A bar written without a session id (a spill line older than the field) is the nil-UUID part.

CREATE TABLE IF NOT EXISTS ohlcv_1min_parts (
    symbol        VARCHAR(20) NOT NULL,
    timestamp     TIMESTAMPTZ NOT NULL,          -- the minute's START, UTC, as in ohlcv_1min
    session_id    UUID        NOT NULL,
    open          NUMERIC     NOT NULL,
    high          NUMERIC     NOT NULL,
    low           NUMERIC     NOT NULL,
    close         NUMERIC     NOT NULL,
    volume        BIGINT      NOT NULL,
    first_tick_at TIMESTAMPTZ,                   -- NULL: unknown (counts as the minute's start)
    last_tick_at  TIMESTAMPTZ,                   -- NULL: unknown (counts as the minute's end)
    written_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, timestamp, session_id)  -- its (symbol, timestamp) prefix finds a minute's parts
);
