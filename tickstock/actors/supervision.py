"""Supervision policy of the actor tree, in one place.

The tree (each supervisor owns the lifecycle of the actors under it)::

    ServiceActor                  one per process: calendar, manual start/stop, retry back-off
    ├── HeartbeatActor            the whole life of the process: heartbeat key, retained session key
    └── SessionActor              one per session; session_started in on_start, session_stopped in on_stop
        ├── PublisherActor        shared child
        ├── PersistenceActor      shared child
        ├── CloseAnalysisActor    shared child, only with batched TA-Lib definitions (plan.py);
        │   └── (analysis processes)  OS processes it owns (analysis.process, .processes): any one's death is the actor's
        ├── SymbolActor x N       one per symbol
        └── TickIngressActor      shared child

Written down like an Erlang/OTP supervisor specification:

- Strategy: one_for_one. A failed child is replaced alone; its siblings keep running.
- One crash, one restart: every start of a child has an incarnation number, quoted in all it
  reports. A failure report of an incarnation that is no longer current is ignored, so a death seen
  twice (its own ``ChildFailed`` and the supervisor's liveness check) restarts it once.
- Restart intensity, per child: a shared child (ingress, publisher, persistence, analysis) may be restarted
  ``supervision.max_restarts`` times within ``supervision.within_seconds``; one failure more ends
  the session (``final_status`` 'failed', a critical alert, one ``session_stopped``). A symbol may
  be restarted ``symbol_max_restarts`` times within ``symbol_within_seconds``; one failure more
  QUARANTINES that symbol (its actor is stopped, the ingress keeps counting its ticks and storing its
  bars, health names it as a warning): one bad symbol never ends the session.
- What a restart restores, per child kind:
    ingress      -> a new subscription; the forming bars (the aggregator) are handed over intact.
    symbol       -> a new symbol actor, primed again from ``ohlcv_1min`` when it opens.
    persistence  -> a new writer; it replays the write-ahead log, so nothing buffered is lost.
    publisher    -> a new Redis client; the session keeps the dead incarnation's totals.
    analysis     -> a new CloseAnalysisActor (and new analysis processes: the old ones, the
                    survivors too, are stopped when its actor dies), every symbol primed again in
                    one query of ``ohlcv_1min`` when it opens, up to where the dead one's analysis
                    reached (its handover, with the bars of its last closes), so the closes queued
                    meanwhile are analysed. The close an analysis PROCESS died in is analysed again,
                    once, before them (its events not yet published go out); a close the actor
                    itself failed in is not (it would fail again). A process that ends between
                    closes is found by the actor's timer within a second.
- A failure while the session is starting is never restarted: start-up is all or nothing.
- Start order: publisher, persistence, analysis, symbols, ingress (each is up before anything that
  sends to it). Stop order is the reverse, with the session's announcement placed between them;
  the symbols and the analysis stop together, in one stage (neither sends to the other).
- Shutdown budget: ONE deadline (``session.shutdown_deadline_seconds``, default 20 s) from the stop
  request (SIGTERM) to the process exit, split into the stages of ``SHUTDOWN_STAGES``. Each stage
  ends at a fixed point of the budget, so a stage that hangs only spends its own share and the
  announcement of the end always has time left. Rows still unwritten stay in the persistence
  write-ahead log: the database is never on the critical path of a stop.
- The service retries a failed automatic session after ``RETRY_MIN_SECONDS``, doubling up to
  ``RETRY_MAX_SECONDS``: a persistent fault never becomes a crash loop. Manual sessions are not
  retried: the operator decides.
- Supervisors never block on a child from a handler or a timer: children report (``ChildReport``)
  and the supervisor acts on the latest report. Only the stop path waits, within its stage.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Callable

START_ORDER = ("publisher", "persistence", "analysis", "symbols", "ingress")
STOP_ORDER = ("ingress", "symbols", "analysis", "persistence", "publisher")
SHARED_KINDS = frozenset({"ingress", "persistence", "publisher", "analysis"})

# (stage, the fraction of the shutdown deadline at which it must be over). The service's own
# closing (heartbeat, HTTP) takes what is left after "publisher".
SHUTDOWN_STAGES: tuple[tuple[str, float], ...] = (
    ("ingress", 0.15),        # stop receiving, close and deliver every forming bar
    ("symbols", 0.30),        # finish the bars queued to them (symbol actors and the analysis)
    ("totals", 0.35),         # the publisher's session totals (it has seen every result)
    ("persistence", 0.50),    # best-effort write; what is left stays in the write-ahead log
    ("announce", 0.80),       # session_stopped, acknowledged by Redis (retried, then a direct fallback)
    ("publisher", 0.88),      # the publisher stops; the session actor is gone after this
)
SERVICE_CLOSE_FRACTION = 0.95  # heartbeat actor and HTTP server closed by then; exit follows

RETRY_MIN_SECONDS, RETRY_MAX_SECONDS = 30.0, 300.0


class Action(str, Enum):
    RESTART = "restart"
    QUARANTINE = "quarantine"
    END_SESSION = "end_session"
    IGNORE = "ignore"


class SessionState(str, Enum):
    """Lifecycle of a session, announced as it changes."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


