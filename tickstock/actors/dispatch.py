"""A dispatcher that runs many pykka actors on a few shared threads.

Why: a ``ThreadingActor`` is one OS thread. With one actor per symbol, a bar close wakes 500
threads that then take turns on the GIL; on this 2-core machine that hand-over, not the analysis
(~15 us a bar), made the last symbol's results ~230 ms late. Like Akka's dispatchers or Erlang's
schedulers, ``PooledActor`` keeps every actor's own inbox, state, ``ActorRef``, ``tell``/``ask``
and failure semantics, but runs it on one of ``workers`` threads when it has mail.

Guarantees (tests/unit/actors/test_dispatch.py proves each):
- Order: one actor's messages are handled in the order its inbox received them.
- One at a time: an actor is in the ready queue or running on at most one worker at once, so two
  of its messages never run concurrently, whatever the number of workers and senders.
- Fairness: an actor handles at most ``slice_size`` messages per turn, then goes to the back of
  the ready queue: a flooded actor delays another actor of the same dispatcher by at most
  ``slice_size`` messages for each actor ready before it, never starves it.
- pykka's semantics, as a ``ThreadingActor`` has them (shared/docs/domain.md):
  ``on_start`` runs on a worker before the first message (an exception there: the actor dies,
  no other hook runs); an exception while handling a ``tell`` runs ``on_failure`` and kills only
  that actor (its queued tells are dropped, its queued asks answered with ``ActorDeadError``);
  an exception in an ``ask`` goes to the caller's future and the actor lives;
  ``ref.stop()`` handles what was queued before it, then runs ``on_stop``;
  ``ActorRegistry.stop_all()`` stops pooled actors like any other.
- BaseException (``SystemExit``, ``KeyboardInterrupt``, ...) raised by an actor's code: as in
  pykka, that actor stops (``on_stop`` runs if it was handling a message) and every actor in the
  registry is asked to stop. Two deliberate differences: the stop of every actor is asked without
  waiting (pykka's ``stop_all()`` blocks its thread until all have stopped; a worker doing that
  would wait for turns only the workers can run: with one worker, forever), and the ask that
  raised is answered with ``ActorDeadError`` (pykka leaves it unanswered: its caller would hang).
  A BaseException in ``on_start``/``on_stop``/``on_failure`` does the same, with no further hook
  (pykka's thread would just die, leaving the actor looking alive). The worker always survives.
- A message that reaches a dead actor's inbox (a ``tell`` racing with its death) is answered as
  pykka's teardown answers queued ones, never left waiting.

Rule: a pooled actor must never block waiting on another pooled actor of the same dispatcher
(no blocking ``ask`` from inside a handler): with all workers waiting, nothing would run.

Ownership: the service gives each session a dispatcher of its own with ``session.symbol_workers``
threads (``wiring.ProductionFactory.dispatcher``); it shuts itself down once the session actor
has stopped and its last symbol actor has finished. ``shutdown()`` stops what still runs on it.

pykka API used. Public: ``Actor`` (subclassed), ``ActorRegistry``, ``ActorDeadError``,
``ThreadingFuture``, the hooks and ``actor_stopped``/``actor_ref``. pykka's ``ActorInbox`` is a
protocol: ``ActorRef`` only ever calls ``put``, pykka's teardown ``empty``/``get``; ``_Inbox`` is
such a queue that also schedules its actor. Underscored names, and why each is needed:
- overridden: ``_create_actor_inbox``, ``_create_future``, ``_start_actor_loop``: the three
  abstract methods of ``pykka.Actor`` that pykka documents as the methods "for implementors of new
  actor types" -- its extension point for a runtime, which is what this module is.
- called: ``Actor._handle_receive(message)``: pykka's dispatch of one message -- its private stop
  message (``messages._ActorStop``: unregister, ``on_stop``), proxy calls/attribute access, else
  ``on_receive``. Doing that here would need the private stop class and ``pykka._introspection``.
- called: ``Actor._actor_loop_teardown()``: pykka's answer to what is left in a dead actor's
  inbox (stop requests -> None, asks -> ``ActorDeadError``); it also needs the private stop class.
pykka's own loop (``_actor_loop_running``) cannot be reused: it blocks its thread on the inbox.
Everything else pykka's loop does (on_start, failure, BaseException) is done here with the
public hooks. Both private methods exist unchanged from pykka 4.0 to 4.5 (setup.cfg pins
``pykka>=4.1,<5``); the tests fail if their behaviour changes.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from typing import Any

import pykka
from loguru import logger
from pykka import ActorDeadError, ActorRegistry, ThreadingFuture


class Dispatcher:
    """``workers`` daemon threads that run scheduled actors' turns, in the order scheduled.

    ``owner_stopped``: an event (e.g. the owning actor's ``actor_ref.actor_stopped``); once it is
    set and the last actor started here has finished, the dispatcher shuts itself down, so its
    threads end with what owns them."""

    def __init__(self, name: str, workers: int = 2, slice_size: int = 16,
                 owner_stopped: threading.Event | None = None) -> None:
        if workers < 1:
            raise ValueError("a dispatcher needs at least one worker")
        if slice_size < 1:
            raise ValueError("an actor's turn must allow at least one message")
        self.name = name
        self.slice_size = slice_size
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # shutdown, worker exits, the set of attached actors (never per message)
        self._closed = False
        self._exited = 0  # workers that have taken their shutdown sentinel
        self._actors: set[PooledActor] = set()
        self._owner_stopped = owner_stopped
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def workers(self) -> int:
        return len(self._threads)

    @property
    def closed(self) -> bool:
        return self._closed

    def alive_threads(self) -> list[threading.Thread]:
        return [t for t in self._threads if t.is_alive()]

    def actors(self) -> list[PooledActor]:
        """The actors started on this dispatcher that have not finished yet."""
        with self._lock:
            return list(self._actors)

    def submit(self, actor: PooledActor) -> None:
        """Queue one turn of ``actor`` (its inbox calls this: at most once until the turn ends).
        Once the dispatcher is shut down nothing runs here any more: the actor is declared dead
        on the caller's thread and its asks are answered with ``ActorDeadError``.

        No lock here (it cost ~8% of a 500-actor bar close): a ``shutdown`` racing with the put
        may leave the actor behind the workers' sentinels, so after the put ``_closed`` is read
        again; if it is set, the queue is drained once every worker has exited (by this caller,
        or by the last worker to exit, whichever comes second)."""
        if self._closed:
            actor._abandon()
            return
        self._ready.put(actor)
        if self._closed:
            self._drain_if_exited()

    def shutdown(self, timeout: float | None = None) -> bool:
        """Ask every actor still running here to stop (as ``ref.stop()``: what was queued before
        is handled, ``on_stop`` runs), then end the workers once the turns queued so far are done.
        An actor still busy after that turn is declared dead (asks answered ``ActorDeadError``).
        ``timeout``: wait that long for the workers to exit (``None``: do not wait). Returns
        True when every worker has exited. Safe to call more than once, and from a worker."""
        for actor in self.actors():
            try:
                actor.actor_ref.stop(block=False)
            except ActorDeadError:
                pass
        with self._lock:
            if not self._closed:
                self._closed = True
                for _ in self._threads:
                    self._ready.put(None)
        if timeout is not None:
            return self.join(timeout)
        return not self.alive_threads()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the workers of a shut-down dispatcher to exit."""
        current = threading.current_thread()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        return all(not t.is_alive() or t is current for t in self._threads)

    def _drain_if_exited(self) -> None:
        """Once every worker has exited: declare dead whatever is still in the ready queue."""
        stranded = []
        with self._lock:
            if self._exited < len(self._threads):
                return  # the last worker to exit drains what is there by then
            while True:
                try:
                    item = self._ready.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    stranded.append(item)
        for actor in stranded:
            actor._abandon()

    def _attach(self, actor: PooledActor) -> None:
        with self._lock:
            self._actors.add(actor)

    def _detach(self, actor: PooledActor) -> None:
        with self._lock:
            self._actors.discard(actor)
            last = not self._actors
        if last and self._owner_stopped is not None and self._owner_stopped.is_set():
            self.shutdown()

    def _work(self) -> None:
        ready = self._ready
        slice_size = self.slice_size
        while True:
            actor = ready.get()
            if actor is None:
                with self._lock:
                    self._exited += 1
                self._drain_if_exited()
                return
            try:
                actor._run_turn(slice_size)
            except BaseException as exc:  # a worker must survive anything: only a bug gets here
                logger.opt(exception=exc).error("dispatcher {}: a turn of {} failed; the actor is dead",
                                                 self.name, actor)
                try:
                    actor._abandon()
                except BaseException as again:
                    logger.opt(exception=again).error("dispatcher {}: {} could not be cleaned up", self.name, actor)


class _Inbox:
    """The actor's inbox: the queue interface pykka uses (``ActorRef`` calls ``put``; pykka's
    teardown calls ``empty`` and ``get``; ``qsize`` is the mailbox depth), and the actor's
    scheduling state. ``put`` schedules the actor on its dispatcher unless it already is (queued
    to run, or running): that flag is what makes an actor run on one worker at a time."""

    __slots__ = ("_messages", "_lock", "_scheduled", "_actor")

    def __init__(self) -> None:
        self._messages: deque = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._actor: PooledActor | None = None  # set when the actor starts (a strong reference:
        # pykka's ActorRef only holds a weak one, and an idle pooled actor has no thread holding it)

    def put(self, envelope: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            self._messages.append(envelope)
            if self._scheduled or self._actor is None:
                return
            self._scheduled = True
        actor = self._actor
        actor._dispatcher.submit(actor)

    def start(self, actor: PooledActor) -> None:
        """Schedule the actor's first turn (``on_start``), with whatever was put meanwhile."""
        with self._lock:
            self._actor = actor
            self._scheduled = True
        actor._dispatcher.submit(actor)

    def pop(self) -> Any | None:
        try:
            return self._messages.popleft()
        except IndexError:
            return None

    def end_turn(self) -> bool:
        """After a turn: True if mail is waiting (the actor stays scheduled and must be submitted
        again), else the actor is idle and the next ``put`` schedules it."""
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
        self._start_pending = True

    def _start_actor_loop(self) -> None:
        self._dispatcher._attach(self)
        self.actor_inbox.start(self)

    # -- one turn, on a worker ------------------------------------------------------------------

    def _run_turn(self, limit: int) -> None:
        inbox = self.actor_inbox
        stopped = self.actor_stopped
        try:
            if self._start_pending:
                self._start_pending = False
                try:
                    self.on_start()
                except Exception:  # as pykka: logged, the actor is dead, no other hook runs
                    self._die("on_start failed", sys.exc_info())
            handled = 0
            while handled < limit and not stopped.is_set():
                envelope = inbox.pop()
                if envelope is None:
                    break
                self._handle_envelope(envelope)
                handled += 1
        except Exception:  # not from the actor's code (a future someone else answered): only it dies
            self._die("runtime error", sys.exc_info())
        except BaseException as exc:  # raised by on_start, on_stop or on_failure
            self._escalate(exc, None, clean_stop=False)
        if stopped.is_set():
            self._finish()
        if inbox.end_turn():
            self._dispatcher.submit(self)

    def _handle_envelope(self, envelope: Any) -> None:
        """One message, with the semantics of pykka's ``_actor_loop_running`` for each outcome."""
        reply_to = envelope.reply_to
        try:
            response = self._handle_receive(envelope.message)
            if reply_to is not None:
                reply_to.set(response)
        except Exception:
            if reply_to is not None:  # the caller gets it; the actor lives
                logger.opt(exception=True).debug("exception returned from {} to its caller", self)
                reply_to.set_exception()
            else:
                exc_info = sys.exc_info()
                self._die("unhandled exception", exc_info)
                try:
                    self.on_failure(*exc_info)
                except Exception:
                    self._die("on_failure failed", sys.exc_info())
        except BaseException as exc:
            self._escalate(exc, reply_to, clean_stop=not self.actor_stopped.is_set())

    def _die(self, what: str, exc_info: Any) -> None:
        """As pykka's failure handling: log, leave the registry, stop taking messages."""
        logger.opt(exception=exc_info).error("{} in {}: the actor is dead", what, self)
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def _escalate(self, exc: BaseException, reply_to: Any, clean_stop: bool) -> None:
        """A BaseException: this actor stops and every actor is asked to stop (see the module)."""
        logger.opt(exception=exc).error("{!r} in {}: stopping every actor", exc, self)
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        if reply_to is not None:
            _answer_dead(reply_to, f"{self.actor_ref} stopped by {exc!r}")
        if clean_stop:  # as pykka's stop: on_stop runs
            try:
                self.on_stop()
            except BaseException as again:
                logger.opt(exception=again).error("on_stop of {} failed", self)
        ActorRegistry.stop_all(block=False)  # never wait here: see the module's docstring

    def _finish(self) -> None:
        """The actor is dead: answer what is left in its inbox, leave the dispatcher."""
        self._actor_loop_teardown()
        self._dispatcher._detach(self)

    def _abandon(self) -> None:
        """Declare the actor dead without running it (its dispatcher is shut down, or a turn
        failed in a way only a bug can explain), answering whatever is or comes in its inbox."""
        if not self.actor_stopped.is_set():
            logger.warning("{} declared dead: its dispatcher {} no longer runs it", self, self._dispatcher.name)
            ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
        while True:
            self._finish()
            if not self.actor_inbox.end_turn():
                return


def _answer_dead(future: Any, why: str) -> None:
    try:
        future.set_exception(exc_info=(ActorDeadError, ActorDeadError(why), None))
    except queue.Full:  # already answered
        pass


_default: Dispatcher | None = None
_default_lock = threading.Lock()


def default_dispatcher() -> Dispatcher:
    """A process-wide dispatcher (2 workers) for pooled actors started without one: tests and
    tools. The service gives each session its own, sized by ``session.symbol_workers``
    (``wiring.ProductionFactory.dispatcher``)."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Dispatcher("symbols", workers=2)
        return _default
