"""SessionActor: start order, announcements, every way to end it, supervision without blocking.

Children are recording pykka actors built by a fake ChildFactory (see fakes.py); they speak the
child protocol (ChildOpened, ChildFailed with the incarnation) like ``actors.base.Supervised``."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pykka
import pytest

from tickstock.actors.plan import UniverseError
from tickstock.actors.session import SessionActor, SessionPlan
from tickstock.config import Settings
from tickstock.messages.commands import (
    ChildFailed, ChildReport, ClearSession, Drain, GetStats, Open, Ping, Publish, PublishConfirmed, Quarantine,
    RecordSession, RetainSession, RouteSymbol, StopSession, SymbolDiscovered,
)
from tickstock.messages.events import CriticalAlert, SessionStarted, SessionStopped

from .fakes import FakeBeacon, FakeChildFactory, Recorder, wait_until

pytestmark = pytest.mark.timeout(30)

SYMBOLS = ("AAPL", "MSFT", "NVDA")
START = ["publisher", "persistence", "symbol:AAPL", "symbol:MSFT", "symbol:NVDA", "ingress"]
SID = "0b6d7d5e-5a43-4d0c-9a39-9f1c1f3b2a77"


def make_settings(max_restarts=3, symbol_max_restarts=3, reannounce=60.0, prime_bars=0, deadline=5.0) -> Settings:
    s = Settings()
    return s.replace(
        session=s.session.replace(startup_timeout_seconds=2.0, shutdown_deadline_seconds=deadline,
                                  reannounce_interval_seconds=reannounce),
        analysis=s.analysis.replace(prime_bars=prime_bars),
        supervision=s.supervision.replace(max_restarts=max_restarts, within_seconds=60.0,
                                          symbol_max_restarts=symbol_max_restarts, symbol_within_seconds=60.0),
    )


class Ended:
    """on_ended: records each outcome."""

    def __init__(self) -> None:
        self.outcomes: list = []
        self.event = threading.Event()

    def __call__(self, outcome) -> None:
        self.outcomes.append(outcome)
        self.event.set()


def make_plan(problems=(), **settings_kwargs) -> SessionPlan:
    return SessionPlan("test:three", SYMBOLS, make_settings(**settings_kwargs), problems=tuple(problems),
                       session_id=SID)


def start_session(factory, timer_interval=3600.0, problems=(), monitor=None, beacon=None, plan=None, **kw):
    ended = Ended()
    ref = SessionActor.start(plan or make_plan(problems, **kw), factory, on_ended=ended,
                             timer_interval=timer_interval, health_monitor=monitor, beacon=beacon,
                             session_id=SID if plan is not None else None, settings=make_settings(**kw))
    return ref, ended


def running(factory, **kwargs):
    ref, ended = start_session(factory, **kwargs)
    status = ref.ask(GetStats(), timeout=5)  # answered once on_start has finished
    assert status["state"] == "running"
    return ref, ended


def sync(factory, name: str, incarnation: int = -1) -> None:
    """Wait until child ``name`` has handled everything told to it so far."""
    factory.refs[name][incarnation].ask(Ping(), timeout=2)


def publishes(factory) -> list:
    """Every event the publisher children received (Publish and PublishConfirmed), in order."""
    return [e for m in factory.all_received("publisher") if isinstance(m, (Publish, PublishConfirmed))
            for e in m.events]


def of_type(events, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


def wait_ended(ref, ended, timeout=10) -> None:
    assert ended.event.wait(timeout), "session did not end"
    assert wait_until(lambda: not ref.is_alive())


def stopped_events(factory) -> list:
    return of_type(publishes(factory), SessionStopped) + of_type(
        [e for batch in factory.direct for e in batch], SessionStopped)


# -- start ---------------------------------------------------------------------------------------


def test_children_are_built_and_opened_in_start_order_with_incarnation_one():
    factory = FakeChildFactory()
    running(factory)
    assert factory.calls == START
    steps = [(e[0], e[1]) if e[0] == "factory" else ("open", e[1])
             for e in factory.log if e[0] == "factory" or (e[0] == "recv" and isinstance(e[2], Open))]
    assert steps[:4] == [("factory", "publisher"), ("open", "publisher"),
                         ("factory", "persistence"), ("open", "persistence")]
    assert steps[4:7] == [("factory", f"symbol:{s}") for s in SYMBOLS]
    assert sorted(steps[7:10]) == sorted(("open", f"symbol:{s}") for s in SYMBOLS)  # opened in parallel
    assert steps[10:] == [("factory", "ingress"), ("open", "ingress")]
    assert all(factory.received[name][0][0] == Open(1) for name in START)


def test_session_started_is_published_with_the_real_symbol_count_and_retained_by_the_beacon():
    factory = FakeChildFactory()
    beacon = FakeBeacon()
    ref, _ = running(factory, beacon=beacon)
    sync(factory, "publisher")
    [started] = of_type(publishes(factory), SessionStarted)
    assert started.symbol_count == 3 and started.session_id == SID and started.universe == "test:three"
    [retain] = beacon.of_type(RetainSession)
    assert retain.payload["session"]["session_id"] == SID and retain.payload["session"]["symbol_count"] == 3
    assert not any(isinstance(m, RetainSession) for m in factory.all_received("publisher"))
    ref.tell(StopSession("stopped"))
    assert wait_until(lambda: beacon.of_type(ClearSession))


def test_session_started_reaches_the_publisher_only_through_the_beacon_after_the_key():
    """The announcement rides on the RetainSession: whoever hears it can read the key already."""
    factory = FakeChildFactory()
    beacon = FakeBeacon(forward=False)  # a beacon that has not written the key yet
    running(factory, beacon=beacon)
    sync(factory, "publisher")
    assert of_type(publishes(factory), SessionStarted) == []
    [retain] = beacon.of_type(RetainSession)
    assert isinstance(retain.then, Publish) and [type(e) for e in retain.then.events] == [SessionStarted]
    assert retain.then.events[0].to_wire() == retain.payload
    retain.follow_up()  # the key is written: now the publisher is told
    sync(factory, "publisher")
    [started] = of_type(publishes(factory), SessionStarted)
    assert started.session_id == SID


class DeadBeacon(Recorder):
    def tell(self, message):
        raise pykka.ActorDeadError("heartbeat stopped")

    def ask(self, message, timeout=None, block=True):
        raise pykka.ActorDeadError("heartbeat stopped")


def test_without_a_live_beacon_the_publisher_retains_and_announces_and_the_end_is_still_announced():
    factory = FakeChildFactory()
    ref, ended = running(factory, beacon=DeadBeacon("beacon"))
    sync(factory, "publisher")
    [retain] = [m for m in factory.all_received("publisher") if isinstance(m, RetainSession)]
    assert [type(e) for e in retain.then.events] == [SessionStarted]
    sync(factory, "publisher")  # the follow-up it told itself
    assert [e.session_id for e in of_type(publishes(factory), SessionStarted)] == [SID]
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    assert [s.final_status for s in stopped_events(factory)] == ["stopped"]


def test_the_retained_key_is_deleted_before_session_stopped_is_published():
    factory = FakeChildFactory()
    beacon = FakeBeacon(log=factory.log)
    ref, ended = running(factory, beacon=beacon)
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    order = [i for i, e in enumerate(factory.log)
             if (e[0] == "beacon" and isinstance(e[1], ClearSession))
             or (e[0] == "recv" and isinstance(e[2], PublishConfirmed)
                 and of_type(e[2].events, SessionStopped))]
    assert len(order) == 2 and factory.log[order[0]][0] == "beacon"


def test_a_beacon_stuck_on_redis_delays_the_end_by_half_a_second_at_most():
    factory = FakeChildFactory()
    ref, ended = running(factory, beacon=FakeBeacon(hang=True))
    t0 = time.monotonic()
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    assert [s.final_status for s in stopped_events(factory)] == ["stopped"]
    assert time.monotonic() - t0 < 2.0  # the 0.5 s wait, not the whole shutdown deadline (5 s)


def test_a_session_record_is_written_at_start():
    factory = FakeChildFactory()
    running(factory)
    sync(factory, "persistence")
    [record] = [m.record for m in factory.all_received("persistence") if isinstance(m, RecordSession)]
    assert record.session_id == SID and record.symbol_count == 3 and record.final_status is None


def test_definition_problems_raise_a_critical_alert_at_start():
    factory = FakeChildFactory()
    running(factory, problems=["unknown definition 'Foo'"])
    sync(factory, "publisher")
    [alert] = of_type(publishes(factory), CriticalAlert)
    assert "Foo" in alert.message and alert.component == "definitions"


# -- every way to end the actor passes through one session_stopped ---------------------------------


def _assert_one_end(factory, ended, final_status):
    assert len(ended.outcomes) == 1, ended.outcomes
    assert ended.outcomes[0].final_status == final_status
    [stopped] = stopped_events(factory)
    assert stopped.final_status == final_status and stopped.session_id == SID
    assert all(not r.is_alive() for refs in factory.refs.values() for r in refs), "a child was orphaned"


def test_end_by_stop_session_message():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.tell(StopSession("stopped", "operator request"))
    wait_ended(ref, ended)
    _assert_one_end(factory, ended, "stopped")
    outcome = ended.outcomes[0]
    assert (outcome.reason, outcome.total_patterns, outcome.total_indicators, outcome.announced) == (
        "operator request", 7, 11, True)
    assert factory.direct == []


def test_end_by_ref_stop():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.stop(timeout=10)
    wait_ended(ref, ended)
    _assert_one_end(factory, ended, "stopped")


def test_end_by_stop_all():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    pykka.ActorRegistry.stop_all(timeout=10)
    wait_ended(ref, ended)
    _assert_one_end(factory, ended, "stopped")


def test_end_by_an_exception_in_a_handler():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.tell(object())  # no handler: TypeError in a told message -> on_failure, no on_stop in pykka
    wait_ended(ref, ended)
    _assert_one_end(factory, ended, "failed")
    assert "session supervisor error" in ended.outcomes[0].reason


def test_end_by_a_base_exception_in_a_handler():
    class Boom(SessionActor):
        def on_receive(self, message):
            if message == "exit":
                raise SystemExit("bye")
            return super().on_receive(message)

    factory = FakeChildFactory()
    ended = Ended()
    ref = Boom.start(make_plan(), factory, on_ended=ended, timer_interval=3600.0)
    assert ref.ask(GetStats(), timeout=5)["state"] == "running"
    ref.tell("exit")  # pykka stops this actor (on_stop) and then every other actor
    wait_ended(ref, ended)
    assert len(ended.outcomes) == 1 and len(stopped_events(factory)) == 1


def test_end_by_an_exception_in_on_start_after_children_were_started():
    factory = FakeChildFactory(fail_open={"ingress"})
    ref, ended = start_session(factory)
    wait_ended(ref, ended)
    _assert_one_end(factory, ended, "failed")
    assert "ingress did not start" in ended.outcomes[0].reason
    [alert] = of_type(publishes(factory), CriticalAlert)
    assert alert.component == "session"
    assert of_type(publishes(factory), SessionStarted) == []


def test_end_by_a_planner_that_cannot_resolve_the_universe():
    factory = FakeChildFactory()

    def planner():
        raise UniverseError("universe 'x' resolves to no symbols")

    ref, ended = start_session(factory, plan=planner)
    wait_ended(ref, ended)
    [outcome] = ended.outcomes
    assert outcome.final_status == "failed" and outcome.cause == "universe" and outcome.session_id == SID
    assert factory.calls == []  # nothing was started
    [stopped] = stopped_events(factory)  # no publisher: announced on the direct fallback
    assert stopped.final_status == "failed"


def test_a_second_stop_does_not_announce_a_second_time():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.tell(StopSession("stopped"))
    try:
        ref.tell(StopSession("completed"))
    except pykka.ActorDeadError:
        pass
    wait_ended(ref, ended)
    _assert_one_end(factory, ended, "stopped")


def test_end_driven_directly_runs_once():
    factory = FakeChildFactory()
    ended = Ended()
    session = SessionActor(make_plan(), factory, on_ended=ended, timer_interval=3600.0)
    session.actor_ref.actor_inbox.put = lambda envelope, *a, **k: None  # no loop runs in this test
    session._start()
    session.on_stop()
    session.on_failure(RuntimeError, RuntimeError("late"), None)
    session.on_stop()
    assert len(ended.outcomes) == 1 and len(stopped_events(factory)) == 1


# -- confirmed announcement -----------------------------------------------------------------------


def test_session_stopped_counts_as_published_only_when_acknowledged():
    factory = FakeChildFactory(child_kwargs={"publisher": {"confirm": False}})
    ref, ended = running(factory, deadline=2.0)
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    [stopped] = of_type(publishes(factory), SessionStopped)  # offered to the publisher ...
    assert [type(e) for batch in factory.direct for e in batch] == [SessionStopped]  # ... then the fallback
    assert ended.outcomes[0].announced is True


def test_nothing_acknowledged_and_no_fallback_says_so_in_the_outcome():
    factory = FakeChildFactory(child_kwargs={"publisher": {"confirm": False}})
    factory.direct_error = ConnectionError("redis down")
    ref, ended = running(factory, deadline=2.0)
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    assert ended.outcomes[0].announced is False


# -- never blocking on a child --------------------------------------------------------------------


class CountingMonitor:
    def __init__(self) -> None:
        self.checks: list[float] = []

    def check(self, session, now, force) -> None:
        self.checks.append(time.monotonic())


def test_a_stuck_child_stalls_neither_the_timer_nor_the_stop():
    stuck = threading.Event()
    factory = FakeChildFactory(child_kwargs={"persistence": {"block": stuck}})
    monitor = CountingMonitor()
    ref, ended = running(factory, timer_interval=0.05, monitor=monitor, deadline=3.0)
    try:
        ref.tell(ChildReport("persistence", 1, SimpleNamespace(backlog=5), time.time()))
        # persistence now blocks on every message (RecordSession is already queued): a database hung
        n = len(monitor.checks)
        assert wait_until(lambda: len(monitor.checks) >= n + 10, timeout=3), "timer stalled behind a stuck child"
        gaps = [b - a for a, b in zip(monitor.checks[n:], monitor.checks[n + 1:])]
        assert max(gaps) < 1.0
        begun = time.monotonic()
        ref.tell(StopSession("stopped"))
        wait_ended(ref, ended, timeout=6)
        assert time.monotonic() - begun < 3.0 + 1.0, "stop overran its deadline"
        assert len(stopped_events(factory)) == 1
    finally:
        stuck.set()


# -- supervision ----------------------------------------------------------------------------------


def test_symbol_failure_restarts_that_symbol_once_per_incarnation():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.tell(ChildFailed("symbol:AAPL", "ZeroDivisionError: boom", 1))
    ref.tell(ChildFailed("symbol:AAPL", "found dead", 1))  # the same death seen twice
    status = ref.ask(GetStats(), timeout=5)
    assert status["state"] == "running" and status["restarts"] == 1
    assert factory.calls.count("symbol:AAPL") == 2
    assert wait_until(lambda: len(factory.received["symbol:AAPL"]) == 2 and factory.received["symbol:AAPL"][1])
    assert factory.received["symbol:AAPL"][1][0] == Open(2)
    assert factory.symbol_calls[-1]["history"] is None  # it primes itself when it opens
    new = factory.refs["symbol:AAPL"][1]
    assert factory.ingress_calls[0]["routes"]["AAPL"].ref is new  # siblings hold handles
    assert ended.outcomes == []


def test_child_found_dead_by_the_timer_is_restarted_once():
    factory = FakeChildFactory()
    ref, ended = running(factory, timer_interval=0.02)
    factory.refs["symbol:MSFT"][0].stop()  # dies without a ChildFailed
    assert wait_until(lambda: factory.count("symbol:MSFT") == 2)
    time.sleep(0.2)  # several more timer ticks
    assert factory.count("symbol:MSFT") == 2
    assert ref.ask(GetStats(), timeout=2)["restarts"] == 1


@pytest.mark.parametrize("child", ["publisher", "persistence", "ingress"])
def test_shared_children_are_restarted_alone(child):
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.tell(ChildFailed(child, "RuntimeError: x", 1))
    status = ref.ask(GetStats(), timeout=5)
    assert status["state"] == "running" and status["restarts"] == 1
    assert factory.count(child) == 2
    assert all(factory.count(f"symbol:{s}") == 1 for s in SYMBOLS)
    if child == "ingress":  # the forming bars are handed over intact
        assert factory.ingress_calls[1]["aggregator"] is factory.ingress_calls[0]["aggregator"]
    assert ended.outcomes == []


def test_a_shared_child_past_its_budget_fails_the_session_with_one_announcement():
    factory = FakeChildFactory()
    ref, ended = running(factory, max_restarts=1)
    ref.tell(ChildFailed("ingress", "KeyError: first", 1))
    ref.tell(ChildFailed("ingress", "KeyError: second", 2))
    wait_ended(ref, ended)
    _assert_one_end(factory, ended, "failed")
    assert "second" in ended.outcomes[0].reason
    [alert] = of_type(publishes(factory), CriticalAlert)
    assert alert.component == "ingress"


def test_a_symbol_past_its_budget_is_quarantined_and_the_session_runs_on():
    factory = FakeChildFactory()
    ref, ended = running(factory, symbol_max_restarts=2, max_restarts=1)
    for incarnation in (1, 2, 3):
        ref.tell(ChildFailed("symbol:NVDA", "boom", incarnation))
    status = ref.ask(GetStats(), timeout=5)
    assert status["state"] == "running" and status["quarantined"] == ["NVDA"]
    assert factory.count("symbol:NVDA") == 3  # two restarts, then no more
    sync(factory, "ingress")
    assert [m.symbol for m in factory.all_received("ingress") if isinstance(m, Quarantine)] == ["NVDA"]
    assert wait_until(lambda: not factory.refs["symbol:NVDA"][-1].is_alive())
    # Four flaky symbol failures spent no shared budget (max_restarts=1): ingress may still restart.
    ref.tell(ChildFailed("ingress", "x", 1))
    assert ref.ask(GetStats(), timeout=5)["state"] == "running"
    assert ended.outcomes == []


def test_a_restart_whose_open_fails_counts_against_the_budget():
    factory = FakeChildFactory(fail_restart={"publisher"})
    ref, ended = running(factory, max_restarts=2)
    ref.tell(ChildFailed("publisher", "boom", 1))
    wait_ended(ref, ended)  # 2 restarts fail to open, the third failure ends the session
    assert ended.outcomes[0].final_status == "failed"
    assert factory.count("publisher") == 3
    assert len(stopped_events(factory)) == 1


def test_session_totals_survive_a_publisher_restart():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.tell(ChildReport("publisher", 1, SimpleNamespace(patterns=3, indicators=4), time.time()))
    ref.tell(ChildFailed("publisher", "boom", 1, SimpleNamespace(patterns=5, indicators=6)))
    ref.tell(ChildReport("publisher", 1, SimpleNamespace(patterns=99, indicators=99), time.time()))  # stale
    status = ref.ask(GetStats(), timeout=5)
    assert (status["total_patterns"], status["total_indicators"]) == (5, 6)
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    # The new publisher says 7/11 (fakes.PUBLISHER_STATS): the session adds the dead one's 5/6.
    assert (ended.outcomes[0].total_patterns, ended.outcomes[0].total_indicators) == (12, 17)


def test_discovered_symbol_gets_an_actor_and_a_route_without_waiting():
    factory = FakeChildFactory()
    ref, _ = running(factory)
    ref.tell(SymbolDiscovered("TSLA"))
    ref.tell(SymbolDiscovered("AAPL"))  # already has an actor: nothing
    assert ref.ask(GetStats(), timeout=5)["symbol_count"] == 4
    sync(factory, "ingress")
    [route] = [m for m in factory.all_received("ingress") if isinstance(m, RouteSymbol)]
    assert route.symbol == "TSLA" and route.actor_ref.ref is factory.refs["symbol:TSLA"][0]
    assert wait_until(lambda: factory.received["symbol:TSLA"][0][:1] == [Open(1)])


def test_stop_order_is_ingress_symbols_persistence_then_the_announcement():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    log = factory.log

    def first(predicate):
        return next(i for i, e in enumerate(log) if predicate(e))

    ingress_drain = first(lambda e: e[:2] == ("recv", "ingress") and isinstance(e[2], Drain))
    symbols_stop = max(first(lambda e, s=s: e == ("stop", f"symbol:{s}")) for s in SYMBOLS)
    persistence_drain = first(lambda e: e[:2] == ("recv", "persistence") and isinstance(e[2], Drain))
    announce = first(lambda e: e[:2] == ("recv", "publisher") and isinstance(e[2], PublishConfirmed))
    publisher_stop = first(lambda e: e == ("stop", "publisher"))
    assert ingress_drain < symbols_stop < persistence_drain < announce < publisher_stop


def test_symbols_tell_the_shared_children_through_outboxes_flushed_before_the_end_is_announced():
    from tickstock.actors.outbox import Outbox

    factory = FakeChildFactory()
    ref, ended = running(factory)
    call = factory.symbol_calls[0]
    assert isinstance(call["publisher"], Outbox) and isinstance(call["persistence"], Outbox)
    assert all(c["publisher"] is call["publisher"] for c in factory.symbol_calls)  # one per session
    assert factory.ingress_calls[0]["persistence"] is call["persistence"]  # the ingress's bars too
    call["publisher"].linger = 30.0  # this result would wait far longer than the test
    call["publisher"].tell(Publish(("a symbol's last events",)))
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    received = factory.all_received("publisher")
    last_results = next(i for i, m in enumerate(received) if isinstance(m, Publish) and m.events == (
        "a symbol's last events",))
    confirmed = next(i for i, m in enumerate(received) if isinstance(m, PublishConfirmed))
    assert last_results < confirmed


# -- the garbage collector's schedule (tickstock/heap.py) ------------------------------------------


class RecordingHeap:
    """A HeapKeeper stand-in: records when the session calls it, with what was live by then."""

    def __init__(self, factory) -> None:
        self.factory = factory
        self.calls: list[tuple[str, object]] = []

    def session_starting(self):
        self.calls.append(("starting", list(self.factory.calls)))

    def session_live(self, now):
        self.calls.append(("live", list(self.factory.calls)))

    def tick(self, now):
        self.calls.append(("tick", now))

    def session_ended(self):
        self.calls.append(("ended", None))


def test_the_heap_is_frozen_once_every_child_is_up_ticked_by_the_timer_and_released_after_the_end():
    factory = FakeChildFactory()
    heap = RecordingHeap(factory)
    ended = Ended()
    ref = SessionActor.start(make_plan(), factory, on_ended=ended, timer_interval=0.05,
                             settings=make_settings(), heap=heap)
    assert wait_until(lambda: sum(1 for c in heap.calls if c[0] == "tick") >= 2)
    assert heap.calls[0] == ("starting", [])  # before the first child is built
    assert heap.calls[1] == ("live", START)  # after the last child (ingress) was built and opened
    assert [c[0] for c in heap.calls].count("live") == 1
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    assert heap.calls[-1] == ("ended", None) and [c[0] for c in heap.calls].count("ended") == 1
    assert len(ended.outcomes) == 1


def test_a_session_that_fails_to_start_still_releases_the_heap():
    factory = FakeChildFactory(fail_open={"ingress"})
    heap = RecordingHeap(factory)
    ended = Ended()
    ref = SessionActor.start(make_plan(), factory, on_ended=ended, settings=make_settings(), heap=heap)
    wait_ended(ref, ended)
    assert [c[0] for c in heap.calls] == ["starting", "ended"]  # never live; the collector resumed
