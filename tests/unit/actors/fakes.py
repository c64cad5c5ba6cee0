"""Test doubles for the actor tests: recording mailboxes, a scripted tick feed, a fake clock, a fake
analysis pipeline, a fake PostgreSQL store and Redis client, and recording child actors plus a fake
``ChildFactory`` for the SessionActor."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Sequence

import psycopg2
from tickstock.adapters.redis.publisher import PublishIncomplete
from tickstock.adapters.redis.resp import RedisUnavailable
import pykka

from tickstock.adapters.redis.feed import FeedDisconnected
from tickstock.messages.commands import (
    ChildFailed, ChildOpened, Drain, GetStats, Open, Ping, PublishConfirmed, RetainSession,
)

# A minute start (a multiple of 60) used as the time origin in the tests: 2023-11-14T22:14:00Z.
M = 1_700_000_040
assert M % 60 == 0


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Recorder:
    """A mocked mailbox: records every message told to it, in order."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.messages: list[Any] = []
        self._lock = threading.Lock()

    def tell(self, message: Any) -> None:
        with self._lock:
            self.messages.append(message)

    def of_type(self, cls: type) -> list[Any]:
        with self._lock:
            return [m for m in self.messages if isinstance(m, cls)]

    def __repr__(self) -> str:
        return f"Recorder({self.name})"


class FakeBeacon(Recorder):
    """The heartbeat as the session sees it: records what it is told or asked, also into ``log``
    (e.g. a ``FakeChildFactory``'s, to order it against the children) and, like the real one, tells
    a ``RetainSession``'s follow-up once it has "written" the key (unless ``forward`` is False).
    ``ask`` answers at once, or never when ``hang`` (a beacon stuck on a cut Redis)."""

    def __init__(self, log: list | None = None, forward: bool = True, hang: bool = False) -> None:
        super().__init__("beacon")
        self.log = log
        self.forward = forward
        self.hang = hang

    def tell(self, message: Any) -> None:
        super().tell(message)
        if self.log is not None:
            self.log.append(("beacon", message))
        if self.forward and isinstance(message, RetainSession):
            message.follow_up()

    def ask(self, message: Any, timeout: float | None = None, block: bool = True) -> Any:
        self.tell(message)
        future = pykka.ThreadingFuture()
        if not self.hang:
            future.set(None)
        return future.get(timeout=timeout) if block else future


class FakeClock:
    def __init__(self, start: float) -> None:
        self.t = float(start)

    def __call__(self) -> float:
        return self.t

    def set(self, t: float) -> None:
        self.t = float(t)

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


class FakeFeed:
    """The tick feed the ingress reads. ``read`` pops the next scripted item: a list of payloads,
    a callable returning one (to act while "blocked" in the read), or an exception to raise (a
    ``FeedDisconnected`` also drops the connection)."""

    def __init__(self, script: Iterable[Any] = (), connected: bool = True, idle_sleep: float = 0.0) -> None:
        self.script: deque = deque(script)
        self._connected = connected
        self.connect_errors: deque[BaseException] = deque()
        self.connect_calls = 0
        self.read_calls: list[float] = []
        self.close_calls = 0
        self.idle_sleep = idle_sleep

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self.connect_calls += 1
        self._connected = False  # like RedisTickFeed.connect: the old connection is closed first
        if self.connect_errors:
            raise self.connect_errors.popleft()
        self._connected = True

    def read(self, timeout: float) -> list[bytes]:
        self.read_calls.append(timeout)
        if not self._connected:
            raise FeedDisconnected("not connected")
        if not self.script:
            if self.idle_sleep:
                time.sleep(min(timeout, self.idle_sleep))
            return []
        item = self.script.popleft()
        if isinstance(item, BaseException):
            if isinstance(item, FeedDisconnected):
                self._connected = False
            raise item
        if callable(item):
            item = item()
        return list(item)

    def close(self) -> None:
        self.close_calls += 1
        self._connected = False


# -- analysis results (the shapes symbol.py reads) ---------------------------------------------


def pattern_result(bar, name="Doji", confidence=0.85, parameters=None, levels=(125.5,)):
    return SimpleNamespace(name=name, confidence=confidence, bar=bar,
                           parameters=dict(parameters or {"body_ratio": 0.04}), levels=tuple(levels))


