"""Assembles the running service: calendar scheduler, session service, HTTP server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tickstock.actors.service import StreamingService
from tickstock.actors.wiring import ProductionFactory
from tickstock.clock import SystemClock
from tickstock.config import Settings
from tickstock.market.calendar import MarketCalendar
from tickstock.market.schedule import SessionScheduler


@dataclass
class Runtime:
    service: StreamingService
    http: Any = None

    def start(self) -> None:
        if self.http is not None:
            self.http.start()

    def close(self) -> None:
        if self.http is not None:
            self.http.stop()


def build_runtime(settings: Settings, store_factory: Callable[[], Any]) -> Runtime:
    clock = SystemClock()
    scheduler = SessionScheduler(MarketCalendar(clock.now()), clock) if settings.session.auto_start else None
    service = StreamingService(settings, ProductionFactory(settings), store_factory, scheduler)
    return Runtime(service)
