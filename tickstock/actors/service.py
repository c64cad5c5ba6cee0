"""ServiceActor: the top of the actor tree. Runs one session at a time, on the market calendar or on
request, and keeps the process's heartbeat alive.

Policy (the restart and shutdown rules themselves are in ``supervision.py``):
- Automatic sessions follow the XNYS calendar (``market.SessionScheduler``): started at the open
  (or at once when launched during market hours), stopped at the close with ``completed``.
- Manual sessions (``--now``, the admin API) start whatever the clock says and end only by a
  manual stop or a signal (``stopped``); the calendar never stops them.
- A manual stop during market hours holds until the next trading session (or a manual start):
  the calendar does not undo an operator's decision a second later.
- A start while a session runs is answered with that session; it never starts a second one.
- After ``Shutdown`` (SIGTERM) every start is refused: nothing can start a session nobody stops.
- A failed automatic session is started again after a back-off (``supervision.RetryBackoff``).
- The actor never waits on its session: the session plans itself (universe, definitions) in its
  own ``on_start`` and reports its end with ``SessionEnded``; callers that want to wait (the HTTP
  server, the signal handler) wait on the futures this actor hands them, in their own threads.

``StreamingService`` is the blocking facade the HTTP server and the command line use.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import pykka
from loguru import logger

from tickstock.actors.plan import UniverseError, load_definitions, make_plan, resolve_universe  # noqa: F401 (re-exported)
from tickstock.actors.session import SessionActor, SessionOutcome
from tickstock.actors.supervision import RetryBackoff
from tickstock.actors.timer import Ticker
from tickstock.config import Settings
from tickstock.heap import HeapKeeper
from tickstock.market.schedule import Action
from tickstock.messages.commands import (
    GetStats, SessionEnded, Shutdown, StartRequest, StopRequest, StopSession, TimerTick,
)


@dataclass(frozen=True)
class StartTicket:
    """The answer to ``StartRequest``: ``status`` is 'started', 'running' (one already runs) or
    'refused' (the service is shutting down). ``ended`` is the future of the session's outcome."""

    status: str
    session_id: str | None = None
    session_ref: pykka.ActorRef | None = None
    ended: pykka.Future | None = None
    reason: str = ""


