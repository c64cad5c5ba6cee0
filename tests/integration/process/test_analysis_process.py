"""ProcessAnalysis: the close analysis in a real child process, against ``LocalAnalysis`` in this one.

Each guarantee of tickstock/actors/analysis_process.py is caused here: the same output for the same
bars, a failure inside the child, its death by kill -9, a child that stops answering (SIGSTOP), a
Ctrl-C on the terminal, ``stop``, and the parent's own death by kill -9.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import msgspec
import pytest

from tests.pids import gone
from tests.unit.analysis.test_close_analysis import by_timeframe
from tickstock.actors.analysis import CloseAnalysisActor
from tickstock.actors.analysis_output import AnalysisSpec, ClosePart, CloseRows, LocalAnalysis, OutputSettings
from tickstock.actors.analysis_process import AnalysisProcessError, ProcessAnalysis, ProcessGroup, _serve
from tickstock.analysis import Definition, create
from tickstock.analysis.talib_batch import TalibBatch
from tickstock.bars.timeframes import SessionTable
from tickstock.config import ChannelSettings
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    BarsClosed, ChildFailed, GetStats, Open, PersistResults, PrimeSymbol, PublishEncoded, RedoClose,
)

pytestmark = pytest.mark.timeout(60)

SID = "5b1d0c7e-0000-4000-8000-00000000000b"
T0 = 1_741_786_200  # 2025-03-12 13:30 UTC, 09:30 EDT: the session's open
SYMBOLS = ("AAA", "BBB", "CCC")
OUTPUT = OutputSettings(SID, ChannelSettings(), 0.5, 3600.0, 1800.0)
NOW = T0 + 7200.0
CLOCK = functools.partial(float, NOW)  # a fixed clock that pickles: the child stamps with it too
SESSIONS = SessionTable([(T0, T0 + 390 * 60)])


def definition(name: str, params: dict[str, Any], timeframes: tuple[str, ...]) -> Definition:
    component = create(name, params)
    return Definition(component.name, component.kind, params, timeframes=timeframes)


DEFINITIONS = (
    definition("EMA", {"timeperiod": 3}, ("1min", "5min", "15min", "60min")),
    definition("MACD", {}, ("1min", "5min")),
    definition("BBANDS", {"timeperiod": 5}, ("15min",)),
    definition("CDLDOJI", {}, ("1min", "5min")),
    definition("CDLENGULFING", {}, ("1min",)),
)


def bar(symbol: str, minute: int) -> Bar:
    k = SYMBOLS.index(symbol) if symbol in SYMBOLS else 5
    close = 100.0 + k * 7 + ((minute * (3 + k)) % 11) * 0.37
    o = close if minute % 9 == 0 else close - 0.5 + (minute % 3) * 0.4
    return Bar(symbol, T0 + 60 * minute, o, max(o, close) + 0.8, min(o, close) - 0.7, close, 100 + minute, 3, SID)


def spec(**changes: Any) -> AnalysisSpec:
    return AnalysisSpec(**{"definitions": by_timeframe(DEFINITIONS), "symbols": SYMBOLS, "output": OUTPUT,
                          "sessions": SESSIONS, "clock": CLOCK, **changes})


def local() -> LocalAnalysis:
    return LocalAnalysis(spec())


@pytest.fixture
def process():
    analysis = ProcessAnalysis(spec(), reply_timeout=20)
    analysis.start()
    yield analysis
    analysis.stop()


def test_it_gives_what_the_analysis_in_this_process_gives_for_the_same_priming_and_bars(process) -> None:
    here = local()
    assert (process.broken, process.definitions) == (here.broken, here.definitions) == ([], 10)
    for symbol in SYMBOLS[:2]:  # two primed, one not
        history = [bar(symbol, m) for m in range(-60, 0)]
        assert process.prime(symbol, history) == here.prime(symbol, history)
    process.live_from(T0)
    here.live_from(T0)
    parts, timeframes, channels = 0, set(), set()
    for minute in range(125):  # two hours: every timeframe closes, each several times
        symbols = SYMBOLS if minute % 13 else SYMBOLS[:2]  # a symbol missing now and then
        bars = [bar(s, minute) for s in symbols]
        got, want = list(process.close(bars, T0 + 60 * minute + 62)), list(here.close(bars, T0 + 60 * minute + 62))
        assert got == want, minute
        assert isinstance(got[-1], CloseRows) and all(isinstance(i, ClosePart) for i in got[:-1])
        parts += len(got) - 1
        for part in got[:-1]:
            channels |= {channel for channel, _ in part.entries}
            timeframes |= {json.loads(payload).get("calculation", {}).get("timeframe") for _, payload in part.entries}
    assert parts > 125  # higher timeframes came as parts of their own
    assert timeframes >= {"1min", "5min", "15min", "60min"}
    assert channels == {OUTPUT.channels.indicators, OUTPUT.channels.patterns, OUTPUT.channels.patterns_high_confidence}
    # a symbol added later is primed and analysed the same way
    for analysis in (process, here):
        analysis.add("NEW")
    assert "NEW" in process and process.symbols == here.symbols
    history = [bar("NEW", m) for m in range(60, 125)]
    assert process.prime("NEW", history) == here.prime("NEW", history)
    bars = [bar(s, 125) for s in (*SYMBOLS, "NEW")]
    assert list(process.close(bars, NOW)) == list(here.close(bars, NOW))


class Pipe:
    """The child's end of the pipe, on this thread: serves ``messages``, then EOF; records what is
    sent (by type) into ``log``."""

    def __init__(self, messages: list[bytes], log: list[str]) -> None:
        self.messages, self.log = messages, log

    def recv_bytes(self) -> bytes:
        if not self.messages:
            raise EOFError
        return self.messages.pop(0)

    def send_bytes(self, data: bytes) -> None:
        from tickstock.actors import analysis_process as module

        self.log.append(type(module._to_parent.decode(data)).__name__)


class Collector:
    """The ``gc`` module as the child uses it, recorded into ``log``."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def disable(self) -> None:
        self.log.append("gc.disable")

    def collect(self) -> int:
        self.log.append("gc.collect")
        return 0

    def freeze(self) -> None:
        self.log.append("gc.freeze")