def child_kind(child_name: str) -> str:
    """'symbol:AAPL' -> 'symbol'; 'ingress' -> 'ingress'."""
    return child_name.split(":", 1)[0]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


class _Budget:
    """Restart intensity of one child: at most ``max_restarts`` within ``within_seconds``."""

    def __init__(self, max_restarts: int, within_seconds: float) -> None:
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds
        self._restarts: deque[float] = deque()

    def spend(self, now: float) -> bool:
        """Record a restart at ``now`` if the budget allows one; False when it is exhausted."""
        while self._restarts and now - self._restarts[0] > self.within_seconds:
            self._restarts.popleft()
        if len(self._restarts) >= self.max_restarts:
            return False
        self._restarts.append(now)
        return True

    @property
    def used(self) -> int:
        return len(self._restarts)


class RestartPolicy:
    """Decides what a child failure means. Pure: the caller supplies the time.

    Budgets are per child (a flaky symbol spends only its own); see the module docstring."""

    def __init__(self, max_restarts: int, within_seconds: float,
                 symbol_max_restarts: int | None = None, symbol_within_seconds: float | None = None) -> None:
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds
        self.symbol_max_restarts = max_restarts if symbol_max_restarts is None else symbol_max_restarts
        self.symbol_within_seconds = within_seconds if symbol_within_seconds is None else symbol_within_seconds
        self._budgets: dict[str, _Budget] = {}
        self.total_restarts = 0
        self.last_restart_at: float | None = None
        self.quarantined: dict[str, str] = {}  # symbol child name -> why

    def _budget(self, child_name: str) -> _Budget:
        budget = self._budgets.get(child_name)
        if budget is None:
            if child_kind(child_name) == "symbol":
                budget = _Budget(self.symbol_max_restarts, self.symbol_within_seconds)
            else:
                budget = _Budget(self.max_restarts, self.within_seconds)
            self._budgets[child_name] = budget
        return budget

    def on_failure(self, child_name: str, state: SessionState, now: float) -> Decision:
        if state in (SessionState.STOPPING, SessionState.STOPPED, SessionState.FAILED):
            return Decision(Action.IGNORE, f"{child_name} failed while the session was {state.value}")
        if child_name in self.quarantined:
            return Decision(Action.IGNORE, f"{child_name} is quarantined")
        if state is SessionState.STARTING:
            return Decision(Action.END_SESSION, f"{child_name} failed during start-up")
        kind = child_kind(child_name)
        if kind != "symbol" and kind not in SHARED_KINDS:
            return Decision(Action.END_SESSION, f"{child_name} is not restartable")
        budget = self._budget(child_name)
        if not budget.spend(now):
            reason = f"{child_name} failed after {budget.used} restarts within {budget.within_seconds:.0f}s"
            if kind == "symbol":
                self.quarantined[child_name] = reason
                return Decision(Action.QUARANTINE, reason)
            return Decision(Action.END_SESSION, reason)
        self.total_restarts += 1
        self.last_restart_at = now
        return Decision(Action.RESTART, f"restarting {child_name} ({budget.used}/{budget.max_restarts})")


class ShutdownBudget:
    """The stop deadline split into ``SHUTDOWN_STAGES``. ``remaining(stage)`` is the time left
    until that stage must be over (never negative); a stage that finishes early leaves its
    unspent time to the next one."""

    def __init__(self, deadline_seconds: float, clock: Callable[[], float] = time.monotonic,
                 started_at: float | None = None) -> None:
        self.deadline_seconds = deadline_seconds
        self._clock = clock
        self.started_at = clock() if started_at is None else started_at
        self._ends = {stage: self.started_at + fraction * deadline_seconds for stage, fraction in SHUTDOWN_STAGES}

    def ends_at(self, stage: str) -> float:
        return self._ends[stage]

    def remaining(self, stage: str) -> float:
        return max(0.0, self._ends[stage] - self._clock())

    def service_close_remaining(self) -> float:
        return max(0.0, self.started_at + SERVICE_CLOSE_FRACTION * self.deadline_seconds - self._clock())


class RetryBackoff:
    """When a failed automatic session may be tried again: 30 s, doubling to 5 min; reset by a
    session that did not fail."""

    def __init__(self, minimum: float = RETRY_MIN_SECONDS, maximum: float = RETRY_MAX_SECONDS) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.delay = minimum
        self.retry_after = 0.0

    def failed(self, now: float) -> None:
        self.retry_after = now + self.delay
        self.delay = min(self.delay * 2, self.maximum)

    def succeeded(self) -> None:
        self.delay = self.minimum

    def allows(self, now: float) -> bool:
        return now >= self.retry_after
