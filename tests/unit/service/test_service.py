"""ServiceActor and its StreamingService facade: one session at a time, its status, universe and
definition loading, start-up failures, the calendar (step_schedule) with its retry back-off, and
shutdown. Sessions are real SessionActors over recording children (tests/unit/actors/fakes.py);
stores and schedulers are fakes. The actor's timer is not running: each test steps the calendar."""

from __future__ import annotations

import threading
from msgspec.structs import replace
from typing import Any

import pykka
import pytest

from tests.unit.actors.fakes import PUBLISHER_STATS, FakeChildFactory, wait_until
from tickstock.actors.plan import SessionPlan
from tickstock.actors.service import (
    ServiceActor, StreamingService, UniverseError, load_definitions, resolve_universe,
)
from tickstock.actors.session import SessionActor, SessionOutcome
from tickstock.clock import ManualClock
from tickstock.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from tickstock.market.schedule import Action, Decision
from tickstock.messages.commands import ClearSession, GetStats, Publish, PublishConfirmed, RetainSession, TimerTick
from tickstock.messages.events import CriticalAlert, SessionStarted, SessionStopped

pytestmark = pytest.mark.timeout(15)

T0 = 1_700_000_000.0
TINY = ["AAPL", "MSFT", "NVDA"]
STATUS_KEYS = {"running", "session", "last_session", "universe", "definitions_source", "definition_problems",
               "shutting_down"}
FALLBACK_NAMES = ("Doji", "Hammer", "HeadShoulders", "InverseHeadShoulders", "RSI", "SMA")
_REPO = load_settings(DEFAULT_CONFIG_PATH, environ={})


def make_settings(source: str = "yaml", universe: str = "test:tiny", universes: dict | None = None) -> Settings:
    s = _REPO
    return s.replace(
        session=replace(s.session, universe=universe, universe_source=source, startup_timeout_seconds=2.0,
                        shutdown_deadline_seconds=2.0),
        analysis=replace(s.analysis, prime_bars=0),
        universes={"test:tiny": list(TINY)} if universes is None else universes,
    )


def prow(name: str, **kw: Any) -> dict:
    row = {"name": name, "enabled": True, "applicable_timeframes": None, "min_bars_required": None,
           "confidence_threshold": None, "instantiation_params": None}
    row.update(kw)
    return row


def irow(name: str, period: int | None = None) -> dict:
    return {"name": name, "enabled": True, "applicable_timeframes": None, "min_bars_required": None,
            "confidence_threshold": None, "period": period, "parameters": None}


BASELINE = ([prow("Doji"), prow("Hammer", min_bars_required=2), prow("HeadShoulders")],
            [irow("RSI", 14), irow("SMA", 20)])


class StoreFactory:
    """A store factory: each call builds a fake store that shares this object's script and records."""

    def __init__(self, universe: list[str] | None = None, definitions=BASELINE,
                 definitions_error: BaseException | None = None, universe_error: BaseException | None = None,
                 factory_error: BaseException | None = None) -> None:
        self.universe = list(universe or [])
        self.definitions = definitions
        self.definitions_error = definitions_error
        self.universe_error = universe_error
        self.factory_error = factory_error
        self.created = 0
        self.closed = 0
        self.universe_calls: list[str] = []
        self.definition_calls = 0

    def __call__(self) -> "FakeStore":
        if self.factory_error is not None:
            raise self.factory_error
        self.created += 1
        return FakeStore(self)


class FakeStore:
    def __init__(self, owner: StoreFactory) -> None:
        self.owner = owner

    def load_definitions(self):
        self.owner.definition_calls += 1
        if self.owner.definitions_error is not None:
            raise self.owner.definitions_error
        return self.owner.definitions

    def load_universe(self, key: str) -> list[str]:
        self.owner.universe_calls.append(key)
        if self.owner.universe_error is not None:
            raise self.owner.universe_error
        return list(self.owner.universe)

    def close(self) -> None:
        self.owner.closed += 1


