"""The base of every child actor: typed dispatch and failure reporting to the supervisor.

pykka gives no supervision (shared/docs/domain.md): an exception while handling a ``tell`` runs
``on_failure`` and kills the actor, silently dropping its queued tells. This base turns that death
into a ``ChildFailed`` message to the supervisor, which applies the policy in ``supervision.py``.
"""

from __future__ import annotations

import functools
from typing import Any

import pykka
from loguru import logger

from tickstock.messages.commands import ChildFailed, Open, Ping


class SupervisedActor(pykka.ThreadingActor):
    """A child of the SessionActor. Subclasses register handlers with ``@handle.register``."""

    def __init__(self, supervisor: pykka.ActorRef | None, name: str, session_id: str = "") -> None:
        super().__init__()
        self.supervisor = supervisor
        self.child_name = name
        self.session_id = session_id
        self.log = logger.bind(session_id=session_id, actor=name)

    def on_receive(self, message: Any) -> Any:
        return self.handle(message)

    @functools.singledispatchmethod
    def handle(self, message: Any) -> Any:
        raise TypeError(f"{self.child_name} cannot handle {type(message).__name__}")

    @handle.register
    def _ping(self, message: Ping) -> bool:
        return True

    @handle.register
    def _open(self, message: Open) -> bool:
        self.open()
        return True

    def open(self) -> None:
        """Acquire connections and start work; raise if the child cannot run. Default: nothing."""

    def report_failure(self, error: str) -> None:
        """Tell the supervisor this child is failing; safe to call from any thread."""
        if self.supervisor is not None:
            try:
                self.supervisor.tell(ChildFailed(self.child_name, error))
            except pykka.ActorDeadError:
                pass

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self.log.error("{} died: {!r}", self.child_name, exception_value)
        self.report_failure(f"{exception_type.__name__}: {exception_value}")
