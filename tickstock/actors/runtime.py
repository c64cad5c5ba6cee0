"""Assembles the running service: calendar scheduler, session service, health, HTTP server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from tickstock.actors.health import HealthMonitor
from tickstock.actors.service import StreamingService
from tickstock.actors.session import SessionPlan
from tickstock.actors.wiring import ProductionFactory
from tickstock.clock import SystemClock
from tickstock.config import Settings
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

    def close(self) -> None:
        if self.http is not None:
            self.http.stop()


def build_runtime(settings: Settings, store_factory: Callable[[], Any]) -> Runtime:
    from tickstock.adapters.http import AdminServer, ServiceMetrics

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

    service = StreamingService(settings, ProductionFactory(settings, metrics), store_factory, scheduler, monitor_for)
    runtime = Runtime(service, metrics, None, monitors)
    if settings.http.enabled:
        runtime.http = AdminServer(service, metrics, settings.http, runtime.ready)
    return runtime
