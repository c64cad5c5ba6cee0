"""Supervision policy of the SessionActor, in one place.

Written down like an Erlang/OTP supervisor specification:

- Strategy: one_for_one. A failed child is replaced alone; its siblings keep running.
- Restart intensity: at most ``max_restarts`` restarts within ``within_seconds`` across all
  children. One more failure inside the window means the fault is not transient: the session ends
  with ``final_status`` 'failed', a critical alert and ``session_stopped``.
- What a restart restores, per child kind:
    ingress      -> a new subscription; the forming bars (the aggregator) are handed over intact,
                    so a restart loses only the ticks published while it was down (pub/sub is
                    at-most-once).
    symbol       -> a new symbol actor primed again from ``ohlcv_1min``.
    persistence  -> a new writer; its handlers never raise on database errors (they buffer and
                    retry), so a death here is a bug, not an outage.
    publisher    -> a new Redis client; failed publishes are buffered and retried, not raised.
- A failure while the session is starting is never restarted: start-up is all or nothing.
- Start order: publisher, persistence, symbols, ingress (each is up before anything that sends to
  it). Stop order is the reverse, with the session's own announcement placed between them:
  ingress (drain, close forming bars) -> symbols (finish queued bars) -> persistence (flush) ->
  ``session_stopped`` -> publisher.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

START_ORDER = ("publisher", "persistence", "symbols", "ingress")
STOP_ORDER = ("ingress", "symbols", "persistence", "publisher")


class Action(str, Enum):
    RESTART = "restart"
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


RESTARTABLE_KINDS = frozenset({"ingress", "symbol", "persistence", "publisher"})


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


class RestartPolicy:
    """Decides what a child failure means. Pure: the caller supplies the time."""

    def __init__(self, max_restarts: int, within_seconds: float) -> None:
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds
        self._restarts: deque[float] = deque()
        self.total_restarts = 0
        self.last_restart_at: float | None = None

    def on_failure(self, child_name: str, state: SessionState, now: float) -> Decision:
        if state in (SessionState.STOPPING, SessionState.STOPPED, SessionState.FAILED):
            return Decision(Action.IGNORE, f"{child_name} failed while the session was {state.value}")
        if state is SessionState.STARTING:
            return Decision(Action.END_SESSION, f"{child_name} failed during start-up")
        if child_kind(child_name) not in RESTARTABLE_KINDS:
            return Decision(Action.END_SESSION, f"{child_name} is not restartable")
        while self._restarts and now - self._restarts[0] > self.within_seconds:
            self._restarts.popleft()
        if len(self._restarts) >= self.max_restarts:
            return Decision(
                Action.END_SESSION,
                f"{child_name} failed after {len(self._restarts)} restarts within {self.within_seconds:.0f}s",
            )
        self._restarts.append(now)
        self.total_restarts += 1
        self.last_restart_at = now
        return Decision(Action.RESTART, f"restarting {child_name} ({len(self._restarts)}/{self.max_restarts})")
