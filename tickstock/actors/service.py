"""StreamingService: runs one session at a time, on the market calendar or on request.

Policy:
- Automatic sessions follow the XNYS calendar (``market.SessionScheduler``): started at the open
  (or at once when launched during market hours), stopped at the close with ``completed``.
- Manual sessions (``--now``, the admin API) start whatever the clock says and end only by a
  manual stop or a signal (``stopped``); the calendar never stops them.
- A manual stop during market hours holds until the next trading session (or a manual start):
  the calendar does not undo an operator's decision a second later.
- A start while a session runs is answered with that session; it never starts a second one.
- A failed automatic session is started again after a back-off (30 s, doubling to 5 min), so a
  persistent fault does not become a crash loop.
- Before a session starts, the universe must resolve to at least one symbol and the analysis
  definitions are loaded; problems with either are loud (error log and critical alert).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pykka
from loguru import logger

from tickstock.actors.session import SessionActor, SessionOutcome, SessionPlan
from tickstock.analysis import definitions_from_config, select_definitions
from tickstock.config import ConfigError, Settings
from tickstock.market.schedule import Action
from tickstock.messages.commands import GetStats, StopSession
from tickstock.messages.events import CriticalAlert

_RETRY_MIN, _RETRY_MAX = 30.0, 300.0


class UniverseError(ValueError):
    """The configured universe cannot be resolved to symbols."""


def resolve_universe(settings: Settings, store_factory: Callable[[], Any]) -> list[str]:
    """The session's symbols, from YAML or the dashboard's ``cache_entries``; never empty."""
    key = settings.session.universe
    if settings.session.universe_source == "yaml":
        try:
            symbols = settings.universe_symbols(key)
        except ConfigError as exc:
            raise UniverseError(str(exc)) from None
    else:
        store = store_factory()
        try:
            symbols = store.load_universe(key)
        except Exception as exc:
            raise UniverseError(f"universe {key!r} could not be read from cache_entries: {exc}") from None
        finally:
            store.close()
    symbols = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
    if not symbols:
        raise UniverseError(f"universe {key!r} resolves to no symbols")
    return symbols


def load_definitions(settings: Settings, store_factory: Callable[[], Any]) -> tuple[Any, list[str], str]:
    """(DefinitionSet, problems in words, source). Falls back to config.yaml if the database is down."""
    try:
        store = store_factory()
        try:
            pattern_rows, indicator_rows = store.load_definitions()
        finally:
            store.close()
        definitions = select_definitions(pattern_rows, indicator_rows, settings.analysis.timeframe)
        source = "database"
        problems = list(definitions.problems())
    except Exception as exc:
        definitions = definitions_from_config(settings.analysis.fallback_definitions)
        source = "config.yaml (database unreachable)"
        problems = [f"definitions database unreachable ({exc.__class__.__name__}): using config.yaml fallback"]
        problems += list(definitions.problems())
    names = ", ".join(f"{d.name}({d.kind})" for d in definitions.definitions) or "NONE"
    logger.info("loaded {} analysis definitions from {}: {}", len(definitions.definitions), source, names)
    for problem in problems:
        logger.error("analysis definitions: {}", problem)
    return definitions, problems, source


class StreamingService:
    def __init__(
        self,
        settings: Settings,
        factory: Any,
        store_factory: Callable[[], Any],
        scheduler: Any = None,
        health_monitor_factory: Callable[[SessionPlan], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.store_factory = store_factory
        self.scheduler = scheduler
        self.health_monitor_factory = health_monitor_factory
        self.clock = clock
        self._lock = threading.Lock()
        self._session: pykka.ActorRef | None = None
        self._plan: SessionPlan | None = None
        self.last_outcome: SessionOutcome | None = None
        self.definition_problems: list[str] = []
        self.definitions_source = ""
        self._retry_after = 0.0
        self._retry_delay = _RETRY_MIN
        self._last_announced: Any = None  # the schedule state last logged, so each is said once
        self._held_window: Any = None  # a session window in which an operator stopped the session

    # -- control --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """A session is running (or starting/stopping) and has not yet announced its end."""
        ref, plan, last = self._session, self._plan, self.last_outcome
        if ref is None or not ref.is_alive():
            return False
        return not (last is not None and plan is not None and last.session_id == plan.session_id)

    def start_session(self, manual: bool = True) -> tuple[bool, dict[str, Any]]:
        """Start a session unless one runs. Returns (started, status). Raises ``UniverseError``
        if the universe resolves to nothing (nothing is started then)."""
        with self._lock:
            if self.running:
                return False, self.status()
            plan = self._plan_session(manual)
            if manual:
                self._held_window = None
            monitor = self.health_monitor_factory(plan) if self.health_monitor_factory else None
            self._plan = plan
            self._session = SessionActor.start(plan, self.factory, self._on_ended, monitor)
        try:
            self._session.ask(GetStats(), timeout=self.settings.session.startup_timeout_seconds * 4)
        except (pykka.ActorDeadError, pykka.Timeout):
            pass  # start-up failed: on_ended has recorded the outcome and it was announced
        return self.running, self.status()

    def stop_session(self, final_status: str = "stopped", reason: str = "manual stop") -> SessionOutcome | None:
        """End the running session (if any) and return how it ended."""
        ref, plan = self._session, self._plan
        if ref is None or not self.running:
            return None
        if final_status == "stopped" and self.scheduler is not None:
            # An operator's stop holds for the rest of today's session: the calendar must not
            # start it again a second later. A manual start lifts the hold.
            self._held_window = self.scheduler.window_at(self.clock())
        timeout = self.settings.session.shutdown_timeout_seconds * 4 + 5
        try:
            return ref.ask(StopSession(final_status, reason), timeout=timeout)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            logger.error("stopping the session did not complete: {!r}", exc)
            last = self.last_outcome
            return last if last is not None and plan is not None and last.session_id == plan.session_id else None

    def status(self) -> dict[str, Any]:
        """Always the same shape. Never blocks long: a session busy starting or stopping says so."""
        ref, plan, last = self._session, self._plan, self.last_outcome
        session = None
        if ref is not None and self.running:
            try:
                session = ref.ask(GetStats(), timeout=1.0)
            except (pykka.ActorDeadError, pykka.Timeout):
                session = {"session_id": plan.session_id if plan else None, "state": "busy"}
        return {
            "running": session is not None,
            "session": session,
            "last_session": None if last is None else {
                "session_id": last.session_id, "final_status": last.final_status, "reason": last.reason,
                "started_at": last.started_at, "stopped_at": last.stopped_at,
                "total_patterns": last.total_patterns, "total_indicators": last.total_indicators,
            },
            "universe": plan.universe if plan else self.settings.session.universe,
            "definitions_source": self.definitions_source,
            "definition_problems": list(self.definition_problems),
        }

    def _on_ended(self, outcome: SessionOutcome) -> None:
        self.last_outcome = outcome
        automatic = self._plan is not None and not self._plan.manual
        if outcome.final_status == "failed" and automatic:  # back off only the calendar's retries
            self._retry_after = self.clock() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)
        else:
            self._retry_delay = _RETRY_MIN

    def _plan_session(self, manual: bool) -> SessionPlan:
        symbols = resolve_universe(self.settings, self.store_factory)
        definitions, problems, source = load_definitions(self.settings, self.store_factory)
        self.definition_problems, self.definitions_source = problems, source
        return SessionPlan(self.settings.session.universe, tuple(symbols), self.settings, definitions,
                           tuple(problems), manual=manual)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event, start_now: bool = False, poll_seconds: float = 1.0) -> None:
        """Serve until ``stop`` is set, then end any running session with ``stopped``."""
        if start_now:
            self._start_or_alert(manual=True)
        while not stop.is_set():
            if self.scheduler is not None:
                self.step_schedule()
            stop.wait(poll_seconds)
        self.stop_session("stopped", "service shutting down (signal)")

    def step_schedule(self) -> None:
        """Apply one calendar decision to the automatic session."""
        manual_running = self.running and self._plan is not None and self._plan.manual
        if manual_running:
            return
        now = self.clock()
        decision = self.scheduler.decide(now, self.running)
        if decision.action is Action.START and decision.window is not None and decision.window == self._held_window:
            if self._last_announced != ("held", decision.window):
                self._last_announced = ("held", decision.window)
                logger.info("session stopped by an operator: no automatic start until the next session")
        elif decision.action is Action.START and now >= self._retry_after:
            logger.info("market is open ({}): starting the session", decision.describe())
            self._start_or_alert(manual=False)
        elif decision.action is Action.STOP:
            logger.info("market closed: ending the session")
            self.stop_session("completed", "market close")
        elif decision.action is Action.WAIT and decision.window != self._last_announced:
            self._last_announced = decision.window
            logger.info("no session now; {}", decision.describe())

    def _start_or_alert(self, manual: bool) -> None:
        try:
            self.start_session(manual=manual)
        except UniverseError as exc:
            logger.error("session not started: {}", exc)
            self._retry_after = self.clock() + self._retry_delay
            try:
                self.factory.publish_directly(None, [CriticalAlert(
                    f"Session not started: {exc}", "universe", self.clock(), "fix the universe configuration")])
            except Exception as publish_error:
                logger.error("could not publish the alert: {!r}", publish_error)
