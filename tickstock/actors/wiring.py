"""Production wiring: builds the session's children on the real Redis and PostgreSQL adapters.

The only module that knows both the actors and the concrete adapters; tests replace it with a
factory of mocks (see ``session.ChildFactory``).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Iterator, Sequence

import pykka

from tickstock.actors.analysis import AnalysisHandover, CloseAnalysisActor
from tickstock.actors.analysis_output import AnalysisSpec, LocalAnalysis, OutputSettings
from tickstock.actors.analysis_process import ProcessAnalysis, ProcessGroup
from tickstock.actors.dispatch import Dispatcher
from tickstock.actors.handle import ChildHandle
from tickstock.actors.ingress import TickIngressActor
from tickstock.actors.persistence import PersistenceActor
from tickstock.actors.publisher import PublisherActor, encode_for_redis
from tickstock.actors.plan import SessionPlan, batched_definitions, symbol_pipelines
from tickstock.actors.symbol import SymbolActor
from tickstock.adapters.postgres import PostgresStore
from tickstock.adapters.redis import RedisPublisher, RedisTickFeed
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.clock import EventTime
from tickstock.config import Settings
from tickstock.messages.bars import Bar


def store_for(settings: Settings) -> PostgresStore:
    """A PostgreSQL store with the configured timeouts: no call can hang past them."""
    db = settings.database
    return PostgresStore(db.url, connect_timeout=db.connect_timeout_seconds,
                         statement_timeout_seconds=db.statement_timeout_seconds,
                         lock_timeout_seconds=db.lock_timeout_seconds)


class ProductionFactory:
    def __init__(self, settings: Settings, metrics: Any = None) -> None:
        self.settings = settings
        self.metrics = metrics  # adapters.http.ServiceMetrics, or None
        self._dispatcher: Dispatcher | None = None  # the current session's, for its symbol actors
        self._dispatcher_session: str | None = None
        self._dispatcher_lock = threading.Lock()
        # session.clock: event -- one event time per aggregator (per session), so a restarted
        # ingress keeps the watermark as it keeps the forming bars.
        self._event_times: weakref.WeakKeyDictionary[MinuteBarAggregator, EventTime] = weakref.WeakKeyDictionary()

    def dispatcher(self, plan: SessionPlan, session: pykka.ActorRef | None = None) -> Dispatcher:
        """The dispatcher of ``plan``'s session: ``session.symbol_workers`` threads for all its
        symbol actors (restarts and new symbols included), a fresh one per session.

        Its threads end with the session: once the session actor (``session``) has stopped and
        its last symbol actor has finished, the dispatcher shuts itself down. Should that not
        happen (a session that never stops its symbols), the next session's first symbol shuts
        it down -- one session runs at a time. So threads never pile up across sessions, and a
        worker stuck in an old session's actor is never one the new session lacks."""
        with self._dispatcher_lock:
            current = self._dispatcher
            if current is not None and self._dispatcher_session == plan.session_id and not current.closed:
                return current
            self._dispatcher = Dispatcher(f"symbols-{plan.session_id[:8]}", self.settings.session.symbol_workers,
                                          owner_stopped=session.actor_stopped if session is not None else None)
            self._dispatcher_session = plan.session_id
            fresh = self._dispatcher
        if current is not None:
            current.shutdown()  # no wait; what still runs there is asked to stop
        return fresh

    def close(self, timeout: float | None = None) -> bool:
        """Shut down the last session's dispatcher (its actors stopped with it); True when its
        threads have exited (``timeout``: how long to wait for them)."""
        with self._dispatcher_lock:
            current, self._dispatcher, self._dispatcher_session = self._dispatcher, None, None
        return current.shutdown(timeout) if current is not None else True

    def _hook(self, name: str) -> Any:
        return getattr(self.metrics, name) if self.metrics is not None else None

    def publisher(self, supervisor: pykka.ActorRef, plan: SessionPlan) -> pykka.ActorRef:
        s = self.settings
        return PublisherActor.start(
            supervisor, plan.session_id, s.channels, s.keys, s.session.session_key_ttl_seconds,
            s.analysis.high_confidence, lambda: RedisPublisher(s.redis.url),
            observe_latency=self._hook("observe_publish_latency"),
            report_interval=s.session.report_interval_seconds,
        )

    def store(self) -> PostgresStore:
        """A store whose every call is bounded by the configured connect/statement/lock timeouts."""
        return store_for(self.settings)

    def persistence(self, supervisor: pykka.ActorRef, plan: SessionPlan) -> pykka.ActorRef:
        s = self.settings
        return PersistenceActor.start(
            supervisor, plan.session_id, self.store, s.persistence.batch_size,
            s.persistence.flush_interval_seconds, s.persistence.retry_interval_seconds,
            observe_latency=self._hook("observe_db_write_latency"), spill_dir=s.persistence.spill_dir,
            fsync_interval=s.persistence.fsync_interval_seconds,
            table_retry_seconds=s.persistence.table_retry_seconds,
            report_interval=s.session.report_interval_seconds,
            pattern_ttl=s.analysis.pattern_ttl_seconds, indicator_ttl=s.analysis.indicator_ttl_seconds,
        )

    def symbol(self, supervisor: pykka.ActorRef, plan: SessionPlan, symbol: str, history: Sequence[Bar] | None,
               publisher: ChildHandle, persistence: ChildHandle) -> pykka.ActorRef:
        a = self.settings.analysis
        pipeline, higher = symbol_pipelines(plan, symbol, a.max_component_failures)
        return SymbolActor.start(
            supervisor, plan.session_id, symbol, pipeline, publisher, persistence, history,
            on_detection=self._hook("record_detection"), analyse_partial_bars=a.analyse_partial_bars,
            load_history=lambda before=None: self._history_of(symbol, a.prime_bars, before),
            prime_at_first_bar=self.settings.session.clock == "event",
            dispatcher=self.dispatcher(plan, supervisor), higher=higher, sessions=plan.sessions,
        )

    def analysis(self, supervisor: pykka.ActorRef, plan: SessionPlan, publisher: ChildHandle,
                 persistence: ChildHandle, restart: bool,
                 handover: AnalysisHandover | None = None) -> pykka.ActorRef:
        """The session's ``CloseAnalysisActor`` over ``plan``'s batched definitions. At the start
        (``restart`` false, wall clock) the session primes it; a restart primes itself on open,
        from where its predecessor's ``handover`` says it reached."""
        a = self.settings.analysis
        event_time = self.settings.session.clock == "event"
        s = self.settings
        output = OutputSettings(plan.session_id, s.channels, a.high_confidence, a.pattern_ttl_seconds,
                                a.indicator_ttl_seconds)
        spec = AnalysisSpec(batched_definitions(plan), tuple(plan.symbols), output, plan.sessions,
                            a.max_component_failures, a.analyse_partial_bars)
        analysis: LocalAnalysis | ProcessAnalysis | ProcessGroup
        if not a.process:
            analysis = LocalAnalysis(spec)
        else:
            specs = spec.split(a.processes)
            analysis = ProcessAnalysis(specs[0]) if len(specs) == 1 else ProcessGroup(specs)
        return CloseAnalysisActor.start(
            supervisor, plan.session_id, analysis, publisher, persistence,
            load_history=lambda symbols, before=None: self.load_history(symbols, a.prime_bars, before)
            if a.prime_bars else iter(()),
            prime_on_open=restart and not event_time, prime_at_first_bar=event_time,
            on_detection=self._hook("record_detection"), handover=handover,
            report_interval=s.session.report_interval_seconds,
        )

    def ingress(self, supervisor: pykka.ActorRef, plan: SessionPlan, routes: dict[str, ChildHandle],
                persistence: ChildHandle, aggregator: MinuteBarAggregator,
                analysis: ChildHandle | None = None) -> pykka.ActorRef:
        s = self.settings
        return TickIngressActor.start(
            supervisor, plan.session_id,
            lambda: RedisTickFeed(s.redis.url, s.channels.ticks, ping_interval=s.redis.ping_interval_seconds,
                                  ping_timeout=s.redis.ping_timeout_seconds),
            routes, persistence, aggregator, s.session.accept_new_symbols, s.bars.max_tick_skew_seconds,
            report_interval=s.session.report_interval_seconds, event_time=self.event_time(aggregator),
            analysis=analysis,
        )

    def event_time(self, aggregator: MinuteBarAggregator) -> EventTime | None:
        """What closes the session's bars instead of the wall clock: None for ``session.clock:
        wall``; for ``event``, the session's event time (one per aggregator: a restarted ingress
        keeps its watermark)."""
        if self.settings.session.clock != "event":
            return None
        event_time = self._event_times.get(aggregator)
        if event_time is None:
            event_time = self._event_times[aggregator] = EventTime()
        return event_time

    def load_history(self, symbols: Sequence[str], limit: int,
                     before: float | None = None) -> Iterator[tuple[str, list[Bar]]]:
        """Each symbol's ``limit`` latest bars (starting before ``before``, if given), streamed."""
        store = self.store()
        try:
            yield from store.iter_recent_bars(list(symbols), limit, before=before)
        finally:
            store.close()

    def _history_of(self, symbol: str, limit: int, before: float | None = None) -> list[Bar]:
        """One symbol's recent bars (a restarted or new symbol actor primes from these; in event
        time every symbol actor, from the bars before its first bar: ``before``)."""
        return dict(self.load_history([symbol], limit, before)).get(symbol, []) if limit else []

    def publish_directly(self, plan: SessionPlan, events: Sequence[Any]) -> None:
        s = self.settings
        client = RedisPublisher(s.redis.url)
        try:
            client.publish_many(encode_for_redis(events, s.channels, s.analysis.high_confidence))
            client.delete(s.keys.session)
        finally:
            client.close()
