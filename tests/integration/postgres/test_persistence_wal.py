"""The persistence actor's write-ahead log against the real PostgreSQL: rows told while the database
is unreachable, or left behind by a process that died without stopping (dropped, or killed -9), are
written by the next actor exactly once; a table that cannot be written is set aside while the others
are written, and written once it can be."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import pytest

from tests.integration.postgres.helpers import run_sql
from tickstock.actors.persistence import PersistenceActor
from tickstock.adapters.postgres import PostgresStore
from tickstock.adapters.postgres.errors import ErrorKind, classify, connection_lost
from tickstock.messages.bars import Bar
from tickstock.messages.commands import Drain, Open, PersistBars, PersistResults, RecordHealth, RecordSession, TimerTick
from tickstock.messages.records import (
    HealthRecord, IndicatorRecord, PatternRecord, SessionRecord, indicator_row_id, pattern_row_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

UNREACHABLE = "postgresql://root@127.0.0.1:1/x"  # nothing listens on port 1: refused at once
T0 = 1_728_309_600  # 2024-10-07 14:00:00 UTC, a minute start
SYMBOLS = ("AAPL", "MSFT")
REPO = Path(__file__).resolve().parents[3]


def told(sid: str) -> list:
    """A session's worth of messages: start, 3 minutes x 2 symbols of bars with a pattern and an
    indicator each, a health row, the end."""
    messages: list = [RecordSession(SessionRecord(sid, "test:wal", T0, len(SYMBOLS)))]
    for minute in range(3):
        start = T0 + 60 * minute
        bars = tuple(
            Bar(symbol, start, 10.0 + minute, 11.0 + minute, 9.0, 10.5 + minute, 1000 * (minute + 1) + i, 5,
                session_id=sid, first_tick_at=start + 1.0, last_tick_at=start + 59.0)
            for i, symbol in enumerate(SYMBOLS)
        )
        messages.append(PersistBars(bars))
        patterns = tuple(
            PatternRecord(s, "Doji", 0.8, start + 60.5, {"bar": start}, start + 3660.0, (10.0,), {},
                          row_id=pattern_row_id(sid, s, "Doji", start)) for s in SYMBOLS)
        indicators = tuple(
            IndicatorRecord(s, "RSI", 50.0 + minute, start + 60.5, {"value": 50.0 + minute}, start + 3660.0,
                            row_id=indicator_row_id(sid, s, "RSI", start)) for s in SYMBOLS)
        messages.append(PersistResults(patterns, indicators))
    messages.append(RecordHealth(HealthRecord(sid, T0 + 90.0, "healthy", 2, 1.5, 2.0, 3.0, 6, 6)))
    messages.append(RecordSession(SessionRecord(sid, "test:wal", T0, 2, T0 + 200.0, 6, 6, "stopped")))
    return messages


ROWS_TOLD = 2 + 6 + 6 + 6 + 1  # session start and end, bars, patterns, indicators, health


def expected(sid: str) -> dict:
    return {
        "bars": [(s, T0 + 60 * m, 1000 * (m + 1) + i) for i, s in enumerate(SYMBOLS) for m in range(3)],
        "parts": 6,
        "patterns": [("AAPL", 3), ("MSFT", 3)],
        "indicators": [("AAPL", 3), ("MSFT", 3)],
        "health": 1,
        "sessions": [(sid, "stopped", 6)],
    }


def stored(dsn: str) -> dict:
    conn = psycopg2.connect(dsn, options="-c statement_timeout=10000")  # never hang on a lock

    def q(statement: str) -> list:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall()
    try:
        return _stored(q)
    finally:
        conn.close()


def _stored(q) -> dict:
    return {
        "bars": [(s, int(t), v) for s, t, v in q(
            "SELECT symbol, extract(epoch FROM timestamp), volume FROM ohlcv_1min ORDER BY symbol, timestamp")],
        "parts": q("SELECT count(*) FROM ohlcv_1min_parts")[0][0],
        "patterns": q("SELECT symbol, count(*) FROM intraday_patterns GROUP BY symbol ORDER BY symbol"),
        "indicators": q("SELECT symbol, count(*) FROM intraday_indicators GROUP BY symbol ORDER BY symbol"),
        "health": q("SELECT count(*) FROM streaming_health_metrics")[0][0],
        "sessions": q("SELECT session_id::text, final_status, total_patterns FROM streaming_sessions"),
    }


def start(dsn: str, spill: Path, sid: str, **kwargs):
    ref = PersistenceActor.start(
        None, sid, lambda: PostgresStore(dsn, connect_timeout=1, lock_timeout_seconds=0.2), spill_dir=spill,
        **kwargs)
    ref.tell(Open(1))
    return ref


def run_to_completion(dsn: str, spill: Path, sid: str):
    """A new actor on ``spill`` writing into ``dsn``: drained, stopped; its final stats."""
    ref = start(dsn, spill, sid)
    try:
        return ref.ask(Drain(timeout=20), timeout=30)
    finally:
        ref.stop()


def log_files(spill: Path) -> list[str]:
    return sorted(p.name for p in spill.iterdir() if p.name != ".lock") if spill.exists() else []


def test_rows_told_while_the_database_is_unreachable_are_written_once_by_the_next_actor(dsn, tmp_path):
    spill, sid = tmp_path / "spill", str(uuid.uuid4())
    first = start(UNREACHABLE, spill, sid)
    for message in told(sid):
        first.tell(message)
    s = first.ask(Drain(timeout=0.5), timeout=10)
    first.stop()
    assert s.backlog == ROWS_TOLD and s.db_connected is False and s.rows_written == 0
    assert log_files(spill)
    backup = tmp_path / "backup"
    shutil.copytree(spill, backup)

    s = run_to_completion(dsn, spill, sid)
    assert s.backlog == 0 and s.rows_written == ROWS_TOLD and s.rows_rejected == 0
    assert stored(dsn) == expected(sid)
    assert log_files(spill) == []  # every row committed: nothing left to replay

    # The same log replayed again (a crash after the commits, before the files were deleted)
    # writes nothing twice: bar volumes are not added again, no row appears twice.
    shutil.rmtree(spill)
    shutil.copytree(backup, spill)
    run_to_completion(dsn, spill, sid)
    assert stored(dsn) == expected(sid)
    assert log_files(spill) == []


def test_an_actor_dropped_without_stopping_leaves_everything_to_the_next(dsn, tmp_path):
    """Part of the rows were committed (bars, indicators), the rest held back by a table lock, when
    the actor's process state vanished (no on_stop). The next actor replays the whole log: what was
    committed is not counted twice, what was not is written."""
    spill, sid = tmp_path / "spill", str(uuid.uuid4())
    locker = psycopg2.connect(dsn)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE intraday_patterns, streaming_health_metrics IN ACCESS EXCLUSIVE MODE")
        first = PersistenceActor(None, sid, lambda: PostgresStore(dsn, lock_timeout_seconds=0.2), spill_dir=spill,
                                 flush_interval=3600.0, fsync_interval=0.0, retry_interval=0.1)
        first.open()
        first._ticker.stop()  # this test drives the actor by hand
        for message in told(sid):
            first.on_receive(message)
        s = first.on_receive(Drain(timeout=1.0))
        first.on_receive(TimerTick(time.time()))  # the periodic fsync
        assert s.bars_written == 6 and s.patterns_written == 0 and s.backlog == 7
    finally:
        locker.rollback()
        locker.close()
    # (Read only now: the locked tables block readers too.)
    assert stored(dsn)["parts"] == 6 and stored(dsn)["patterns"] == [] and stored(dsn)["health"] == 0
    first._store.close()  # its connection dies with its process
    del first  # no on_stop: the process state is simply gone

    s = run_to_completion(dsn, spill, sid)
    assert s.backlog == 0
    assert stored(dsn) == expected(sid)
    assert log_files(spill) == []


_CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.integration.postgres.test_persistence_wal import told, start, UNREACHABLE
from tickstock.messages.commands import GetStats
from pathlib import Path
ref = start(UNREACHABLE, Path({spill!r}), {sid!r}, fsync_interval=0.05)
for message in told({sid!r}):
    ref.tell(message)
stats = ref.ask(GetStats(), timeout=10)   # every message handled: every row appended to the log
time.sleep(0.5)                            # and a periodic fsync has run
print("ready", stats.backlog, flush=True)
time.sleep(120)
"""


