-- Rows of the dashboard's append-only tables (intraday_patterns, intraday_indicators,
-- streaming_health_metrics) are written at most once (issue 7): every such row carries a
-- deterministic row_id, and the insert into the dashboard's table happens only if the same
-- transaction newly inserted that id here. A retry after an unknown commit outcome or a replay of
-- the write-ahead log is then a no-op. Ids older than the retention (7 days) are pruned when the
-- service migrates at start-up; nothing replays rows that old.

CREATE TABLE IF NOT EXISTS tickstock_written_rows (
    row_id     UUID PRIMARY KEY,
    written_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Rows arrive in written_at order: a BRIN index makes the pruning DELETE cheap at almost no cost
-- per insert.
CREATE INDEX IF NOT EXISTS tickstock_written_rows_written_at_idx
    ON tickstock_written_rows USING brin (written_at);