def indicator_result(bar, name="RSI", value=72.5, values=None, metadata=None):
    return SimpleNamespace(name=name, value=value, bar=bar, values=dict(values or {"value": value}),
                           metadata=dict(metadata or {"period": 14, "bars_used": 15}))


def alert_result(alert_type="RSI_OVERBOUGHT", indicator="RSI", value=72.5, threshold=70.0, direction="above"):
    return SimpleNamespace(alert_type=alert_type, indicator=indicator, value=value, threshold=threshold,
                           direction=direction)


def error_result(name="HeadShoulders", bar_start=M, error_repr="ZeroDivisionError()", disabled=False):
    return SimpleNamespace(name=name, bar_start=bar_start, error_repr=error_repr, disabled=disabled)


@dataclass
class PipelineOutput:
    patterns: list = field(default_factory=list)
    indicators: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    errors: list = field(default_factory=list)


class FakePipeline:
    """Stands in for ``tickstock.analysis.AnalysisPipeline``: ``outputs`` maps a bar to its results."""

    def __init__(self, outputs: Callable[[Any], PipelineOutput] | None = None) -> None:
        self.outputs = outputs or (lambda bar: PipelineOutput())
        self.primed: list[list] = []
        self.seen: list = []

    def prime(self, bars) -> None:
        self.primed.append(list(bars))

    def on_bar(self, bar) -> PipelineOutput:
        self.seen.append(bar)
        return self.outputs(bar)


# -- the PostgreSQL store ------------------------------------------------------------------------


class FakeStore:
    """Records every call in order. ``down`` makes every call raise ``psycopg2.OperationalError``;
    ``refuse`` picks rows to report as rejected; ``session_error`` is raised by session writes."""

    BATCH_METHODS = ("upsert_bars", "insert_patterns", "insert_indicators")

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.down = False
        self.refuse: Callable[[Any], bool] = lambda row: False
        self.session_error: BaseException | None = None
        self.closed = False

    def _check(self) -> None:
        if self.down:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")

    def ping(self) -> None:
        self._check()

    def _batch(self, method: str, rows: Sequence[Any]):
        self._check()
        rows = list(rows)
        self.calls.append((method, rows))
        rejected = [(row, "refused by a test") for row in rows if self.refuse(row)]
        return SimpleNamespace(written=len(rows) - len(rejected), rejected=rejected)

    def upsert_bars(self, rows):
        return self._batch("upsert_bars", rows)

    def insert_patterns(self, rows):
        return self._batch("insert_patterns", rows)

    def insert_indicators(self, rows):
        return self._batch("insert_indicators", rows)

    def start_session(self, record) -> None:
        self._check()
        if self.session_error is not None:
            raise self.session_error
        self.calls.append(("start_session", record))

    def finish_session(self, record) -> None:
        self._check()
        if self.session_error is not None:
            raise self.session_error
        self.calls.append(("finish_session", record))

    def insert_health(self, record) -> None:
        self._check()
        self.calls.append(("insert_health", record))

    def close(self) -> None:
        self.closed = True

    def methods(self) -> list[str]:
        return [name for name, _ in self.calls]

    def rows(self, method: str) -> list[Any]:
        return [row for name, rows in self.calls if name == method for row in rows]


# -- the Redis client ----------------------------------------------------------------------------


