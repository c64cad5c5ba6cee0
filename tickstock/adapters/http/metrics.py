"""Prometheus metrics for TickStock, derived from the actors' own counters.

Guarantees:
- Nothing here runs per tick. The hot path keeps its plain-int counters; the HealthMonitor hands
  us a snapshot of them (``observe``) each time it publishes a report, and every scrape renders
  the LATEST snapshot. A ``Counter.inc`` per tick (~1 us) would cost more than the tick itself.
- ``observe`` never raises: it is called inside the SessionActor's timer, where an exception
  would kill the session actor.
- Everything is thread-safe: ``observe`` (session actor thread), ``record_detection`` (symbol
  actors), the latency histograms (publisher / persistence) and ``render`` (HTTP threads).
- The metrics live in this object's own ``CollectorRegistry``, never the process-global one, so
  several instances (tests, restarts) never collide.

Counters are per-session (they come from the session's actors) and so go back to zero when a new
session, or a restarted actor, starts counting again; Prometheus treats that as a counter reset.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SESSION_STATES = ("idle", "starting", "running", "stopping")
HEALTH_STATUSES = ("healthy", "warning", "critical")

# PersistenceStats field -> the table it counts rows for.
_TABLES = (
    ("bars_written", "ohlcv_1min"),
    ("patterns_written", "intraday_patterns"),
    ("indicators_written", "intraday_indicators"),
)

# Publishing a batch to Redis is sub-millisecond when healthy; a DB batch is milliseconds to seconds.
_PUBLISH_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Owns a private registry; ``observe`` a HealthMonitor snapshot, ``render`` to scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] = {}
        self._detections: dict[str, int] = {}
        self._running_probe: Callable[[], bool] | None = None
        self.registry.register(_SnapshotCollector(self))
        self.publish_latency = Histogram(
            "tickstock_publish_latency_seconds", "Time to publish one batch of events to Redis.",
            buckets=_PUBLISH_BUCKETS, registry=self.registry)
        self.db_write_latency = Histogram(
            "tickstock_db_write_latency_seconds", "Time to write one batch of rows to PostgreSQL.",
            buckets=_DB_BUCKETS, registry=self.registry)

    # -- feeding ---------------------------------------------------------------------------------

    def observe(self, snapshot: Mapping[str, Any]) -> None:
        """Keep ``snapshot`` (the HealthMonitor observer dict) as the one the next scrape renders.
        Never raises."""
        try:
            copied = dict(snapshot)
            ingress = copied.get("ingress")
            if ingress is not None:
                # The stats object is a fresh copy per GetStats, but copy its one mutable field
                # used here anyway: a scrape must never iterate a dict another thread is changing.
                copied["rejected"] = dict(getattr(ingress, "rejected", None) or {})
                copied["feed_gaps_by_reason"] = dict(getattr(ingress, "feed_gaps_by_reason", None) or {})
            session = copied.get("session")
            if isinstance(session, Mapping):
                copied["session"] = dict(session)
                mailboxes = session.get("mailboxes")
                copied["mailboxes"] = dict(mailboxes) if isinstance(mailboxes, Mapping) else {}
            with self._lock:
                self._snapshot = copied
        except Exception as exc:  # the caller is the session actor's timer: never break it
            logger.opt(exception=True).warning("metrics: could not take the health snapshot: {!r}", exc)

    def set_running_probe(self, probe: Callable[[], bool] | None) -> None:
        """``probe()`` says whether a session runs now. Snapshots only arrive while one runs, so
        without it the last session's state and live gauges would linger after it ends."""
        self._running_probe = probe

    def record_detection(self, pattern: str, count: int = 1) -> None:
        """Count ``count`` detections of ``pattern``. Per detection (rare), never per tick."""
        with self._lock:
            self._detections[pattern] = self._detections.get(pattern, 0) + count

    def observe_publish_latency(self, seconds: float) -> None:
        """Record one Redis publish batch's duration (thread-safe; per batch, not per event)."""
        self.publish_latency.observe(seconds)

    def observe_db_write_latency(self, seconds: float) -> None:
        """Record one PostgreSQL write batch's duration (thread-safe; per batch, not per row)."""
        self.db_write_latency.observe(seconds)

    # -- reading ---------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric in this registry."""
        return generate_latest(self.registry)

    def _state(self) -> tuple[dict[str, Any], dict[str, int], bool]:
        with self._lock:
            snapshot, detections = self._snapshot, dict(self._detections)
        running = bool(snapshot)
        probe = self._running_probe
        if probe is not None:
            try:
                running = bool(probe())
            except Exception:  # a broken probe must not break the scrape
                running = bool(snapshot)
        return snapshot, detections, running


