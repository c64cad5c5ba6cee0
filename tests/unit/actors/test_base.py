"""SupervisedActor: per-class dispatch, Ping/Open, and failure reporting to the supervisor."""

from __future__ import annotations

import pytest

from tickstock.actors.base import SupervisedActor, handles
from tickstock.actors.ingress import TickIngressActor
from tickstock.actors.persistence import PersistenceActor
from tickstock.actors.publisher import PublisherActor
from tickstock.actors.symbol import SymbolActor
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.config import ChannelSettings, KeySettings
from tickstock.messages.commands import (
    BarClosed, ChildFailed, Drain, GetStats, Heartbeat, Open, Ping, Publish, RouteSymbol, TimerTick,
)

from .fakes import FakePipeline, FakeRedis, FakeStore, Recorder, wait_until

pytestmark = pytest.mark.timeout(10)


def all_actors():
    return {
        "symbol": SymbolActor(None, "sid", "AAPL", FakePipeline(), Recorder(), Recorder()),
        "ingress": TickIngressActor(None, "sid", lambda: None, {}, Recorder(), MinuteBarAggregator(2.0)),
        "persistence": PersistenceActor(None, "sid", FakeStore),
        "publisher": PublisherActor(None, "sid", ChannelSettings(), KeySettings(), 30.0, 0.8, FakeRedis),
    }


@pytest.mark.parametrize("kind", ["symbol", "ingress", "persistence", "publisher"])
def test_every_child_answers_ping(kind):
    assert all_actors()[kind].on_receive(Ping()) is True


def test_each_class_has_its_own_dispatch_table():
    # Regression: one shared registry made PersistenceActor run the publisher's TimerTick handler.
    tables = {cls: cls._handlers for cls in (SymbolActor, TickIngressActor, PersistenceActor, PublisherActor)}
    assert getattr(PersistenceActor, tables[PersistenceActor][TimerTick]).__qualname__.startswith("PersistenceActor.")
    assert getattr(PublisherActor, tables[PublisherActor][TimerTick]).__qualname__.startswith("PublisherActor.")
    assert getattr(PersistenceActor, tables[PersistenceActor][Drain]).__qualname__.startswith("PersistenceActor.")
    assert getattr(TickIngressActor, tables[TickIngressActor][Drain]).__qualname__.startswith("TickIngressActor.")
    assert TimerTick not in tables[SymbolActor] and TimerTick not in tables[TickIngressActor]
    assert Publish not in tables[PersistenceActor] and BarClosed not in tables[PublisherActor]
    assert RouteSymbol in tables[TickIngressActor] and RouteSymbol not in tables[SymbolActor]
    for table in tables.values():
        assert table[Ping] == "_ping" and table[Open] == "_open"


@pytest.mark.parametrize("kind, message", [
    ("symbol", TimerTick(0.0)), ("symbol", Drain()), ("ingress", TimerTick(0.0)),
    ("persistence", Heartbeat(0.0)), ("publisher", Drain()),
])
def test_a_message_an_actor_does_not_handle_is_a_type_error(kind, message):
    with pytest.raises(TypeError, match="cannot handle"):
        all_actors()[kind].on_receive(message)


def test_subclass_handlers_extend_and_override_without_leaking_to_siblings():
    class A(SupervisedActor):
        @handles(GetStats)
        def _a(self, message):
            return "a"

    class B(A):
        @handles(GetStats, TimerTick)
        def _b(self, message):
            return "b"

    class C(SupervisedActor):
        pass

    assert A(None, "a").on_receive(GetStats()) == "a"
    assert B(None, "b").on_receive(GetStats()) == "b"
    assert B(None, "b").on_receive(TimerTick(0)) == "b"
    with pytest.raises(TypeError):
        A(None, "a").on_receive(TimerTick(0))
    with pytest.raises(TypeError):
        C(None, "c").on_receive(GetStats())


def test_open_calls_open_and_answers_true():
    opened = []

    class Child(SupervisedActor):
        def open(self):
            opened.append(True)

    assert Child(None, "child").on_receive(Open()) is True
    assert opened == [True]


def test_a_child_that_dies_on_a_tell_reports_child_failed_to_its_supervisor():
    supervisor = Recorder("supervisor")
    ref = SymbolActor.start(supervisor, "sid", "AAPL", FakePipeline(), Recorder(), Recorder())
    ref.tell(TimerTick(0.0))  # no handler: TypeError in a tell kills the actor
    assert wait_until(lambda: supervisor.of_type(ChildFailed))
    [failed] = supervisor.messages
    assert failed.child == "symbol:AAPL" and failed.error.startswith("TypeError")
    assert wait_until(lambda: not ref.is_alive())


def test_an_ask_that_raises_answers_the_error_and_the_child_lives_on():
    supervisor = Recorder("supervisor")
    ref = SymbolActor.start(supervisor, "sid", "AAPL", FakePipeline(), Recorder(), Recorder())
    with pytest.raises(TypeError):
        ref.ask(TimerTick(0.0), timeout=2)
    assert ref.ask(Ping(), timeout=2) is True
    assert supervisor.messages == []
    ref.stop()
