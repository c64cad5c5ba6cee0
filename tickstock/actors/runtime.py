"""Assembles the running service: the ServiceActor (calendar, heartbeat, sessions), health, HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pykka
from loguru import logger

from tickstock.actors.health import HealthMonitor
from tickstock.actors.heartbeat import HeartbeatActor
from tickstock.actors.plan import SessionPlan
from tickstock.actors.service import ServiceActor, StreamingService
from tickstock.actors.supervision import ShutdownBudget
from tickstock.actors.wiring import ProductionFactory
from tickstock.clock import SystemClock
from tickstock.config import Settings
from tickstock.heap import HeapKeeper
from tickstock.market.calendar import MarketCalendar
from tickstock.market.schedule import SessionScheduler


@dataclass
class Runtime:
    service: StreamingService
    metrics: Any = None
    http: Any = None
    monitors: list[HealthMonitor] = field(default_factory=list)

    def ready(self) -> tuple[bool, str]:
        """Ready: a session runs and its tick subscription is live."""
        if not self.service.running:
            return False, "no session running"
        monitor = self.monitors[-1] if self.monitors else None
        report = monitor.last_report if monitor else None
        if report is None:
            return True, "session starting; no health report yet"
        if not monitor.feed_connected:
            return False, "tick feed disconnected"
        return True, f"session running, health {report.status}"

    def start(self) -> None:
        if self.http is not None:
            self.http.start()

    def close(self, budget: ShutdownBudget | None = None) -> None:
        """HTTP first (no new requests), then the ServiceActor and its heartbeat."""
        if self.http is not None:
            self.http.stop()
        timeout = budget.service_close_remaining() if budget is not None else 5.0
        try:
            self.service.ref.stop(block=True, timeout=max(timeout, 0.5))
        except pykka.Timeout:
            logger.error("service actor did not stop within the shutdown deadline")


def build_runtime(settings: Settings, store_factory: Callable[[], Any]) -> Runtime:
    from tickstock.adapters.http import AdminServer, ServiceMetrics
    from tickstock.adapters.redis import RedisPublisher

    clock = SystemClock()
    calendar = MarketCalendar(clock.now())
    scheduler = SessionScheduler(calendar, clock) if settings.session.auto_start else None
    metrics = ServiceMetrics()
    monitors: list[HealthMonitor] = []

    def monitor_for(plan: SessionPlan) -> HealthMonitor:
        definitions = len(plan.definitions.definitions) if plan.definitions is not None else 0
        monitor = HealthMonitor(settings, definitions, plan.problems,
                                market_open=lambda t: calendar.window_at(t) is not None,
                                manual=plan.manual, observer=metrics.observe)
        monitors[:] = [monitor]
        return monitor

    def heartbeat() -> pykka.ActorRef:
        s = settings
        return HeartbeatActor.start(lambda: RedisPublisher(s.redis.url), s.keys.heartbeat, s.keys.session,
                                    s.session.heartbeat_interval_seconds, s.session.session_key_ttl_seconds)

    ref = ServiceActor.start(settings, ProductionFactory(settings, metrics), store_factory, scheduler, monitor_for,
                             heartbeat, heap=HeapKeeper())
    runtime = Runtime(StreamingService(ref, settings), metrics, None, monitors)
    if settings.http.enabled:
        runtime.http = AdminServer(runtime.service, metrics, settings.http, runtime.ready)
    return runtime
