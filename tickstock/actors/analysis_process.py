"""ProcessAnalysis: a session's ``CloseAnalysis`` in a process of its own (``analysis.process: true``);
ProcessGroup: in several, the timeframes shared between them (``analysis.processes``).

Why: at the top of an hour the TA-Lib close analysis of 500 symbols over four timeframes is ~50 ms
of Python, plus ~35 ms encoding its ~5,000 events and deriving their rows; on one interpreter that
work and the symbol actors', the publisher's and persistence's take turns on one GIL, and the last
event of the close waited for all of it. In a process of its own the analysis uses the machine's
other core: it receives a close's bars and sends back each timeframe's events already encoded for
Redis (``analysis_output.ClosePart``), then the close's rows (``CloseRows``), which the
``CloseAnalysisActor`` hands to the publisher and persistence unchanged.

Guarantees (tests/integration/process/test_analysis_process.py proves each; tests/e2e/
test_analysis_process.py as an operator sees it):

- **Same output** as ``LocalAnalysis`` for the same definitions, priming and bars: the process runs
  the same ``close_parts`` over the ``CloseAnalysis`` the same ``AnalysisSpec`` builds; only the clock
  that stamps events is the process's own (``AnalysisSpec.clock``, the wall clock by default).
- **Parts stream**: each ``ClosePart`` is sent as soon as that timeframe is analysed, so the caller
  publishes the 1-minute events while the process computes the higher timeframes.
- **Failure is loud**: an exception in the process, its death (even ``kill -9``) or no reply within
  ``reply_timeout`` raises ``AnalysisProcessError`` in the caller, naming the cause; the caller (the
  actor) dies and is restarted by its supervisor, with a new process. Between closes ``check``
  raises it once the process has ended (the actor calls it on its timer).
- **No orphan**: the process ends when ``stop`` is called, and on its own when the caller's end of
  the pipe closes (the service's process ended, however it ended); it ignores SIGINT, so a Ctrl-C
  reaches the service, which stops it in order.
- **No collection during a close**: the child's garbage collector runs after each close, once
  its parts and rows are sent, and freezes the survivors; never automatically.
- ``start`` is explicit (the actor's ``open``); a call before it starts the process first.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Iterator, Sequence

import msgspec

from tickstock.actors.analysis_output import AnalysisSpec, ClosePart, CloseRows, close_parts
from tickstock.analysis.pipeline import ComponentError
from tickstock.messages.bars import Bar

__all__ = ["AnalysisProcessError", "ProcessAnalysis", "ProcessGroup"]

# The directory tickstock is imported from, first on the child's path: the child imports the same code.
_IMPORT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class AnalysisProcessError(RuntimeError):
    """The analysis process failed, died or did not answer."""


# --- the protocol: one msgpack message per send_bytes ----------------------------------------------


class _Add(msgspec.Struct, tag=True):
    symbol: str


class _Prime(msgspec.Struct, tag=True):
    symbol: str
    bars: list[Bar]


class _LiveFrom(msgspec.Struct, tag=True):
    t: float


class _Close(msgspec.Struct, tag=True):
    bars: list[Bar]
    closed_at: float


class _Ready(msgspec.Struct, tag=True):
    broken: list[tuple[str, str, str]]
    definitions: int


class _Primed(msgspec.Struct, tag=True):
    errors: list[tuple[str, ComponentError]]


class _Failed(msgspec.Struct, tag=True):
    error: str


_encoder = msgspec.msgpack.Encoder()
_to_child = msgspec.msgpack.Decoder(_Add | _Prime | _LiveFrom | _Close)
_to_parent = msgspec.msgpack.Decoder(_Ready | _Primed | _Failed | ClosePart | CloseRows)


class ProcessAnalysis:
    """The parent's side: the interface of ``analysis_output.LocalAnalysis``, served by a child
    process. Used from one thread (the actor's)."""

    def __init__(self, spec: AnalysisSpec, reply_timeout: float = 30.0, start_timeout: float = 60.0) -> None:
        self._spec = spec
        self._reply_timeout = reply_timeout
        self._start_timeout = start_timeout
        self._symbols: dict[str, None] = dict.fromkeys(spec.symbols)
        self._process: Any = None
        self._conn: Connection | None = None
        self.broken: list[tuple[str, str, str]] = []
        self.definitions = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def pids(self) -> tuple[int, ...]:
        return () if self._process is None else (self._process.pid,)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._symbols

    def start(self) -> None:
        """Start the process and wait until its analysis is built (``start_timeout``)."""
        if self._process is None:
            self._spawn()
            self._await_ready()

    def _spawn(self) -> None:
        """Start the process and send it the spec; ``_await_ready`` waits for it to be built."""
        # A fresh interpreter (``python -m`` this module), not multiprocessing: forking a process
        # that runs threads is unsafe, and spawn re-imports the parent's __main__ (the service's,
        # the benchmark's, pytest's). The pipe is a socket pair; the spec is its first message.
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_IMPORT_ROOT, env.get("PYTHONPATH", "")) if p)
        try:
            process = subprocess.Popen([sys.executable, "-m", __name__, str(theirs.fileno())],
                                       pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise AnalysisProcessError(f"cannot start the analysis process: {exc}") from exc
        finally:
            theirs.close()  # only the child holds its end: when we go, it reads EOF
        self._process, self._conn = process, Connection(ours.detach())
        self._conn.send_bytes(pickle.dumps(self._spec, protocol=pickle.HIGHEST_PROTOCOL))

    def _await_ready(self) -> None:
        ready = self._receive(self._start_timeout)
        if not isinstance(ready, _Ready):
            raise AnalysisProcessError(f"analysis process answered {type(ready).__name__} instead of ready")
        self.broken, self.definitions = [tuple(b) for b in ready.broken], ready.definitions

    def add(self, symbol: str) -> None:
        self._send(_Add(symbol))
        self._symbols[symbol] = None

    def prime(self, symbol: str, bars: Sequence[Bar]) -> list[tuple[str, ComponentError]]:
        self._send(_Prime(symbol, list(bars)))
        return self._primed()

    def _primed(self) -> list[tuple[str, ComponentError]]:
        reply = self._receive(self._reply_timeout)
        if not isinstance(reply, _Primed):
            raise AnalysisProcessError(f"analysis process answered {type(reply).__name__} to a prime")
        return [tuple(e) for e in reply.errors]

    def live_from(self, t: float) -> None:
        self._send(_LiveFrom(t))

    def close(self, bars: Sequence[Bar], closed_at: float) -> Iterator[ClosePart | CloseRows]:
        """The close's parts as the process sends them, then its rows. Iterate to the end."""
        self._send(_Close(list(bars), closed_at))
        while True:
            item = self._close_item()
            yield item
            if type(item) is CloseRows:
                return

    def _close_item(self) -> ClosePart | CloseRows:
        item = self._receive(self._reply_timeout)
        if not isinstance(item, (ClosePart, CloseRows)):
            raise AnalysisProcessError(f"analysis process answered {type(item).__name__} to a close")
        return item

    def check(self) -> None:
        """Raise ``AnalysisProcessError`` if the process has ended (between closes nothing else
        would notice: the caller checks on its timer)."""
        if self._process is not None and self._process.poll() is not None:
            raise AnalysisProcessError(f"analysis process is gone ({self._exit()})")

    def stop(self, timeout: float = 2.0) -> None:
        """End the process: close the pipe (it exits on EOF), then terminate, then kill. Idempotent."""
        process, conn = self._process, self._conn
        if conn is not None:
            conn.close()
            self._conn = None
        if process is None:
            return
        for end in (None, process.terminate, process.kill):
            if end is not None:
                end()
            try:
                process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue

    # -- internals ------------------------------------------------------------------------------

    def _send(self, message: msgspec.Struct) -> None:
        if self._process is None:
            self.start()
        if self._conn is None:
            raise AnalysisProcessError("analysis process was stopped")
        try:
            self._conn.send_bytes(_encoder.encode(message))
        except OSError as exc:
            raise AnalysisProcessError(f"analysis process is gone ({self._exit()}): {exc!r}") from exc

    def _receive(self, timeout: float) -> Any:
        conn = self._conn
        if conn is None:
            raise AnalysisProcessError("analysis process was stopped")
        try:
            if not conn.poll(timeout):
                raise AnalysisProcessError(f"analysis process did not answer within {timeout:g}s")
            reply = _to_parent.decode(conn.recv_bytes())
        except (EOFError, OSError) as exc:
            raise AnalysisProcessError(f"analysis process is gone ({self._exit()})") from exc
        if isinstance(reply, _Failed):
            raise AnalysisProcessError(f"analysis process failed: {reply.error}")
        return reply

    def _exit(self) -> str:
        process = self._process
        if process is None:
            return "never started"
        try:
            process.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
        return f"pid {process.pid}, exit code {process.returncode}"


class ProcessGroup:
    """One analysis in several processes, each running its share of the timeframes
    (``AnalysisSpec.split``), with the interface of ``ProcessAnalysis``. Why: on one process a
    close's timeframes are analysed one after the other, so a 5-minute value waited for the whole
    1-minute part; split, the parts of one close are analysed side by side on the machine's cores.

    Guarantees (tests/integration/process/test_analysis_process.py):

    - **The same output** as one process over the whole spec, but for the order of the parts: each
      ``ClosePart`` is handed out as soon as any process sends it (a process's own parts keep their
      order), then one ``CloseRows`` with every process's rows.
    - Every call reaches every process (a symbol added, primed, the live start); requests go out
      to all before any answer is awaited, so the processes start, prime and analyse side by side.
    - **Failure is loud**, as for one process: any process failing, dying or not answering within
      ``reply_timeout`` raises ``AnalysisProcessError`` (``check``: any that has ended); ``stop``
      ends them all.
    """

    def __init__(self, specs: Sequence[AnalysisSpec], reply_timeout: float = 30.0, start_timeout: float = 60.0) -> None:
        if not specs:
            raise ValueError("a process group needs at least one spec")
        self._members = [ProcessAnalysis(spec, reply_timeout, start_timeout) for spec in specs]
        self._reply_timeout = reply_timeout
        self._started = False

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(pid for m in self._members for pid in m.pids)

    @property
    def broken(self) -> list[tuple[str, str, str]]:
        return [b for m in self._members for b in m.broken]

    @property
    def definitions(self) -> int:
        return sum(m.definitions for m in self._members)

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._members[0].symbols

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._members[0]

    def start(self) -> None:
        """Start every process, then wait until each has built its analysis."""
        if self._started:
            return
        self._started = True
        for m in self._members:
            m._spawn()
        for m in self._members:
            m._await_ready()

    def add(self, symbol: str) -> None:
        self.start()
        for m in self._members:
            m.add(symbol)

    def prime(self, symbol: str, bars: Sequence[Bar]) -> list[tuple[str, ComponentError]]:
        self.start()
        message = _Prime(symbol, list(bars))
        for m in self._members:
            m._send(message)
        return [e for m in self._members for e in m._primed()]

    def live_from(self, t: float) -> None:
        self.start()
        for m in self._members:
            m.live_from(t)

    def close(self, bars: Sequence[Bar], closed_at: float) -> Iterator[ClosePart | CloseRows]:
        """Every process's parts as they arrive, then one ``CloseRows`` of all. Iterate to the end."""
        self.start()
        message = _Close(list(bars), closed_at)
        for m in self._members:
            m._send(message)
        waiting = {m._conn: m for m in self._members}
        patterns: list = []
        indicators: list = []
        while waiting:
            ready = wait(list(waiting), self._reply_timeout)
            if not ready:
                raise AnalysisProcessError(f"analysis process did not answer within {self._reply_timeout:g}s")
            for conn in ready:
                item = waiting[conn]._close_item()  # ready: answers at once (or raises if it died)
                if type(item) is CloseRows:
                    patterns += item.patterns
                    indicators += item.indicators
                    del waiting[conn]
                else:
                    yield item
        yield CloseRows(patterns, indicators)

    def check(self) -> None:
        """Raise ``AnalysisProcessError`` if any process has ended (``ProcessAnalysis.check``)."""
        for m in self._members:
            m.check()

    def stop(self, timeout: float = 2.0) -> None:
        """End every process (``ProcessAnalysis.stop``). Idempotent."""
        for m in self._members:
            m.stop(timeout)


def _serve(conn: Connection, spec: AnalysisSpec, collector: Any = gc) -> None:
    """The child: build the analysis, then answer the parent's messages until its end closes.
    ``collector``: the ``gc`` module (tests pass a recorder)."""
    # The collector never runs during a close (tickstock/heap.py says why: a full collection of
    # this heap, 500 symbols' TA-Lib states, takes ~75 ms). It runs after each close instead, once
    # its parts and rows are sent, and freezes what survived: the next one walks one close's objects.
    collector.disable()

    def send(message: msgspec.Struct) -> None:
        conn.send_bytes(_encoder.encode(message))

    try:
        analysis = spec.build()
        send(_Ready(analysis.broken, analysis.definitions))
        while True:
            try:
                message = _to_child.decode(conn.recv_bytes())
            except (EOFError, OSError):
                return  # the parent closed its end or is gone: nothing more to do
            if isinstance(message, _Close):
                for item in close_parts(analysis, message.bars, message.closed_at, spec.clock, spec.output):
                    send(item)
                collector.collect()
                collector.freeze()
            elif isinstance(message, _Prime):
                send(_Primed(analysis.prime(message.symbol, message.bars)))
            elif isinstance(message, _Add):
                analysis.add(message.symbol)
            else:
                analysis.live_from(message.t)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        try:
            send(_Failed(f"{type(exc).__name__}: {exc} (in {where.name}, {where.filename}:{where.lineno})"))
        except OSError:
            pass  # the parent is gone too


def main(argv: Sequence[str]) -> None:
    """The child's entry: ``python -m tickstock.actors.analysis_process FD`` (``start`` runs it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the service's to handle
    conn = Connection(int(argv[0]))
    try:
        spec = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return
    _serve(conn, spec)


if __name__ == "__main__":
    main(sys.argv[1:])