class FakeScheduler:
    """Answers every ``decide`` with ``decision``; records (now, running)."""

    def __init__(self, action: Action = Action.WAIT, window: Any = None) -> None:
        self.window = window
        self.decision = Decision(action, window)
        self.calls: list[tuple[float, bool]] = []

    def set(self, action: Action) -> None:
        self.decision = Decision(action, self.window, final_status="completed" if action is Action.STOP else None)

    def window_at(self, now: float) -> Any:
        return self.window

    def decide(self, now: float, running: bool) -> Decision:
        self.calls.append((now, running))
        return self.decision


class Service(StreamingService):
    """The facade over a real ServiceActor, plus what a test needs: a synchronous calendar step."""

    def __init__(self, settings: Settings, factory, store, scheduler, monitor_factory, clock: ManualClock) -> None:
        ref = ServiceActor.start(settings, factory, store, scheduler, monitor_factory, None, clock.now,
                                 timer_interval=3600.0)
        super().__init__(ref, settings)
        self.clock = clock

    def step_schedule(self) -> None:
        self.ref.ask(TimerTick(self.clock.now()), timeout=5)
        self.settle()

    def settle(self) -> None:
        """Wait until a session just started has finished starting and one ending has ended."""
        ref = self.ref.ask(GetStats(), timeout=5)["session_ref"]
        if ref is not None:
            try:
                ref.ask(GetStats(), timeout=10)
            except pykka.ActorDeadError:
                pass
        assert wait_until(lambda: (r := self.ref.ask(GetStats(), timeout=5)["session_ref"]) is None or r.is_alive(),
                          timeout=10)

    @property
    def last_outcome(self):
        return self.status()["last_session"]


def make_service(factory: FakeChildFactory | None = None, store: StoreFactory | None = None,
                 scheduler: FakeScheduler | None = None, clock: ManualClock | None = None,
                 settings: Settings | None = None, monitor_factory=None) -> Service:
    return Service(settings or make_settings(), factory or FakeChildFactory(), store or StoreFactory(),
                   scheduler, monitor_factory, clock or ManualClock(T0))


def session_actors() -> list[pykka.ActorRef]:
    return [ref for ref in pykka.ActorRegistry.get_by_class(SessionActor) if ref.is_alive()]


def publishes(factory: FakeChildFactory) -> list:
    return [e for m in factory.all_received("publisher") if isinstance(m, (Publish, PublishConfirmed))
            for e in m.events]


# -- start / stop / status -----------------------------------------------------------------------


def test_start_session_starts_once() -> None:
    factory = FakeChildFactory()
    svc = make_service(factory)
    started, status = svc.start_session()
    assert started is True and svc.running
    assert set(status) == STATUS_KEYS
    assert status["running"] is True
    session = status["session"]
    assert session["state"] == "running" and session["symbol_count"] == 3 and session["manual"] is True
    assert session["universe"] == "test:tiny"

    again, status2 = svc.start_session()
    assert again is False
    assert status2["running"] is True and status2["session"]["session_id"] == session["session_id"]
    assert factory.count("publisher") == 1 and factory.count("ingress") == 1
    assert len(session_actors()) == 1


def test_concurrent_starts_build_one_session() -> None:
    factory = FakeChildFactory()
    svc = make_service(factory)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(svc.start_session()[0])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False, False, False, True]
    assert factory.count("publisher") == 1 and len(session_actors()) == 1


def test_stop_session_returns_the_outcome() -> None:
    factory = FakeChildFactory()
    svc = make_service(factory)
    assert svc.stop_session() is None  # idle
    _, status = svc.start_session()
    sid = status["session"]["session_id"]

    outcome = svc.stop_session()
    assert isinstance(outcome, SessionOutcome)
    assert outcome.session_id == sid and outcome.final_status == "stopped" and outcome.reason == "manual stop"
    assert (outcome.total_patterns, outcome.total_indicators) == (PUBLISHER_STATS.patterns, PUBLISHER_STATS.indicators)
    assert not svc.running
    [stopped] = [e for e in publishes(factory) if isinstance(e, SessionStopped)]
    assert stopped.session_id == sid and stopped.final_status == "stopped"

    status = svc.status()
    assert status["running"] is False and status["session"] is None
    last = status["last_session"]
    assert last["session_id"] == sid and last["final_status"] == "stopped" and last["reason"] == "manual stop"
    assert last["total_patterns"] == 7 and last["total_indicators"] == 11
    assert last["stopped_at"] >= last["started_at"]
    assert svc.stop_session() is None  # nothing runs any more