class ServiceActor(pykka.ThreadingActor):
    def __init__(
        self,
        settings: Settings,
        factory: Any,
        store_factory: Callable[[], Any],
        scheduler: Any = None,
        health_monitor_factory: Callable[[Any], Any] | None = None,
        heartbeat_factory: Callable[[], pykka.ActorRef] | None = None,
        clock: Callable[[], float] = time.time,
        timer_interval: float = 1.0,
        heap: HeapKeeper | None = None,
    ) -> None:
        super().__init__()
        self.heap = heap  # the process's collector schedule, handed to each session (tickstock/heap.py)
        self.settings = settings
        self.factory = factory
        self.store_factory = store_factory
        self.scheduler = scheduler
        self.health_monitor_factory = health_monitor_factory
        self.heartbeat_factory = heartbeat_factory
        self.clock = clock
        self.timer_interval = timer_interval
        self.heartbeat: pykka.ActorRef | None = None
        self.session: StartTicket | None = None
        self.manual = False
        self.last_outcome: SessionOutcome | None = None
        self.shutting_down = False
        self.backoff = RetryBackoff()
        self._held_window: Any = None        # a session window in which an operator stopped the session
        self._last_announced: Any = None     # the schedule state last logged, so each is said once
        self._ticker: Ticker | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self) -> None:
        if self.heartbeat_factory is not None:
            self.heartbeat = self.heartbeat_factory()
        if self.scheduler is not None:
            self._ticker = Ticker(self.actor_ref, self.timer_interval, TimerTick, "service", clock=self.clock).start()

    def on_stop(self) -> None:
        """Last: the session (if one still runs) has ended or is ending; the heartbeat goes."""
        if self._ticker is not None:
            self._ticker.stop()
        if self.session is not None and self.session.session_ref is not None:
            self.session.session_ref.stop(block=False)
        if self.heartbeat is not None:
            try:
                self.heartbeat.stop(block=True, timeout=2.0)
            except pykka.Timeout:
                logger.warning("heartbeat actor did not stop within 2s")

    # -- messages -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, TimerTick):
            if message.source is not None:
                message.source.handled()
            return self.step_schedule()
        if isinstance(message, StartRequest):
            return self._start_session(manual=message.manual)
        if isinstance(message, StopRequest):
            return self._stop_session(message.final_status, message.reason)
        if isinstance(message, Shutdown):
            self.shutting_down = True
            return self._stop_session("stopped", "service shutting down (signal)", message.requested_at, hold=False)
        if isinstance(message, SessionEnded):
            return self._on_ended(message.outcome)
        if isinstance(message, GetStats):
            return self.status()
        raise TypeError(f"service cannot handle {type(message).__name__}")

    @property
    def running(self) -> bool:
        """A session runs (or is starting/stopping) and has not yet announced its end."""
        return self.session is not None

    def status(self) -> dict[str, Any]:
        last = self.last_outcome
        return {
            "running": self.running,
            "session_id": self.session.session_id if self.session else None,
            "session_ref": self.session.session_ref if self.session else None,
            "manual": self.manual if self.session else None,
            "shutting_down": self.shutting_down,
            "last_session": None if last is None else {
                "session_id": last.session_id, "final_status": last.final_status, "reason": last.reason,
                "started_at": last.started_at, "stopped_at": last.stopped_at,
                "total_patterns": last.total_patterns, "total_indicators": last.total_indicators,
            },
            "universe": self.settings.session.universe,
        }

    def _start_session(self, manual: bool) -> StartTicket:
        if self.shutting_down:
            return StartTicket("refused", reason="the service is shutting down")
        if self.session is not None:
            return StartTicket("running", self.session.session_id, self.session.session_ref, self.session.ended)
        if manual:
            self._held_window = None
        session_id = str(uuid.uuid4())
        ended = pykka.ThreadingFuture()
        me = self.actor_ref

        def on_ended(outcome: SessionOutcome) -> None:  # runs in the session's stop path
            ended.set(outcome)
            try:
                me.tell(SessionEnded(outcome))
            except pykka.ActorDeadError:
                pass

        planner = functools.partial(make_plan, self.settings, self.store_factory, manual, session_id, clock=self.clock)
        ref = SessionActor.start(planner, self.factory, on_ended, self.health_monitor_factory, clock=self.clock,
                                 beacon=self.heartbeat, session_id=session_id, settings=self.settings,
                                 heap=self.heap)
        self.session = StartTicket("started", session_id, ref, ended)
        self.manual = manual
        return self.session

    def _stop_session(self, final_status: str, reason: str, requested_at: float | None = None,
              hold: bool = True) -> pykka.Future | None:
        if self.session is None:
            return None
        if hold and final_status == "stopped" and self.scheduler is not None:
            # An operator's stop holds for the rest of today's session: the calendar must not
            # start it again a second later. A manual start lifts the hold.
            self._held_window = self.scheduler.window_at(self.clock())
        try:
            self.session.session_ref.tell(StopSession(final_status, reason, requested_at))
        except pykka.ActorDeadError:
            pass  # it is ending on its own; its outcome still arrives
        return self.session.ended

    def _on_ended(self, outcome: SessionOutcome) -> None:
        self.last_outcome = outcome
        if self.session is not None and self.session.session_id == outcome.session_id:
            automatic = not self.manual
            self.session = None
            if outcome.final_status == "failed" and automatic:  # back off only the calendar's retries
                self.backoff.failed(self.clock())
                logger.warning("automatic session failed; next attempt in {:.0f}s", self.backoff.retry_after - self.clock())
            elif outcome.final_status != "failed":
                self.backoff.succeeded()

    # -- the calendar ---------------------------------------------------------------------------

    def step_schedule(self) -> None:
        """Apply one calendar decision to the automatic session."""
        if self.scheduler is None or self.shutting_down or (self.session is not None and self.manual):
            return
        now = self.clock()
        decision = self.scheduler.decide(now, self.running)
        if decision.action is Action.START and decision.window is not None and decision.window == self._held_window:
            if self._last_announced != ("held", decision.window):
                self._last_announced = ("held", decision.window)
                logger.info("session stopped by an operator: no automatic start until the next session")
        elif decision.action is Action.START and self.backoff.allows(now):
            logger.info("market is open ({}): starting the session", decision.describe())
            self._start_session(manual=False)
        elif decision.action is Action.STOP:
            logger.info("market closed: ending the session")
            self._stop_session("completed", "market close", hold=False)
        elif decision.action is Action.WAIT and decision.window != self._last_announced:
            self._last_announced = decision.window
            logger.info("no session now; {}", decision.describe())


