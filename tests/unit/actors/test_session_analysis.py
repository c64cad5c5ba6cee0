"""SessionActor with TA-Lib definitions: the CloseAnalysisActor is a shared child under the written
policy (start order, priming at the start, restart primed by itself, its stage of the stop), and a
session without TA-Lib definitions (or with ``analysis.batch_talib: false``) has none."""

from __future__ import annotations

import pytest

from tickstock.actors.analysis import AnalysisHandover
from tickstock.actors.plan import batched_definitions, symbol_pipelines
from tickstock.actors.session import SessionActor, SessionPlan
from tickstock.analysis import select_definitions
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    BarsClosed, ChildFailed, Drain, GetStats, Open, PrimeSymbol, RedoClose, StopSession,
)
from tickstock.messages.events import CriticalAlert

from .fakes import FakeChildFactory, first_index, wait_until
from .test_session import SID, SYMBOLS, Ended, make_settings, of_type, publishes, wait_ended

pytestmark = pytest.mark.timeout(30)

T0 = 1_741_786_200


def definitions(talib: bool = True):
    indicators = [{"name": "RSI", "period": 14, "applicable_timeframes": ["intraday"]}]
    if talib:
        indicators.append({"name": "EMA", "parameters": {"timeperiod": 5}, "applicable_timeframes": ["1min", "5min"]})
    return select_definitions([{"name": "Doji"}, {"name": "Engulfing", "applicable_timeframes": ["15min"]}]
                              if talib else [{"name": "Doji"}], indicators)


def plan(talib: bool = True, batch: bool = True, **kw) -> SessionPlan:
    s = make_settings(**kw)
    s = s.replace(analysis=s.analysis.replace(batch_talib=batch))
    return SessionPlan("test:three", SYMBOLS, s, definitions(talib), session_id=SID)


def running(factory, p: SessionPlan | None = None, timer_interval: float = 3600.0):
    p = p or plan()
    ended = Ended()
    ref = SessionActor.start(p, factory, on_ended=ended, timer_interval=timer_interval, settings=p.settings)
    assert ref.ask(GetStats(), timeout=5)["state"] == "running"
    return ref, ended


def test_the_definitions_are_split_talib_to_the_close_analysis_the_rest_to_the_symbols():
    p = plan()
    assert {tf: [d.name for d in defs] for tf, defs in batched_definitions(p).items()} == {
        "1min": ["EMA"], "5min": ["EMA"], "15min": ["Engulfing"]}
    base, higher = symbol_pipelines(p, "AAPL", 3)
    assert [c.name for c in base.components] == ["Doji", "RSI"]
    assert higher == {}  # nothing hand-written on the higher timeframes: no resampling in the symbol actor
    # batch_talib off: everything in the symbols' pipelines, as before
    off = plan(batch=False)
    assert batched_definitions(off) == {}
    base, higher = symbol_pipelines(off, "AAPL", 3)
    assert [c.name for c in base.components] == ["Doji", "RSI", "EMA"]
    assert {tf: [c.name for c in h.components] for tf, h in higher.items()} == {"5min": ["EMA"], "15min": ["Engulfing"]}


def test_the_close_analysis_starts_after_persistence_and_before_the_symbols_and_the_ingress_feeds_it():
    factory = FakeChildFactory()
    running(factory)
    assert factory.calls == ["publisher", "persistence", "analysis", *(f"symbol:{s}" for s in SYMBOLS), "ingress"]
    assert factory.received["analysis"][0][0] == Open(1)
    [call] = factory.analysis_calls
    assert call["restart"] is False
    assert factory.ingress_calls[0]["analysis"].name == "analysis"


@pytest.mark.parametrize(("talib", "batch"), [(False, True), (True, False)])
def test_without_talib_definitions_or_with_batching_off_there_is_no_close_analysis(talib, batch):
    factory = FakeChildFactory()
    ref, _ = running(factory, plan(talib, batch))
    assert "analysis" not in factory.calls
    assert factory.ingress_calls[0]["analysis"] is None
    assert ref.ask(GetStats(), timeout=5)["mailboxes"]["analysis"] == 0


def test_at_the_start_each_symbol_s_history_primes_the_close_analysis_too():
    factory = FakeChildFactory()
    history = {s: [Bar(s, T0 + 60 * i, 10.0, 11.0, 9.0, 10.5, 100) for i in range(3)] for s in ("AAPL", "NVDA")}
    factory.history = history
    running(factory, plan(prime_bars=200))
    assert factory.history_calls == [(SYMBOLS, 200)]  # one stream, for the symbols and the analysis
    primed = [m for m in factory.all_received("analysis") if isinstance(m, PrimeSymbol)]
    assert primed == [PrimeSymbol(s, tuple(history[s])) for s in ("AAPL", "NVDA")]
    # before the ingress existed: nothing could close a bar before the analysis was primed
    log = factory.log
    last_prime = max(i for i, e in enumerate(log) if e[:2] == ("recv", "analysis") and isinstance(e[2], PrimeSymbol))
    assert last_prime < log.index(("factory", "ingress"))