def test_a_new_session_can_start_after_a_stop() -> None:
    factory = FakeChildFactory()
    svc = make_service(factory)
    _, first = svc.start_session()
    svc.stop_session()
    started, second = svc.start_session()
    assert started is True and second["session"]["session_id"] != first["session"]["session_id"]
    assert factory.count("publisher") == 2


def test_status_has_the_same_shape_idle_and_running() -> None:
    svc = make_service(store=StoreFactory())
    idle = svc.status()
    assert set(idle) == STATUS_KEYS
    assert idle == {"running": False, "session": None, "last_session": None, "universe": "test:tiny",
                    "definitions_source": "", "definition_problems": [], "shutting_down": False}
    _, running = svc.start_session()
    assert set(running) == STATUS_KEYS and set(svc.status()) == STATUS_KEYS
    assert running["running"] is True and isinstance(running["session"], dict)
    assert running["definitions_source"] == "database" and running["definition_problems"] == []
    svc.stop_session()
    after = svc.status()
    assert set(after) == STATUS_KEYS
    assert set(after["last_session"]) == {"session_id", "final_status", "reason", "started_at", "stopped_at",
                                          "total_patterns", "total_indicators"}


def test_health_monitor_factory_gets_the_plan() -> None:
    plans: list[SessionPlan] = []

    def monitor_for(plan: SessionPlan) -> Any:
        plans.append(plan)
        return None

    svc = make_service(monitor_factory=monitor_for)
    _, status = svc.start_session(manual=False)
    [plan] = plans
    assert plan.session_id == status["session"]["session_id"]
    assert plan.symbols == tuple(TINY) and plan.universe == "test:tiny" and plan.manual is False
    assert len(plan.definitions.definitions) == 5 and plan.problems == ()


def test_the_plan_reads_the_exchange_sessions_by_the_service_clock() -> None:
    """A 60-minute definition makes the plan read the calendar around the service's clock (a
    ManualClock here, a year before the wall clock), never around the host's time."""
    plans: list[SessionPlan] = []
    store = StoreFactory(definitions=([prow("Doji", applicable_timeframes=["60min"])], []))
    svc = make_service(store=store, monitor_factory=lambda plan: plans.append(plan))
    svc.start_session()
    [plan] = plans
    [(lo, hi)] = plan.sessions.covers
    assert lo <= T0 < hi


# -- universe ------------------------------------------------------------------------------------


def test_resolve_universe_from_yaml() -> None:
    store = StoreFactory(universe=["ZZZ"])
    assert resolve_universe(make_settings(), store) == TINY
    assert store.created == 0  # YAML needs no database


def test_resolve_universe_from_yaml_is_normalised() -> None:
    settings = make_settings(universes={"test:tiny": ["aapl", "AAPL", " msft ", "Nvda", "MSFT"]})
    assert resolve_universe(settings, StoreFactory()) == ["AAPL", "MSFT", "NVDA"]


def test_resolve_universe_from_database_is_normalised() -> None:
    store = StoreFactory(universe=["aapl", "MSFT", "AAPL", " nvda ", "", "   ", "brk.b"])
    settings = make_settings(source="database", universe="market_leaders:top_500")
    assert resolve_universe(settings, store) == ["AAPL", "MSFT", "NVDA", "BRK.B"]
    assert store.universe_calls == ["market_leaders:top_500"] and store.closed == store.created == 1


def test_resolve_universe_database_error_is_a_universe_error() -> None:
    store = StoreFactory(universe_error=ConnectionError("db down"))
    with pytest.raises(UniverseError, match="market_leaders:top_500.*db down"):
        resolve_universe(make_settings(source="database", universe="market_leaders:top_500"), store)
    assert store.closed == 1


