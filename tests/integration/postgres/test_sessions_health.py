"""Session rows (start, re-announce, finish) and health rows."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import psycopg2
import pytest

from tickstock.adapters.postgres import PostgresStore
from tickstock.messages.records import HealthRecord, SessionRecord

pytestmark = pytest.mark.integration

OPEN = 1_728_307_800.0  # 2024-10-07 13:30:00 UTC
CLOSE = OPEN + 23_400


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


SESSION_COLUMNS = ("SELECT session_id::text, universe, started_at, stopped_at, symbol_count, "
                   "total_patterns, total_indicators, final_status FROM streaming_sessions")


def test_start_then_finish(store: PostgresStore, sql) -> None:
    sid = str(uuid.uuid4())
    started = SessionRecord(sid, "market_leaders:top_500", OPEN, 500)
    store.start_session(started)
    assert sql(SESSION_COLUMNS) == [(sid, "market_leaders:top_500", utc(OPEN), None, 500, 0, 0, None)]

    store.start_session(started)  # re-announcing is harmless
    store.finish_session(SessionRecord(sid, "market_leaders:top_500", OPEN, 500, stopped_at=CLOSE,
                                       total_patterns=1250, total_indicators=45000,
                                       final_status="completed"))
    assert sql(SESSION_COLUMNS) == [
        (sid, "market_leaders:top_500", utc(OPEN), utc(CLOSE), 500, 1250, 45000, "completed")
    ]

    # A late re-announcement after the end must not erase the stop fields.
    store.start_session(started)
    assert sql(SESSION_COLUMNS)[0][3:] == (utc(CLOSE), 500, 1250, 45000, "completed")


def test_finish_without_a_recorded_start_still_records_the_session(store: PostgresStore, sql) -> None:
    sid = str(uuid.uuid4())
    store.finish_session(SessionRecord(sid, "test:tiny", OPEN, 3, stopped_at=OPEN + 60,
                                       total_patterns=2, total_indicators=9, final_status="failed"))
    assert sql(SESSION_COLUMNS) == [(sid, "test:tiny", utc(OPEN), utc(OPEN + 60), 3, 2, 9, "failed")]


def test_malformed_session_id_raises_and_store_stays_usable(store: PostgresStore, sql) -> None:
    with pytest.raises(psycopg2.DataError):
        store.start_session(SessionRecord("not-a-uuid", "u:v", OPEN, 1))
    store.ping()
    assert sql("SELECT count(*) FROM streaming_sessions") == [(0,)]


def test_health_row(store: PostgresStore, sql) -> None:
    sid = str(uuid.uuid4())
    payload = {"status": "healthy", "data_flow": {"ticks_per_second": 18.2}, "issues": []}
    store.insert_health(HealthRecord(sid, OPEN + 10, "healthy", 60, 18.2, 60.0, 12.5, 5, 150, payload))
    store.insert_health(HealthRecord(sid, OPEN + 20, "warning", 58, 0.0, 0.0, None, 5, 150))
    rows = sql("""SELECT session_id::text, recorded_at, status, active_symbols, ticks_per_second,
                         bars_per_minute, processing_lag_ms, patterns_detected,
                         indicators_calculated, payload
                  FROM streaming_health_metrics ORDER BY id""")
    assert rows == [
        (sid, utc(OPEN + 10), "healthy", 60, 18.2, 60.0, 12.5, 5, 150, payload),
        (sid, utc(OPEN + 20), "warning", 58, 0.0, 0.0, None, 5, 150, {}),
    ]
