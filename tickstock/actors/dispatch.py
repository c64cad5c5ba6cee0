"""A dispatcher that runs many pykka actors on a few shared threads.

Why: a ``ThreadingActor`` is one OS thread. With one actor per symbol, a bar close wakes 500
threads that then take turns on the GIL; on this 2-core machine that hand-over, not the analysis
(~15 us a bar), made the last symbol's results ~230 ms late. Like Akka's dispatchers or Erlang's
schedulers, ``PooledActor`` keeps every actor's own inbox, state, ``ActorRef``, ``tell``/``ask``
and failure semantics, but runs it on one of ``workers`` threads when it has mail.

Guarantees (the same as pykka's for a ``ThreadingActor``):
- One message at a time per actor, in the order received; ``on_start`` before the first message,
  ``on_stop`` on a clean stop, ``on_failure`` after an exception in a ``tell`` (then the actor is
  dead); an exception in an ``ask`` goes to the caller's future.
- Fairness: an actor handles at most ``slice_size`` messages per turn, then yields its thread.
Rule: a pooled actor must never block waiting on another pooled actor of the same dispatcher
(no blocking ``ask`` from inside a handler): with all workers waiting, nothing would run.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from typing import Any

import pykka
from loguru import logger
from pykka import ActorRegistry
from pykka._threading import ThreadingFuture


class Dispatcher:
    """``workers`` daemon threads that run scheduled actors' turns."""

    def __init__(self, name: str, workers: int = 2, slice_size: int = 16) -> None:
        if workers < 1:
            raise ValueError("a dispatcher needs at least one worker")
        self.name = name
        self.slice_size = slice_size
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, actor: "PooledActor") -> None:
        self._ready.put(actor)

    def shutdown(self) -> None:
        """Let the workers exit once the actors queued so far have had their turn."""
        for _ in self._threads:
            self._ready.put(None)

    def _work(self) -> None:
        while True:
            actor = self._ready.get()
            if actor is None:
                return
            try:
                actor._run_turn(self.slice_size)
            except BaseException:  # pragma: no cover - a worker must survive any actor
                logger.exception("dispatcher {} worker survived an actor error", self.name)


class _Inbox:
    """The queue-like inbox pykka expects (``put``/``get``/``empty``/``qsize``). ``put`` schedules
    the owning actor on its dispatcher unless it is already scheduled or running."""

    def __init__(self) -> None:
        self._messages: deque = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self.owner: PooledActor | None = None

    def put(self, envelope: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            self._messages.append(envelope)
            if self._scheduled or self.owner is None or not self.owner._loop_started:
                return
            self._scheduled = True
        self.owner._dispatcher.submit(self.owner)

    def schedule(self) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        assert self.owner is not None
        self.owner._dispatcher.submit(self.owner)

    def pop(self) -> Any | None:
        try:
            return self._messages.popleft()
        except IndexError:
            return None

    def end_turn(self) -> bool:
        """Called by the worker after a turn: returns True if the actor must be scheduled again."""
        with self._lock:
            if self._messages:
                return True
            self._scheduled = False
            return False

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        envelope = self.pop()
        if envelope is None:
            raise queue.Empty
        return envelope

    def empty(self) -> bool:
        return not self._messages

    def qsize(self) -> int:
        return len(self._messages)


class PooledActor(pykka.Actor):
    """A pykka actor that runs on a shared ``Dispatcher`` instead of a thread of its own.

    Subclasses pass the dispatcher to ``__init__`` (``PooledActor.__init__(self, dispatcher)``)."""

    @staticmethod
    def _create_actor_inbox() -> _Inbox:
        return _Inbox()

    @staticmethod
    def _create_future() -> ThreadingFuture:
        return ThreadingFuture()

    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__()
        self._dispatcher = dispatcher
        self._loop_started = False
        self._needs_setup = True
        self.actor_inbox.owner = self

    def _start_actor_loop(self) -> None:
        self._loop_started = True
        self.actor_inbox.schedule()

    def _run_turn(self, limit: int) -> None:
        if self._needs_setup:
            self._needs_setup = False
            self._actor_loop_setup()  # on_start; a failure there stops the actor, as in pykka
        handled = 0
        while handled < limit and not self.actor_stopped.is_set():
            envelope = self.actor_inbox.pop()
            if envelope is None:
                break
            self._handle_envelope(envelope)
            handled += 1
        if self.actor_stopped.is_set():
            self._actor_loop_teardown()  # answers queued asks with ActorDeadError, as in pykka
            return
        if self.actor_inbox.end_turn():
            self._dispatcher.submit(self)

    def _handle_envelope(self, envelope: Any) -> None:
        """One message, with exactly pykka's ThreadingActor semantics for success and failure."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            logger.error("{!r} in {}: stopping all actors", sys.exc_info()[1], self)
            self._stop()
            ActorRegistry.stop_all(block=False)


_default: Dispatcher | None = None
_default_lock = threading.Lock()


def default_dispatcher() -> Dispatcher:
    """The process-wide dispatcher for symbol actors (2 workers: this machine has 2 cores)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Dispatcher("symbols", workers=2)
        return _default