@pytest.mark.parametrize("symbols", [[], ["", "  "]])
def test_empty_database_universe_starts_nothing(symbols) -> None:
    factory = FakeChildFactory()
    store = StoreFactory(universe=symbols)
    svc = make_service(factory, store, settings=make_settings(source="database", universe="market_leaders:top_500"))
    started, status = svc.start_session()
    assert not started and status["start_error"]["cause"] == "universe"
    assert "resolves to no symbols" in status["start_error"]["reason"]
    assert factory.calls == [] and session_actors() == []
    assert svc.running is False and svc.status()["running"] is False
    assert store.definition_calls == 0  # the universe is checked first


@pytest.mark.parametrize("universes,universe", [({"test:tiny": []}, "test:tiny"), ({"test:tiny": TINY}, "nope")])
def test_empty_or_unknown_yaml_universe_starts_nothing(universes, universe) -> None:
    factory = FakeChildFactory()
    svc = make_service(factory, settings=make_settings(universes=universes, universe=universe))
    started, status = svc.start_session()
    assert not started and status["start_error"]["cause"] == "universe"
    assert factory.calls == [] and session_actors() == []


def test_service_session_uses_the_database_universe() -> None:
    factory = FakeChildFactory()
    store = StoreFactory(universe=["tsla", "AAPL", "tsla"])
    svc = make_service(factory, store, settings=make_settings(source="database", universe="market_leaders:top_500"))
    _, status = svc.start_session()
    assert status["session"]["symbol_count"] == 2 and status["universe"] == "market_leaders:top_500"
    assert sorted(c for c in factory.calls if c.startswith("symbol:")) == ["symbol:AAPL", "symbol:TSLA"]
    svc.stop_session()  # the publisher has handled everything by the end
    [started] = [e for e in publishes(factory) if isinstance(e, SessionStarted)]
    assert started.symbol_count == 2 and started.universe == "market_leaders:top_500"


# -- definitions ---------------------------------------------------------------------------------


def test_load_definitions_from_the_database() -> None:
    store = StoreFactory()
    definitions, problems, source = load_definitions(make_settings(), store)
    assert tuple(d.name for d in definitions.definitions) == ("Doji", "Hammer", "HeadShoulders", "RSI", "SMA")
    assert problems == [] and source == "database"
    assert store.closed == store.created == 1


@pytest.mark.parametrize("store", [
    StoreFactory(definitions_error=ConnectionError("connection refused")),
    StoreFactory(factory_error=OSError("no route to host")),
], ids=["load-raises", "connect-raises"])
def test_load_definitions_falls_back_to_config_yaml(store: StoreFactory) -> None:
    definitions, problems, source = load_definitions(make_settings(), store)
    assert tuple(d.name for d in definitions.definitions) == FALLBACK_NAMES
    assert "config.yaml" in source and "database" in source
    assert len(problems) == 1
    assert "unreachable" in problems[0] and "fallback" in problems[0]
    assert store.closed == store.created  # a store that was opened is closed


def test_database_definition_problems_are_reported() -> None:
    store = StoreFactory(definitions=([prow("Doji"), prow("ThreeBlackCrowz")], []))  # TA-Lib's ThreeBlackCrows is known
    definitions, problems, source = load_definitions(make_settings(), store)
    assert source == "database" and tuple(d.name for d in definitions.definitions) == ("Doji",)
    assert len(problems) == 1 and "ThreeBlackCrowz" in problems[0]


def test_zero_database_definitions_are_loud() -> None:
    _, problems, _ = load_definitions(make_settings(), StoreFactory(definitions=([], [])))
    assert problems and "no pattern or indicator definitions" in problems[0]


def test_service_falls_back_and_says_so() -> None:
    factory = FakeChildFactory()
    store = StoreFactory(definitions_error=ConnectionError("connection refused"))
    svc = make_service(factory, store)
    started, status = svc.start_session()
    assert started is True
    assert "config.yaml" in status["definitions_source"]
    assert len(status["definition_problems"]) == 1 and "fallback" in status["definition_problems"][0]
    svc.stop_session()  # the publisher has seen everything by the end
    alerts = [e for e in publishes(factory) if isinstance(e, CriticalAlert)]
    assert [a.component for a in alerts] == ["definitions"]
    assert "fallback" in alerts[0].message


