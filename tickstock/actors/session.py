"""SessionActor: supervises one streaming session from start to end.

Lifecycle (``SessionState``): STARTING -> RUNNING -> STOPPING -> STOPPED | FAILED.
- ``session_started`` goes out once every child has answered ``Open`` and the tick subscription
  is confirmed, with the universe's real ``symbol_count``.
- ``session_stopped`` goes out exactly once, on every path: ``StopSession`` (manual stop, signal,
  market close), a child failure the policy cannot absorb, and a failure during start-up (then
  with ``final_status`` 'failed' and a critical alert first).
- While running, a timer drives the heartbeat, the retained session key (for late joiners), the
  periodic re-announcement of ``session_started`` and the health report.
The supervision policy itself lives in ``supervision.py``; children are built by a factory
(``wiring.ChildFactory`` in production, mocks in tests).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import pykka
from loguru import logger

from tickstock.actors.handle import ChildHandle
from tickstock.actors.supervision import Action, RestartPolicy, SessionState, child_kind
from tickstock.actors.timer import Ticker
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.config import Settings
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    ChildFailed, ClearSession, Drain, GetStats, Heartbeat, Open, Publish, RecordSession, RetainSession,
    RouteSymbol, StopSession, SymbolDiscovered, TimerTick,
)
from tickstock.messages.events import CriticalAlert, SessionStarted, SessionStopped
from tickstock.messages.records import SessionRecord


@dataclass(frozen=True)
class SessionPlan:
    """Everything decided before a session starts."""

    universe: str
    symbols: tuple[str, ...]
    settings: Settings
    definitions: Any = None                  # analysis.DefinitionSet, opaque to this actor
    problems: tuple[str, ...] = ()           # definition problems to announce loudly
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    manual: bool = False


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    final_status: str
    reason: str
    started_at: float
    stopped_at: float
    total_patterns: int
    total_indicators: int


class ChildFactory(Protocol):
    """Builds the session's children: started, not yet opened. Tests substitute mocks."""

    def publisher(self, supervisor: pykka.ActorRef, plan: SessionPlan) -> pykka.ActorRef: ...
    def persistence(self, supervisor: pykka.ActorRef, plan: SessionPlan) -> pykka.ActorRef: ...
    def symbol(self, supervisor: pykka.ActorRef, plan: SessionPlan, symbol: str, history: Sequence[Bar],
               publisher: ChildHandle, persistence: ChildHandle) -> pykka.ActorRef: ...
    def ingress(self, supervisor: pykka.ActorRef, plan: SessionPlan, routes: dict[str, ChildHandle],
                persistence: ChildHandle, aggregator: MinuteBarAggregator) -> pykka.ActorRef: ...
    def load_history(self, symbols: Sequence[str], limit: int) -> dict[str, list[Bar]]: ...
    def publish_directly(self, plan: SessionPlan, events: Sequence[Any]) -> None: ...


