"""SessionActor start-up priming: each symbol actor gets its own recent bars, streamed one symbol at
a time from the factory; a failing or partial stream never stops the session."""

from __future__ import annotations

import dataclasses

import pytest

from tickstock.messages.bars import Bar
from tickstock.messages.commands import StopSession

from .fakes import FakeChildFactory
from .test_session import SYMBOLS, make_plan, running, wait_ended

pytestmark = pytest.mark.timeout(30)


def bars(symbol: str, n: int) -> list[Bar]:
    return [Bar(symbol, 60 * (1000 + i), 10.0, 11.0, 9.0, 10.5, 100) for i in range(n)]


def histories(factory) -> dict[str, list | None]:
    return {call["symbol"]: call["history"] for call in factory.symbol_calls}


def stop(ref, ended) -> None:
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)


def test_each_symbol_is_primed_with_its_own_bars_and_one_without_history_gets_none():
    factory = FakeChildFactory()
    factory.history = {"AAPL": bars("AAPL", 3), "NVDA": bars("NVDA", 2)}
    ref, ended = running(factory, prime_bars=200)
    assert factory.history_calls == [(SYMBOLS, 200)]  # one streamed read for the whole universe
    assert histories(factory) == {"AAPL": bars("AAPL", 3), "MSFT": [], "NVDA": bars("NVDA", 2)}
    # MSFT (no history) is built after the stream ends, yet the ingress routes in the plan's order
    assert list(factory.ingress_calls[0]["routes"]) == list(SYMBOLS)
    stop(ref, ended)


def test_a_stream_failing_midway_keeps_what_was_served_and_starts_the_rest_unprimed():
    factory = FakeChildFactory()
    factory.history = {s: bars(s, 2) for s in SYMBOLS}
    factory.history_error, factory.history_error_after = ConnectionError("database went away"), 1
    ref, ended = running(factory, prime_bars=200)
    assert histories(factory) == {"AAPL": bars("AAPL", 2), "MSFT": [], "NVDA": []}
    stop(ref, ended)


def test_no_history_is_read_when_priming_is_off():
    factory = FakeChildFactory()
    factory.history = {s: bars(s, 2) for s in SYMBOLS}
    ref, ended = running(factory, prime_bars=0)
    assert factory.history_calls == []
    assert histories(factory) == {s: [] for s in SYMBOLS}
    stop(ref, ended)


def event_time_plan(prime_bars: int):
    plan = make_plan(prime_bars=prime_bars)
    s = plan.settings
    return dataclasses.replace(plan, settings=s.replace(session=s.session.replace(clock="event")))


def test_in_event_time_nothing_is_streamed_and_each_actor_reads_its_own_history_at_its_first_bar():
    """The latest bars stored may come after a replayed day: the session cannot know what precedes
    it, so it reads nothing and builds every symbol actor with history=None (it primes itself)."""
    factory = FakeChildFactory()
    factory.history = {s: bars(s, 2) for s in SYMBOLS}
    ref, ended = running(factory, plan=event_time_plan(200))
    assert factory.history_calls == []
    assert histories(factory) == {s: None for s in SYMBOLS}
    assert list(factory.ingress_calls[0]["routes"]) == list(SYMBOLS)
    stop(ref, ended)


def test_in_event_time_without_priming_the_actors_get_an_empty_history():
    factory = FakeChildFactory()
    ref, ended = running(factory, plan=event_time_plan(0))
    assert factory.history_calls == [] and histories(factory) == {s: [] for s in SYMBOLS}
    stop(ref, ended)
