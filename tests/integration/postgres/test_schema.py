"""Migrations: exact tables, idempotence, concurrency, and never overwriting operator edits."""

from __future__ import annotations

import threading

import pytest

from tests.integration.postgres.helpers import run_sql
from tickstock.adapters.postgres import migrate
from tickstock.adapters.postgres.schema import available_migrations

pytestmark = pytest.mark.integration

ALL_VERSIONS = [m.version for m in available_migrations()]

EXPECTED_COLUMNS = {
    "ohlcv_1min": {
        "symbol": "character varying", "timestamp": "timestamp with time zone",
        "open": "numeric", "high": "numeric", "low": "numeric", "close": "numeric",
        "volume": "bigint",
    },
    "intraday_patterns": {
        "id": "integer", "symbol": "text", "pattern_type": "text", "confidence": "numeric",
        "pattern_data": "jsonb", "detection_timestamp": "timestamp with time zone",
        "expiration_timestamp": "timestamp with time zone", "levels": "ARRAY",
        "metadata": "jsonb", "timeframe": "text",
    },
    "intraday_indicators": {
        "id": "integer", "symbol": "text", "indicator_type": "text", "value": "numeric",
        "value_data": "jsonb", "calculation_timestamp": "timestamp with time zone",
        "expiration_timestamp": "timestamp with time zone", "metadata": "jsonb", "timeframe": "text",
    },
    "streaming_sessions": {
        "session_id": "uuid", "universe": "text", "started_at": "timestamp with time zone",
        "stopped_at": "timestamp with time zone", "symbol_count": "integer",
        "total_patterns": "bigint", "total_indicators": "bigint", "final_status": "text",
    },
    "streaming_health_metrics": {
        "id": "integer", "session_id": "uuid", "recorded_at": "timestamp with time zone",
        "status": "text", "active_symbols": "integer", "ticks_per_second": "double precision",
        "bars_per_minute": "double precision", "processing_lag_ms": "double precision",
        "patterns_detected": "bigint", "indicators_calculated": "bigint", "payload": "jsonb",
    },
}

DEFINITION_COMMON = {
    "id": "integer", "name": "character varying", "display_name": "text",
    "short_description": "character varying", "code_reference": "character varying",
    "category": "character varying", "enabled": "boolean", "display_order": "integer",
    "applicable_timeframes": "ARRAY", "min_bars_required": "integer",
    "confidence_threshold": "numeric",
}
EXPECTED_COLUMNS["pattern_definitions"] = {**DEFINITION_COMMON, "instantiation_params": "jsonb"}
EXPECTED_COLUMNS["indicator_definitions"] = {
    **DEFINITION_COMMON, "period": "integer", "parameters": "jsonb", "output_type": "character varying",
}


def columns(dsn: str, table: str) -> dict[str, str]:
    return dict(run_sql(
        dsn,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s",
        (table,),
    ))


def test_tables_have_exactly_the_interface_columns(migrated_dsn: str) -> None:
    for table, expected in EXPECTED_COLUMNS.items():
        assert columns(migrated_dsn, table) == expected, table
    pk = run_sql(migrated_dsn, """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = 'ohlcv_1min'::regclass AND i.indisprimary ORDER BY a.attnum""")
    assert [r[0] for r in pk] == ["symbol", "timestamp"]


