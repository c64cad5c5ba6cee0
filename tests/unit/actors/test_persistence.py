"""PersistenceActor: batching, outage buffering and retry, write order, Drain; fake store, fake time."""

from __future__ import annotations

import time
import psycopg2
import pytest

import tickstock.actors.persistence as persistence_module
from tickstock.actors.persistence import PersistenceActor
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    Drain, GetStats, PersistBars, PersistResults, RecordHealth, RecordSession, TimerTick,
)
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord

from .fakes import M, FakeClock, FakeStore

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


def opened(store: FakeStore, **kwargs) -> PersistenceActor:
    kwargs.setdefault("flush_interval", 3600.0)
    actor = PersistenceActor(None, "sid", lambda: store, **kwargs)
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
    actor = PersistenceActor(None, "sid", lambda: store, batch_size=3, flush_interval=3600.0)
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


def test_rows_unwritten_at_stop_are_spilled_and_written_by_the_next_session(clock, tmp_path):
    store = FakeStore()
    actor = opened(store, batch_size=500, spill_dir=tmp_path)
    store.down = True
    actor.on_receive(RecordSession(session_record()))
    actor.on_receive(PersistBars(bars(3)))
    actor.on_receive(PersistResults((pattern(),), (indicator(),)))
    clock.advance(QUIET)
    actor.on_receive(TimerTick(clock()))
    assert stats(actor).backlog == 6
    actor.on_stop()  # shutdown with the database still down
    [spilled] = list(tmp_path.glob("spill-*.jsonl"))

    later = FakeStore()
    successor = opened(later, batch_size=500, spill_dir=tmp_path)
    assert not spilled.exists()  # re-queued, so the file is gone
    assert stats(successor).backlog == 6
    clock.advance(QUIET)
    successor.on_receive(TimerTick(clock()))
    assert later.methods() == ["start_session", "upsert_bars", "insert_patterns", "insert_indicators"]
    assert later.rows("upsert_bars") == list(bars(3))
    assert later.rows("insert_patterns") == [pattern()] and later.rows("insert_indicators") == [indicator()]


def test_an_unreadable_spill_file_is_left_in_place_and_the_rest_load(clock, tmp_path):
    (tmp_path / "spill-1.000000-x.jsonl").write_text("not json\n")
    from tickstock.messages.spill import encode_rows

    (tmp_path / "spill-2.000000-y.jsonl").write_bytes(encode_rows(bars(2)))
    store = FakeStore()
    actor = opened(store, spill_dir=tmp_path)
    assert stats(actor).backlog == 2
    assert (tmp_path / "spill-1.000000-x.jsonl").exists()
    assert not (tmp_path / "spill-2.000000-y.jsonl").exists()


def test_nothing_is_spilled_when_everything_was_written(clock, tmp_path):
    store = FakeStore()
    actor = opened(store, spill_dir=tmp_path)
    actor.on_receive(PersistBars(bars(2)))
    actor.on_receive(Drain(timeout=1))
    actor.on_stop()
    assert list(tmp_path.iterdir()) == []