# -- start-up failure ----------------------------------------------------------------------------


@pytest.mark.parametrize("child", ["publisher", "persistence", "ingress"])
def test_startup_failure_returns_false_with_a_failed_outcome(child: str) -> None:
    factory = FakeChildFactory(fail_open={child})
    svc = make_service(factory)
    started, status = svc.start_session()
    assert started is False
    assert set(status) == STATUS_KEYS | {"start_error"} and child in status["start_error"]["reason"]
    assert status["running"] is False and status["session"] is None
    assert status["last_session"]["final_status"] == "failed"
    assert child in status["last_session"]["reason"]
    assert not svc.running and svc.stop_session() is None
    sent = publishes(factory) + [e for batch in factory.direct for e in batch]
    [stopped] = [e for e in sent if isinstance(e, SessionStopped)]
    assert stopped.final_status == "failed"
    assert any(isinstance(e, CriticalAlert) and e.severity == "critical" for e in sent)


# -- the calendar loop ---------------------------------------------------------------------------


def test_schedule_start_starts_an_automatic_session() -> None:
    factory = FakeChildFactory()
    scheduler = FakeScheduler(Action.START)
    clock = ManualClock(T0)
    svc = make_service(factory, scheduler=scheduler, clock=clock)
    svc.step_schedule()
    assert svc.running
    assert scheduler.calls == [(T0, False)]
    assert svc.status()["session"]["manual"] is False
    # the calendar says START again (while running it would say KEEP, but START must not double up)
    clock.advance(1)
    svc.step_schedule()
    assert factory.count("publisher") == 1 and len(session_actors()) == 1
    assert scheduler.calls[-1] == (T0 + 1, True)


def test_schedule_stop_ends_the_session_completed() -> None:
    factory = FakeChildFactory()
    scheduler = FakeScheduler(Action.START)
    clock = ManualClock(T0)
    svc = make_service(factory, scheduler=scheduler, clock=clock)
    svc.step_schedule()
    sid = svc.status()["session"]["session_id"]
    scheduler.set(Action.KEEP)
    clock.advance(60)
    svc.step_schedule()
    assert svc.running  # KEEP changes nothing
    scheduler.set(Action.STOP)
    clock.advance(60)
    svc.step_schedule()
    assert not svc.running
    last = svc.status()["last_session"]
    assert last["session_id"] == sid and last["final_status"] == "completed" and last["reason"] == "market close"
    [stopped] = [e for e in publishes(factory) if isinstance(e, SessionStopped)]
    assert stopped.final_status == "completed"


def test_schedule_wait_starts_nothing() -> None:
    factory = FakeChildFactory()
    scheduler = FakeScheduler(Action.WAIT)
    clock = ManualClock(T0)
    svc = make_service(factory, scheduler=scheduler, clock=clock)
    for _ in range(3):
        svc.step_schedule()
        clock.advance(30)
    assert not svc.running and factory.calls == [] and session_actors() == []
    assert len(scheduler.calls) == 3 and all(running is False for _, running in scheduler.calls)
    assert svc.status()["last_session"] is None


def test_schedule_stop_never_ends_a_manual_session() -> None:
    factory = FakeChildFactory()
    scheduler = FakeScheduler(Action.STOP)
    svc = make_service(factory, scheduler=scheduler)
    started, _ = svc.start_session(manual=True)
    assert started
    for _ in range(3):
        svc.step_schedule()
    assert svc.running and svc.last_outcome is None
    assert not any(isinstance(e, SessionStopped) for e in publishes(factory))
    assert svc.stop_session().final_status == "stopped"