class StreamingService:
    """The blocking face of the ``ServiceActor`` for the HTTP server and the command line. Every
    wait happens here, in the caller's thread, bounded; the actor itself never waits."""

    def __init__(self, ref: pykka.ActorRef, settings: Settings) -> None:
        self.ref = ref
        self.settings = settings

    @property
    def running(self) -> bool:
        try:
            return bool(self.ref.ask(GetStats(), timeout=2.0)["running"])
        except (pykka.ActorDeadError, pykka.Timeout):
            return False

    def start_session(self, manual: bool = True) -> tuple[bool, dict[str, Any]]:
        """Start a session unless one runs; wait until it is running or has ended. Returns
        (started, status); a refused or failed start says why in ``status`` ('refused',
        'start_error' with its 'cause', e.g. 'universe')."""
        try:
            ticket = self.ref.ask(StartRequest(manual), timeout=5.0)
        except (pykka.ActorDeadError, pykka.Timeout):
            return False, {**self.status(), "refused": "the service is not running"}
        if ticket.status == "refused":
            return False, {**self.status(), "refused": ticket.reason}
        if ticket.status == "running":
            return False, self.status()
        state = None
        try:  # answered once on_start has finished, or ActorDeadError if start-up failed
            state = ticket.session_ref.ask(GetStats(), timeout=self.settings.session.startup_timeout_seconds * 4)["state"]
        except (pykka.ActorDeadError, pykka.Timeout):
            pass
        outcome = _peek(ticket.ended) if state == "running" else self._wait(ticket.ended)
        if outcome is not None:
            return False, {**self.status(), "start_error": {"cause": outcome.cause, "reason": outcome.reason}}
        return True, self.status()

    def stop_session(self, final_status: str = "stopped", reason: str = "manual stop") -> SessionOutcome | None:
        """End the running session (if any) and return how it ended (None if none ran)."""
        try:
            ended = self.ref.ask(StopRequest(final_status, reason), timeout=5.0)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None
        return self._wait(ended)

    def shutdown(self, requested_at: float | None = None) -> SessionOutcome | None:
        """Refuse control from now on and end the running session; its outcome, or None."""
        try:
            ended = self.ref.ask(Shutdown(requested_at), timeout=5.0)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None
        return self._wait(ended)

    def _wait(self, ended: pykka.Future | None) -> SessionOutcome | None:
        if ended is None:
            return None
        try:
            return ended.get(timeout=self.settings.session.shutdown_deadline_seconds + 5)
        except pykka.Timeout:
            logger.error("the session did not end within its shutdown deadline")
            return None

    def status(self) -> dict[str, Any]:
        """Always the same shape. Never blocks long: a session busy starting says so."""
        try:
            service = self.ref.ask(GetStats(), timeout=2.0)
        except (pykka.ActorDeadError, pykka.Timeout):
            service = {"running": False, "session_ref": None, "last_session": None,
                       "universe": self.settings.session.universe, "shutting_down": True}
        session = None
        ref = service.pop("session_ref", None)
        if ref is not None:
            try:
                session = ref.ask(GetStats(), timeout=1.0)
            except (pykka.ActorDeadError, pykka.Timeout):
                session = {"session_id": service.get("session_id"), "state": "busy"}
        return {
            "running": session is not None,
            "session": session,
            "last_session": service.get("last_session"),
            "universe": (session or {}).get("universe") or service.get("universe"),
            "definitions_source": (session or {}).get("definitions_source", ""),
            "definition_problems": (session or {}).get("definition_problems", []),
            "shutting_down": service.get("shutting_down", False),
        }


def _peek(future: pykka.Future | None) -> Any:
    if future is None:
        return None
    try:
        return future.get(timeout=0)
    except pykka.Timeout:
        return None