def test_a_failed_close_analysis_is_restarted_alone_and_primes_itself():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.tell(ChildFailed("analysis", "RuntimeError: x", 1))
    assert wait_until(lambda: factory.count("analysis") == 2)
    status = ref.ask(GetStats(), timeout=5)
    assert status["state"] == "running" and status["restarts"] == 1
    assert [c["restart"] for c in factory.analysis_calls] == [False, True]
    assert factory.received["analysis"][1][0] == Open(2)
    assert all(factory.count(f"symbol:{s}") == 1 for s in SYMBOLS) and factory.count("ingress") == 1
    assert ended.outcomes == []


def test_a_dead_analysis_s_handover_reaches_its_successor_and_its_redo_is_told_right_after_open():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    close = [BarsClosed((Bar("AAPL", T0 + 60 * m, 10.0, 11.0, 9.0, 10.5, 100),), T0 + 60 * m + 62) for m in range(3)]
    redo = RedoClose(close[0], ("1min",))
    handover = AnalysisHandover(T0, (), redo, (close[1], close[2]))
    ref.tell(ChildFailed("analysis", "AnalysisProcessError: gone", 1, handover))
    assert wait_until(lambda: len(factory.received.get("analysis", [])) == 2
                      and len(factory.received["analysis"][1]) >= 4)
    assert factory.analysis_calls[1]["handover"] is handover and factory.analysis_calls[1]["restart"] is True
    assert factory.received["analysis"][1][:4] == [Open(2), redo, close[1], close[2]]  # in order, first
    # a later restart without a handover (the actor could not give one) gets none, and no redo again
    ref.tell(ChildFailed("analysis", "RuntimeError: x", 2))
    assert wait_until(lambda: len(factory.received["analysis"]) == 3 and factory.received["analysis"][2])
    assert factory.analysis_calls[2]["handover"] is None and redo not in factory.received["analysis"][2]
    assert ended.outcomes == []


def test_a_handover_waits_for_a_successor_that_could_be_built():
    class FailsOnce(FakeChildFactory):
        def analysis(self, supervisor, plan, publisher, persistence, restart, handover=None):
            if restart and not getattr(self, "failed_once", False):
                self.failed_once = True
                raise RuntimeError("cannot start the analysis process")
            return super().analysis(supervisor, plan, publisher, persistence, restart, handover)

    factory = FailsOnce()
    ref, _ = running(factory)
    handover = AnalysisHandover(T0, (), None, (BarsClosed((), T0 + 62),))
    ref.tell(ChildFailed("analysis", "AnalysisProcessError: gone", 1, handover))
    assert wait_until(lambda: len(factory.analysis_calls) == 2 and len(factory.received["analysis"]) == 2
                      and len(factory.received["analysis"][1]) >= 2)
    assert factory.analysis_calls[1]["handover"] is handover  # after the failed build's ChildFailed
    assert factory.received["analysis"][1][:2] == [Open(4), BarsClosed((), T0 + 62)]  # 3 was never built


def test_a_close_analysis_found_dead_is_restarted_once():
    factory = FakeChildFactory()
    ref, _ = running(factory, timer_interval=0.02)
    factory.refs["analysis"][0].stop()  # dies without a ChildFailed
    assert wait_until(lambda: factory.count("analysis") == 2)
    assert ref.ask(GetStats(), timeout=2)["restarts"] == 1


def test_a_close_analysis_past_its_budget_fails_the_session():
    factory = FakeChildFactory()
    ref, ended = running(factory, plan(max_restarts=1))
    ref.tell(ChildFailed("analysis", "RuntimeError: first", 1))
    ref.tell(ChildFailed("analysis", "RuntimeError: second", 2))
    wait_ended(ref, ended)
    assert ended.outcomes[0].final_status == "failed" and "second" in ended.outcomes[0].reason
    [alert] = of_type(publishes(factory), CriticalAlert)
    assert alert.component == "analysis"


def test_it_stops_with_the_symbols_after_the_ingress_and_before_persistence():
    factory = FakeChildFactory()
    ref, ended = running(factory)
    ref.tell(StopSession("stopped"))
    wait_ended(ref, ended)
    log = factory.log
    ingress_drain = first_index(log, lambda e: e[:2] == ("recv", "ingress") and isinstance(e[2], Drain))
    analysis_stop = first_index(log, lambda e: e == ("stop", "analysis"))
    persistence_drain = first_index(log, lambda e: e[:2] == ("recv", "persistence") and isinstance(e[2], Drain))
    assert ingress_drain < analysis_stop < persistence_drain
