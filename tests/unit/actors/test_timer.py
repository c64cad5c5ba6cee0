"""Ticker: ticks coalesce behind a busy actor and carry their ticker so the actor can say 'handled'."""

from __future__ import annotations

import threading
import time

import pykka
import pytest

from tickstock.actors.base import SupervisedActor, handles
from tickstock.actors.timer import Ticker
from tickstock.messages.commands import TimerTick

from .fakes import wait_until

pytestmark = pytest.mark.timeout(10)


class Busy(SupervisedActor):
    def __init__(self, gate: threading.Event, ticks: list) -> None:
        super().__init__(None, "busy")
        self.gate = gate
        self.ticks = ticks

    @handles(TimerTick)
    def _tick(self, message: TimerTick) -> None:
        self.gate.wait(5)
        self.ticks.append(message.now)


def test_a_busy_actor_gets_one_late_tick_not_a_backlog():
    gate = threading.Event()
    ticks: list[float] = []
    ref = Busy.start(gate, ticks)
    ticker = Ticker(ref, 0.01, TimerTick, "test").start()
    try:
        time.sleep(0.5)  # ~50 intervals while the first tick is stuck in its handler
        # The tick being handled was marked handled on arrival: at most one more waits behind it.
        assert ref.actor_inbox.qsize() <= 1
        gate.set()
        assert wait_until(lambda: len(ticks) >= 3)
        assert ref.actor_inbox.qsize() <= 1
    finally:
        ticker.stop()
        ref.stop()


def test_without_handled_no_second_tick_is_told():
    told = []

    class Target:
        def tell(self, message):
            told.append(message)

    ticker = Ticker(Target(), 0.01, TimerTick, "test").start()
    time.sleep(0.2)
    assert len(told) == 1 and told[0].source is ticker
    ticker.handled()
    assert wait_until(lambda: len(told) == 2)
    ticker.stop()


def test_a_dead_target_ends_the_ticker_thread():
    class Dead:
        def tell(self, message):
            raise pykka.ActorDeadError("gone")

    ticker = Ticker(Dead(), 0.01, TimerTick, "test").start()
    assert wait_until(lambda: not ticker._thread.is_alive())