def test_failed_automatic_session_is_retried_after_the_back_off() -> None:
    factory = FakeChildFactory(fail_open={"ingress"})
    scheduler = FakeScheduler(Action.START)
    clock = ManualClock(T0)
    svc = make_service(factory, scheduler=scheduler, clock=clock)

    svc.step_schedule()  # fails at start-up
    assert not svc.running and svc.status()["last_session"]["final_status"] == "failed"
    assert factory.count("publisher") == 1

    clock.set(T0 + 10)
    svc.step_schedule()
    clock.set(T0 + 29)
    svc.step_schedule()
    assert factory.count("publisher") == 1  # held back: 30 s have not passed

    clock.set(T0 + 30)
    svc.step_schedule()  # retried, fails again: the back-off doubles to 60 s
    assert factory.count("publisher") == 2 and not svc.running

    clock.set(T0 + 89)
    svc.step_schedule()
    assert factory.count("publisher") == 2

    factory.fail_open.clear()  # the fault is gone
    clock.set(T0 + 90)
    svc.step_schedule()
    assert factory.count("publisher") == 3 and svc.running
    assert svc.status()["session"]["manual"] is False


def test_successful_session_resets_the_back_off() -> None:
    factory = FakeChildFactory(fail_open={"ingress"})
    scheduler = FakeScheduler(Action.START)
    clock = ManualClock(T0)
    svc = make_service(factory, scheduler=scheduler, clock=clock)
    svc.step_schedule()                      # fail: retry at +30, next delay 60
    clock.set(T0 + 30)
    svc.step_schedule()                      # fail: retry at +90, next delay 120
    factory.fail_open.clear()
    clock.set(T0 + 90)
    svc.step_schedule()                      # runs
    assert svc.running
    scheduler.set(Action.STOP)
    clock.set(T0 + 200)
    svc.step_schedule()                      # completed: delay back to 30
    assert svc.status()["last_session"]["final_status"] == "completed"
    factory.fail_open.add("ingress")
    scheduler.set(Action.START)
    clock.set(T0 + 300)
    svc.step_schedule()                      # fails: retry at +330
    count = factory.count("publisher")
    clock.set(T0 + 329)
    svc.step_schedule()
    assert factory.count("publisher") == count
    clock.set(T0 + 330)
    svc.step_schedule()
    assert factory.count("publisher") == count + 1


def test_schedule_start_with_no_universe_alerts_and_backs_off() -> None:
    factory = FakeChildFactory()
    scheduler = FakeScheduler(Action.START)
    clock = ManualClock(T0)
    store = StoreFactory(universe=[])
    svc = make_service(factory, store, scheduler=scheduler, clock=clock,
                       settings=make_settings(source="database", universe="market_leaders:top_500"))
    svc.step_schedule()  # the session plans itself, fails, and says so
    assert not svc.running and factory.calls == []
    [[alert, stopped]] = factory.direct  # no publisher was started: the direct fallback
    assert isinstance(alert, CriticalAlert) and alert.component == "universe" and alert.severity == "critical"
    assert "no symbols" in alert.message and alert.raised_at == T0
    assert isinstance(stopped, SessionStopped) and stopped.final_status == "failed"
    calls = len(store.universe_calls)
    clock.set(T0 + 10)
    svc.step_schedule()
    assert len(store.universe_calls) == calls  # held back, not retried every poll
    clock.set(T0 + 30)
    svc.step_schedule()
    assert len(store.universe_calls) == calls + 1


def test_manual_start_with_no_universe_says_why() -> None:
    svc = make_service(store=StoreFactory(universe=[]),
                       settings=make_settings(source="database", universe="market_leaders:top_500"))
    started, status = svc.start_session()
    assert not started and status["start_error"]["cause"] == "universe"
    assert "no symbols" in status["start_error"]["reason"]


def test_shutdown_ends_the_session_stopped_and_refuses_later_starts() -> None:
    factory = FakeChildFactory()
    svc = make_service(factory, scheduler=FakeScheduler(Action.START))
    assert svc.start_session()[0]
    outcome = svc.shutdown()
    assert outcome.final_status == "stopped" and "signal" in outcome.reason
    assert not svc.running and factory.count("publisher") == 1
    started, status = svc.start_session()
    assert not started and "shutting down" in status["refused"] and status["shutting_down"] is True
    svc.step_schedule()  # the calendar says START: nothing starts while shutting down
    assert factory.count("publisher") == 1


