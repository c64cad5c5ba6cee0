"""A periodic timer for actors (pykka has none): a daemon thread that tells a message at an interval."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pykka


class Ticker:
    """Tells ``make_message(now)`` to ``target`` every ``interval`` seconds until stopped or the
    target dies. Ticks never queue up behind a slow actor by more than the actor's own backlog."""

    def __init__(self, target: pykka.ActorRef, interval: float, make_message: Callable[[float], Any], name: str) -> None:
        self._target = target
        self._interval = interval
        self._make_message = make_message
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ticker-{name}", daemon=True)

    def start(self) -> "Ticker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._target.tell(self._make_message(time.time()))
            except pykka.ActorDeadError:
                return