def _counter(name: str, doc: str, value: Any) -> CounterMetricFamily:
    # prometheus_client appends the ``_total`` suffix to the sample name itself.
    family = CounterMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], float(value))
    return family


def _gauge(name: str, doc: str, value: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], float(value))
    return family


class _SnapshotCollector(Collector):
    """Yields metric families from the metrics object's latest snapshot on every scrape.

    Families are always yielded (possibly without samples) so the exposition's HELP/TYPE set is
    stable; a value that is unknown (no session yet, actor not answering) has no sample rather
    than a made-up zero.
    """

    def __init__(self, owner: ServiceMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        snap, detections, running = self._owner._state()
        ingress, persistence, publisher = snap.get("ingress"), snap.get("persistence"), snap.get("publisher")
        report, session = snap.get("report"), snap.get("session") or {}
        # Counters keep the last session's totals; gauges describe a running session only.
        yield from _ingress_families(ingress, snap.get("rejected") or {}, running)
        yield from _feed_gap_families(ingress, snap.get("feed_gaps_by_reason") or {})
        yield from _persistence_families(persistence, running)
        yield from _publisher_families(publisher, running)
        yield _redis_family(ingress if running else None, publisher if running else None)
        detected = CounterMetricFamily(
            "tickstock_detections", "Pattern detections by pattern (fed per detection).", labels=["pattern"])
        for pattern, count in sorted(detections.items()):
            detected.add_metric([pattern], count)
        yield detected
        yield from _session_families(session, snap.get("mailboxes") or {}, report, running)


def _ingress_families(ingress: Any, rejected: Mapping[str, int], live: bool) -> Iterator[Metric]:
    get = (lambda name: getattr(ingress, name, None)) if ingress is not None else (lambda name: None)
    yield _counter("tickstock_ticks_received", "Ticks received from the feed.", get("received"))
    by_reason = CounterMetricFamily("tickstock_ticks_rejected", "Ticks rejected, by reason.", labels=["reason"])
    for reason, count in sorted(rejected.items()):
        by_reason.add_metric([str(reason)], count)
    yield by_reason
    yield _counter("tickstock_ticks_late", "Ticks for a bar already closed.", get("late"))
    yield _counter("tickstock_ticks_unknown_symbol", "Ticks for symbols outside the universe.",
                   get("unknown_symbols"))
    yield _counter("tickstock_bars_closed", "One-minute bars closed.", get("bars_closed"))
    yield _counter("tickstock_feed_reconnects", "Reconnections to the Redis tick feed.", get("reconnects"))
    yield _gauge("tickstock_bars_forming", "Bars currently being built.", get("forming") if live else None)


def _feed_gap_families(ingress: Any, by_reason: Mapping[str, int]) -> Iterator[Metric]:
    """Lost tick subscriptions (gaps): ticks published during a gap never reach the service."""
    gaps = CounterMetricFamily(
        "tickstock_feed_gaps", "Tick subscriptions lost and re-established (gaps), by reason "
        "(output_buffer_limit: dropped by Redis for a slow reader).", labels=["reason"])
    for reason, count in sorted(by_reason.items()):
        gaps.add_metric([str(reason)], count)
    yield gaps
    get = (lambda name: getattr(ingress, name, None)) if ingress is not None else (lambda name: None)
    yield _counter("tickstock_feed_gap_seconds", "Seconds of the gaps: last data received -> re-subscribed.",
                   get("feed_gap_seconds"))
    yield _counter("tickstock_feed_ticks_lost_estimate",
                   "ESTIMATE of the ticks lost in the gaps: the rate before each gap x its length, the "
                   "time the reader was behind included.", get("ticks_lost_estimate"))


def _persistence_families(persistence: Any, live: bool) -> Iterator[Metric]:
    written = CounterMetricFamily("tickstock_rows_written", "Rows written to PostgreSQL, by table.",
                                  labels=["table"])
    if persistence is not None:
        for field_name, table in _TABLES:
            written.add_metric([table], getattr(persistence, field_name, 0))
    yield written
    yield _counter("tickstock_rows_rejected", "Rows PostgreSQL refused (dropped after isolation).",
                   getattr(persistence, "rows_rejected", None))
    yield _gauge("tickstock_persistence_backlog", "Rows buffered, waiting to be written.",
                 getattr(persistence, "backlog", None) if live else None)
    db = getattr(persistence, "db_connected", None) if live else None
    yield _gauge("tickstock_db_connected", "1 if the persistence actor's database connection is up.",
                 None if db is None else int(bool(db)))


def _publisher_families(publisher: Any, live: bool) -> Iterator[Metric]:
    get = (lambda name: getattr(publisher, name, None)) if publisher is not None else (lambda name: None)
    yield _counter("tickstock_patterns_detected", "Pattern detections published this session.", get("patterns"))
    yield _counter("tickstock_indicator_values", "Indicator values published this session.", get("indicators"))
    yield _counter("tickstock_events_published", "Events published to Redis.", get("published"))
    yield _counter("tickstock_events_dropped", "Events dropped because Redis was unavailable too long.",
                   get("dropped"))
    yield _gauge("tickstock_publisher_buffered", "Events buffered while Redis is unavailable.",
                 get("buffered") if live else None)


def _redis_family(ingress: Any, publisher: Any) -> Metric:
    # Two connections, two samples: the tick feed (ingress) and the event publisher.
    redis = GaugeMetricFamily("tickstock_redis_connected", "1 if the Redis client is connected.",
                              labels=["client"])
    for client, stats in (("feed", ingress), ("publisher", publisher)):
        if stats is not None:
            redis.add_metric([client], int(bool(getattr(stats, "redis_connected", False))))
    return redis


def _session_families(session: Mapping[str, Any], mailboxes: Mapping[str, Any], report: Any,
                      running: bool) -> Iterator[Metric]:
    yield _counter("tickstock_actor_restarts", "Child actors restarted by the session's supervisor.",
                   session.get("restarts"))
    state = str(session.get("state", "idle")) if running else "idle"
    if state not in SESSION_STATES:
        state = "idle"  # 'stopped' / 'failed' are ends of a session: nothing runs
    states = GaugeMetricFamily("tickstock_session_state", "1 for the session's current state.",
                               labels=["state"])
    for name in SESSION_STATES:
        states.add_metric([name], 1 if name == state else 0)
    yield states
    # Live gauges describe the running session only; after it ends their last values would lie.
    live_report = report if running else None
    health = GaugeMetricFamily("tickstock_health_status", "1 for the latest health report's status.",
                               labels=["status"])
    if live_report is not None:
        for name in HEALTH_STATUSES:
            health.add_metric([name], 1 if name == live_report.status else 0)
    yield health
    lag_ms = getattr(live_report, "processing_lag_ms", None)
    yield _gauge("tickstock_processing_lag_seconds", "Mean tick-to-bar processing lag over the last interval.",
                 None if lag_ms is None else lag_ms / 1000.0)
    yield _gauge("tickstock_ticks_per_second", "Ticks per second over the last health interval.",
                 getattr(live_report, "ticks_per_second", None))
    yield _gauge("tickstock_active_symbols", "Symbols that ticked within the active window.",
                 getattr(live_report, "active_symbols", None))
    yield _gauge("tickstock_metrics_snapshot_timestamp_seconds",
                 "When the snapshot behind these metrics was taken (epoch seconds).",
                 getattr(report, "reported_at", None))
    depth = GaugeMetricFamily("tickstock_mailbox_depth", "Messages waiting in an actor's mailbox.",
                              labels=["actor"])
    if running:
        for actor, value in sorted(mailboxes.items()):
            try:
                depth.add_metric([str(actor)], float(value))
            except (TypeError, ValueError):
                continue  # a malformed entry must not cost the whole scrape
    yield depth


__all__ = ["ServiceMetrics", "SESSION_STATES", "HEALTH_STATUSES"]