def test_shutdown_when_idle_returns_none() -> None:
    svc = make_service()
    assert svc.shutdown() is None
    assert svc.start_session()[1]["refused"]


def test_a_manual_stop_in_market_hours_holds_until_a_manual_start() -> None:
    from tickstock.market.calendar import SessionWindow
    import datetime as dt

    window = SessionWindow(dt.date(2026, 11, 25), T0, T0 + 23_400)
    factory = FakeChildFactory()
    scheduler = FakeScheduler(Action.START, window)
    svc = make_service(factory, scheduler=scheduler)
    svc.step_schedule()
    assert svc.running and svc.status()["session"]["manual"] is False
    assert svc.stop_session("stopped", "operator").final_status == "stopped"
    for _ in range(3):
        svc.step_schedule()  # the calendar still says START, but the operator said stop
    assert not svc.running and factory.count("publisher") == 1
    assert svc.start_session(manual=True)[0]  # a manual start lifts the hold
    assert svc.stop_session("completed", "end of test").final_status == "completed"  # not an operator's hold
    svc.step_schedule()
    assert svc.running


def test_a_failed_manual_session_does_not_delay_the_calendar() -> None:
    factory = FakeChildFactory(fail_open={"ingress"})
    clock = ManualClock(T0)
    scheduler = FakeScheduler(Action.WAIT)
    svc = make_service(factory, scheduler=scheduler, clock=clock)
    started, status = svc.start_session(manual=True)
    assert not started and status["last_session"]["final_status"] == "failed"
    factory.fail_open.clear()
    scheduler.set(Action.START)
    svc.step_schedule()  # the same instant: a manual failure set no back-off
    assert svc.running and factory.count("publisher") == 2


def test_the_heartbeat_lives_as_long_as_the_service_and_keeps_the_sessions_key() -> None:
    from tests.unit.actors.fakes import Recorder

    class Beacon(pykka.ThreadingActor):
        def __init__(self, seen: Recorder) -> None:
            super().__init__()
            self.seen = seen

        def on_receive(self, message):
            self.seen.tell(message)

    seen = Recorder("beacon")
    beacons: list = []

    def heartbeat():
        beacons.append(Beacon.start(seen))
        return beacons[-1]

    factory = FakeChildFactory()
    ref = ServiceActor.start(make_settings(), factory, StoreFactory(), None, None, heartbeat, ManualClock(T0).now)
    svc = StreamingService(ref, make_settings())
    svc.status()  # answered once on_start has run
    assert len(beacons) == 1 and beacons[0].is_alive()  # before any session
    assert svc.start_session()[0]
    assert wait_until(lambda: seen.of_type(RetainSession))  # the session's key is kept by the beacon
    svc.stop_session()
    assert wait_until(lambda: seen.of_type(ClearSession))
    assert beacons[0].is_alive()  # no session, still beating
    ref.stop(timeout=5)
    assert not beacons[0].is_alive()


def test_each_session_is_given_the_process_heap_keeper() -> None:
    """The runtime's HeapKeeper reaches every session the service starts (tickstock/heap.py)."""

    class Heap:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def session_starting(self):
            self.calls.append("starting")

        def session_live(self, now):
            self.calls.append("live")

        def tick(self, now):
            return None

        def session_ended(self):
            self.calls.append("ended")

    heap = Heap()
    ref = ServiceActor.start(make_settings(), FakeChildFactory(), StoreFactory(), None, None, None,
                             ManualClock(T0).now, timer_interval=3600.0, heap=heap)
    svc = Service.__new__(Service)
    StreamingService.__init__(svc, ref, make_settings())
    try:
        svc.start_session()
        [session] = session_actors()
        assert session.proxy().heap.get(timeout=5) is heap
        assert wait_until(lambda: heap.calls == ["starting", "live"])
        svc.stop_session()
        assert wait_until(lambda: heap.calls == ["starting", "live", "ended"], timeout=10)
    finally:
        ref.stop()
