"""The dispatcher's guarantees (tickstock/actors/dispatch.py), each shown failing without it:
order, one message at a time per actor, fairness, pykka's failure and stop semantics (checked
against a real ``pykka.ThreadingActor`` where they must be the same), BaseException, stop_all,
workers that survive everything, shutdown, and dispatcher threads that end with their session.

Waits are on events and futures with generous timeouts that only guard against a hang; no test
asserts how fast anything is."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Callable

import msgspec
import pykka
import pytest

from tickstock.actors.dispatch import Dispatcher, PooledActor
from tickstock.actors.handle import ChildHandle
from tickstock.actors.plan import SessionPlan
from tickstock.actors.symbol import SymbolActor
from tickstock.actors.wiring import ProductionFactory
from tickstock.analysis import definitions_from_config
from tickstock.config import Settings
from tickstock.messages.commands import Ping

pytestmark = pytest.mark.timeout(30)

WAIT = 5.0  # a guard against hanging, never a measure of speed


# -- actors under test ---------------------------------------------------------------------------


class _Probe:
    """Records its hooks and messages in a shared ``events`` list. A callable message is run with
    the actor (and its result returned); any other message is recorded and returned."""

    def __init__(self, events: list, name: str, on_start: Callable | None = None,
                 on_stop: Callable | None = None, on_failure: Callable | None = None, *runtime: Any) -> None:
        super().__init__(*runtime)
        self.events = events
        self.name = name
        self.handled: list = []
        self._on_start, self._on_stop, self._on_failure = on_start, on_stop, on_failure

    def on_start(self) -> None:
        self.events.append(("start", self.name))
        if self._on_start:
            self._on_start(self)

    def on_stop(self) -> None:
        self.events.append(("stop", self.name))
        if self._on_stop:
            self._on_stop(self)

    def on_failure(self, exc_type, exc_value, tb) -> None:
        self.events.append(("failure", self.name, exc_type))
        if self._on_failure:
            self._on_failure(self)

    def on_receive(self, message: Any) -> Any:
        if callable(message):
            return message(self)
        self.handled.append(message)
        self.events.append(("msg", self.name, message))
        return message

    def whoami(self) -> str:  # for proxies
        return self.name


class PooledProbe(_Probe, PooledActor):
    pass


class ThreadProbe(_Probe, pykka.ThreadingActor):
    use_daemon_thread = True  # a test that fails half-way must not keep the interpreter alive


def wait_on(event: threading.Event) -> Callable:
    def handler(actor: Any) -> None:
        assert event.wait(WAIT), "the test never released this handler"
    return handler


def raise_(exc: BaseException) -> Callable:
    def handler(actor: Any) -> None:
        raise exc
    return handler


def kinds(events: list, name: str) -> list:
    return [e[0] if e[0] != "msg" else e[2] for e in events if e[1] == name]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def dispatchers():
    """Builds dispatchers and shuts every one down at the end (workers joined)."""
    made: list[Dispatcher] = []

    def make(workers: int = 2, slice_size: int = 16, **kwargs: Any) -> Dispatcher:
        d = Dispatcher(f"test-{uuid.uuid4().hex[:6]}", workers=workers, slice_size=slice_size, **kwargs)
        made.append(d)
        return d

    yield make
    for d in made:
        assert d.shutdown(timeout=WAIT), f"{d.name}: workers did not exit"


@pytest.fixture(params=["pooled", "threading"])
def runtime(request, dispatchers):
    """Starts probes on a 1-worker dispatcher or as ThreadingActors: pykka's semantics must be the
    same on both."""
    d = dispatchers(workers=1)

    def start(events: list, name: str, **hooks: Any) -> pykka.ActorRef:
        if request.param == "pooled":
            return PooledProbe.start(events, name, hooks.get("on_start"), hooks.get("on_stop"),
                                     hooks.get("on_failure"), d)
        return ThreadProbe.start(events, name, hooks.get("on_start"), hooks.get("on_stop"), hooks.get("on_failure"))

    start.kind = request.param
    start.dispatcher = d
    return start


def pooled(d: Dispatcher, events: list, name: str, **hooks: Any) -> pykka.ActorRef:
    return PooledProbe.start(events, name, hooks.get("on_start"), hooks.get("on_stop"), hooks.get("on_failure"), d)


def handled(ref: pykka.ActorRef) -> list:
    return ref.ask(lambda a: list(a.handled), timeout=WAIT)


# -- order and one at a time ---------------------------------------------------------------------


def test_messages_of_one_actor_are_handled_in_the_order_sent(dispatchers):
    d = dispatchers(workers=4, slice_size=3)
    events: list = []
    ref = pooled(d, events, "a")
    for i in range(3000):
        ref.tell(i)
    assert handled(ref) == list(range(3000))


def test_each_senders_order_is_kept_with_many_senders_and_workers(dispatchers):
    d = dispatchers(workers=4, slice_size=2)
    refs = [pooled(d, [], f"a{i}") for i in range(4)]
    go = threading.Event()

    def send(sender: int) -> None:
        go.wait(WAIT)
        for seq in range(500):
            for ref in refs:
                ref.tell((sender, seq))

    senders = [threading.Thread(target=send, args=(s,)) for s in range(6)]
    for t in senders:
        t.start()
    go.set()
    for t in senders:
        t.join(WAIT)
    for ref in refs:
        got = handled(ref)
        assert len(got) == 6 * 500
        for sender in range(6):
            assert [seq for s, seq in got if s == sender] == list(range(500))


def test_never_two_messages_of_one_actor_at_once(dispatchers):
    """Many senders, 4 workers: a handler that finds its actor already busy is a violation. The
    handler gives the GIL away while busy, so an overlap would be seen if it could happen."""
    d = dispatchers(workers=4, slice_size=2)
    refs = [pooled(d, [], f"a{i}") for i in range(6)]
    violations: list = []
    workers_used: set = set()

    def busy_handler(actor: Any) -> None:
        lock = actor.__dict__.setdefault("busy", threading.Lock())
        if not lock.acquire(blocking=False):
            violations.append(actor.name)
            return
        try:
            workers_used.add(threading.current_thread().name)
            actor.count = getattr(actor, "count", 0) + 1  # a read-modify-write an overlap would lose
            threading.Event().wait(0)  # let other threads run while this actor is busy
        finally:
            lock.release()

    go = threading.Event()

    def send() -> None:
        go.wait(WAIT)
        for _ in range(300):
            for ref in refs:
                ref.tell(busy_handler)

    senders = [threading.Thread(target=send) for _ in range(6)]
    for t in senders:
        t.start()
    go.set()
    for t in senders:
        t.join(WAIT)
    counts = [ref.ask(lambda a: a.count, timeout=WAIT) for ref in refs]
    assert violations == []
    assert counts == [6 * 300] * len(refs)
    assert len(workers_used) > 1  # the test did run actors on several workers


# -- fairness ------------------------------------------------------------------------------------


@pytest.mark.parametrize("slice_size", [1, 16])
@pytest.mark.parametrize("flooders", [1, 3])
def test_a_flooded_actor_cannot_starve_another(dispatchers, slice_size, flooders):
    """One worker, held by a gate while ``flooders`` actors get 1,000 messages each and then a
    quiet actor gets one: the quiet one runs after at most ``slice_size`` messages of each."""
    d = dispatchers(workers=1, slice_size=slice_size)
    release = threading.Event()
    gate = pooled(d, [], "gate")
    gate.tell(wait_on(release))
    events: list = []
    floods = [pooled(d, events, f"flood{i}") for i in range(flooders)]
    quiet = pooled(d, [], "quiet")
    for ref in floods:
        for i in range(1000):
            ref.tell(i)
    names = [f"flood{i}" for i in range(flooders)]
    seen = quiet.ask(lambda a: [sum(1 for e in list(events) if e[0] == "msg" and e[1] == n) for n in names],
                     block=False)
    release.set()
    assert seen.get(timeout=WAIT) == [slice_size] * flooders
    assert [len(handled(f)) for f in floods] == [1000] * flooders


# -- pykka's semantics, on both runtimes ---------------------------------------------------------


def test_on_start_runs_before_the_first_message(runtime):
    events: list = []
    release = threading.Event()
    ref = runtime(events, "a", on_start=wait_on(release))
    ref.tell("m1")
    ref.tell("m2")
    release.set()
    assert ref.ask("m3", timeout=WAIT) == "m3"
    assert kinds(events, "a") == ["start", "m1", "m2", "m3"]
    if runtime.kind == "pooled":
        assert ref.ask(lambda a: threading.current_thread().name, timeout=WAIT).startswith(runtime.dispatcher.name)


def test_an_exception_in_a_tell_kills_only_that_actor(runtime):
    events: list = []
    release = threading.Event()
    ref = runtime(events, "a")
    other = runtime(events, "b")
    ref.tell(wait_on(release))
    ref.tell(raise_(ValueError("boom")))
    ref.tell("dropped")
    queued_ask = ref.ask("never answered", block=False)
    release.set()
    with pytest.raises(pykka.ActorDeadError):
        queued_ask.get(timeout=WAIT)
    assert not ref.is_alive() and ref not in pykka.ActorRegistry.get_all()
    assert kinds(events, "a") == ["start", "failure"]  # no on_stop, the tell after it dropped
    assert ("failure", "a", ValueError) in events
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")
    assert other.ask("still here", timeout=WAIT) == "still here"


def test_an_exception_in_an_ask_goes_to_the_caller_and_the_actor_lives(runtime):
    events: list = []
    ref = runtime(events, "a")
    with pytest.raises(ValueError, match="for the caller"):
        ref.ask(raise_(ValueError("for the caller")), timeout=WAIT)
    assert ref.ask("next", timeout=WAIT) == "next"
    assert ref.is_alive()
    assert kinds(events, "a") == ["start", "next"]


def test_an_exception_in_on_failure_leaves_the_actor_dead_and_nothing_else(runtime):
    events: list = []
    ref = runtime(events, "a", on_failure=raise_(RuntimeError("in on_failure")))
    other = runtime(events, "b")
    ref.tell(raise_(ValueError("boom")))
    assert ref.actor_stopped.wait(WAIT)
    assert kinds(events, "a") == ["start", "failure"]
    assert other.ask("ok", timeout=WAIT) == "ok"


def test_an_exception_in_on_start_kills_the_actor_without_hooks(runtime):
    events: list = []
    release = threading.Event()
    ref = runtime(events, "a", on_start=lambda a: (wait_on(release)(a), 1 / 0))
    ref.tell("dropped")
    queued_ask = ref.ask("never answered", block=False)
    release.set()
    with pytest.raises(pykka.ActorDeadError):
        queued_ask.get(timeout=WAIT)
    assert kinds(events, "a") == ["start"]  # neither on_stop nor on_failure
    assert runtime(events, "b").ask("ok", timeout=WAIT) == "ok"


def test_stop_handles_what_was_queued_before_it_then_runs_on_stop(runtime):
    events: list = []
    release = threading.Event()
    ref = runtime(events, "a")
    ref.tell(wait_on(release))
    for m in ("m1", "m2", "m3"):
        ref.tell(m)
    stopped = ref.stop(block=False)
    after = ref.ask("after the stop", block=False)
    release.set()
    assert stopped.get(timeout=WAIT) is True
    with pytest.raises(pykka.ActorDeadError):
        after.get(timeout=WAIT)
    assert kinds(events, "a") == ["start", "m1", "m2", "m3", "stop"]
    assert ref.stop(timeout=WAIT) is False  # already dead
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")


def test_an_exception_in_on_stop_is_logged_and_the_actor_is_stopped(runtime):
    events: list = []
    ref = runtime(events, "a", on_stop=raise_(RuntimeError("in on_stop")))
    assert ref.stop(timeout=WAIT) is True
    assert not ref.is_alive()
    assert kinds(events, "a") == ["start", "stop"]
    assert runtime(events, "b").ask("ok", timeout=WAIT) == "ok"


def test_proxies_work(runtime):
    ref = runtime([], "a")
    assert ref.proxy().whoami().get(timeout=WAIT) == "a"
    assert ref.proxy().name.get(timeout=WAIT) == "a"


def test_stop_all_stops_pooled_and_threading_actors_in_reverse_start_order(dispatchers):
    d1, d2 = dispatchers(workers=1), dispatchers(workers=2)
    events: list = []
    refs = [pooled(d1, events, "p1"), ThreadProbe.start(events, "t1"), pooled(d2, events, "p2"),
            pooled(d1, events, "p3")]
    for ref in refs:
        ref.tell("work")
    assert pykka.ActorRegistry.stop_all(block=True, timeout=WAIT) == [True] * len(refs)
    assert [e[1] for e in events if e[0] == "stop"] == ["p3", "p2", "t1", "p1"]
    assert not any(ref.is_alive() for ref in refs)


# -- BaseException ---------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
def test_a_base_exception_in_a_tell_stops_every_actor_even_with_one_worker(dispatchers, exc):
    """As pykka: the actor stops (on_stop runs) and every actor is asked to stop. pykka's thread
    would wait for them all: one worker doing that here could never run their stops."""
    d = dispatchers(workers=1)
    events: list = []
    ref = pooled(d, events, "a")
    others = [pooled(d, events, "b"), ThreadProbe.start(events, "t"), pooled(d, events, "c")]
    ref.tell(raise_(exc))
    for r in [ref, *others]:
        assert r.actor_stopped.wait(WAIT), f"{r} was not stopped"
    assert ("stop", "a") in events and all(("stop", n) in events for n in ("b", "t", "c"))
    assert not any(e[0] == "failure" for e in events)
    assert d.alive_threads() == d._threads  # the worker lives on
    assert pooled(d, [], "fresh").ask("ok", timeout=WAIT) == "ok"


def test_a_base_exception_in_an_ask_answers_the_caller_with_actor_dead(dispatchers):
    """pykka leaves that caller waiting forever; here it learns the actor is dead."""
    d = dispatchers(workers=1)
    ref = pooled(d, [], "a")
    other = pooled(d, [], "b")
    with pytest.raises(pykka.ActorDeadError, match="SystemExit"):
        ref.ask(raise_(SystemExit(1)), timeout=WAIT)
    assert other.actor_stopped.wait(WAIT)


@pytest.mark.parametrize("hook", ["on_start", "on_failure", "on_stop"])
def test_a_base_exception_in_a_hook_stops_the_actor_and_every_other(dispatchers, hook):
    d = dispatchers(workers=1)
    events: list = []
    other = pooled(d, events, "b")  # first: an on_start can run as soon as its actor is started
    ref = pooled(d, events, "a", **{hook: raise_(SystemExit(2))})
    queued = ref.ask("maybe", block=False)
    if hook == "on_failure":
        ref.tell(raise_(ValueError("first")))
    elif hook == "on_stop":
        ref.stop(block=False)
    assert ref.actor_stopped.wait(WAIT) and other.actor_stopped.wait(WAIT)
    if hook == "on_start":
        with pytest.raises(pykka.ActorDeadError):
            queued.get(timeout=WAIT)
    assert kinds(events, "a").count("stop") <= 1  # never a second on_stop
    assert d.alive_threads() == d._threads
    assert pooled(d, [], "fresh").ask("ok", timeout=WAIT) == "ok"


# -- the workers survive everything ----------------------------------------------------------------


def test_workers_survive_every_kind_of_actor_error(dispatchers):
    d = dispatchers(workers=2)
    events: list = []
    bystander = pooled(d, events, "bystander")
    victims = [
        lambda: pooled(d, events, "tell").tell(raise_(ValueError())),
        lambda: pooled(d, events, "ask").ask(raise_(ValueError()), block=False),
        lambda: pooled(d, events, "start", on_start=raise_(ValueError())),
        lambda: pooled(d, events, "failure", on_failure=raise_(ValueError())).tell(raise_(ValueError())),
        lambda: pooled(d, events, "stop", on_stop=raise_(ValueError())).stop(block=False),
    ]
    for victim in victims:
        victim()
    for _ in range(3):  # all of the above has had its turn once these are answered
        assert bystander.ask("alive", timeout=WAIT) == "alive"
    assert d.alive_threads() == d._threads
    assert [pooled(d, [], f"fresh{i}").ask(i, timeout=WAIT) for i in range(4)] == [0, 1, 2, 3]


def test_a_future_answered_by_someone_else_kills_only_that_actor(dispatchers):
    """Answering the reply fails inside the runtime (pykka's thread would die with the actor
    still looking alive): the actor dies, its queued asks are answered, the worker lives."""
    d = dispatchers(workers=1)
    release = threading.Event()
    bystander = pooled(d, [], "bystander")
    ref = pooled(d, [], "a")
    ref.tell(wait_on(release))
    tampered = ref.ask("x", block=False)
    tampered.set("answered by the test")
    queued = ref.ask("y", block=False)
    release.set()
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=WAIT)
    assert not ref.is_alive()
    assert bystander.ask("ok", timeout=WAIT) == "ok"  # only that actor died
    assert d.alive_threads() == d._threads


def test_a_message_racing_with_the_death_is_answered(dispatchers):
    """A put that passed ``is_alive()`` just before the actor died still gets an answer."""
    d = dispatchers(workers=1)
    ref = pooled(d, [], "a")
    assert ref.stop(timeout=WAIT) is True
    late = pykka.ThreadingFuture()
    ref.actor_inbox.put(type("Envelope", (), {"message": "late", "reply_to": late})())
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=WAIT)


# -- shutdown --------------------------------------------------------------------------------------


def test_shutdown_stops_the_actors_and_ends_the_workers(dispatchers):
    d = dispatchers(workers=3)
    events: list = []
    refs = [pooled(d, events, f"a{i}") for i in range(5)]
    for ref in refs:
        ref.tell("work")
    assert d.shutdown(timeout=WAIT) is True
    assert d.alive_threads() == [] and d.actors() == []
    assert all(("msg", f"a{i}", "work") in events and ("stop", f"a{i}") in events for i in range(5))
    assert not any(ref.is_alive() for ref in refs)
    assert d.shutdown(timeout=WAIT) is True  # again: nothing to do


def test_a_shut_down_dispatcher_runs_nothing_but_leaves_no_caller_waiting(dispatchers):
    d = dispatchers(workers=1)
    d.shutdown(timeout=WAIT)
    events: list = []
    ref = pooled(d, events, "late")
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("x", timeout=WAIT)
    assert events == []  # not even on_start ran


@pytest.mark.parametrize("drained_by", ["the caller", "the last worker"])
def test_a_turn_queued_behind_the_workers_exit_is_not_stranded(dispatchers, drained_by):
    """The race ``submit`` has with ``shutdown`` (no lock on the hot path): the actor's turn lands
    in the ready queue behind the workers' sentinels. Whoever comes second -- the caller that
    queued it, or the last worker to exit -- must declare it dead so its caller is answered."""
    d = dispatchers(workers=2)
    release = threading.Event()
    busy = pooled(d, [], "busy")
    ref = pooled(d, [], "a")
    assert ref.ask("ready", timeout=WAIT) == "ready" and busy.ask("ready", timeout=WAIT) == "ready"
    if drained_by == "the last worker":
        busy.tell(wait_on(release))  # one worker will still be running when the turn is queued
    real = d._ready

    class ShutdownFirst:  # the next put happens just after a shutdown
        def put(self, item: Any) -> None:
            if item is not None and not d.closed:
                d._ready = real
                d.shutdown()  # also asks the actors to stop: those turns land behind the sentinels too
                if drained_by == "the caller":
                    assert d.join(WAIT)
            real.put(item)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    d._ready = ShutdownFirst()
    late = ref.ask("after the sentinels", block=False)
    release.set()
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=WAIT)
    assert d.join(WAIT)
    assert not ref.is_alive() and not busy.is_alive()


def test_an_actor_with_a_backlog_at_shutdown_is_declared_dead_and_its_callers_answered(dispatchers):
    d = dispatchers(workers=1, slice_size=4)
    release = threading.Event()
    ref = pooled(d, [], "a")
    ref.tell(wait_on(release))
    for i in range(100):
        ref.tell(i)
    queued = ref.ask("at the end", block=False)
    d.shutdown()
    release.set()
    assert d.join(WAIT)
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=WAIT)
    assert not ref.is_alive()


def test_shutdown_from_a_handler_does_not_deadlock(dispatchers):
    d = dispatchers(workers=2)
    ref = pooled(d, [], "a")
    ref.tell(lambda a: d.shutdown(timeout=WAIT))
    assert d.join(WAIT)
    assert not ref.is_alive()


def test_the_dispatcher_ends_with_its_owner_once_its_last_actor_finished(dispatchers):
    owner = threading.Event()
    d = dispatchers(workers=2, owner_stopped=owner)
    a, b = pooled(d, [], "a"), pooled(d, [], "b")
    a.stop(timeout=WAIT)
    assert not d.closed  # the owner still runs
    owner.set()
    assert not d.closed  # b still runs
    b.stop(timeout=WAIT)
    assert d.join(WAIT) and d.closed


# -- wiring: one dispatcher per session, sized by session.symbol_workers ---------------------------


def settings_with(workers: int) -> Settings:
    s = Settings()
    return msgspec.structs.replace(s, session=msgspec.structs.replace(s.session, symbol_workers=workers))


class StubSession(pykka.ThreadingActor):
    """Stands in for the SessionActor: stops its symbol actors in its stop path."""

    def __init__(self) -> None:
        super().__init__()
        self.symbols: list[pykka.ActorRef] = []

    def on_receive(self, message: Any) -> Any:
        self.symbols.append(message)

    def on_stop(self) -> None:
        pykka.get_all([ref.stop(block=False) for ref in self.symbols], timeout=WAIT)


def start_session(factory: ProductionFactory, settings: Settings, symbols: list[str]):
    plan = SessionPlan("test", tuple(symbols), settings, definitions_from_config(settings.analysis.fallback_definitions))
    session = StubSession.start()
    refs = [factory.symbol(session, plan, s, [], ChildHandle("publisher"), ChildHandle("persistence"))
            for s in symbols]
    for ref in refs:
        session.tell(ref)
    return plan, session, refs


def runs_on(d: Dispatcher, refs: list[pykka.ActorRef]) -> bool:
    return set(refs) <= {a.actor_ref for a in d.actors()}


def test_the_factory_sizes_the_session_dispatcher_from_settings():
    settings = settings_with(3)
    factory = ProductionFactory(settings)
    plan, session, refs = start_session(factory, settings, ["AAPL", "MSFT", "NVDA"])
    dispatcher = factory.dispatcher(plan, session)
    assert all(r.actor_class is SymbolActor for r in refs) and runs_on(dispatcher, refs)
    assert dispatcher.workers == 3 and len(dispatcher.alive_threads()) == 3
    restarted = factory.symbol(session, plan, "AAPL", None, ChildHandle("publisher"), ChildHandle("persistence"))
    assert runs_on(dispatcher, [restarted])  # a restart stays on its session's dispatcher
    restarted.stop(timeout=WAIT)
    session.stop(timeout=WAIT)
    assert dispatcher.join(WAIT)
    assert factory.close(timeout=WAIT)


def dispatcher_threads(dispatchers: list[Dispatcher]) -> list[threading.Thread]:
    return [t for d in dispatchers for t in d.alive_threads()]


def test_dispatcher_threads_end_with_each_session_and_never_pile_up():
    settings = settings_with(2)
    factory = ProductionFactory(settings)
    before = set(threading.enumerate())
    seen: list[Dispatcher] = []
    for _ in range(4):
        plan, session, refs = start_session(factory, settings, ["AAPL", "MSFT"])
        seen.append(factory.dispatcher(plan, session))
        assert runs_on(seen[-1], refs)
        assert len(dispatcher_threads(seen)) == 2  # this session's, none left from the earlier ones
        assert all(r.ask(Ping(), timeout=WAIT) for r in refs)
        session.stop(timeout=WAIT)  # stops its symbols; the dispatcher then ends by itself
        assert seen[-1].join(WAIT), "the session's dispatcher outlived the session"
    assert len({id(d) for d in seen}) == 4
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("symbols-")]


def test_a_session_that_never_stops_its_symbols_loses_its_dispatcher_to_the_next_one():
    settings = settings_with(2)
    factory = ProductionFactory(settings)
    first_plan, first_session, first_refs = start_session(factory, settings, ["AAPL"])
    first = factory.dispatcher(first_plan, first_session)
    # the first session is left running, its symbols never stopped
    second_plan, second_session, second_refs = start_session(factory, settings, ["MSFT"])
    assert first.join(WAIT) and not first_refs[0].is_alive()  # stopped by the dispatcher's shutdown
    second = factory.dispatcher(second_plan, second_session)
    assert second is not first and runs_on(second, second_refs) and len(second.alive_threads()) == 2
    assert factory.close(timeout=WAIT) and not second_refs[0].is_alive()
    first_session.stop(timeout=WAIT)
    second_session.stop(timeout=WAIT)
