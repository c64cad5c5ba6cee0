"""SessionActor: supervises one streaming session from start to end.

The session's lifecycle IS the actor's lifecycle (pykka's hooks), so no way of ending the actor can
skip the announcements:

- ``on_start`` plans the session (universe, definitions) if it was given a planner, brings the
  children up in ``START_ORDER`` (waiting for each stage, within ``startup_timeout_seconds``:
  start-up is the one place a supervisor waits for its children) and publishes ``session_started``
  with the universe's real ``symbol_count``. Any exception there — even after some children are
  up — ends the session through the same stop path, with ``final_status`` 'failed'.
- ``session_stopped`` is published from the stop path, ``on_stop`` (a ``StopSession`` message,
  ``ref.stop()``, ``ActorRegistry.stop_all()``, a BaseException) or ``on_failure`` (an exception
  in a handler), exactly once: the stop path runs at most once per actor.
- While running, the actor never waits on a child: children push ``ChildReport``s and the actor
  acts on the latest; restarts are started with a told ``Open`` and confirmed by ``ChildOpened``
  or another ``ChildFailed``. Its 1 s timer (ticks coalesce) re-announces the session for late
  joiners, runs the health monitor on the reports and checks the children are alive.

What a failure means, the restart budgets and the shutdown budget are in ``supervision.py``.
Children are built by a factory (``wiring.ProductionFactory`` in production, mocks in tests).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import pykka
from loguru import logger

from tickstock.actors.analysis import AnalysisHandover
from tickstock.actors.handle import ChildHandle
from tickstock.actors.outbox import Outbox
from tickstock.actors.plan import SessionPlan, UniverseError, batched_definitions
from tickstock.actors.supervision import (
    Action, RestartPolicy, SessionState, ShutdownBudget, child_kind,
)
from tickstock.actors.timer import Ticker
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.config import Settings
from tickstock.heap import Collection, HeapKeeper
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    ChildFailed, ChildOpened, ChildReport, ClearSession, Drain, GetStats, Open, PrimeSymbol, Publish,
    PublishConfirmed, Quarantine, RecordSession, RetainSession, RouteSymbol, StopSession, SymbolDiscovered,
    TimerTick,
)
from tickstock.messages.events import CriticalAlert, SessionStarted, SessionStopped
from tickstock.messages.records import SessionRecord


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    final_status: str
    reason: str
    started_at: float
    stopped_at: float
    total_patterns: int
    total_indicators: int
    announced: bool = True       # Redis acknowledged session_stopped (or the direct fallback sent it)
    cause: str = ""              # 'universe' when the universe could not be resolved


# How long what symbol actors and the ingress tell persistence is gathered before it is handed over.
# The rows are in no hurry (they are written every persistence.flush_interval_seconds anyway), while
# on one GIL the persistence thread's work (deriving rows, the write-ahead log) would take turns with
# the close's analysis and publishing: so its batch is handed over after the close's burst (~40 ms
# for 500 symbols, longer for thousands), not in the middle of it.
PERSISTENCE_LINGER_SECONDS = 0.25
# How long the end's announcement waits for the retained key's delete (the beacon answers in
# ~1 ms; only a cut Redis makes it wait, and then the key's TTL removes it anyway).
_CLEAR_WAIT_SECONDS = 0.5


class ChildFactory(Protocol):
    """Builds the session's children: started, not yet opened. Tests substitute mocks.

    ``symbol(..., history=None)`` means: the actor loads its own history (restarts and new
    symbols when it opens; in event time every symbol actor, from the bars before its first bar),
    so the session never reads the database from a handler."""

    def publisher(self, supervisor: pykka.ActorRef, plan: SessionPlan) -> pykka.ActorRef: ...
    def persistence(self, supervisor: pykka.ActorRef, plan: SessionPlan) -> pykka.ActorRef: ...
    def analysis(self, supervisor: pykka.ActorRef, plan: SessionPlan, publisher: ChildHandle,
                 persistence: ChildHandle, restart: bool,
                 handover: AnalysisHandover | None = None) -> pykka.ActorRef:
        """The CloseAnalysisActor (only for a plan with ``batched_definitions``). ``restart``: it
        primes itself when it opens (from where ``handover``, its predecessor's, says it reached);
        otherwise the session tells it each symbol's history."""
        ...
    def symbol(self, supervisor: pykka.ActorRef, plan: SessionPlan, symbol: str, history: Sequence[Bar] | None,
               publisher: ChildHandle, persistence: ChildHandle) -> pykka.ActorRef: ...
    def ingress(self, supervisor: pykka.ActorRef, plan: SessionPlan, routes: dict[str, ChildHandle],
                persistence: ChildHandle, aggregator: MinuteBarAggregator,
                analysis: ChildHandle | None = None) -> pykka.ActorRef: ...
    def load_history(self, symbols: Sequence[str], limit: int,
                     before: float | None = None) -> Iterable[tuple[str, list[Bar]]]:
        """``(symbol, recent bars oldest first)`` for the symbols that have any (only bars starting
        before ``before``, if given), streamed one symbol at a time, so a 10,000-symbol universe's
        history is never held at once."""
        ...
    def publish_directly(self, plan: SessionPlan, events: Sequence[Any]) -> None: ...


class SessionActor(pykka.ThreadingActor):
    def __init__(
        self,
        plan: SessionPlan | Callable[[], SessionPlan],
        factory: ChildFactory,
        on_ended: Callable[[SessionOutcome], None] = lambda outcome: None,
        health_monitor: Any = None,
        clock: Callable[[], float] = time.time,
        timer_interval: float = 1.0,
        beacon: Any = None,
        session_id: str | None = None,
        settings: Settings | None = None,
        heap: HeapKeeper | None = None,
    ) -> None:
        """``plan``: a ready plan, or a planner called in ``on_start`` (it may raise, e.g. an
        unresolvable universe: the session then ends 'failed' like any start-up failure).
        ``health_monitor``: a monitor, or a callable building one from the plan. ``beacon``: where
        the retained session key is kept (the process's HeartbeatActor); the publisher if None.
        ``heap``: the process's garbage-collector schedule (tickstock/heap.py), told when the session
        starts, when it is live, on every timer tick and when it has ended; None leaves the
        collector alone."""
        super().__init__()
        self._planner = plan if callable(plan) else None
        self.plan: SessionPlan | None = None if callable(plan) else plan
        self.session_id = session_id or (self.plan.session_id if self.plan else str(uuid.uuid4()))
        self.settings = settings or (self.plan.settings if self.plan else None)
        self.factory = factory
        self.on_ended = on_ended
        self._monitor_source = health_monitor
        self.health_monitor: Any = None
        self.clock = clock
        self.timer_interval = timer_interval
        self.heap = heap
        self.log = logger.bind(session_id=self.session_id, actor="session")
        self.state = SessionState.STARTING
        self.policy: RestartPolicy | None = None
        self.publisher = ChildHandle("publisher")
        self.persistence = ChildHandle("persistence")
        self.ingress = ChildHandle("ingress")
        self.analysis = ChildHandle("analysis")  # only with batched definitions (plan.batched_definitions)
        self._batched = False
        self.symbols: dict[str, ChildHandle] = {}
        self.beacon = beacon if beacon is not None else self.publisher
        # What symbol actors tell the shared children goes through outboxes: at a bar close ~1,000
        # results arrive within milliseconds, and each hand-off to a thread costs CPU (outbox.py).
        self._outboxes: tuple[Outbox, Outbox] | None = None
        self.aggregator: MinuteBarAggregator | None = None
        self.started_at = clock()
        self.live_at: float | None = None  # when every child was up and the subscription live
        self.outcome: SessionOutcome | None = None
        self.incarnations: dict[str, int] = {}
        self.reports: dict[str, ChildReport] = {}
        self.restarted_at: dict[str, float] = {}  # child -> when it was last restarted (its reports start then)
        self._analysis_handover: AnalysisHandover | None = None  # the dead analysis's, for its successor
        self.opened: set[str] = set()
        self._totals_base = [0, 0]  # patterns, indicators of publisher incarnations that died
        self._ticker: Ticker | None = None
        self._end_request: tuple[str, str, str | None] | None = None
        self._stop_requested_at: float | None = None
        self._cause = ""
        self._next_announce = self._next_health = 0.0

    # -- start ----------------------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self._start()
        except BaseException as exc:  # start-up is all or nothing; pykka would run no hook at all
            if isinstance(exc, UniverseError):
                self._cause = "universe"
            self.log.error("session start-up failed: {!r}", exc)
            self._request_end("failed", f"start-up failed: {exc}", self._cause or "session")

    def _start(self) -> None:
        if self._planner is not None:
            self.plan = self._planner()
            self.session_id = self.plan.session_id
            self.log = logger.bind(session_id=self.session_id, actor="session")
        plan = self.plan
        self.settings = s = plan.settings
        v = s.supervision
        self.policy = RestartPolicy(v.max_restarts, v.within_seconds, v.symbol_max_restarts, v.symbol_within_seconds)
        source = self._monitor_source
        self.health_monitor = source(plan) if callable(source) and not hasattr(source, "check") else source
        self.log.info("session starting: universe {} with {} symbols", plan.universe, len(plan.symbols))
        if self.heap is not None:  # start-up builds the heap the session keeps: no collector walks meanwhile
            self.heap.session_starting()
        self._start_children()
        self.state = SessionState.RUNNING
        now = self.live_at = self.clock()
        self._announce(now)
        for problem in plan.problems:
            self.log.error("analysis definitions: {}", problem)
            self.publisher.tell(Publish((CriticalAlert(
                f"Pattern/indicator definitions: {problem}", "definitions", now,
                "check pattern_definitions / indicator_definitions", session_id=plan.session_id),)))
        self._next_announce = now + s.session.reannounce_interval_seconds
        self._next_health = now + s.session.health_interval_seconds
        self._ticker = Ticker(self.actor_ref, self.timer_interval, TimerTick, "session", clock=self.clock).start()
        self.log.info("session started: {} symbols live", len(self.symbols))
        if self.heap is not None:  # what start-up built (the primed symbols) is out of the collector's way
            self._log_collection(self.heap.session_live(now))

    def _start_children(self) -> None:
        plan, s = self.plan, self.settings
        timeout = s.session.startup_timeout_seconds
        self._open_blocking(self.publisher, self.factory.publisher(self.actor_ref, plan), timeout)
        self._open_blocking(self.persistence, self.factory.persistence(self.actor_ref, plan), timeout)
        self.persistence.tell(RecordSession(SessionRecord(plan.session_id, plan.universe, self.started_at, len(plan.symbols))))
        self._batched = bool(batched_definitions(plan))
        if self._batched:
            self._open_blocking(self.analysis, self._new_analysis(restart=False), timeout)
        # Wall clock: each symbol's actor is built (and primes) as its history streams in; none is
        # held afterwards. Event time: the latest bars stored may come after the replayed ones, so
        # each actor loads the bars before its first bar itself, when that arrives (history=None).
        deferred = s.session.clock == "event" and s.analysis.prime_bars > 0
        wanted = set(plan.symbols)
        for symbol, history in () if deferred else self._history(plan.symbols):
            if symbol in wanted and symbol not in self.symbols:
                self.symbols[symbol] = ChildHandle(f"symbol:{symbol}", self._new_symbol(symbol, history))
                if self._batched and history:
                    self.analysis.tell(PrimeSymbol(symbol, tuple(history)))
        for symbol in plan.symbols:
            if symbol not in self.symbols:
                self.symbols[symbol] = ChildHandle(f"symbol:{symbol}",
                                                   self._new_symbol(symbol, None if deferred else []))
        self.symbols = {symbol: self.symbols[symbol] for symbol in plan.symbols}  # the plan's order
        # Confirm every symbol actor in parallel: 500 sequential asks would cost ~20 ms for nothing.
        pykka.get_all([h.ref.ask(Open(self._next_incarnation(h.name)), block=False) for h in self.symbols.values()],
                      timeout=timeout)
        self.aggregator = MinuteBarAggregator(s.bars.grace_seconds, now=self.clock(), session_id=plan.session_id)
        self._open_blocking(self.ingress, self._new_ingress(), timeout)

    def _open_blocking(self, handle: ChildHandle, ref: pykka.ActorRef, timeout: float) -> None:
        """Start-up only: open the new child, then point the handle at it (which hands it what
        queued up meanwhile): a child never sees work before its connections exist."""
        try:
            ref.ask(Open(self._next_incarnation(handle.name)), timeout=timeout)
        except Exception as exc:
            ref.stop(block=False)
            raise RuntimeError(f"{handle.name} did not start: {exc}") from exc
        handle.replace(ref)

    def _next_incarnation(self, name: str) -> int:
        self.incarnations[name] = self.incarnations.get(name, 0) + 1
        return self.incarnations[name]

    def _history(self, symbols: Sequence[str]) -> Iterator[tuple[str, list[Bar]]]:
        """The factory's history stream; a failure (at the start or midway) ends it with a warning:
        the symbols not yet served start unprimed. Priming is accuracy, not a reason to fail."""
        limit = self.settings.analysis.prime_bars
        if not limit:
            return
        served = 0
        try:
            for symbol, bars in self.factory.load_history(symbols, limit):
                served += 1
                yield symbol, bars
        except Exception as exc:
            self.log.warning("could not load recent bars for priming ({} symbols served): {!r}", served, exc)

    def _outbox_pair(self) -> tuple[Outbox, Outbox]:
        """The session's outboxes to the publisher and to persistence (made once, closed at the end
        after the ingress and the symbols have stopped, so nothing told through them is lost)."""
        if self._outboxes is None:
            # Persistence lingers longer: see PERSISTENCE_LINGER_SECONDS.
            self._outboxes = (Outbox(self.publisher, "publisher"),
                              Outbox(self.persistence, "persistence", linger=PERSISTENCE_LINGER_SECONDS))
        return self._outboxes

    def _new_symbol(self, symbol: str, history: Sequence[Bar] | None) -> pykka.ActorRef:
        publisher, persistence = self._outbox_pair()
        return self.factory.symbol(self.actor_ref, self.plan, symbol, history, publisher, persistence)

    def _new_analysis(self, restart: bool, handover: AnalysisHandover | None = None) -> pykka.ActorRef:
        publisher, persistence = self._outbox_pair()
        return self.factory.analysis(self.actor_ref, self.plan, publisher, persistence, restart, handover)

    def _new_ingress(self) -> pykka.ActorRef:
        # Its closed bars reach persistence through the outbox too: at a close they would otherwise be
        # logged and queued by the persistence thread in the middle of the analysis burst.
        return self.factory.ingress(self.actor_ref, self.plan, dict(self.symbols), self._outbox_pair()[1],
                                    self.aggregator, analysis=self.analysis if self._batched else None)

    # -- running --------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, TimerTick):
            if message.source is not None:
                message.source.handled()
            return self._on_timer(self.clock())
        if isinstance(message, ChildReport):
            if message.incarnation == self.incarnations.get(message.child):
                self.reports[message.child] = message
            return None
        if isinstance(message, ChildOpened):
            if message.incarnation == self.incarnations.get(message.child):
                self.opened.add(message.child)
            return None
        if isinstance(message, ChildFailed):
            return self._on_child_failed(message)
        if isinstance(message, StopSession):
            self._stop_requested_at = message.requested_at
            return self._request_end(message.final_status, message.reason)
        if isinstance(message, SymbolDiscovered):
            return self._on_symbol_discovered(message.symbol)
        if isinstance(message, GetStats):
            return self.status()
        raise TypeError(f"session cannot handle {type(message).__name__}")

    def status(self) -> dict[str, Any]:
        """The session as the service reports it; built from what the actor knows, never asked."""
        plan = self.plan
        patterns, indicators = self.totals()
        return {
            "session_id": self.session_id,
            "state": self.state.value,
            "universe": plan.universe if plan else None,
            "symbol_count": len(self.symbols),
            "started_at": self.started_at,
            "restarts": self.policy.total_restarts if self.policy else 0,
            "quarantined": self.quarantined_symbols(),
            "manual": plan.manual if plan else None,
            "total_patterns": patterns,
            "total_indicators": indicators,
            "definitions_source": plan.definitions_source if plan else "",
            "definition_problems": list(plan.problems) if plan else [],
            "mailboxes": {
                "publisher": self.publisher.mailbox_depth(),
                "persistence": self.persistence.mailbox_depth(),
                "ingress": self.ingress.mailbox_depth(),
                "analysis": self.analysis.mailbox_depth(),  # 0 without one (no ref)
                "symbols_max": max((h.mailbox_depth() for h in self.symbols.values()), default=0),
            },
        }

    def runs_analysis(self) -> bool:
        """Whether this session has a close analysis child (batched TA-Lib definitions)."""
        return self._batched

    def latest(self, child: str) -> ChildReport | None:
        """The latest report of the child's current incarnation, if any."""
        return self.reports.get(child)

    def totals(self) -> tuple[int, int]:
        """Session totals: every publisher incarnation's patterns and indicators."""
        report = self.reports.get("publisher")
        stats = report.stats if report is not None else None
        return (self._totals_base[0] + getattr(stats, "patterns", 0),
                self._totals_base[1] + getattr(stats, "indicators", 0))

    def quarantined_symbols(self) -> list[str]:
        return sorted(child.split(":", 1)[1] for child in (self.policy.quarantined if self.policy else ()))

    def _announce(self, now: float) -> None:
        plan = self.plan
        started = SessionStarted(plan.session_id, plan.universe, self.started_at, len(self.symbols), now)
        # The beacon writes the key, then hands the announcement to the publisher: a dashboard
        # that reads the key on hearing session_started finds it (two actors, one causal chain).
        retain = RetainSession(started.to_wire(), then=Publish((started,)), then_tell=self.publisher)
        try:
            self.beacon.tell(retain)
        except pykka.ActorDeadError:  # no beacon (the process is going down): announce all the same
            self.publisher.tell(retain)

    def _on_timer(self, now: float) -> None:
        if self.state is not SessionState.RUNNING:
            return
        s = self.settings.session
        if self.heap is not None:
            self._log_collection(self.heap.tick(now), debug=True)
        if now >= self._next_announce:
            self._announce(now)
            self._next_announce = now + s.reannounce_interval_seconds
        if self.health_monitor is not None:
            force = now >= self._next_health
            if force:
                self._next_health = now + s.health_interval_seconds
            try:
                self.health_monitor.check(self, now, force)
            except Exception as exc:  # a measuring fault must never take the session down
                self.log.exception("health check failed: {!r}", exc)
        self._check_children()

    def _check_children(self) -> None:
        """Catch deaths that sent no ChildFailed (e.g. an exception in a child's on_start). The
        report quotes the current incarnation, so a death also reported by the child itself is
        restarted once."""
        for handle in (self.publisher, self.persistence, self.ingress, self.analysis, *self.symbols.values()):
            name = handle.name
            if handle.ref is not None and name not in self.policy.quarantined and not handle.is_alive():
                self.actor_ref.tell(ChildFailed(name, "found dead", self.incarnations.get(name, 0)))

    def _on_child_failed(self, message: ChildFailed) -> None:
        if message.incarnation != self.incarnations.get(message.child):
            return  # an earlier incarnation, already dealt with: one crash, one restart
        self.incarnations[message.child] += 1  # this incarnation is finished whatever follows
        if message.child == "publisher":
            self._keep_totals(message.final_stats)
        elif message.child == "analysis" and isinstance(message.final_stats, AnalysisHandover):
            # Kept until a successor is told it (one whose construction failed hands nothing on).
            self._analysis_handover = message.final_stats
        decision = self.policy.on_failure(message.child, self.state, self.clock())
        self.log.error("child {} failed ({}): {}", message.child, message.error, decision.reason)
        if decision.action is Action.RESTART:
            self._restart(message.child)
        elif decision.action is Action.QUARANTINE:
            self._quarantine(message.child, decision.reason)
        elif decision.action is Action.END_SESSION:
            self._request_end("failed", f"{decision.reason}: {message.error}", child_kind(message.child))

    def _keep_totals(self, final_stats: Any) -> None:
        """The dead publisher's counts stay in the session totals (its last report if it could not
        give its final ones)."""
        report = self.reports.pop("publisher", None)
        stats = final_stats if final_stats is not None else (report.stats if report else None)
        self._totals_base[0] += getattr(stats, "patterns", 0)
        self._totals_base[1] += getattr(stats, "indicators", 0)

    def _restart(self, child: str) -> None:
        """Replace a failed child without waiting for it: ``Open`` is told first, so the new child
        opens before it handles anything queued to its handle; its success is a ``ChildOpened``,
        its failure another ``ChildFailed``."""
        kind = child_kind(child)
        handle = self._handle(child)
        if handle.ref is not None:
            handle.ref.stop(block=False)  # already dead, or a child whose worker thread crashed
        self.reports.pop(child, None)
        self.opened.discard(child)
        try:
            if kind == "symbol":
                ref = self._new_symbol(child.split(":", 1)[1], None)
            elif kind == "ingress":
                ref = self._new_ingress()
            elif kind == "analysis":
                ref = self._new_analysis(restart=True, handover=self._analysis_handover)
            elif kind == "publisher":
                ref = self.factory.publisher(self.actor_ref, self.plan)
            else:
                ref = self.factory.persistence(self.actor_ref, self.plan)
        except Exception as exc:  # could not even build it: that is this incarnation's failure
            self.incarnations[child] = self.incarnations.get(child, 0) + 1
            self.actor_ref.tell(ChildFailed(child, f"restart failed: {exc!r}", self.incarnations[child]))
            return
        ref.tell(Open(self.incarnations[child]))
        if kind == "analysis":
            handover, self._analysis_handover = self._analysis_handover, None
            for message in (handover.resend if handover is not None else ()):
                ref.tell(message)  # the close its process died in, the closes its mailbox held: before the rest
        handle.replace(ref)
        self.restarted_at[child] = self.clock()
        self.log.warning("restarted {} (incarnation {})", child, self.incarnations[child])

    def _handle(self, child: str) -> ChildHandle:
        if child_kind(child) == "symbol":
            return self.symbols[child.split(":", 1)[1]]
        return {"ingress": self.ingress, "publisher": self.publisher, "persistence": self.persistence,
                "analysis": self.analysis}[child]

    def _quarantine(self, child: str, reason: str) -> None:
        symbol = child.split(":", 1)[1]
        handle = self.symbols[symbol]
        if handle.ref is not None:
            handle.ref.stop(block=False)
        self.ingress.tell(Quarantine(symbol))
        self.log.error("symbol {} quarantined for the rest of the session ({}); its bars are still stored",
                       symbol, reason)

    def _on_symbol_discovered(self, symbol: str) -> None:
        if self.state is not SessionState.RUNNING or symbol in self.symbols:
            return
        name = f"symbol:{symbol}"
        try:
            ref = self._new_symbol(symbol, None)
        except Exception as exc:  # one new symbol must not end the session; its ticks stay unrouted
            self.log.error("could not start a symbol actor for new symbol {}: {!r}", symbol, exc)
            return
        ref.tell(Open(self._next_incarnation(name)))
        handle = ChildHandle(name, ref)
        self.symbols[symbol] = handle
        self.ingress.tell(RouteSymbol(symbol, handle))
        self.log.info("added symbol actor for {} ({} symbols now)", symbol, len(self.symbols))

    # -- end ------------------------------------------------------------------------------------

    def _request_end(self, final_status: str, reason: str = "", alert_component: str | None = None) -> None:
        """Decide how the session ends (the first decision wins) and stop the actor: the stop path
        (``on_stop``) does the rest, after the messages already queued."""
        if self._end_request is None:
            self._end_request = (final_status, reason, alert_component)
        self.state = SessionState.STOPPING
        if self._ticker:
            self._ticker.stop()
        self.actor_ref.stop(block=False)

    def on_stop(self) -> None:
        """Every clean way of ending the actor comes here: announce the end (once)."""
        self._end()

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        """A bug in the session's own handling: pykka runs no ``on_stop``; end in order anyway."""
        self.log.error("session actor failed: {!r}", exception_value)
        if self._end_request is None:
            self._end_request = ("failed", f"session supervisor error: {exception_type.__name__}: {exception_value}",
                                 "session")
        self._end()

    def _end(self) -> None:
        """Shut down in policy order within the shutdown budget and announce the end. Runs at most
        once per session."""
        if self.outcome is not None:
            return
        final_status, reason, alert_component = self._end_request or ("stopped", "session actor stopped", None)
        if self._ticker:
            self._ticker.stop()
        deadline = self.settings.session.shutdown_deadline_seconds if self.settings else 20.0
        budget = ShutdownBudget(deadline, started_at=self._stop_requested_at)
        self.state = SessionState.STOPPING
        self.log.info("session stopping ({}): {}", final_status, reason or "requested")
        announced = False
        totals = (0, 0)
        stopped_at = self.clock()
        try:
            self._stop_ingress(budget)
            self._stop_symbols(budget)
            totals = self._final_totals(budget)
            stopped_at = self.clock()
            self._stop_persistence(budget, final_status, stopped_at, totals)
            announced = self._announce_end(budget, final_status, reason, alert_component, stopped_at, totals)
        except Exception as exc:  # never leave without an outcome
            self.log.exception("session stop path failed: {!r}", exc)
        finally:
            self.state = SessionState.FAILED if final_status == "failed" else SessionState.STOPPED
            self.outcome = SessionOutcome(self.session_id, final_status, reason, self.started_at, stopped_at,
                                          totals[0], totals[1], announced, self._cause)
            self.log.info(
                "session {}: {:.0f}s, {} patterns, {} indicators{}", final_status, stopped_at - self.started_at,
                totals[0], totals[1], f" ({reason})" if reason else "")
            self.on_ended(self.outcome)
            if self.heap is not None:
                try:
                    self._log_collection(self.heap.session_ended())
                except Exception as exc:
                    self.log.error("garbage collection after the session failed: {!r}", exc)

    def _log_collection(self, done: Collection | None, debug: bool = False) -> None:
        if done is not None:
            self.log.log("DEBUG" if debug else "INFO",
                         "garbage collector ({}): {} unreachable objects collected in {:.1f} ms, {} objects frozen",
                         done.reason, done.collected, done.seconds * 1000, done.frozen)

    def _stop_ingress(self, budget: ShutdownBudget) -> None:
        """Stage 1: stop receiving, close and deliver every forming bar."""
        if self.ingress.is_alive():
            try:
                self.ingress.ask(Drain(budget.remaining("ingress")), timeout=budget.remaining("ingress"))
            except Exception as exc:
                self.log.error("ingress drain failed: {!r}", exc)
        _stop_within(self.ingress.ref, budget.remaining("ingress"))

    def _stop_symbols(self, budget: ShutdownBudget) -> None:
        """Stage 2: each symbol, and the CloseAnalysisActor, finishes the bars queued to it (a pykka
        stop runs them first)."""
        stops = [h.ref.stop(block=False) for h in (self.analysis, *self.symbols.values()) if h.is_alive()]
        try:
            pykka.get_all(stops, timeout=budget.remaining("symbols"))
        except Exception as exc:
            self.log.error("symbol actors did not all stop in time: {!r}", exc)
        for outbox in self._outboxes or ():
            outbox.close()  # their last results go to the publisher and persistence now

    def _final_totals(self, budget: ShutdownBudget) -> tuple[int, int]:
        """Stage 3: the publisher has seen every result by now; its last report if it cannot say."""
        if self.publisher.is_alive():
            try:
                stats = self.publisher.ask(GetStats(), timeout=budget.remaining("totals"))
                return self._totals_base[0] + stats.patterns, self._totals_base[1] + stats.indicators
            except Exception as exc:
                self.log.error("session totals from the last report only: {!r}", exc)
        return self.totals()

    def _stop_persistence(self, budget: ShutdownBudget, final_status: str, stopped_at: float,
                          totals: tuple[int, int]) -> None:
        """Stage 4: best-effort write within the stage; what is left stays in the write-ahead log."""
        plan = self.plan
        if plan is not None:
            self.persistence.tell(RecordSession(SessionRecord(
                plan.session_id, plan.universe, self.started_at, len(self.symbols), stopped_at,
                totals[0], totals[1], final_status)))
        if self.persistence.is_alive():
            try:
                self.persistence.ask(Drain(budget.remaining("persistence")), timeout=budget.remaining("persistence"))
            except Exception as exc:
                self.log.error("persistence did not finish writing in its stage: {!r}", exc)
        _stop_within(self.persistence.ref, budget.remaining("persistence"))

    def _announce_end(self, budget: ShutdownBudget, final_status: str, reason: str, alert_component: str | None,
                      stopped_at: float, totals: tuple[int, int]) -> bool:
        """Stage 5 and 6: ``session_stopped`` counts as published only when Redis acknowledged it;
        the publisher retries until the stage ends, then a direct connection is tried once."""
        events: list[Any] = []
        if final_status == "failed":
            events.append(CriticalAlert(
                f"Streaming session failed: {reason}", alert_component or "session", stopped_at,
                "check the service log; restart the session", session_id=self.session_id))
        events.append(SessionStopped(
            self.session_id, stopped_at, stopped_at - self.started_at, totals[0], totals[1], final_status, reason))
        self._clear_retained(min(_CLEAR_WAIT_SECONDS, budget.remaining("announce") / 4))
        acknowledged = False
        if self.publisher.is_alive():
            try:
                future = self.publisher.ask(PublishConfirmed(tuple(events), self.clock() + budget.remaining("announce")),
                                            block=False)
                acknowledged = bool(future.get(timeout=budget.remaining("announce") + 0.5))
            except Exception as exc:
                self.log.error("publisher could not confirm the end: {!r}", exc)
        _stop_within(self.publisher.ref, budget.remaining("publisher"))
        if acknowledged:
            return True
        try:
            self.factory.publish_directly(self.plan, events)
            self.log.warning("session_stopped published on a direct connection (the publisher could not)")
            return True
        except Exception as exc:
            self.log.critical("session end could not be published at all: {!r}", exc)
            return False

    def _clear_retained(self, wait: float) -> None:
        """Delete the retained key before ``session_stopped`` is announced, waiting at most ``wait``
        for the beacon's answer: whoever hears the end no longer finds the session in the key. A
        beacon that is dead, or stuck on a cut Redis, only costs the wait (the key's TTL ends it)."""
        try:
            self.beacon.ask(ClearSession(), block=False).get(timeout=wait)
        except Exception as exc:  # ActorDeadError, Timeout: the announcement must not wait longer
            self.log.warning("retained session key not confirmed deleted within {:.2f}s: {!r}", wait, exc)


def _stop_within(ref: pykka.ActorRef | None, timeout: float) -> None:
    """Stop an actor that may already be dead, waiting at most ``timeout`` seconds."""
    if ref is None:
        return
    try:
        ref.stop(block=True, timeout=max(timeout, 0.01))
    except (pykka.ActorDeadError, pykka.Timeout):
        pass