def closes(minutes: range) -> list[bytes]:
    from tickstock.actors import analysis_process as module

    return [module._encoder.encode(module._Close([bar(s, m) for s in SYMBOLS], T0 + 60 * m + 62)) for m in minutes]


def test_the_child_sends_each_timeframe_before_it_analyses_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_serve`` on this thread, its pipe a recording fake: the 1-minute part is sent before the
    5-minute batch is stepped."""
    log: list[str] = []
    step = TalibBatch.step
    monkeypatch.setattr(TalibBatch, "step", lambda self, bars: log.append(f"step {bars[0].start}") or step(self, bars))
    ema = definition("EMA", {"timeperiod": 3}, ("1min", "5min"))
    _serve(Pipe(closes(range(5)), log), spec(definitions=by_timeframe((ema,))), Collector([]))
    assert log[:1] == ["_Ready"]
    # minute 4 closes the first 5-minute bar (it started at T0)
    assert log[-5:] == [f"step {T0 + 240}", "ClosePart", f"step {T0}", "ClosePart", "CloseRows"]


def test_the_child_s_collector_runs_only_between_closes_after_each_is_sent() -> None:
    log: list[str] = []
    _serve(Pipe(closes(range(3)), log), spec(), Collector(log))
    assert log[0] == "gc.disable"  # before anything is built: priming and closes never trigger one
    after_ready = log[log.index("_Ready") + 1:]
    one_close = ["ClosePart", "CloseRows", "gc.collect", "gc.freeze"]
    assert after_ready == one_close * 3


def test_an_exception_in_the_child_is_raised_here_naming_it_and_the_child_ends(process) -> None:
    with pytest.raises(AnalysisProcessError, match="KeyError.*ZZZ"):
        list(process.close([bar("ZZZ", 0)], NOW))  # a symbol never added: CloseAnalysis refuses it
    assert process._process.wait(10) == 0


def test_a_child_killed_with_sigkill_is_raised_here_with_its_exit_code(process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    with pytest.raises(AnalysisProcessError, match="exit code -9"):
        list(process.close([bar("AAA", 0)], NOW))


def test_a_child_that_stops_answering_is_raised_here_and_stop_still_ends_it() -> None:
    analysis = ProcessAnalysis(spec(), reply_timeout=0.5)
    analysis.start()
    os.kill(analysis.pid, signal.SIGSTOP)
    try:
        with pytest.raises(AnalysisProcessError, match="did not answer within 0.5s"):
            list(analysis.close([bar("AAA", 0)], NOW))
    finally:
        analysis.stop(timeout=0.5)  # terminate is pending on a stopped process: kill ends it
    assert analysis._process.returncode == -signal.SIGKILL


def test_ctrl_c_on_the_terminal_is_not_the_child_s_to_handle(process) -> None:
    os.kill(process.pid, signal.SIGINT)
    process.live_from(T0)
    assert isinstance(list(process.close([bar(s, 0) for s in SYMBOLS], NOW))[-1], CloseRows)


def test_stop_ends_the_child_and_is_idempotent(process) -> None:
    pid = process.pid
    process.stop()
    process.stop()
    assert process._process.returncode == 0 and gone(pid)
    with pytest.raises(AnalysisProcessError, match="stopped"):
        process.live_from(T0)


def test_a_process_that_cannot_be_started_is_raised_here_and_leaves_no_socket_open(monkeypatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    before = len(os.listdir("/proc/self/fd"))
    analysis = ProcessAnalysis(spec())
    with pytest.raises(AnalysisProcessError, match="cannot start the analysis process: .*Too many open files"):
        analysis.start()
    assert len(os.listdir("/proc/self/fd")) == before and analysis.pid is None


def test_the_child_ends_on_its_own_when_the_service_s_process_is_killed(tmp_path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from tests.integration.process.test_analysis_process import spec
        from tickstock.actors.analysis_process import ProcessAnalysis
        analysis = ProcessAnalysis(spec())
        analysis.start()
        print(analysis.pid, flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert not gone(child, within=0.2)
        parent.kill()
        parent.wait(10)
        assert gone(child)
    finally:
        parent.kill()
        parent.wait(10)


def test_the_actor_over_a_process_publishes_stores_dies_with_it_and_stops_it() -> None:
    """The CloseAnalysisActor on its own thread, its siblings mocked mailboxes: the child's parts
    reach the publisher and persistence; a killed child is the actor's death, reported to the
    supervisor; stopping the actor ends its child."""
    from tests.unit.actors.fakes import Recorder

    supervisor, publisher, persistence = Recorder("supervisor"), Recorder("publisher"), Recorder("persistence")
    analysis = ProcessAnalysis(spec(), reply_timeout=20)
    ref = CloseAnalysisActor.start(supervisor, SID, analysis, publisher, persistence, clock=CLOCK)
    try:
        assert ref.ask(Open(1), timeout=30) is True
        for symbol in SYMBOLS:
            ref.tell(PrimeSymbol(symbol, tuple(bar(symbol, m) for m in range(-60, 0))))
        for minute in range(3):
            ref.ask(BarsClosed(tuple(bar(s, minute) for s in SYMBOLS), T0 + 60 * minute + 62), timeout=20)
        assert len(publisher.of_type(PublishEncoded)) == 3 and len(persistence.of_type(PersistResults)) == 3
        os.kill(analysis.pid, signal.SIGKILL)
        ref.tell(BarsClosed(tuple(bar(s, 3) for s in SYMBOLS), T0 + 242))
        deadline = time.monotonic() + 20
        while not supervisor.of_type(ChildFailed) and time.monotonic() < deadline:
            time.sleep(0.02)
        [failed] = supervisor.of_type(ChildFailed)
        assert failed.child == "analysis" and "analysis process is gone" in failed.error
    finally:
        ref.stop()

    second = ProcessAnalysis(spec())
    ref = CloseAnalysisActor.start(None, SID, second, publisher, persistence, clock=CLOCK)
    ref.ask(Open(2), timeout=30)
    pid = second.pid
    ref.stop(timeout=10)
    assert gone(pid)


def test_a_process_killed_in_a_close_hands_that_close_and_the_queued_ones_to_a_successor_that_loses_none() -> None:
    """pykka's real failure path, on the actor's own thread: the child is stopped (SIGSTOP) while a
    close waits for it and another close queues behind; killed -9, the actor dies, and its
    ``ChildFailed`` carries the close it died in (nothing of it published) and the queued one.
    A successor over a new process, primed from a store that holds the bars before them, analyses
    both: every event of the two closes, as an analysis never interrupted sends them."""
    from tests.unit.actors.fakes import Recorder

    history = {s: [bar(s, m) for m in range(-60, 3)] for s in SYMBOLS}

    def closed(minute: int) -> BarsClosed:
        return BarsClosed(tuple(bar(s, minute) for s in SYMBOLS), T0 + 60 * minute + 62)

    supervisor, publisher, persistence = Recorder("supervisor"), Recorder("publisher"), Recorder("persistence")
    analysis = ProcessAnalysis(spec(), reply_timeout=20)
    ref = CloseAnalysisActor.start(supervisor, SID, analysis, publisher, persistence, clock=CLOCK,
                                   report_interval=3600)
    try:
        ref.ask(Open(1), timeout=30)
        for symbol in SYMBOLS:
            ref.tell(PrimeSymbol(symbol, tuple(history[symbol][:60])))
        for minute in range(3):
            ref.ask(closed(minute), timeout=20)
        told = len(publisher.messages)
        os.kill(analysis.pid, signal.SIGSTOP)
        ref.tell(closed(3))
        ref.tell(closed(4))
        time.sleep(0.5)  # the actor waits in close 3 for the stopped child
        os.kill(analysis.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while not supervisor.of_type(ChildFailed) and time.monotonic() < deadline:
            time.sleep(0.02)
        [failed] = supervisor.of_type(ChildFailed)
    finally:
        ref.stop()
    handover = failed.final_stats
    assert handover.redo == RedoClose(closed(3), ()) and handover.queued == (closed(4),)
    assert handover.analysed_through == T0 + 180 and len(publisher.messages) == told

    def load(symbols, before=None):
        for s in symbols:
            yield s, [b for b in history[s] if before is None or b.start < before]

    successor_publisher = Recorder("publisher")
    second = ProcessAnalysis(spec(), reply_timeout=20)
    ref = CloseAnalysisActor.start(None, SID, second, successor_publisher, Recorder(), clock=CLOCK,
                                   load_history=load, prime_on_open=True, handover=handover, report_interval=3600)
    try:
        ref.tell(Open(2))
        for message in handover.resend:  # as the session tells them, right after Open
            ref.tell(message)
        assert ref.ask(GetStats(), timeout=30).closes == 2
    finally:
        ref.stop(timeout=10)
    here = local()
    for symbol in SYMBOLS:
        here.prime(symbol, history[symbol][:60])
    here.live_from(T0)
    for minute in range(3):
        list(here.close(list(closed(minute).bars), T0 + 60 * minute + 62))
    want = [e for minute in (3, 4) for item in here.close(list(closed(minute).bars), T0 + 60 * minute + 62)
            if isinstance(item, ClosePart) for e in item.entries]
    got = [e for m in successor_publisher.of_type(PublishEncoded) for e in m.entries]
    assert sorted(got) == sorted(want) and len(want) > 2 * len(SYMBOLS)


def test_a_call_before_start_starts_the_process() -> None:
    analysis = ProcessAnalysis(spec())
    try:
        assert analysis.pid is None
        assert analysis.prime("AAA", [bar("AAA", m) for m in range(-5, 0)]) == []
        assert analysis.pid is not None and analysis.definitions == 10
    finally:
        analysis.stop()


# -- several processes, the timeframes shared (ProcessGroup) -------------------------------------------


def substance(items: list) -> tuple[list[bytes], list, int]:
    """A close's parts with events or errors, in a canonical order; its rows by id; the partial bars
    it skipped (one analysis counts them all in its first part, a group in each process's first)."""
    parts = sorted(msgspec.msgpack.encode(msgspec.structs.replace(p, partial_skipped=0)) for p in items[:-1]
                   if p.entries or p.errors)
    rows = items[-1]
    return parts, sorted([*rows.patterns, *rows.indicators], key=lambda r: r.row_id), \
        sum(p.partial_skipped for p in items[:-1])


@pytest.fixture
def group():
    analysis = ProcessGroup(spec().split(2), reply_timeout=20)
    analysis.start()
    yield analysis
    analysis.stop()


def test_the_spec_splits_by_timeframe_one_and_fifteen_minutes_with_five_and_sixty() -> None:
    whole = spec()
    assert [sorted(s.definitions) for s in whole.split(2)] == [["15min", "1min"], ["5min", "60min"]]
    assert [list(s.definitions) for s in whole.split(4)] == [["1min"], ["5min"], ["15min"], ["60min"]]
    assert [list(s.definitions) for s in whole.split(1)] == [["1min", "5min", "15min", "60min"]]
    assert [list(s.definitions) for s in spec(definitions={"1min": DEFINITIONS[:1]}).split(2)] == [["1min"]]
    assert [s.definitions for s in spec(definitions={}).split(3)] == [{}]
    assert all((s.symbols, s.output, s.sessions, s.clock) == (SYMBOLS, OUTPUT, SESSIONS, CLOCK) for s in whole.split(4))
    with pytest.raises(ValueError):
        whole.split(0)


def test_a_group_gives_what_one_analysis_gives_but_for_the_order_of_its_parts(group) -> None:
    here = local()
    assert len(set(group.pids)) == 2 and all(not gone(pid, within=0) for pid in group.pids)
    assert (group.broken, group.definitions) == (here.broken, here.definitions) == ([], 10)
    for symbol in SYMBOLS[:2]:
        history = [bar(symbol, m) for m in range(-60, 0)]
        assert group.prime(symbol, history) == here.prime(symbol, history)
    group.live_from(T0)
    here.live_from(T0)
    skipped = 0
    for minute in range(125):
        symbols = SYMBOLS if minute % 13 else SYMBOLS[:2]
        bars = [bar(s, minute) for s in symbols]
        if minute == 3:  # partial bars: each counted once, by the process that runs 1min
            bars = [msgspec.structs.replace(b, partial=True) for b in bars]
        got, want = list(group.close(bars, T0 + 60 * minute + 62)), list(here.close(bars, T0 + 60 * minute + 62))
        assert substance(got) == substance(want), minute
        assert [type(i) for i in got].count(CloseRows) == 1 and isinstance(got[-1], CloseRows)
        skipped += substance(got)[2]
    assert skipped >= 4 * len(SYMBOLS)  # minute 3's bars and the 5/15/60-minute bars they were in
    group.add("NEW")
    here.add("NEW")
    assert "NEW" in group and group.symbols == here.symbols
    history = [bar("NEW", m) for m in range(60, 125)]
    assert group.prime("NEW", history) == here.prime("NEW", history)
    bars = [bar(s, 125) for s in (*SYMBOLS, "NEW")]
    assert substance(list(group.close(bars, NOW))) == substance(list(here.close(bars, NOW)))


def test_a_group_hands_out_a_part_as_soon_as_any_process_has_it(group) -> None:
    for symbol in SYMBOLS:
        assert group.prime(symbol, [bar(symbol, m) for m in range(-60, 0)]) == []
    group.live_from(T0)
    one_minute = group.pids[0]  # runs 1min and 15min; the other 5min and 60min
    os.kill(one_minute, signal.SIGSTOP)
    try:
        items = group.close([bar(s, 4) for s in SYMBOLS], T0 + 4 * 60 + 62)  # closes a 5-minute bar
        first = next(items)
        assert {json.loads(payload)["calculation"]["timeframe"] for _, payload in first.entries
                if b'"calculation"' in payload} == {"5min"} == {first.timeframe}  # named across the pipe
    finally:
        os.kill(one_minute, signal.SIGCONT)
    rest = list(items)
    assert isinstance(rest[-1], CloseRows) and {r.timeframe for r in rest[-1].indicators} == {"1min", "5min"}


def test_a_dead_member_fails_the_group_loudly_and_stop_ends_every_process(group) -> None:
    pids = group.pids
    group.check()  # all alive: nothing raised
    os.kill(pids[1], signal.SIGKILL)
    assert gone(pids[1])
    # Between closes, without asking it anything. Its pid may look gone a moment before the kernel
    # lets it be reaped (its other threads still exiting): a check then finds it at the next call.
    deadline = time.monotonic() + 10
    while True:
        try:
            group.check()
        except AnalysisProcessError as exc:
            assert f"pid {pids[1]}, exit code -9" in str(exc)
            break
        assert time.monotonic() < deadline, "check() never found the killed member"
        time.sleep(0.01)
    with pytest.raises(AnalysisProcessError, match="exit code -9"):
        list(group.close([bar(s, 0) for s in SYMBOLS], T0 + 62))
    group.stop()
    group.stop()
    assert all(gone(pid) for pid in pids)


def test_a_member_that_stops_answering_fails_the_group_after_the_others_parts() -> None:
    group = ProcessGroup(spec().split(2), reply_timeout=0.5)
    group.start()
    pids = group.pids
    stuck = pids[1]  # 5min and 60min
    try:
        os.kill(stuck, signal.SIGSTOP)
        items = group.close([bar(s, 0) for s in SYMBOLS], T0 + 62)
        assert isinstance(next(items), ClosePart)  # the 1-minute part, from the other
        with pytest.raises(AnalysisProcessError, match="did not answer within 0.5s"):
            list(items)
    finally:
        group.stop()
    assert all(gone(pid) for pid in pids)
