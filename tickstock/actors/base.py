"""The base of every child actor: typed dispatch and failure reporting to the supervisor.

pykka gives no supervision (shared/docs/domain.md): an exception while handling a ``tell`` runs
``on_failure`` and kills the actor, silently dropping its queued tells. This base turns that death
into a ``ChildFailed`` message to the supervisor, which applies the policy in ``supervision.py``.
"""

from __future__ import annotations

from typing import Any, Callable

import pykka
from loguru import logger

from tickstock.actors.dispatch import PooledActor
from tickstock.messages.commands import ChildFailed, Open, Ping


def handles(*message_types: type) -> Callable:
    """Mark a method as the handler of ``message_types`` in its class (and its subclasses)."""

    def mark(method: Callable) -> Callable:
        method._handles = message_types
        return method

    return mark


class Supervised:
    """What every child of the SessionActor has, whichever runtime runs it (its own thread or a
    shared dispatcher). Subclasses mark handlers with ``@handles(MessageType)``.

    Each class gets its own table (type -> method name), inherited and extended by subclasses, so
    two actor classes never share a dispatch registry.
    """

    _handlers: dict[type, str] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table = dict(getattr(cls, "_handlers", {}))
        for name, attr in vars(cls).items():
            for message_type in getattr(attr, "_handles", ()):
                table[message_type] = name
        cls._handlers = table

    def __init__(self, supervisor: pykka.ActorRef | None, name: str, session_id: str = "", *runtime_args: Any) -> None:
        super().__init__(*runtime_args)
        self.supervisor = supervisor
        self.child_name = name
        self.session_id = session_id
        self.log = logger.bind(session_id=session_id, actor=name)

    def on_receive(self, message: Any) -> Any:
        name = self._handlers.get(type(message))
        if name is None:
            raise TypeError(f"{self.child_name} cannot handle {type(message).__name__}")
        return getattr(self, name)(message)

    @handles(Ping)
    def _ping(self, message: Ping) -> bool:
        return True

    @handles(Open)
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


Supervised._handlers = {Ping: "_ping", Open: "_open"}


class SupervisedActor(Supervised, pykka.ThreadingActor):
    """A child on a thread of its own: ingress, persistence, publisher."""


class PooledSupervisedActor(Supervised, PooledActor):
    """A child on a shared dispatcher: the symbol actors (see ``dispatch.py`` for why)."""
