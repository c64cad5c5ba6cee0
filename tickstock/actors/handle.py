"""ChildHandle: a stable address for a supervised child, like an Erlang registered name.

Siblings hold handles, not ``ActorRef``s, so when the supervisor restarts a child it re-points the
handle and nobody holds a dead reference. A ``tell`` that finds the child dead (between its death
and its restart) is kept and delivered to the replacement, in order.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka


class ChildHandle:
    def __init__(self, name: str, ref: pykka.ActorRef | None = None, max_pending: int = 100_000) -> None:
        self.name = name
        self._ref = ref
        self._pending: list[Any] = []
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self.dropped = 0

    @property
    def ref(self) -> pykka.ActorRef | None:
        return self._ref

    def tell(self, message: Any) -> None:
        """Deliver ``message``, or keep it for the replacement if the child is down. Never raises."""
        ref = self._ref
        if ref is not None:
            try:
                ref.tell(message)
                return
            except pykka.ActorDeadError:
                pass
        with self._lock:
            # A replace() may have finished while we were failing on the old ref: use the new one.
            current = self._ref
            if current is not None and current is not ref:
                try:
                    current.tell(message)
                    return
                except pykka.ActorDeadError:
                    pass
            if len(self._pending) < self._max_pending:
                self._pending.append(message)
            else:
                self.dropped += 1

    def ask(self, message: Any, timeout: float | None = None, block: bool = True) -> Any:
        """Ask the current child (``block=False``: return the future); raises
        ``pykka.ActorDeadError`` if there is none."""
        ref = self._ref
        if ref is None:
            raise pykka.ActorDeadError(f"{self.name} is not running")
        return ref.ask(message, timeout=timeout, block=block)

    def replace(self, ref: pykka.ActorRef) -> None:
        """Point the handle at a (re)started child and hand it what arrived in between."""
        with self._lock:
            # Replay before publishing the new ref, under the lock: nothing told meanwhile can
            # overtake what was queued while the child was down.
            for message in self._pending:
                ref.tell(message)
            self._pending = []
            self._ref = ref

    def is_alive(self) -> bool:
        return self._ref is not None and self._ref.is_alive()

    def mailbox_depth(self) -> int:
        ref = self._ref
        inbox = getattr(ref, "actor_inbox", None)
        return inbox.qsize() if inbox is not None else 0

    def stop(self, timeout: float | None = None) -> None:
        """Stop the child after it has handled everything queued before this call."""
        ref = self._ref
        if ref is not None:
            try:
                ref.stop(block=True, timeout=timeout)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
