"""The base of every child actor: typed dispatch, reports and failure reporting to the supervisor.

pykka gives no supervision (shared/docs/domain.md): an exception while handling a ``tell`` runs
``on_failure`` and kills the actor, silently dropping its queued tells. This base turns that death
into a ``ChildFailed`` message to the supervisor, which applies the policy in ``supervision.py``.

Everything a child says to its supervisor is a ``tell`` quoting its incarnation (given by ``Open``):
``ChildOpened`` once it works, ``ChildReport`` with its counters on its own timer, ``ChildFailed``
when it dies. The supervisor never has to ask.
"""

from __future__ import annotations

from typing import Any, Callable

import pykka
from loguru import logger

from tickstock.actors.dispatch import PooledActor
import time

from tickstock.messages.commands import ChildFailed, ChildOpened, ChildReport, Open, Ping, TimerTick


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
        self.incarnation = 0
        self.log = logger.bind(session_id=session_id, actor=name)

    def on_receive(self, message: Any) -> Any:
        if type(message) is TimerTick and message.source is not None:
            message.source.handled()  # the ticker may send the next tick (ticks coalesce)
        name = self._handlers.get(type(message))
        if name is None:
            raise TypeError(f"{self.child_name} cannot handle {type(message).__name__}")
        return getattr(self, name)(message)

    @handles(Ping)
    def _ping(self, message: Ping) -> bool:
        return True

    @handles(Open)
    def _open(self, message: Open) -> bool:
        self.incarnation = message.incarnation
        self.open()
        self._tell_supervisor(ChildOpened(self.child_name, self.incarnation))
        return True

    def open(self) -> None:
        """Acquire connections and start work; raise if the child cannot run. Default: nothing."""

    def final_stats(self) -> Any:
        """Counters worth handing to the next incarnation when this one dies. Default: none."""
        return None

    def report(self, stats: Any) -> None:
        """Push ``stats`` to the supervisor as a ``ChildReport``; safe to call from any thread."""
        self._tell_supervisor(ChildReport(self.child_name, self.incarnation, stats, time.time()))

    def report_failure(self, error: str, final_stats: Any = None) -> None:
        """Tell the supervisor this child is failing; safe to call from any thread."""
        self._tell_supervisor(ChildFailed(self.child_name, error, self.incarnation, final_stats))

    def _tell_supervisor(self, message: Any) -> None:
        if self.supervisor is not None:
            try:
                self.supervisor.tell(message)
            except pykka.ActorDeadError:
                pass

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self.log.error("{} died: {!r}", self.child_name, exception_value)
        try:
            final = self.final_stats()
        except Exception:  # a broken actor may not be able to count: report the death anyway
            final = None
        self.report_failure(f"{exception_type.__name__}: {exception_value}", final)


Supervised._handlers = {Ping: "_ping", Open: "_open"}


class SupervisedActor(Supervised, pykka.ThreadingActor):
    """A child on a thread of its own: ingress, persistence, publisher."""


class PooledSupervisedActor(Supervised, PooledActor):
    """A child on a shared dispatcher: the symbol actors (see ``dispatch.py`` for why)."""