class FakeRedis:
    """Records publishes and key operations; ``fail`` makes every call raise ``RedisUnavailable``."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, bytes]]] = []
        self.refreshes: list[tuple] = []
        self.values: list[tuple] = []
        self.deleted: list[str] = []
        self.pings = 0
        self.fail = False
        self.attempts = 0
        # When set, publish_many waits on ``gate`` (after setting ``entered``): the actor is "busy".
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        # Added for the delivery tests: ``fail_publishes`` fails that many next publish_many calls
        # (then they work again); ``acknowledge`` makes the next publish_many deliver only its first
        # n messages and raise ``PublishIncomplete`` for the rest (a pipeline broken after n replies);
        # ``timeouts`` records the ``timeout`` each publish_many was given.
        self.fail_publishes = 0
        self.acknowledge: int | None = None
        self.timeouts: list[float | None] = []

    def _check(self) -> None:
        if self.fail:
            raise RedisUnavailable("Connection refused")

    def ping(self) -> None:
        self.pings += 1
        self._check()

    def publish_many(self, messages, timeout=None) -> int:
        self.attempts += 1
        self.timeouts.append(timeout)
        gate, self.gate = self.gate, None
        if gate is not None:
            self.entered.set()
            gate.wait(5)
        self._check()
        batch = list(messages)
        if self.fail_publishes > 0:
            self.fail_publishes -= 1
            raise PublishIncomplete("Connection refused", 0, tuple(range(len(batch))))
        if self.acknowledge is not None and self.acknowledge < len(batch):
            k, self.acknowledge = self.acknowledge, None
            self.batches.append(batch[:k])
            raise PublishIncomplete("connection lost: reset by peer", k, tuple(range(k, len(batch))))
        self.batches.append(batch)
        return len(batch)

    def refresh(self, heartbeat_key, heartbeat_value, session_key, ttl_seconds) -> None:
        self._check()
        self.refreshes.append((heartbeat_key, heartbeat_value, session_key, ttl_seconds))

    def set_value(self, key, value, ttl_seconds=None) -> None:
        self._check()
        self.values.append((key, value, ttl_seconds))

    def delete(self, key) -> None:
        self._check()
        self.deleted.append(key)

    def close(self) -> None:
        pass

    def published(self) -> list[tuple[str, bytes]]:
        return [pair for batch in self.batches for pair in batch]


# -- the SessionActor's children -----------------------------------------------------------------


class RecordingChild(pykka.ThreadingActor):
    """A child actor that records every message it receives (into ``received`` and the shared
    ``log``), answers ``Open``/``Ping`` with True (or raises on ``Open`` when ``fail_open``),
    ``GetStats`` with ``stats`` and ``Drain`` with ``drain_value``; tells a ``RetainSession``'s
    follow-up as the publisher does."""

    def __init__(self, name: str, received: list, log: list, fail_open: bool = False,
                 stats: Any = None, drain_value: Any = None, supervisor: Any = None,
                 confirm: Any = True, block: threading.Event | None = None) -> None:
        super().__init__()
        self.name = name
        self.received = received
        self.log = log
        self.fail_open = fail_open
        self.stats = stats
        self.drain_value = drain_value
        # The child protocol of ``actors.base.Supervised``: ChildOpened after Open, ChildFailed
        # (with the incarnation) when a told message raises. ``confirm`` answers PublishConfirmed;
        # ``block``: every message but Open waits on this event first (a stuck child).
        self.supervisor = supervisor
        self.confirm = confirm
        self.block = block
        self.incarnation = 0

    def _tell_supervisor(self, message: Any) -> None:
        if self.supervisor is not None:
            try:
                self.supervisor.tell(message)
            except pykka.ActorDeadError:
                pass

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self._tell_supervisor(ChildFailed(self.name, repr(exception_value), self.incarnation))

    def on_receive(self, message: Any) -> Any:
        self.received.append(message)
        self.log.append(("recv", self.name, message))
        if isinstance(message, Open):
            self.incarnation = message.incarnation
            if self.fail_open:
                raise RuntimeError(f"{self.name} cannot open")
            self._tell_supervisor(ChildOpened(self.name, self.incarnation))
            return True
        if isinstance(message, RetainSession):
            message.follow_up()  # as PublisherActor does after writing the key
        if self.block is not None and not isinstance(message, Ping):
            self.block.wait(30)
        if isinstance(message, PublishConfirmed):
            if isinstance(self.confirm, BaseException):
                raise self.confirm
            return self.confirm
        if isinstance(message, Ping):
            return True
        if isinstance(message, GetStats):
            return self.stats
        if isinstance(message, Drain):
            return self.drain_value
        return None

    def on_stop(self) -> None:
        self.log.append(("stop", self.name))


PUBLISHER_STATS = SimpleNamespace(patterns=7, indicators=11, published=0, buffered=0, dropped=0,
                                  redis_connected=True, last_error="")
INGRESS_DRAIN = SimpleNamespace(bars_closed=3, received=10)
PERSISTENCE_DRAIN = SimpleNamespace(backlog=0)


class FakeChildFactory:
    """Implements ``session.ChildFactory`` with ``RecordingChild`` actors.

    ``fail_open``: child names whose ``Open`` raises (every incarnation);
    ``fail_restart``: child names whose ``Open`` raises from the second incarnation on;
    ``dead``: child names returned already stopped (their ``Open`` finds no actor)."""

    def __init__(self, fail_open: Iterable[str] = (), dead: Iterable[str] = (),
                 fail_restart: Iterable[str] = (), child_kwargs: dict[str, dict] | None = None) -> None:
        # child_kwargs: extra RecordingChild arguments per child name (confirm=..., block=...).
        self.child_kwargs = dict(child_kwargs or {})
        self.log: list = []
        self.calls: list[str] = []
        self.fail_open = set(fail_open)
        self.fail_restart = set(fail_restart)  # Open fails for every incarnation but the first
        self.dead = set(dead)
        self.refs: dict[str, list[pykka.ActorRef]] = defaultdict(list)
        self.received: dict[str, list[list]] = defaultdict(list)
        self.symbol_calls: list[dict] = []
        self.ingress_calls: list[dict] = []
        self.analysis_calls: list[dict] = []
        self.history_calls: list[tuple] = []
        self.history: dict[str, list] = {}
        self.history_error: BaseException | None = None
        self.history_error_after = 0   # symbols served before history_error is raised
        self.direct: list[list] = []
        self.direct_error: BaseException | None = None

    def _spawn(self, name: str, **kwargs: Any) -> pykka.ActorRef:
        self.calls.append(name)
        self.log.append(("factory", name))
        received: list = []
        fail = name in self.fail_open or (name in self.fail_restart and bool(self.refs[name]))
        kwargs.update(self.child_kwargs.get(name, {}))
        ref = RecordingChild.start(name, received, self.log, fail_open=fail, **kwargs)
        self.refs[name].append(ref)
        self.received[name].append(received)
        if name in self.dead:
            ref.stop()
        return ref

    def publisher(self, supervisor, plan):
        return self._spawn("publisher", stats=PUBLISHER_STATS, supervisor=supervisor)

    def persistence(self, supervisor, plan):
        return self._spawn("persistence", drain_value=PERSISTENCE_DRAIN, supervisor=supervisor)

    def symbol(self, supervisor, plan, symbol, history, publisher, persistence):
        self.symbol_calls.append(dict(symbol=symbol, history=None if history is None else list(history),
                                      publisher=publisher, persistence=persistence, supervisor=supervisor))
        return self._spawn(f"symbol:{symbol}", supervisor=supervisor)

    def analysis(self, supervisor, plan, publisher, persistence, restart, handover=None):
        self.analysis_calls.append(dict(publisher=publisher, persistence=persistence, restart=restart,
                                        supervisor=supervisor, handover=handover))
        return self._spawn("analysis", supervisor=supervisor)

    def ingress(self, supervisor, plan, routes, persistence, aggregator, analysis=None):
        self.ingress_calls.append(dict(routes=dict(routes), persistence=persistence, aggregator=aggregator,
                                       supervisor=supervisor, analysis=analysis))
        return self._spawn("ingress", drain_value=INGRESS_DRAIN, supervisor=supervisor)

    def load_history(self, symbols, limit):
        self.history_calls.append((tuple(symbols), limit))
        served = [s for s in sorted(symbols) if s in self.history]  # symbol order, as the store streams
        for i, s in enumerate(served + [None]):
            if self.history_error is not None and i == self.history_error_after:
                raise self.history_error
            if s is not None:
                yield s, self.history[s]

    def publish_directly(self, plan, events):
        self.log.append(("direct", list(events)))
        if self.direct_error is not None:
            raise self.direct_error
        self.direct.append(list(events))

    # -- helpers for assertions
    def all_received(self, name: str) -> list:
        return [m for incarnation in self.received[name] for m in incarnation]

    def count(self, name: str) -> int:
        return self.calls.count(name)


def first_index(log: list, predicate) -> int:
    """The index of the first entry of a ``FakeChildFactory.log`` that ``predicate`` accepts."""
    return next(i for i, e in enumerate(log) if predicate(e))
