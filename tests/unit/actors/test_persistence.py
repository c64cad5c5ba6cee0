"""PersistenceActor: write-ahead log, batching, errors by kind (transient, row, table), outage
buffering and retry, write order, reports, Drain and stop; fake store, fake wall clock, real files.

Every actor here logs to a write-ahead log in the test's own directory (``spill``), as in production.
"""

from __future__ import annotations

import time
from collections import Counter

import psycopg2
import psycopg2.errors as pe
import pykka
import pytest
from loguru import logger

import tickstock.actors.persistence as persistence_module
from tickstock.actors.persistence import PersistenceActor, PersistenceStats
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    ChildReport, Drain, GetStats, Open, PersistBars, PersistEvents, PersistResults, RecordHealth, RecordSession,
    TimerTick,
)
from tickstock.messages.events import IndicatorCalculated, PatternDetected
from tickstock.messages.records import (
    HealthRecord, IndicatorRecord, PatternRecord, SessionRecord, indicator_row_id, pattern_row_id,
)
from tickstock.messages.spill import decode_rows, encode_rows

from .fakes import M, FakeClock, FakeStore, Recorder

pytestmark = pytest.mark.timeout(10)

T0 = 1_760_000_000.0
QUIET = persistence_module._QUIET_SECONDS * 1.5  # a timer tick this long after the last rows writes them


class _TimeModule:
    """``time`` as the actor's module sees it: a fake ``time()``, everything else real."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock()

    def __getattr__(self, name: str):
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch):
    """The wall clock the actor reads (``time.time`` in its module); monotonic/sleep stay real."""
    fake = FakeClock(T0)
    monkeypatch.setattr(persistence_module, "time", _TimeModule(fake))
    return fake


def bars(n: int, start_index: int = 0, symbol: str = "AAPL") -> tuple[Bar, ...]:
    return tuple(Bar(symbol, M + 60 * i, 1.0 + i, 2.0 + i, 0.5, 1.5, 100 + i, 3)
                 for i in range(start_index, start_index + n))


def pattern(i=0) -> PatternRecord:
    return PatternRecord("AAPL", "Doji", 0.9, T0 + i, {"bar_timestamp": "x"}, T0 + 3600)


def indicator(i=0) -> IndicatorRecord:
    return IndicatorRecord("AAPL", "RSI", 55.0 + i, T0 + i, {"value": 55.0 + i}, T0 + 3600)


def session_record(final_status=None) -> SessionRecord:
    if final_status is None:
        return SessionRecord("sid", "u", T0, 3)
    return SessionRecord("sid", "u", T0, 3, T0 + 100, 7, 11, final_status)


@pytest.fixture(autouse=True)
def spill(tmp_path):
    """The write-ahead log directory of this test's actors (unless a test passes its own)."""
    global _SPILL
    _SPILL = tmp_path / "spill"
    yield _SPILL
    _SPILL = None


_SPILL = None


def opened(store: FakeStore, supervisor=None, **kwargs) -> PersistenceActor:
    kwargs.setdefault("flush_interval", 3600.0)
    kwargs.setdefault("spill_dir", _SPILL)
    actor = PersistenceActor(supervisor, "sid", lambda: store, **kwargs)
    actor.open()
    actor._ticker.stop()  # the test drives TimerTick itself
    return actor


def stats(actor: PersistenceActor):
    return actor.on_receive(GetStats())


def test_open_pings_and_reports_connected(clock):
    store = FakeStore()
    actor = opened(store)
    s = stats(actor)
    assert s.db_connected is True and s.failing_since is None and s.backlog == 0


def test_open_with_the_database_down_starts_anyway_and_buffers(clock):
    store = FakeStore()
    store.down = True
    actor = opened(store, batch_size=2)
    s = stats(actor)
    assert s.db_connected is False and s.failing_since == T0 and "OperationalError" in s.last_error
    actor.on_receive(PersistBars(bars(2)))
    assert stats(actor).backlog == 2 and store.calls == []


def test_bars_are_buffered_and_written_in_batches_of_batch_size(clock):
    store = FakeStore()
    actor = opened(store, batch_size=3)
    actor.on_receive(PersistBars(bars(2)))
    actor.on_receive(PersistBars(bars(8, 2)))
    assert store.calls == []  # written on the timer, not per message
    assert stats(actor).backlog == 10
    clock.advance(QUIET)
    actor.on_receive(TimerTick(clock()))
    assert [(name, len(rows)) for name, rows in store.calls] == [("upsert_bars", 3)] * 3 + [("upsert_bars", 1)]
    assert store.rows("upsert_bars") == list(bars(10))  # in the order told
    s = stats(actor)
    assert s.backlog == 0 and s.bars_written == 10 and s.db_connected is True


def test_a_large_backlog_is_written_without_waiting_for_the_timer(clock):
    store = FakeStore()
    actor = opened(store, batch_size=3)
    actor.on_receive(PersistBars(bars(30)))  # ten batches at once
    assert store.rows("upsert_bars") == list(bars(30))
    assert max(len(rows) for _, rows in store.calls) == 3
    assert stats(actor).backlog == 0


