"""SessionActor start-up priming: each symbol actor gets its own recent bars, streamed one symbol at
a time from the factory; a failing or partial stream never stops the session."""

from __future__ import annotations

import pytest

from tickstock.messages.bars import Bar
from tickstock.messages.commands import StopSession

from .fakes import FakeChildFactory
from .test_session import SYMBOLS, running, wait_ended

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