def test_a_process_killed_with_kill_9_loses_no_row(dsn, tmp_path):
    spill, sid = tmp_path / "spill", str(uuid.uuid4())
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(repo=str(REPO), spill=str(spill), sid=sid)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        readable, _, _ = select.select([child.stdout], [], [], 60)
        assert readable, "the child never said it was ready"
        line = child.stdout.readline()
        assert line.split() == ["ready", str(ROWS_TOLD)]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    s = run_to_completion(dsn, spill, sid)
    assert s.backlog == 0 and s.rows_written == ROWS_TOLD
    assert stored(dsn) == expected(sid)
    assert log_files(spill) == []


def test_a_table_that_cannot_be_written_is_set_aside_and_written_once_it_can(dsn, tmp_path):
    spill, sid = tmp_path / "spill", str(uuid.uuid4())
    run_sql(dsn, "ALTER TABLE intraday_patterns RENAME COLUMN timeframe TO timeframe_gone")
    try:
        ref = start(dsn, spill, sid, table_retry_seconds=0.5, flush_interval=0.05)
        for message in told(sid):
            ref.tell(message)
        s = ref.ask(Drain(timeout=5), timeout=10)
        assert [t.table for t in s.isolated] == ["intraday_patterns"]
        assert s.isolated[0].error.startswith("42703 UndefinedColumn") and s.isolated[0].rows_waiting == 6
        assert s.backlog == 6 and s.bars_written == 6 and s.indicators_written == 6
        assert stored(dsn)["patterns"] == []
    finally:
        run_sql(dsn, "ALTER TABLE intraday_patterns RENAME COLUMN timeframe_gone TO timeframe")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and stored(dsn)["patterns"] == []:
        time.sleep(0.1)  # the timer retries the table every 0.5 s
    s = ref.ask(Drain(timeout=5), timeout=10)
    ref.stop()
    assert s.isolated == () and s.backlog == 0
    assert stored(dsn) == expected(sid)
    assert log_files(spill) == []