def test_timer_flushes_a_partial_batch(clock):
    store = FakeStore()
    actor = opened(store, batch_size=500)
    actor.on_receive(PersistResults((pattern(),), (indicator(), indicator(1))))
    assert store.calls == []
    clock.advance(QUIET)
    actor.on_receive(TimerTick(clock()))
    assert store.methods() == ["insert_patterns", "insert_indicators"]
    s = stats(actor)
    assert s.patterns_written == 1 and s.indicators_written == 2 and s.backlog == 0


def test_published_events_become_rows_here_logged_first_with_their_ttls_and_row_ids(clock):
    store = FakeStore()
    actor = opened(store, pattern_ttl=1800.0, indicator_ttl=900.0)
    b = bars(1)[0]
    doji = PatternDetected("AAPL", "Doji", 0.8, T0, b, "sid", {"body": 0.01}, (1.0,), T0 - 0.5, "5min")
    rsi = IndicatorCalculated("AAPL", "RSI", 61.0, {"value": 61.0}, T0, b, "sid", {"period": 14}, T0 - 0.5)
    actor.on_receive(PersistEvents((doji, rsi)))
    logged = segment_rows(_SPILL)  # in the write-ahead log before any database call
    assert [type(r) for r in logged] == [PatternRecord, IndicatorRecord] and store.calls == []
    clock.advance(QUIET)
    actor.on_receive(TimerTick(clock()))
    [(_, [p])], [(_, [i])] = ([c for c in store.calls if c[0] == "insert_patterns"],
                               [c for c in store.calls if c[0] == "insert_indicators"])
    assert (p.pattern_type, p.confidence, p.timeframe, p.levels) == ("Doji", 0.8, "5min", (1.0,))
    assert p.expiration_timestamp == T0 + 1800.0 and p.pattern_data["body"] == 0.01
    assert p.row_id == pattern_row_id("sid", "AAPL", "Doji", b.start, "5min")
    assert (i.indicator_type, i.value, i.value_data, i.timeframe) == ("RSI", 61.0, {"value": 61.0}, "1min")
    assert i.expiration_timestamp == T0 + 900.0 and i.metadata["period"] == 14
    assert i.row_id == indicator_row_id("sid", "AAPL", "RSI", b.start, "1min")
    assert logged == [p, i]


def test_outage_keeps_the_rows_and_a_later_timer_tick_writes_them_in_order(clock):
    store = FakeStore()
    actor = opened(store, batch_size=3, retry_interval=5.0)
    store.down = True
    clock.set(T0 + 10)
    actor.on_receive(PersistBars(bars(3)))
    clock.set(T0 + 10 + QUIET)
    actor.on_receive(TimerTick(clock()))  # the write fails
    s = stats(actor)
    assert s.backlog == 3 and s.bars_written == 0
    assert s.db_connected is False and s.failing_since == T0 + 10 + QUIET
    assert "OperationalError" in s.last_error
    assert store.calls == []

    clock.set(T0 + 11)
    actor.on_receive(PersistBars(bars(2, 3)))  # more rows during the outage: kept behind the others
    actor.on_receive(TimerTick(T0 + 11))       # inside retry_interval: no attempt at all
    store.down = False
    actor.on_receive(TimerTick(T0 + 12))
    assert store.calls == [] and stats(actor).backlog == 5
    assert stats(actor).failing_since == T0 + 10 + QUIET  # the outage's start, not the last failure

    clock.set(T0 + 15.5)  # retry_interval after the failure
    actor.on_receive(TimerTick(T0 + 15.5))
    assert store.rows("upsert_bars") == list(bars(5))  # nothing lost, order kept
    s = stats(actor)
    assert s.backlog == 0 and s.bars_written == 5
    assert s.db_connected is True and s.failing_since is None


