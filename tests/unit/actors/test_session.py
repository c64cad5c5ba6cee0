"""SessionActor: start order, announcements, shutdown order, supervision; children are recording
pykka actors built by a fake ChildFactory (see fakes.py)."""

from __future__ import annotations

import threading
from msgspec.structs import replace

import pykka
import pytest

from tickstock.actors.handle import ChildHandle
from tickstock.actors.session import SessionActor, SessionPlan
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.config import Settings
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    ChildFailed, ClearSession, Drain, GetStats, Heartbeat, Open, Ping, Publish, RecordSession, RetainSession,
    RouteSymbol, StopSession, SymbolDiscovered,
)
from tickstock.messages.events import CriticalAlert, SessionStarted, SessionStopped

from .fakes import M, PUBLISHER_STATS, FakeChildFactory, wait_until

pytestmark = pytest.mark.timeout(15)

SYMBOLS = ("AAPL", "MSFT", "NVDA")
START = ["publisher", "persistence", "symbol:AAPL", "symbol:MSFT", "symbol:NVDA", "ingress"]
SID = "0b6d7d5e-5a43-4d0c-9a39-9f1c1f3b2a77"


def make_settings(max_restarts=3, heartbeat=5.0, reannounce=60.0, prime_bars=0) -> Settings:
    s = Settings()
    return s.replace(
        session=replace(s.session, startup_timeout_seconds=2.0, shutdown_deadline_seconds=2.0,
                        heartbeat_interval_seconds=heartbeat, reannounce_interval_seconds=reannounce),
        analysis=replace(s.analysis, prime_bars=prime_bars),
        supervision=replace(s.supervision, max_restarts=max_restarts, within_seconds=60.0),
        bars=replace(s.bars, grace_seconds=1.5),
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


def start_session(factory, timer_interval=3600.0, problems=(), **settings_kwargs):
    plan = make_plan(problems, **settings_kwargs)
    ended = Ended()
    ref = SessionActor.start(plan, factory, on_ended=ended, timer_interval=timer_interval)
    return ref, ended, plan


def running(factory, **kwargs):
    ref, ended, plan = start_session(factory, **kwargs)
    status = ref.ask(GetStats(), timeout=5)  # answered once on_start has finished
    assert status["state"] == "running"
    return ref, ended, plan


def sync(factory, name: str, incarnation: int = -1) -> None:
    """Wait until child ``name`` has handled everything told to it so far."""
    factory.refs[name][incarnation].ask(Ping(), timeout=2)


def publishes(factory) -> list:
    """Every event the publisher children received in Publish messages, in order."""
    return [e for m in factory.all_received("publisher") if isinstance(m, Publish) for e in m.events]


def of_type(events, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


def index_of(log, predicate) -> int:
    for i, entry in enumerate(log):
        if predicate(entry):
            return i
    raise AssertionError("no such entry in the log")


def recv(name, cls):
    return lambda e: e[0] == "recv" and e[1] == name and isinstance(e[2], cls)


def wait_ended(ref, ended) -> None:
    assert ended.event.wait(5), "session did not end"
    assert wait_until(lambda: not ref.is_alive())


# -- start ---------------------------------------------------------------------------------------


def test_children_are_built_and_opened_in_start_order():
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


def test_session_started_is_published_with_the_real_symbol_count_and_retained():
    factory = FakeChildFactory()
    ref, ended, plan = running(factory)
    sync(factory, "publisher")
    received = factory.all_received("publisher")
    assert received[0] == Open()
    [started] = of_type(publishes(factory), SessionStarted)
    assert started.symbol_count == 3 and started.session_id == SID and started.universe == "test:three"
    wire = started.to_wire()
    assert wire["session"]["symbol_count"] == 3 and wire["session"]["status"] == "active"
    retains = [m for m in received if isinstance(m, RetainSession)]
    assert retains == [RetainSession(wire)]
    assert any(isinstance(m, Heartbeat) for m in received)
    publish_at = next(i for i, m in enumerate(received) if isinstance(m, Publish))
    assert received.index(retains[0]) > publish_at
    assert of_type(publishes(factory), SessionStopped) == []
    status = ref.ask(GetStats(), timeout=2)
    assert status["symbol_count"] == 3 and status["session_id"] == SID and status["restarts"] == 0
    assert ended.outcomes == []


def test_persistence_records_the_session_start_and_children_get_the_session_handles():
    factory = FakeChildFactory()
    running(factory)
    sync(factory, "persistence")
    received = factory.all_received("persistence")
    assert received[0] == Open()
    [record] = [m.record for m in received if isinstance(m, RecordSession)]
    assert (record.session_id, record.universe, record.symbol_count, record.final_status) == (SID, "test:three", 3, None)

    publisher_ref = factory.refs["publisher"][0]
    persistence_ref = factory.refs["persistence"][0]
    for call in factory.symbol_calls:
        assert isinstance(call["publisher"], ChildHandle) and call["publisher"].ref is publisher_ref
        assert call["persistence"].ref is persistence_ref
        assert call["history"] == []
    assert factory.history_calls == []  # prime_bars=0: no history loaded

    [ingress] = factory.ingress_calls
    assert set(ingress["routes"]) == set(SYMBOLS)
    for symbol, handle in ingress["routes"].items():
        assert handle.ref is factory.refs[f"symbol:{symbol}"][0]
    assert ingress["persistence"].ref is persistence_ref
    assert isinstance(ingress["aggregator"], MinuteBarAggregator)
    assert ingress["aggregator"].grace_seconds == 1.5


def test_symbols_are_primed_with_recent_bars_when_configured():
    factory = FakeChildFactory()
    history = [Bar("AAPL", M, 1, 2, 0.5, 1.5, 10, 1)]
    factory.history = {"AAPL": history}
    running(factory, prime_bars=5)
    assert factory.history_calls == [(SYMBOLS, 5)]
    by_symbol = {c["symbol"]: c["history"] for c in factory.symbol_calls}
    assert by_symbol == {"AAPL": history, "MSFT": [], "NVDA": []}


def test_history_that_cannot_be_loaded_does_not_stop_the_start():
    factory = FakeChildFactory()
    factory.history_error = ConnectionError("database down")
    running(factory, prime_bars=5)
    assert all(c["history"] == [] for c in factory.symbol_calls)


def test_definition_problems_are_announced_as_critical_alerts():
    factory = FakeChildFactory()
    running(factory, problems=("0 pattern definitions loaded",))
    sync(factory, "publisher")
    [alert] = of_type(publishes(factory), CriticalAlert)
    assert alert.component == "definitions" and "0 pattern definitions" in alert.message
    assert alert.session_id == SID


def test_unknown_message_is_refused():
    factory = FakeChildFactory()
    ref, _, _ = running(factory)
    with pytest.raises(TypeError):
        ref.ask("hello", timeout=2)
    assert ref.ask(GetStats(), timeout=2)["state"] == "running"


# -- start-up failure -----------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["publisher", "persistence", "symbol:MSFT", "ingress"])
def test_child_failing_to_open_fails_the_session_loudly_and_once(failing):
    factory = FakeChildFactory(fail_open={failing})
    ref, ended, _ = start_session(factory)
    wait_ended(ref, ended)
    [outcome] = ended.outcomes
    assert outcome.final_status == "failed"
    assert failing in outcome.reason
    if failing == "publisher":
        # A publisher that could not open is stopped: the end is announced directly, once.
        assert publishes(factory) == []
        [events] = factory.direct
    else:
        events = publishes(factory)
        assert isinstance(factory.all_received("publisher")[-1], ClearSession)
        assert factory.direct == []
    assert of_type(events, SessionStarted) == []
    [alert] = of_type(events, CriticalAlert)
    [stopped] = of_type(events, SessionStopped)
    assert events.index(alert) < events.index(stopped)
    assert alert.component == "session" and alert.severity == "critical" and alert.session_id == SID
    assert stopped.final_status == "failed" and stopped.session_id == SID
    assert stopped.to_wire()["session"]["final_status"] == "failed"
    # Nothing is built after the step that failed (symbols are opened together, after all are built).
    step = START[:5] if failing.startswith("symbol:") else START[: START.index(failing) + 1]
    assert factory.calls == step
    assert all(not r.is_alive() for refs in factory.refs.values() for r in refs)  # no orphans


def test_symbol_failing_to_open_still_records_the_end_and_stops_every_symbol():
    factory = FakeChildFactory(fail_open={"symbol:MSFT"})
    ref, ended, _ = start_session(factory)
    wait_ended(ref, ended)
    records = [m.record for m in factory.all_received("persistence") if isinstance(m, RecordSession)]
    assert [r.final_status for r in records] == [None, "failed"]
    assert any(isinstance(m, Drain) for m in factory.all_received("persistence"))
    for s in SYMBOLS:
        assert ("stop", f"symbol:{s}") in factory.log


def test_dead_publisher_at_start_announces_the_failure_directly():
    factory = FakeChildFactory(dead={"publisher"})
    ref, ended, plan = start_session(factory)
    wait_ended(ref, ended)
    assert factory.calls == ["publisher"]
    [events] = factory.direct
    assert [type(e) for e in events] == [CriticalAlert, SessionStopped]
    assert events[1].final_status == "failed"
    [outcome] = ended.outcomes
    assert outcome.final_status == "failed" and (outcome.total_patterns, outcome.total_indicators) == (0, 0)


def test_on_ended_runs_even_if_the_end_cannot_be_published_at_all():
    factory = FakeChildFactory(dead={"publisher"})
    factory.direct_error = ConnectionError("redis down")
    ref, ended, _ = start_session(factory)
    wait_ended(ref, ended)
    assert len(ended.outcomes) == 1 and ended.outcomes[0].final_status == "failed"
    assert any(e[0] == "direct" for e in factory.log)


# -- stop -------------------------------------------------------------------------------------------


def test_stop_session_shuts_down_in_policy_order_and_announces_once():
    factory = FakeChildFactory()
    ref, ended, _ = running(factory)
    outcome = ref.ask(StopSession("stopped", "operator request"), timeout=10)
    assert outcome.final_status == "stopped" and outcome.reason == "operator request"
    assert (outcome.total_patterns, outcome.total_indicators) == (PUBLISHER_STATS.patterns, PUBLISHER_STATS.indicators)
    assert ended.outcomes == [outcome]

    log = factory.log
    drain_ingress = index_of(log, recv("ingress", Drain))
    stop_ingress = index_of(log, lambda e: e == ("stop", "ingress"))
    stop_symbols = [index_of(log, lambda e, s=s: e == ("stop", f"symbol:{s}")) for s in SYMBOLS]
    totals = index_of(log, recv("publisher", GetStats))
    final_record = index_of(log, lambda e: recv("persistence", RecordSession)(e) and e[2].record.final_status)
    drain_persistence = index_of(log, recv("persistence", Drain))
    stop_persistence = index_of(log, lambda e: e == ("stop", "persistence"))
    announce = index_of(log, lambda e: recv("publisher", Publish)(e)
                        and any(isinstance(x, SessionStopped) for x in e[2].events))
    clear = index_of(log, recv("publisher", ClearSession))
    stop_publisher = index_of(log, lambda e: e == ("stop", "publisher"))
    assert drain_ingress < stop_ingress < min(stop_symbols)
    assert max(stop_symbols) < totals < final_record < drain_persistence < stop_persistence
    assert stop_persistence < announce < clear < stop_publisher

    record = log[final_record][2].record
    assert record.final_status == "stopped" and record.symbol_count == 3
    assert (record.total_patterns, record.total_indicators) == (7, 11)
    assert record.stopped_at == outcome.stopped_at

    events = publishes(factory)
    [stopped] = of_type(events, SessionStopped)
    assert of_type(events, CriticalAlert) == []
    assert (stopped.final_status, stopped.reason, stopped.total_patterns, stopped.total_indicators) == (
        "stopped", "operator request", 7, 11)
    assert factory.direct == []
    assert wait_until(lambda: not ref.is_alive())
    assert all(not r.is_alive() for refs in factory.refs.values() for r in refs)


def test_a_second_stop_does_not_announce_a_second_time():
    factory = FakeChildFactory()
    ref, ended, _ = running(factory)
    ref.tell(StopSession("stopped"))
    try:
        ref.tell(StopSession("completed"))
    except pykka.ActorDeadError:
        pass
    wait_ended(ref, ended)
    assert len(of_type(publishes(factory), SessionStopped)) == 1
    assert [o.final_status for o in ended.outcomes] == ["stopped"]
    assert factory.direct == []


def test_end_is_idempotent_when_driven_directly():
    factory = FakeChildFactory()
    ended = Ended()
    session = SessionActor(make_plan(), factory, on_ended=ended, timer_interval=3600.0)
    session.on_start()
    first = session.on_receive(StopSession("stopped"))
    second = session.on_receive(StopSession("completed", "market close"))
    assert second is first and first.final_status == "stopped"
    assert session.on_receive(GetStats())["state"] == "stopped"
    session.on_receive(ChildFailed("symbol:AAPL", "late failure"))  # ignored once stopped
    assert factory.count("symbol:AAPL") == 1
    assert len(of_type(publishes(factory), SessionStopped)) == 1
    assert ended.outcomes == [first]
    assert factory.direct == []


# -- supervision ------------------------------------------------------------------------------------


def test_symbol_failure_restarts_that_symbol_and_the_session_keeps_running():
    factory = FakeChildFactory()
    ref, ended, _ = running(factory)
    ref.tell(ChildFailed("symbol:AAPL", "ZeroDivisionError: boom"))
    status = ref.ask(GetStats(), timeout=5)
    assert status["state"] == "running" and status["restarts"] == 1
    assert factory.calls.count("symbol:AAPL") == 2
    assert factory.calls.count("symbol:MSFT") == 1 and factory.calls.count("ingress") == 1
    old, new = factory.refs["symbol:AAPL"]
    assert not old.is_alive() and new.is_alive()
    assert factory.received["symbol:AAPL"][1][0] == Open()
    # Siblings hold handles: the ingress route for AAPL now reaches the replacement.
    assert factory.ingress_calls[0]["routes"]["AAPL"].ref is new
    assert factory.symbol_calls[-1]["publisher"] is factory.symbol_calls[0]["publisher"]
    sync(factory, "publisher")
    assert of_type(publishes(factory), SessionStopped) == []
    assert ended.outcomes == []


@pytest.mark.parametrize("child", ["publisher", "persistence", "ingress"])
def test_other_children_are_restarted_alone(child):
    factory = FakeChildFactory()
    ref, ended, _ = running(factory)
    ref.tell(ChildFailed(child, "RuntimeError: x"))
    status = ref.ask(GetStats(), timeout=5)
    assert status["state"] == "running" and status["restarts"] == 1
    assert factory.count(child) == 2
    assert all(factory.count(f"symbol:{s}") == 1 for s in SYMBOLS)
    old, new = factory.refs[child]
    assert not old.is_alive() and new.is_alive()
    assert factory.received[child][1][0] == Open()
    if child == "ingress":  # the forming bars are handed over intact
        assert factory.ingress_calls[1]["aggregator"] is factory.ingress_calls[0]["aggregator"]
    assert ended.outcomes == []


def test_more_failures_than_the_budget_end_the_session_failed():
    factory = FakeChildFactory()
    ref, ended, _ = running(factory, max_restarts=1)
    ref.tell(ChildFailed("symbol:AAPL", "KeyError: first"))
    ref.tell(ChildFailed("symbol:AAPL", "KeyError: second"))
    wait_ended(ref, ended)
    [outcome] = ended.outcomes
    assert outcome.final_status == "failed" and "second" in outcome.reason
    assert factory.count("symbol:AAPL") == 2  # one restart, then the end
    events = publishes(factory)
    [alert] = of_type(events, CriticalAlert)
    [stopped] = of_type(events, SessionStopped)
    assert alert.component == "symbol" and "failed" in alert.message
    assert stopped.final_status == "failed"
    assert len(of_type(events, SessionStarted)) == 1
    assert factory.direct == []


def test_a_restart_that_fails_ends_the_session():
    factory = FakeChildFactory(fail_restart={"symbol:NVDA"})
    ref, ended, _ = running(factory)
    ref.tell(ChildFailed("symbol:NVDA", "boom"))
    wait_ended(ref, ended)
    assert ended.outcomes[0].final_status == "failed"
    [alert] = of_type(publishes(factory), CriticalAlert)
    assert alert.component == "symbol:NVDA"
    assert len(of_type(publishes(factory), SessionStopped)) == 1


def test_child_found_dead_by_the_timer_is_restarted():
    factory = FakeChildFactory()
    ref, ended, _ = running(factory, timer_interval=0.02)
    factory.refs["symbol:MSFT"][0].stop()  # dies without a ChildFailed
    assert wait_until(lambda: factory.count("symbol:MSFT") == 2)
    status = ref.ask(GetStats(), timeout=2)
    assert status["state"] == "running" and status["restarts"] == 1
    assert wait_until(lambda: factory.refs["symbol:MSFT"][1].is_alive())


def test_timer_sends_heartbeats_and_reannounces_the_session():
    factory = FakeChildFactory()
    running(factory, timer_interval=0.02, heartbeat=0.05, reannounce=0.05)
    assert wait_until(lambda: sum(isinstance(m, Heartbeat) for m in factory.all_received("publisher")) >= 3)
    assert wait_until(lambda: len(of_type(publishes(factory), SessionStarted)) >= 2)
    announcements = of_type(publishes(factory), SessionStarted)
    assert {(a.session_id, a.symbol_count, a.started_at) for a in announcements} == {
        (SID, 3, announcements[0].started_at)}


# -- dynamic symbols -------------------------------------------------------------------------------


def test_discovered_symbol_gets_an_actor_and_a_route():
    factory = FakeChildFactory()
    ref, _, _ = running(factory)
    ref.tell(SymbolDiscovered("TSLA"))
    ref.tell(SymbolDiscovered("AAPL"))  # already has an actor: nothing
    status = ref.ask(GetStats(), timeout=5)
    assert status["symbol_count"] == 4
    assert factory.count("symbol:TSLA") == 1 and factory.count("symbol:AAPL") == 1
    sync(factory, "ingress")
    [route] = [m for m in factory.all_received("ingress") if isinstance(m, RouteSymbol)]
    assert route.symbol == "TSLA" and route.actor_ref.ref is factory.refs["symbol:TSLA"][0]
    assert factory.received["symbol:TSLA"][0][0] == Open()


def end_session(ref, ended) -> None:
    """Stop the session if it still runs; wait until it has ended."""
    try:
        ref.ask(StopSession("stopped"), timeout=10)
    except pykka.ActorDeadError:
        pass
    wait_ended(ref, ended)


def test_discovered_symbol_whose_actor_cannot_open_never_kills_the_session_silently():
    # The error escapes the told SymbolDiscovered; whatever the session does about it, its end
    # must be announced exactly once and on_ended called exactly once (in HEAD it died silently).
    factory = FakeChildFactory(fail_open={"symbol:TSLA"})
    ref, ended, _ = running(factory)
    ref.tell(SymbolDiscovered("TSLA"))
    end_session(ref, ended)
    assert len(ended.outcomes) == 1
    assert len(of_type(publishes(factory), SessionStopped)) == 1


def test_discovered_symbol_whose_actor_cannot_open_is_not_left_running():
    factory = FakeChildFactory(fail_open={"symbol:TSLA"})
    ref, ended, _ = running(factory)
    ref.tell(SymbolDiscovered("TSLA"))
    end_session(ref, ended)
    assert factory.count("symbol:TSLA") == 1
    assert wait_until(lambda: not factory.refs["symbol:TSLA"][0].is_alive(), timeout=0.3)


def test_restarted_child_is_opened_before_it_gets_replayed_messages():
    factory = FakeChildFactory()
    running(factory, timer_interval=0.02, heartbeat=0.001)
    factory.refs["publisher"][0].stop()  # the next timer tick tells Heartbeat to a dead publisher
    # Wait for the replacement's ref itself (the factory counts the call before it has the ref).
    assert wait_until(lambda: len(factory.refs["publisher"]) == 2)
    sync(factory, "publisher")
    assert factory.received["publisher"][1][0] == Open()