class SessionActor(pykka.ThreadingActor):
    def __init__(
        self,
        plan: SessionPlan,
        factory: ChildFactory,
        on_ended: Callable[[SessionOutcome], None] = lambda outcome: None,
        health_monitor: Any = None,
        clock: Callable[[], float] = time.time,
        timer_interval: float = 1.0,
    ) -> None:
        super().__init__()
        self.plan = plan
        self.settings = plan.settings
        self.factory = factory
        self.on_ended = on_ended
        self.health_monitor = health_monitor
        self.clock = clock
        self.timer_interval = timer_interval
        self.log = logger.bind(session_id=plan.session_id, actor="session")
        self.state = SessionState.STARTING
        self.policy = RestartPolicy(plan.settings.supervision.max_restarts, plan.settings.supervision.within_seconds)
        self.publisher = ChildHandle("publisher")
        self.persistence = ChildHandle("persistence")
        self.ingress = ChildHandle("ingress")
        self.symbols: dict[str, ChildHandle] = {}
        self.aggregator: MinuteBarAggregator | None = None
        self.started_at = clock()
        self.outcome: SessionOutcome | None = None
        self._ticker: Ticker | None = None
        self._reported_dead: set[str] = set()
        self._next_heartbeat = self._next_announce = self._next_health = 0.0

    # -- start ----------------------------------------------------------------------------------

    def on_start(self) -> None:
        plan = self.plan
        self.log.info("session starting: universe {} with {} symbols", plan.universe, len(plan.symbols))
        try:
            self._start_children()
        except Exception as exc:  # start-up is all or nothing
            self.log.error("session start-up failed: {!r}", exc)
            self._end("failed", f"start-up failed: {exc}", alert_component="session")
            return
        self.state = SessionState.RUNNING
        now = self.clock()
        self._announce(now)
        self.publisher.tell(Heartbeat(now))
        for problem in plan.problems:
            self.log.error("analysis definitions: {}", problem)
            self.publisher.tell(Publish((CriticalAlert(
                f"Pattern/indicator definitions: {problem}", "definitions", now,
                "check pattern_definitions / indicator_definitions", session_id=plan.session_id),)))
        self._next_heartbeat = now + self.settings.session.heartbeat_interval_seconds
        self._next_announce = now + self.settings.session.reannounce_interval_seconds
        self._next_health = now + self.settings.session.health_interval_seconds
        self._ticker = Ticker(self.actor_ref, self.timer_interval, TimerTick, "session").start()
        self.log.info("session started: {} symbols live", len(self.symbols))

    def _start_children(self) -> None:
        plan, s = self.plan, self.settings
        timeout = s.session.startup_timeout_seconds
        self._open(self.publisher, self.factory.publisher(self.actor_ref, plan), timeout)
        self._open(self.persistence, self.factory.persistence(self.actor_ref, plan), timeout)
        self.persistence.tell(RecordSession(SessionRecord(plan.session_id, plan.universe, self.started_at, len(plan.symbols))))
        history = self._load_history(plan.symbols)
        for symbol in plan.symbols:
            self.symbols[symbol] = ChildHandle(f"symbol:{symbol}", self._new_symbol(symbol, history.get(symbol, [])))
        # Confirm every symbol actor in parallel: 500 sequential asks would cost ~20 ms for nothing.
        pykka.get_all([h.ref.ask(Open(), block=False) for h in self.symbols.values()], timeout=timeout)
        self.aggregator = MinuteBarAggregator(s.bars.grace_seconds, now=self.clock())
        self._open(self.ingress, self._new_ingress(), timeout)

    def _open(self, handle: ChildHandle, ref: pykka.ActorRef, timeout: float) -> None:
        """Open the new child first, then point the handle at it (which hands it what queued
        up meanwhile): a child never sees work before its connections exist."""
        try:
            ref.ask(Open(), timeout=timeout)
        except Exception as exc:
            _stop_quietly(ref)
            raise RuntimeError(f"{handle.name} did not start: {exc}") from exc
        handle.replace(ref)

    def _load_history(self, symbols: Sequence[str]) -> dict[str, list[Bar]]:
        limit = self.settings.analysis.prime_bars
        if not limit:
            return {}
        try:
            return self.factory.load_history(symbols, limit)
        except Exception as exc:  # priming is an optimisation of accuracy, not a reason to fail
            self.log.warning("could not load recent bars for priming: {!r}", exc)
            return {}

    def _new_symbol(self, symbol: str, history: Sequence[Bar]) -> pykka.ActorRef:
        return self.factory.symbol(self.actor_ref, self.plan, symbol, history, self.publisher, self.persistence)

    def _new_ingress(self) -> pykka.ActorRef:
        return self.factory.ingress(self.actor_ref, self.plan, dict(self.symbols), self.persistence, self.aggregator)

    # -- running --------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, TimerTick):
            return self._on_timer(message.now)
        if isinstance(message, ChildFailed):
            return self._on_child_failed(message)
        if isinstance(message, StopSession):
            return self._end(message.final_status, message.reason)
        if isinstance(message, SymbolDiscovered):
            return self._on_symbol_discovered(message.symbol)
        if isinstance(message, GetStats):
            return self.status()
        raise TypeError(f"session cannot handle {type(message).__name__}")

    def status(self) -> dict[str, Any]:
        return {
            "session_id": self.plan.session_id,
            "state": self.state.value,
            "universe": self.plan.universe,
            "symbol_count": len(self.symbols),
            "started_at": self.started_at,
            "restarts": self.policy.total_restarts,
            "manual": self.plan.manual,
            "mailboxes": {
                "publisher": self.publisher.mailbox_depth(),
                "persistence": self.persistence.mailbox_depth(),
                "ingress": self.ingress.mailbox_depth(),
                "symbols_max": max((h.mailbox_depth() for h in self.symbols.values()), default=0),
            },
        }

    def _announce(self, now: float) -> None:
        started = SessionStarted(self.plan.session_id, self.plan.universe, self.started_at, len(self.symbols), now)
        self.publisher.tell(Publish((started,)))
        self.publisher.tell(RetainSession(started.to_wire()))

    def _on_timer(self, now: float) -> None:
        if self.state is not SessionState.RUNNING:
            return
        s = self.settings.session
        if now >= self._next_heartbeat:
            self.publisher.tell(Heartbeat(now))
            self._next_heartbeat = now + s.heartbeat_interval_seconds
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

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        """A bug in the session's own handling: still end in order and announce it."""
        self.log.error("session actor failed: {!r}", exception_value)
        if self.outcome is None:
            self._end("failed", f"session supervisor error: {exception_type.__name__}: {exception_value}",
                      alert_component="session")

    def _check_children(self) -> None:
        """Catch deaths that sent no ChildFailed (e.g. a crash inside pykka itself)."""
        for handle in (self.publisher, self.persistence, self.ingress, *self.symbols.values()):
            if handle.ref is not None and not handle.is_alive() and handle.name not in self._reported_dead:
                self._reported_dead.add(handle.name)
                self.actor_ref.tell(ChildFailed(handle.name, "found dead"))

    def _on_child_failed(self, message: ChildFailed) -> None:
        decision = self.policy.on_failure(message.child, self.state, self.clock())
        self.log.error("child {} failed ({}): {}", message.child, message.error, decision.reason)
        if decision.action is Action.RESTART:
            try:
                self._restart(message.child)
                self._reported_dead.discard(message.child)
            except Exception as exc:
                self._end("failed", f"restart of {message.child} failed: {exc}", alert_component=message.child)
        elif decision.action is Action.END_SESSION:
            self._end("failed", f"{decision.reason}: {message.error}", alert_component=child_kind(message.child))

    def _restart(self, child: str) -> None:
        timeout = self.settings.session.startup_timeout_seconds
        kind = child_kind(child)
        if kind == "symbol":
            symbol = child.split(":", 1)[1]
            handle = self.symbols[symbol]
            handle.stop(timeout=1)
            history = self._load_history([symbol]).get(symbol, [])
            self._open(handle, self._new_symbol(symbol, history), timeout)
        elif kind == "ingress":
            self.ingress.stop(timeout=5)
            self._open(self.ingress, self._new_ingress(), timeout)
        elif kind == "publisher":
            self.publisher.stop(timeout=1)
            self._open(self.publisher, self.factory.publisher(self.actor_ref, self.plan), timeout)
        elif kind == "persistence":
            self.persistence.stop(timeout=1)
            self._open(self.persistence, self.factory.persistence(self.actor_ref, self.plan), timeout)
        self.log.warning("restarted {}", child)

    def _on_symbol_discovered(self, symbol: str) -> None:
        if self.state is not SessionState.RUNNING or symbol in self.symbols:
            return
        history = self._load_history([symbol]).get(symbol, [])
        handle = ChildHandle(f"symbol:{symbol}")
        try:
            self._open(handle, self._new_symbol(symbol, history), self.settings.session.startup_timeout_seconds)
        except Exception as exc:  # one new symbol must not end the session; its ticks stay unrouted
            self.log.error("could not start a symbol actor for new symbol {}: {!r}", symbol, exc)
            return
        self.symbols[symbol] = handle
        self.ingress.tell(RouteSymbol(symbol, handle))
        self.log.info("added symbol actor for {} ({} symbols now)", symbol, len(self.symbols))

    # -- end ------------------------------------------------------------------------------------

    def _end(self, final_status: str, reason: str = "", alert_component: str | None = None) -> SessionOutcome:
        """Shut down in policy order and announce the end. Runs at most once per session."""
        if self.outcome is not None:
            return self.outcome
        self.state = SessionState.STOPPING
        if self._ticker:
            self._ticker.stop()
        timeout = self.settings.session.shutdown_timeout_seconds
        self.log.info("session stopping ({}): {}", final_status, reason or "requested")
        # 1. ingress: stop receiving, close and deliver every forming bar.
        if self.ingress.is_alive():
            try:
                self.ingress.ask(Drain(timeout), timeout=timeout)
            except Exception as exc:
                self.log.error("ingress drain failed: {!r}", exc)
        self.ingress.stop(timeout=timeout)
        # 2. symbols: each finishes the bars queued to it (pykka stop runs queued messages first).
        stops = [h.ref.stop(block=False) for h in self.symbols.values() if h.is_alive()]
        try:
            pykka.get_all(stops, timeout=timeout)
        except Exception as exc:
            self.log.error("symbol actors did not all stop in time: {!r}", exc)
        # 3. totals (the publisher has seen every result by now), then persistence drains.
        totals = self._totals(timeout)
        stopped_at = self.clock()
        outcome = SessionOutcome(
            self.plan.session_id, final_status, reason, self.started_at, stopped_at, totals[0], totals[1])
        self.persistence.tell(RecordSession(SessionRecord(
            self.plan.session_id, self.plan.universe, self.started_at, len(self.symbols), stopped_at,
            totals[0], totals[1], final_status)))
        if self.persistence.is_alive():
            try:
                self.persistence.ask(Drain(timeout), timeout=timeout + 1)
            except Exception as exc:
                self.log.error("persistence drain failed: {!r}", exc)
        self.persistence.stop(timeout=timeout)
        # 4. announce, then the publisher stops last.
        events: list[Any] = []
        if final_status == "failed":
            events.append(CriticalAlert(
                f"Streaming session failed: {reason}", alert_component or "session", stopped_at,
                "check the service log; restart the session", session_id=self.plan.session_id))
        events.append(SessionStopped(
            self.plan.session_id, stopped_at, stopped_at - self.started_at, totals[0], totals[1], final_status, reason))
        self._final_publish(events, timeout)
        self.state = SessionState.FAILED if final_status == "failed" else SessionState.STOPPED
        self.outcome = outcome
        self.log.info(
            "session {}: {:.0f}s, {} patterns, {} indicators{}", final_status, outcome.stopped_at - outcome.started_at,
            outcome.total_patterns, outcome.total_indicators, f" ({reason})" if reason else "")
        try:
            self.on_ended(outcome)
        finally:
            _stop_quietly(self.actor_ref, block=False)
        return outcome

    def _totals(self, timeout: float) -> tuple[int, int]:
        try:
            stats = self.publisher.ask(GetStats(), timeout=timeout)
            return stats.patterns, stats.indicators
        except Exception as exc:
            self.log.error("could not read session totals: {!r}", exc)
            return 0, 0

    def _final_publish(self, events: list[Any], timeout: float) -> None:
        """Publish the end through the publisher; if it cannot, publish directly. Never none."""
        if self.publisher.is_alive():
            try:
                self.publisher.tell(Publish(tuple(events)))
                self.publisher.tell(ClearSession())
                self.publisher.stop(timeout=timeout)
                return
            except Exception as exc:
                self.log.error("publisher could not announce the end: {!r}", exc)
        try:
            self.factory.publish_directly(self.plan, events)
        except Exception as exc:
            self.log.critical("session end could not be published at all: {!r}", exc)


def _stop_quietly(ref: pykka.ActorRef, block: bool = True) -> None:
    """Stop an actor that may already be dead (stopping a dead actor is not an error here)."""
    try:
        ref.stop(block=block, timeout=5 if block else None)
    except (pykka.ActorDeadError, pykka.Timeout):
        pass