def test_outage_in_the_middle_of_a_flush_loses_nothing(clock):
    store = FakeStore()
    actor = opened(store, batch_size=2, retry_interval=1.0)
    original = store.upsert_bars
    calls = {"n": 0}

    def flaky(rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise psycopg2.InterfaceError("connection already closed")
        return original(rows)
    store.upsert_bars = flaky
    actor.on_receive(PersistBars(bars(5)))
    clock.advance(QUIET)
    actor.on_receive(TimerTick(clock()))  # batch 1 written, batch 2 fails
    assert store.rows("upsert_bars") == list(bars(2))
    assert stats(actor).backlog == 3
    clock.advance(2)
    actor.on_receive(TimerTick(clock()))
    assert store.rows("upsert_bars") == list(bars(5))
    assert stats(actor).bars_written == 5


def test_rejected_rows_are_counted_and_the_rest_written(clock):
    store = FakeStore()
    store.refuse = lambda row: getattr(row, "symbol", "") == "ZZZZ"
    actor = opened(store, batch_size=10)
    actor.on_receive(PersistBars(bars(2) + bars(1, symbol="ZZZZ") + bars(1, 5)))
    clock.advance(QUIET)
    actor.on_receive(TimerTick(clock()))
    s = stats(actor)
    assert s.rows_rejected == 1
    assert s.bars_written == 3
    assert s.backlog == 0 and s.db_connected is True


def test_session_rows_are_written_before_results(clock):
    store = FakeStore()
    actor = opened(store, batch_size=100)
    actor.on_receive(PersistResults((pattern(),), (indicator(),)))
    actor.on_receive(PersistBars(bars(1)))
    actor.on_receive(RecordSession(session_record()))  # told last, written first
    assert store.methods() == ["start_session", "upsert_bars", "insert_patterns", "insert_indicators"]
    actor.on_receive(RecordSession(session_record("stopped")))
    assert store.methods()[-1] == "finish_session"
    assert store.calls[-1][1].final_status == "stopped"


def test_session_start_and_end_kept_in_order_through_an_outage(clock):
    store = FakeStore()
    actor = opened(store, retry_interval=1.0)
    store.down = True
    actor.on_receive(RecordSession(session_record()))
    actor.on_receive(PersistResults((pattern(),), ()))
    actor.on_receive(RecordSession(session_record("failed")))
    assert store.calls == [] and stats(actor).backlog == 3
    store.down = False
    clock.advance(1.5)
    actor.on_receive(TimerTick(clock()))
    assert store.methods() == ["start_session", "finish_session", "insert_patterns"]


def test_a_refused_session_row_is_counted_and_does_not_block_the_rest(clock):
    store = FakeStore()
    store.session_error = psycopg2.IntegrityError("duplicate key")
    actor = opened(store)
    actor.on_receive(PersistBars(bars(1)))
    actor.on_receive(RecordSession(session_record()))
    s = stats(actor)
    assert s.rows_rejected == 1 and s.backlog == 0 and s.bars_written == 1


def test_health_rows_are_written_on_the_timer(clock):
    store = FakeStore()
    actor = opened(store)
    record = HealthRecord("sid", T0, "healthy", 3, 1.0, 3.0, 5.0, 0, 0)
    actor.on_receive(RecordHealth(record))
    assert store.calls == []
    clock.advance(QUIET)
    actor.on_receive(TimerTick(clock()))
    assert store.calls == [("insert_health", record)]


def test_drain_writes_everything_and_reports_backlog_zero(clock):
    store = FakeStore()
    actor = opened(store, batch_size=500)
    actor.on_receive(PersistBars(bars(3)))
    actor.on_receive(PersistResults((pattern(), pattern(1)), (indicator(),)))
    actor.on_receive(RecordHealth(HealthRecord("sid", T0, "healthy", 3, 1.0, 3.0, None, 0, 0)))
    result = actor.on_receive(Drain(timeout=2))
    assert result.backlog == 0
    assert (result.bars_written, result.patterns_written, result.indicators_written) == (3, 2, 1)
    assert store.methods() == ["upsert_bars", "insert_patterns", "insert_indicators", "insert_health"]


def test_drain_retries_through_a_short_outage_without_waiting_for_retry_at(clock):
    store = FakeStore()
    actor = opened(store, batch_size=2, retry_interval=3600.0)
    store.down = True
    actor.on_receive(PersistBars(bars(2)))  # fails: next retry an hour away
    store.down = False
    started = time.monotonic()
    result = actor.on_receive(Drain(timeout=2))
    assert time.monotonic() - started < 1.0
    assert result.backlog == 0 and store.rows("upsert_bars") == list(bars(2))


def test_drain_gives_up_at_its_timeout_and_keeps_the_rows(clock):
    store = FakeStore()
    store.down = True
    actor = opened(store, retry_interval=0.02)
    actor.on_receive(PersistBars(bars(4)))
    started = time.monotonic()
    result = actor.on_receive(Drain(timeout=0.15))
    assert time.monotonic() - started < 1.0
    assert result.backlog == 4 and result.db_connected is False and result.bars_written == 0


def test_rows_arriving_before_open_are_buffered_not_fatal(clock):
    store = FakeStore()
    actor = PersistenceActor(None, "sid", lambda: store, batch_size=3, flush_interval=3600.0, spill_dir=_SPILL)
    actor.on_receive(PersistBars(bars(30)))  # a big backlog replayed by ChildHandle.replace before Open
    actor.on_receive(RecordSession(session_record()))
    actor.open()
    actor._ticker.stop()
    clock.advance(QUIET)
    actor.on_receive(TimerTick(clock()))
    assert store.methods()[0] == "start_session"
    assert store.rows("upsert_bars") == list(bars(30))


def test_a_timer_tick_during_a_burst_waits_for_a_quiet_moment(clock):
    store = FakeStore()
    actor = opened(store, batch_size=500)
    actor.on_receive(PersistBars(bars(3)))
    actor.on_receive(TimerTick(clock()))  # rows arrived just now: the analysis burst goes first
    assert store.calls == [] and stats(actor).backlog == 3
    clock.advance(QUIET)
    actor.on_receive(TimerTick(clock()))
    assert store.rows("upsert_bars") == list(bars(3))


def test_rows_that_keep_arriving_are_still_written_within_the_maximum_delay(clock):
    store = FakeStore()
    actor = opened(store, batch_size=500)
    for i in range(25):  # a row every 50 ms: never quiet for 100 ms
        actor.on_receive(PersistBars(bars(1, i)))
        actor.on_receive(TimerTick(clock()))
        clock.advance(0.05)
    assert clock() - T0 >= persistence_module._MAX_DELAY_SECONDS
    assert len(store.rows("upsert_bars")) >= 20  # the overdue backlog went out regardless


# -- helpers for the write-ahead log and error tests ------------------------------------------------


class ScriptedStore(FakeStore):
    """A FakeStore whose methods raise ``errors[method]`` (a real psycopg2 error) while it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, BaseException] = {}
        self.attempts: Counter = Counter()
        self.delay = 0.0

    def _maybe_raise(self, method: str) -> None:
        self.attempts[method] += 1
        if self.delay:
            time.sleep(self.delay)
        error = self.errors.get(method)
        if error is not None:
            raise error

    def upsert_bars(self, rows):
        self._maybe_raise("upsert_bars")
        return super().upsert_bars(rows)

    def insert_patterns(self, rows):
        self._maybe_raise("insert_patterns")
        return super().insert_patterns(rows)

    def insert_indicators(self, rows):
        self._maybe_raise("insert_indicators")
        return super().insert_indicators(rows)

    def insert_health(self, record):
        self._maybe_raise("insert_health")
        return super().insert_health(record)

    def start_session(self, record):
        self._maybe_raise("start_session")
        return super().start_session(record)


@pytest.fixture
def logs():
    """Messages the actor logs at WARNING and above."""
    lines: list[str] = []
    handler = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING")
    yield lines
    logger.remove(handler)


def files(directory) -> list[str]:
    """What the log directory holds, but its lock file."""
    return sorted(p.name for p in directory.iterdir() if p.name != ".lock")


def segment_rows(directory) -> list:
    return [row for path in sorted(directory.glob("wal-*.jsonl")) for row in decode_rows(path)]


def health(i: int = 0) -> HealthRecord:
    return HealthRecord("sid", T0 + i, "healthy", 3, 1.0, 3.0, 5.0, 0, 0)


def tick(actor: PersistenceActor, clock: FakeClock, seconds: float = QUIET) -> None:
    clock.advance(seconds)
    actor.on_receive(TimerTick(clock()))


def table(stats_: PersistenceStats, name: str):
    [found] = [t for t in stats_.tables if t.table == name]
    return found


# -- the write-ahead log ------------------------------------------------------------------------------


def test_every_row_is_in_the_log_before_it_is_queued_for_the_database(clock, spill):
    store = FakeStore()
    store.down = True
    actor = opened(store)
    told = [session_record(), *bars(2), pattern(), indicator(), health()]
    actor.on_receive(RecordSession(told[0]))
    actor.on_receive(PersistBars(tuple(told[1:3])))
    actor.on_receive(PersistResults((told[3],), (told[4],)))
    actor.on_receive(RecordHealth(told[5]))
    # No tick, no stop, no write: the rows are on disk already, in the order told.
    assert segment_rows(spill) == told
    s = stats(actor)
    assert s.backlog == 6 and s.wal_pending == 6 and s.wal_segments == 1 and s.wal_bytes > 0


def test_rows_unwritten_at_stop_stay_in_the_log_and_the_next_actor_writes_them(clock, spill):
    store = FakeStore()
    actor = opened(store, batch_size=500)
    store.down = True
    actor.on_receive(RecordSession(session_record()))
    actor.on_receive(PersistBars(bars(3)))
    actor.on_receive(PersistResults((pattern(),), (indicator(),)))
    tick(actor, clock)
    assert stats(actor).backlog == 6
    actor.on_stop()  # shutdown with the database still down
    assert len(segment_rows(spill)) == 6 and store.closed

    later = FakeStore()
    successor = opened(later, batch_size=500)
    assert stats(successor).backlog == 6
    assert segment_rows(spill)  # re-queued, but not yet committed: the file stays
    tick(successor, clock)
    assert later.methods() == ["start_session", "upsert_bars", "insert_patterns", "insert_indicators"]
    assert later.rows("upsert_bars") == list(bars(3))
    assert later.rows("insert_patterns") == [pattern()] and later.rows("insert_indicators") == [indicator()]
    assert stats(successor).backlog == 0
    assert not list(spill.glob("wal-*.jsonl"))  # the earlier segment went once every row was committed
    successor.on_stop()
    assert files(spill) == []


def test_an_actor_that_dies_without_on_stop_loses_nothing(clock, spill):
    """A kill -9: the process state is gone, no on_stop ran; a new actor on the same log writes all."""
    store = FakeStore()
    store.down = True
    first = opened(store, batch_size=2)
    first.on_receive(RecordSession(session_record()))
    first.on_receive(PersistBars(bars(5)))
    first.on_receive(PersistResults((pattern(),), ()))
    tick(first, clock, 1.5)  # the periodic fsync ran; nothing else will
    del first

    later = FakeStore()
    second = opened(later, batch_size=2)
    tick(second, clock)
    assert later.methods()[0] == "start_session"
    assert later.rows("upsert_bars") == list(bars(5)) and later.rows("insert_patterns") == [pattern()]
    assert stats(second).backlog == 0
    second.on_stop()
    assert files(spill) == []


def test_a_segment_stays_until_its_rows_are_committed_then_goes_without_a_stop(clock, spill):
    store = FakeStore()
    actor = opened(store, wal_segment_age=0.0, retry_interval=1.0)  # every tick seals the segment
    store.down = True
    actor.on_receive(PersistBars(bars(2)))
    tick(actor, clock)  # write fails; the segment is sealed
    assert files(spill) == ["wal-000000000001.jsonl"]
    store.down = False
    tick(actor, clock, 1.5)
    assert store.rows("upsert_bars") == list(bars(2))
    assert files(spill) == []


def test_a_row_is_done_in_the_log_when_refused_too(clock, spill):
    store = FakeStore()
    store.refuse = lambda row: getattr(row, "symbol", "") == "ZZZZ"
    actor = opened(store, wal_segment_age=0.0)
    actor.on_receive(PersistBars(bars(1) + bars(1, symbol="ZZZZ")))
    tick(actor, clock)
    tick(actor, clock)
    s = stats(actor)
    assert s.rows_rejected == 1 and s.backlog == 0 and s.wal_pending == 0
    assert files(spill) == []


def test_a_spill_file_of_the_previous_version_is_replayed_and_kept_until_committed(clock, spill):
    spill.mkdir()
    legacy = spill / "spill-1760000000.000000-old.jsonl"
    legacy.write_bytes(encode_rows([session_record(), *bars(2)]))
    store = FakeStore()
    store.down = True
    actor = opened(store, retry_interval=1.0)
    assert stats(actor).backlog == 3
    tick(actor, clock)
    assert legacy.exists()  # the database is down: not committed, so not deleted
    store.down = False
    tick(actor, clock, 1.5)
    assert store.methods() == ["start_session", "upsert_bars"] and store.rows("upsert_bars") == list(bars(2))
    assert not legacy.exists()


def test_a_spill_file_with_an_unreadable_line_is_replayed_and_kept_as_damaged(clock, spill):
    spill.mkdir()
    (spill / "spill-1.000000-x.jsonl").write_bytes(encode_rows(bars(1)) + b"not json\n" + encode_rows(bars(1, 1)))
    store = FakeStore()
    actor = opened(store)
    assert stats(actor).backlog == 2
    tick(actor, clock)
    assert store.rows("upsert_bars") == list(bars(2))
    assert files(spill) == ["spill-1.000000-x.jsonl.damaged"]


def test_the_log_is_fsynced_every_fsync_interval_and_at_stop(clock, spill):
    store = FakeStore()
    actor = opened(store, fsync_interval=1.0)
    syncs = []
    wal = actor._wal
    real_sync = wal.sync
    wal.sync = lambda: (syncs.append(clock()), real_sync())
    actor.on_receive(PersistBars(bars(1)))
    tick(actor, clock, 0.5)
    assert syncs == []  # in batches, not per row
    tick(actor, clock, 0.6)
    assert syncs == [T0 + 1.1]
    actor.on_receive(PersistBars(bars(1, 1)))
    tick(actor, clock, 0.2)
    assert len(syncs) == 1
    closed = []
    real_close = wal.close
    wal.close = lambda: (closed.append(True), real_close())
    actor.on_stop()
    assert closed == [True]


def test_a_log_that_cannot_be_written_leaves_rows_in_memory_and_says_so(clock, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    store = FakeStore()
    actor = opened(store, spill_dir=blocker / "spill")
    actor.on_receive(PersistBars(bars(2)))
    s = stats(actor)
    assert s.wal_error and s.backlog == 2
    tick(actor, clock)
    assert store.rows("upsert_bars") == list(bars(2)) and stats(actor).backlog == 0


def test_memory_holds_at_most_the_cap_per_table_and_the_rest_is_read_back_from_the_log(clock, spill):
    store = FakeStore()
    store.down = True
    actor = opened(store, max_rows_in_memory=4, batch_size=3, retry_interval=1.0)
    for i in range(10):
        actor.on_receive(PersistBars(bars(1, i)))
    actor.on_receive(PersistResults((pattern(),), ()))
    s = stats(actor)
    assert s.backlog == 11 and s.rows_on_disk_only == 6
    bars_table = table(s, "ohlcv_1min")
    assert (bars_table.waiting, bars_table.in_memory) == (10, 4)
    store.down = False
    tick(actor, clock, 1.5)
    assert store.rows("upsert_bars") == list(bars(10))  # every row, in the order told
    assert store.rows("insert_patterns") == [pattern()]
    s = stats(actor)
    assert s.backlog == 0 and s.rows_on_disk_only == 0 and s.bars_written == 10


def test_a_replay_larger_than_the_cap_is_written_whole_and_in_order(clock, spill):
    store = FakeStore()
    store.down = True
    first = opened(store)
    for i in range(9):
        first.on_receive(PersistBars(bars(1, i)))
    first.on_stop()
    later = FakeStore()
    second = opened(later, max_rows_in_memory=2, batch_size=2)
    assert table(stats(second), "ohlcv_1min").in_memory == 2 and stats(second).backlog == 9
    tick(second, clock)
    assert later.rows("upsert_bars") == list(bars(9))


# -- errors by kind --------------------------------------------------------------------------------------


def test_a_permission_error_on_patterns_sets_that_table_aside_and_bars_go_on(clock, logs):
    store = ScriptedStore()
    store.errors["insert_patterns"] = pe.InsufficientPrivilege("permission denied for table intraday_patterns")
    actor = opened(store, table_retry_seconds=60.0)
    actor.on_receive(PersistResults((pattern(),), (indicator(),)))
    actor.on_receive(PersistBars(bars(2)))
    tick(actor, clock)
    assert store.rows("upsert_bars") == list(bars(2)) and store.rows("insert_indicators") == [indicator()]
    s = stats(actor)
    assert s.backlog == 1 and s.db_connected is True and s.failing_since is None
    [isolated] = s.isolated
    assert isolated.table == "intraday_patterns" and isolated.rows_waiting == 1
    assert isolated.error.startswith("42501 InsufficientPrivilege") and isolated.since == clock()
    assert isolated.retry_at == clock() + 60
    assert len([line for line in logs if "intraday_patterns" in line]) == 1

    # Meanwhile other tables are written on every tick; patterns are not retried before 60 s.
    actor.on_receive(PersistBars(bars(1, 2)))
    actor.on_receive(PersistResults((pattern(1),), ()))
    tick(actor, clock, 30)
    assert store.rows("upsert_bars") == list(bars(3)) and store.attempts["insert_patterns"] == 1
    tick(actor, clock, 30)  # retried: still refused; logged no more (same state)
    assert store.attempts["insert_patterns"] == 2
    assert len([line for line in logs if "intraday_patterns" in line]) == 1
    assert stats(actor).isolated[0].since == T0 + QUIET  # since the first failure

    del store.errors["insert_patterns"]  # someone ran the GRANT
    tick(actor, clock, 60)
    assert store.rows("insert_patterns") == [pattern(), pattern(1)]
    s = stats(actor)
    assert s.isolated == () and s.backlog == 0 and s.patterns_written == 2
    assert len([line for line in logs if "intraday_patterns" in line]) == 2  # "writable again"


@pytest.mark.parametrize("error", [
    pe.UndefinedColumn('column "timeframe" of relation "ohlcv_1min" does not exist'),
    pe.UndefinedTable('relation "ohlcv_1min" does not exist'),
    RuntimeError("an unexpected failure in the store"),
])
def test_a_table_error_on_bars_does_not_stop_any_other_table(clock, error):
    store = ScriptedStore()
    store.errors["upsert_bars"] = error
    actor = opened(store)
    actor.on_receive(PersistBars(bars(2)))
    actor.on_receive(PersistResults((pattern(),), (indicator(),)))
    actor.on_receive(RecordHealth(health()))
    actor.on_receive(RecordSession(session_record()))
    tick(actor, clock)
    assert store.methods() == ["start_session", "insert_patterns", "insert_indicators", "insert_health"]
    s = stats(actor)
    assert [t.table for t in s.isolated] == ["ohlcv_1min"] and s.backlog == 2
    assert table(s, "ohlcv_1min").error_kind == "table"


@pytest.mark.parametrize("error", [
    pe.LockNotAvailable("canceling statement due to lock timeout"),
    pe.QueryCanceled("canceling statement due to statement timeout"),
    pe.DeadlockDetected("deadlock detected"),
])
def test_a_lock_or_timeout_on_one_table_keeps_its_rows_and_retries_soon_while_others_go_on(clock, error):
    store = ScriptedStore()
    store.errors["upsert_bars"] = error
    actor = opened(store, retry_interval=2.0)
    actor.on_receive(PersistBars(bars(2)))
    actor.on_receive(PersistResults((pattern(),), ()))
    tick(actor, clock)
    failed_at = clock()
    assert store.rows("insert_patterns") == [pattern()] and store.rows("upsert_bars") == []
    s = stats(actor)
    assert s.failing_since == failed_at and s.db_connected is True and s.isolated == ()
    assert table(s, "ohlcv_1min").error_kind == "transient" and s.backlog == 2
    tick(actor, clock, 1.0)
    assert store.attempts["upsert_bars"] == 1  # within retry_interval
    del store.errors["upsert_bars"]
    tick(actor, clock, 1.5)
    assert store.rows("upsert_bars") == list(bars(2))
    s = stats(actor)
    assert s.failing_since is None and s.backlog == 0 and table(s, "ohlcv_1min").error_kind == ""


def test_a_lost_connection_holds_every_table_until_the_retry(clock):
    store = ScriptedStore()
    store.errors["upsert_bars"] = psycopg2.OperationalError("server closed the connection unexpectedly")
    actor = opened(store, retry_interval=2.0)
    actor.on_receive(PersistBars(bars(1)))
    actor.on_receive(PersistResults((pattern(),), ()))
    tick(actor, clock)
    assert store.attempts["insert_patterns"] == 0 and stats(actor).db_connected is False
    del store.errors["upsert_bars"]
    tick(actor, clock, 2.5)
    assert store.rows("upsert_bars") == list(bars(1)) and store.rows("insert_patterns") == [pattern()]
    assert stats(actor).db_connected is True and stats(actor).failing_since is None


def test_a_row_error_that_sinks_a_batch_is_found_by_sending_the_rows_singly(clock, logs):
    store = ScriptedStore()
    bad = bars(1, symbol="ZZZZ")[0]
    real = store.upsert_bars

    sunk = []

    def upsert(rows):
        if bad in rows:
            sunk.append(len(rows))
            raise pe.NumericValueOutOfRange("numeric field overflow")
        return real(rows)
    store.upsert_bars = upsert
    actor = opened(store, batch_size=10)
    actor.on_receive(PersistBars(bars(2) + (bad,) + bars(2, 2)))
    tick(actor, clock)
    assert store.rows("upsert_bars") == list(bars(4))
    s = stats(actor)
    assert s.rows_rejected == 1 and s.backlog == 0 and s.bars_written == 4
    assert table(s, "ohlcv_1min").refused == 1
    assert len([line for line in logs if "refused" in line]) == 1  # reported once
    tick(actor, clock)
    assert sunk == [5, 1]  # the batch, then the bad row alone; never again


def test_a_health_row_the_store_cannot_convert_is_refused_once(clock):
    store = ScriptedStore()
    store.errors["insert_health"] = ValueError("Out of range float values are not JSON compliant")
    actor = opened(store)
    actor.on_receive(RecordHealth(health()))
    tick(actor, clock)
    tick(actor, clock, 100)
    assert store.attempts["insert_health"] == 1
    s = stats(actor)
    assert s.rows_rejected == 1 and s.backlog == 0


def test_a_running_actor_survives_table_errors_and_answers(clock):
    store = ScriptedStore()
    store.errors["insert_patterns"] = pe.InsufficientPrivilege("permission denied for table intraday_patterns")
    store.errors["insert_indicators"] = pe.UndefinedColumn('column "timeframe" does not exist')
    ref = PersistenceActor.start(None, "sid", lambda: store, spill_dir=_SPILL, flush_interval=0.05)
    ref.tell(Open(1))
    ref.tell(PersistResults((pattern(),), (indicator(),)))
    ref.tell(PersistBars(bars(3)))
    s = ref.ask(Drain(timeout=2), timeout=5)
    assert ref.is_alive()
    assert store.rows("upsert_bars") == list(bars(3))
    assert sorted(t.table for t in s.isolated) == ["intraday_indicators", "intraday_patterns"]
    assert s.backlog == 2
    ref.stop()


# -- reports ---------------------------------------------------------------------------------------------


def test_stats_are_pushed_to_the_supervisor_every_report_interval_with_true_figures(clock):
    supervisor = Recorder()
    store = ScriptedStore()
    store.errors["insert_patterns"] = pe.InsufficientPrivilege("permission denied")
    actor = opened(store, supervisor=supervisor, report_interval=1.0, table_retry_seconds=60.0)
    actor.incarnation = 3
    actor.on_receive(PersistResults((pattern(), pattern(1)), ()))
    actor.on_receive(PersistBars(bars(4)))
    tick(actor, clock, 0.5)
    assert supervisor.of_type(ChildReport) == []
    tick(actor, clock, 0.6)
    [report] = supervisor.of_type(ChildReport)
    assert (report.child, report.incarnation) == ("persistence", 3)
    s = report.stats
    assert isinstance(s, PersistenceStats) and s.at == clock()
    assert s.backlog == 2 and s.bars_written == 4 and s.rows_written == 4
    assert s.waiting_by_table == {"streaming_sessions": 0, "ohlcv_1min": 0, "intraday_patterns": 2,
                                  "intraday_indicators": 0, "streaming_health_metrics": 0}
    assert [(t.table, t.rows_waiting) for t in s.isolated] == [("intraday_patterns", 2)]
    assert s.wal_pending == 2 and s.wal_segments == 1
    tick(actor, clock, 0.5)
    assert len(supervisor.of_type(ChildReport)) == 1
    tick(actor, clock, 0.5)
    assert len(supervisor.of_type(ChildReport)) == 2


def test_reports_during_an_outage_say_since_when_and_how_many_rows(clock):
    supervisor = Recorder()
    store = FakeStore()
    actor = opened(store, supervisor=supervisor, retry_interval=5.0)
    store.down = True
    actor.on_receive(PersistBars(bars(3)))
    tick(actor, clock, 1.0)
    started = clock()
    for _ in range(5):
        actor.on_receive(PersistBars(bars(1, 10 + _)))
        tick(actor, clock, 1.0)
    last = supervisor.of_type(ChildReport)[-1].stats
    assert last.failing_since == started and last.backlog == 8 and last.db_connected is False
    assert "OperationalError" in last.last_error


# -- drain and stop ------------------------------------------------------------------------------------


def test_drain_returns_by_its_timeout_with_a_slow_database_and_starts_no_batch_after_it(clock):
    store = ScriptedStore()
    store.delay = 0.2
    actor = opened(store, batch_size=1)
    actor.on_receive(PersistBars(bars(20)))  # a backlog this size is written at once (for 0.5 s)
    before = store.attempts["upsert_bars"]
    started = time.monotonic()
    result = actor.on_receive(Drain(timeout=0.5))
    elapsed = time.monotonic() - started
    # Calls start at 0, 0.2, 0.4 (s); none at 0.6, after the deadline.
    assert 1 <= store.attempts["upsert_bars"] - before <= 3 and elapsed < 0.5 + store.delay + 0.3
    assert result.backlog == 20 - store.attempts["upsert_bars"]


def test_drain_does_not_wait_for_a_table_set_aside(clock):
    store = ScriptedStore()
    store.errors["insert_patterns"] = pe.InsufficientPrivilege("permission denied")
    actor = opened(store)
    actor.on_receive(PersistResults((pattern(),), ()))
    actor.on_receive(PersistBars(bars(2)))
    started = time.monotonic()
    result = actor.on_receive(Drain(timeout=5))
    assert time.monotonic() - started < 2.5  # one try, then it returns (not after 5 s)
    assert store.attempts["insert_patterns"] == 1 and result.backlog == 1 and result.bars_written == 2


def test_stop_makes_no_database_call_and_keeps_unwritten_rows_in_the_log(clock, spill):
    store = ScriptedStore()
    store.errors["upsert_bars"] = pe.LockNotAvailable("canceling statement due to lock timeout")
    actor = opened(store)
    actor.on_receive(PersistBars(bars(3)))
    tick(actor, clock)
    attempts = sum(store.attempts.values())
    actor.on_stop()
    assert sum(store.attempts.values()) == attempts and store.closed
    assert segment_rows(spill) == list(bars(3))
    actor.on_stop()  # idempotent


def test_a_crash_closes_the_log_before_the_supervisor_hears_of_it(clock, spill):
    supervisor = Recorder()
    store = FakeStore()
    store.down = True
    actor = opened(store, supervisor=supervisor)
    actor.on_receive(PersistBars(bars(2)))
    actor.on_failure(RuntimeError, RuntimeError("boom"), None)
    assert actor._wal._closed and store.closed and segment_rows(spill) == list(bars(2))
    assert len(supervisor.messages) == 1 and type(supervisor.messages[0]).__name__ == "ChildFailed"


def test_rows_replayed_from_the_log_go_before_rows_told_to_the_new_actor(clock, spill):
    store = FakeStore()
    store.down = True
    first = opened(store)
    first.on_receive(RecordSession(session_record()))  # the start, never written
    first.on_stop()
    later = FakeStore()
    second = PersistenceActor(None, "sid", lambda: later, flush_interval=3600.0, spill_dir=spill)
    second.on_receive(RecordSession(session_record("failed")))  # told before Open, even
    second.open()
    second._ticker.stop()
    tick(second, clock)
    assert later.methods() == ["start_session", "finish_session"]


def test_without_a_log_rows_are_kept_in_memory_beyond_the_cap_never_dropped(clock, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    store = FakeStore()
    store.down = True
    actor = opened(store, spill_dir=blocker / "spill", max_rows_in_memory=2, retry_interval=1.0)
    actor.on_receive(PersistBars(bars(5)))
    assert table(stats(actor), "ohlcv_1min").in_memory == 5 and stats(actor).rows_on_disk_only == 0
    store.down = False
    tick(actor, clock, 1.5)
    assert store.rows("upsert_bars") == list(bars(5))


def test_a_log_directory_used_by_another_process_leaves_this_actor_writing_from_memory(clock, spill):
    import fcntl
    import os

    spill.mkdir()
    fd = os.open(spill / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another service on the same directory would
    try:
        store = FakeStore()
        actor = opened(store)
        actor.on_receive(PersistBars(bars(2)))
        assert "in use by another process" in stats(actor).wal_error
        assert files(spill) == []  # nothing of this actor goes into the other's log
        tick(actor, clock)
        assert store.rows("upsert_bars") == list(bars(2))
    finally:
        os.close(fd)
