"""A periodic timer for actors (pykka has none): a daemon thread that tells a message at an interval."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pykka


class Ticker:
    """Tells ``make_message(now, self)`` to ``target`` every ``interval`` seconds until stopped or
    the target dies.

    Guarantee: ticks coalesce. A tick is told only when the previous one has been handled (the
    target calls ``handled()``; ``Supervised`` does it for every ``TimerTick``), so an actor that
    was busy for ten intervals gets one tick afterwards, not ten stale ones: handlers read the time
    from their clock, never from a queued tick.
    """

    def __init__(self, target: pykka.ActorRef, interval: float, make_message: Callable[..., Any], name: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._target = target
        self._interval = interval
        self._make_message = make_message
        self._clock = clock
        self._stopped = threading.Event()
        self._outstanding = threading.Event()  # a tick is queued and not yet handled
        self._thread = threading.Thread(target=self._run, name=f"ticker-{name}", daemon=True)

    def start(self) -> "Ticker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def handled(self) -> None:
        """The target handled the last tick: the next one may be told."""
        self._outstanding.clear()

    @property
    def pending(self) -> bool:
        return self._outstanding.is_set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            if self._outstanding.is_set():
                continue
            self._outstanding.set()
            try:
                self._target.tell(self._make_message(self._clock(), self))
            except pykka.ActorDeadError:
                return