def test_real_server_errors_are_classified_by_their_sqlstate(dsn):
    conn = psycopg2.connect(dsn)
    locker = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error) as missing:
                cur.execute("SELECT no_such_column FROM ohlcv_1min")
            conn.rollback()
            with locker.cursor() as lock:
                lock.execute("LOCK TABLE ohlcv_1min IN ACCESS EXCLUSIVE MODE")
            cur.execute("SET lock_timeout = '100ms'")
            with pytest.raises(psycopg2.Error) as locked:
                cur.execute("SELECT count(*) FROM ohlcv_1min")
            conn.rollback()
            locker.rollback()
            cur.execute("SET statement_timeout = '100ms'")
            with pytest.raises(psycopg2.Error) as slow:
                cur.execute("SELECT pg_sleep(2)")
            conn.rollback()
    finally:
        conn.close()
        locker.close()
    assert missing.value.pgcode == "42703" and classify(missing.value) is ErrorKind.TABLE
    assert locked.value.pgcode == "55P03" and classify(locked.value) is ErrorKind.TRANSIENT
    assert slow.value.pgcode == "57014" and classify(slow.value) is ErrorKind.TRANSIENT
    assert not connection_lost(locked.value) and not connection_lost(slow.value)
    with pytest.raises(psycopg2.Error) as refused:
        psycopg2.connect(UNREACHABLE, connect_timeout=1)
    assert classify(refused.value) is ErrorKind.TRANSIENT and connection_lost(refused.value)