def test_no_foreign_keys_and_no_symbols_table(migrated_dsn: str) -> None:
    fks = run_sql(migrated_dsn, "SELECT conname FROM pg_constraint WHERE contype = 'f'")
    assert fks == []
    tables = {r[0] for r in run_sql(
        migrated_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert "symbols" not in tables


def test_migrate_is_idempotent(fresh_dsn: str) -> None:
    assert migrate(fresh_dsn) == ALL_VERSIONS
    assert migrate(fresh_dsn) == []
    assert migrate(fresh_dsn) == []
    ledger = run_sql(fresh_dsn, "SELECT version, applied_at IS NOT NULL FROM schema_migrations ORDER BY version")
    assert ledger == [(v, True) for v in ALL_VERSIONS]
    # the baseline (002: 4 + 2) and the disabled TA-Lib/VWAP rows (005: 7 + 7), once each
    assert run_sql(fresh_dsn, "SELECT count(*) FROM pattern_definitions") == [(11,)]
    assert run_sql(fresh_dsn, "SELECT count(*) FROM indicator_definitions") == [(9,)]
    tables = {r[0] for r in run_sql(fresh_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert "cache_entries" not in tables and "symbols" not in tables


def test_concurrent_migrations_apply_each_version_once(fresh_dsn: str) -> None:
    barrier = threading.Barrier(4)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(migrate(fresh_dsn))
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(results, key=len) == [[], [], [], ALL_VERSIONS]
    assert run_sql(fresh_dsn, "SELECT count(*) FROM schema_migrations") == [(len(ALL_VERSIONS),)]
    assert run_sql(fresh_dsn, "SELECT count(*) FROM pattern_definitions") == [(11,)]


def test_seed_values(migrated_dsn: str) -> None:
    patterns = run_sql(migrated_dsn, """
        SELECT name, min_bars_required, applicable_timeframes, enabled, instantiation_params
        FROM pattern_definitions WHERE enabled ORDER BY display_order""")
    assert patterns == [
        ("Doji", 1, ["intraday"], True, {}),
        ("Hammer", 2, ["intraday"], True, {}),
        ("HeadShoulders", 20, ["intraday"], True, {}),
        ("InverseHeadShoulders", 20, ["intraday"], True, {}),
    ]
    indicators = run_sql(migrated_dsn, """
        SELECT name, period, min_bars_required, applicable_timeframes, enabled
        FROM indicator_definitions WHERE enabled ORDER BY display_order""")
    assert indicators == [("RSI", 14, 15, ["intraday"], True), ("SMA", 20, 20, ["intraday"], True)]


def test_seed_never_overwrites_an_edited_row(fresh_dsn: str) -> None:
    migrate(fresh_dsn)
    run_sql(fresh_dsn, "UPDATE pattern_definitions SET enabled = false, min_bars_required = 7, "
                       "display_name = 'Operator Doji' WHERE name = 'Doji'")
    run_sql(fresh_dsn, "UPDATE indicator_definitions SET period = 21 WHERE name = 'RSI'")
    before = run_sql(fresh_dsn, "SELECT * FROM pattern_definitions ORDER BY id")

    assert migrate(fresh_dsn) == []
    # Re-running the seed itself (as a future re-seed would) must not touch the edits either.
    seed = next(m for m in available_migrations() if "seed" in m.version)
    run_sql(fresh_dsn, seed.sql)

    assert run_sql(fresh_dsn, "SELECT * FROM pattern_definitions ORDER BY id") == before
    assert run_sql(fresh_dsn, "SELECT enabled, min_bars_required, display_name FROM pattern_definitions "
                              "WHERE name = 'Doji'") == [(False, 7, "Operator Doji")]
    assert run_sql(fresh_dsn, "SELECT period FROM indicator_definitions WHERE name = 'RSI'") == [(21,)]


def test_migrate_on_an_existing_dashboard_database(fresh_dsn: str) -> None:
    """Existing tables (with extra columns, a symbols FK, a lower-case disabled 'doji') survive."""
    run_sql(fresh_dsn, """
        CREATE TABLE symbols (symbol VARCHAR(20) PRIMARY KEY);
        CREATE TABLE ohlcv_1min (
            symbol VARCHAR(20) NOT NULL REFERENCES symbols(symbol), timestamp TIMESTAMPTZ NOT NULL,
            open NUMERIC NOT NULL, high NUMERIC NOT NULL, low NUMERIC NOT NULL,
            close NUMERIC NOT NULL, volume BIGINT NOT NULL, PRIMARY KEY (symbol, timestamp));
        CREATE TABLE pattern_definitions (
            id SERIAL PRIMARY KEY, name VARCHAR(100) UNIQUE NOT NULL, display_name TEXT,
            short_description VARCHAR(255), code_reference VARCHAR(255), category VARCHAR(50),
            enabled BOOLEAN NOT NULL DEFAULT true, display_order INT,
            applicable_timeframes VARCHAR(20)[], min_bars_required INT,
            confidence_threshold NUMERIC(3,2), instantiation_params JSONB,
            created_date TIMESTAMPTZ DEFAULT now());
        INSERT INTO pattern_definitions (name, enabled, code_reference, applicable_timeframes)
        VALUES ('doji', false, 'patterns.candlestick.Doji', '{daily}');
    """)
    assert migrate(fresh_dsn) == ALL_VERSIONS

    rows = run_sql(fresh_dsn, "SELECT name, enabled, code_reference FROM pattern_definitions ORDER BY id")
    assert rows[0] == ("doji", False, "patterns.candlestick.Doji")
    assert [r[0] for r in rows][:4] == ["doji", "Hammer", "HeadShoulders", "InverseHeadShoulders"]
    assert [r[1] for r in rows[4:]] == [False] * 7  # 005's TA-Lib patterns, disabled
    assert "created_date" in columns(fresh_dsn, "pattern_definitions")
    fks = run_sql(fresh_dsn, "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f'")
    assert fks == [("ohlcv_1min",)]
