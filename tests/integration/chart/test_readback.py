"""adapters/postgres/readback.py against a real database written by the service's own store."""

from __future__ import annotations

from msgspec.structs import replace

import psycopg2
import psycopg2.errors
import pytest

from tests.integration.postgres.helpers import run_sql
from tests.unit.chart.synthetic import SESSION, START, bars, indicators, pattern
from tickstock.adapters.postgres.readback import ReadbackQueries
from tickstock.messages.records import SessionRecord

pytestmark = pytest.mark.integration
OTHER = "1d2e3f40-0000-4000-8000-000000000000"


def test_the_connection_is_read_only(database):
    with ReadbackQueries(database) as db, db.cursor() as cur:
        cur.execute("SHOW transaction_read_only")
        assert cur.fetchone() == ("on",)
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cur.execute("INSERT INTO ohlcv_1min VALUES ('AAPL', now(), 1, 1, 1, 1, 1)")
    assert run_sql(database, "SELECT count(*) FROM ohlcv_1min") == [(0,)]


def test_bars_in_a_half_open_range(store, database):
    series = bars(n=10)
    store.upsert_bars(series + bars("MSFT", n=3))
    with ReadbackQueries(database) as db:
        got = db.bars("AAPL", START + 120, START + 300)
        assert [b.start for b in got] == [START + 120, START + 180, START + 240]
        assert (got[0].open, got[0].high, got[0].low, got[0].close, got[0].volume) == (
            series[2].open, series[2].high, series[2].low, series[2].close, series[2].volume)
        assert len(db.bars("AAPL")) == 10 and db.bars("TSLA") == []
        assert db.latest_bar_start("AAPL") == START + 540 and db.latest_bar_start("TSLA") is None


def test_detections_by_session_and_by_their_bar_time(store, database):
    series = bars(n=10)
    late = replace(pattern(series[2], "Hammer", session_id=OTHER), detection_timestamp=START + 86_400 * 30)
    store.insert_patterns([pattern(series[1], "Doji"), pattern(series[5], "Doji"), late,
                           pattern(bars("MSFT", n=3)[1], "Doji")])
    with ReadbackQueries(database) as db:
        assert [(p.pattern_type, p.pattern_data["bar_timestamp"]) for p in db.detections("AAPL", session_id=SESSION)] == [
            ("Doji", "2025-10-07T13:31:00.000Z"), ("Doji", "2025-10-07T13:35:00.000Z")]
        # By the bar it was found on, not when: a detection made a month later (a replay) is found.
        in_range = db.detections("AAPL", START + 60, START + 300)
        assert sorted(p.pattern_type for p in in_range) == ["Doji", "Hammer"]
        assert db.detections("AAPL", START + 360, START + 600) == []
        only = db.detections("AAPL", START, START + 600, session_id=OTHER)
        assert [(p.pattern_type, p.metadata["session_id"], p.confidence) for p in only] == [("Hammer", OTHER, 0.85)]


def test_a_malformed_bar_timestamp_never_fails_the_query(store, database):
    series = bars(n=3)
    store.insert_patterns([pattern(series[1], "Doji"), replace(pattern(series[2], "Hammer"), pattern_data={
        "bar_timestamp": "2025-13-45T99:00:00Z"}), replace(pattern(series[0], "Hammer"), pattern_data={})])
    with ReadbackQueries(database) as db:
        assert [p.pattern_type for p in db.detections("AAPL", START, START + 3600)] == ["Doji"]
        assert len(db.detections("AAPL", session_id=SESSION)) == 3  # no time filter: the caller decides


def test_indicator_values_by_session_and_range(store, database):
    series = bars(n=30)
    store.insert_indicators(indicators(series) + indicators(bars(n=30, start=START + 86_400), OTHER))
    with ReadbackQueries(database) as db:
        mine = db.indicator_values("AAPL", session_id=SESSION)
        assert len(mine) == 11 + 16
        assert {r.indicator_type for r in mine} == {"SMA", "RSI"} and all(r.metadata["session_id"] == SESSION for r in mine)
        day = db.indicator_values("AAPL", START, START + 3600)
        assert len(day) == 27 and all(isinstance(r.value, float) for r in day)


def test_session_row(store, database):
    store.start_session(SessionRecord(SESSION, "test:tiny", START + 5.5, 3))
    with ReadbackQueries(database) as db:
        row = db.session(SESSION)
        assert (row.session_id, row.universe, row.started_at, row.stopped_at) == (SESSION, "test:tiny", START + 5.5, None)
        assert db.session(OTHER) is None
