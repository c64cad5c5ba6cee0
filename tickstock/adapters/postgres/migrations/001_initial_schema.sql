-- TickStock streaming service: the tables it writes and reads (docs/interface.md, "Database").
--
-- Every statement is IF NOT EXISTS because the dashboard's database already holds most of these
-- tables, with extra columns, foreign keys (ohlcv_1min.symbol -> symbols) and TimescaleDB
-- hypertables that we must leave exactly as they are. Column names are the consumer's: do not rename.
-- Deliberately absent: a foreign key to symbols (our own database has no symbols table) and
-- cache_entries (owned by the dashboard; read only).

CREATE TABLE IF NOT EXISTS ohlcv_1min (
    symbol    VARCHAR(20) NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,          -- the bar's minute START, UTC
    open      NUMERIC     NOT NULL,
    high      NUMERIC     NOT NULL,
    low       NUMERIC     NOT NULL,
    close     NUMERIC     NOT NULL,
    volume    BIGINT      NOT NULL,
    PRIMARY KEY (symbol, timestamp)          -- also serves "latest N bars of a symbol" reads
);

CREATE TABLE IF NOT EXISTS intraday_patterns (
    id                   SERIAL PRIMARY KEY,
    symbol               TEXT        NOT NULL,
    pattern_type         TEXT        NOT NULL,
    confidence           NUMERIC,
    pattern_data         JSONB,
    detection_timestamp  TIMESTAMPTZ NOT NULL,
    expiration_timestamp TIMESTAMPTZ,
    levels               NUMERIC[],
    metadata             JSONB,
    timeframe            TEXT
);
-- Per-symbol history, and the dashboard's "most recent detections" view.
CREATE INDEX IF NOT EXISTS intraday_patterns_symbol_detection_idx
    ON intraday_patterns (symbol, detection_timestamp);
CREATE INDEX IF NOT EXISTS intraday_patterns_detection_idx
    ON intraday_patterns (detection_timestamp);

CREATE TABLE IF NOT EXISTS intraday_indicators (
    id                    SERIAL PRIMARY KEY,
    symbol                TEXT        NOT NULL,
    indicator_type        TEXT        NOT NULL,
    value                 NUMERIC,
    value_data            JSONB,
    calculation_timestamp TIMESTAMPTZ NOT NULL,
    expiration_timestamp  TIMESTAMPTZ,  -- the dashboard shows a row only while this is > now()
    metadata              JSONB,
    timeframe             TEXT
);
CREATE INDEX IF NOT EXISTS intraday_indicators_symbol_calculation_idx
    ON intraday_indicators (symbol, calculation_timestamp);
-- The dashboard filters on expiration_timestamp > now() on every read.
CREATE INDEX IF NOT EXISTS intraday_indicators_expiration_idx
    ON intraday_indicators (expiration_timestamp);

CREATE TABLE IF NOT EXISTS streaming_sessions (
    session_id       UUID PRIMARY KEY,
    universe         TEXT,
    started_at       TIMESTAMPTZ,
    stopped_at       TIMESTAMPTZ,
    symbol_count     INT,
    total_patterns   BIGINT,
    total_indicators BIGINT,
    final_status     TEXT               -- NULL while running; completed | stopped | failed
);
CREATE INDEX IF NOT EXISTS streaming_sessions_started_idx ON streaming_sessions (started_at);

-- One row per published health report. No foreign key to streaming_sessions: a health row must
-- still be writable when the session row could not be (database down at the start).
CREATE TABLE IF NOT EXISTS streaming_health_metrics (
    id                    SERIAL PRIMARY KEY,
    session_id            UUID,
    recorded_at           TIMESTAMPTZ      NOT NULL,
    status                TEXT             NOT NULL,
    active_symbols        INT,
    ticks_per_second      DOUBLE PRECISION,
    bars_per_minute       DOUBLE PRECISION,
    processing_lag_ms     DOUBLE PRECISION,
    patterns_detected     BIGINT,
    indicators_calculated BIGINT,
    payload               JSONB
);
CREATE INDEX IF NOT EXISTS streaming_health_metrics_session_recorded_idx
    ON streaming_health_metrics (session_id, recorded_at);
CREATE INDEX IF NOT EXISTS streaming_health_metrics_recorded_idx
    ON streaming_health_metrics (recorded_at);

-- Definitions: operator-edited configuration the service only reads (after the baseline seed).
CREATE TABLE IF NOT EXISTS pattern_definitions (
    id                    SERIAL PRIMARY KEY,
    name                  VARCHAR(100) UNIQUE NOT NULL,
    display_name          TEXT,
    short_description     VARCHAR(255),
    code_reference        VARCHAR(255),  -- the dashboard's; the service never imports it
    category              VARCHAR(50),
    enabled               BOOLEAN NOT NULL DEFAULT true,
    display_order         INT,
    applicable_timeframes VARCHAR(20)[],
    min_bars_required     INT,
    confidence_threshold  NUMERIC(3,2),
    instantiation_params  JSONB
);

CREATE TABLE IF NOT EXISTS indicator_definitions (
    id                    SERIAL PRIMARY KEY,
    name                  VARCHAR(100) UNIQUE NOT NULL,
    display_name          TEXT,
    short_description     VARCHAR(255),
    code_reference        VARCHAR(255),
    category              VARCHAR(50),
    enabled               BOOLEAN NOT NULL DEFAULT true,
    display_order         INT,
    applicable_timeframes VARCHAR(20)[],
    min_bars_required     INT,
    confidence_threshold  NUMERIC(3,2),
    period                INT,
    parameters            JSONB,
    output_type           VARCHAR(50)
);
