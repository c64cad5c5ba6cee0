"""Fixtures for the HTTP adapter tests: a fake StreamingService and a running AdminServer.

The fake records every call and answers like the real service (started/status tuples, None from
a stop when idle, a universe start error or a refusal when configured). Helpers are fixtures, not imports, so the tests
do not depend on pytest's import mode.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tickstock.actors.session import SessionOutcome
from tickstock.adapters.http import AdminServer, ServiceMetrics
from tickstock.config import HttpSettings

TOKEN = "s3cret-token"


class FakeService:
    """Stands in for ``StreamingService``: configurable state, every call recorded."""

    def __init__(self, running: bool = False, universe_error: str | None = None, start_fails: bool = False,
                 refused: str | None = None) -> None:
        self.refused = refused
        self._running = running
        self.start_fails = start_fails
        self.universe_error = universe_error
        self.start_calls: list[bool] = []
        self.stop_calls: list[tuple[str, str]] = []
        self.status_calls = 0

    @property
    def running(self) -> bool:
        return self._running

    def status(self) -> dict[str, Any]:
        self.status_calls += 1
        if self._running:
            return {"running": True, "session": {"session_id": "s-1", "state": "running", "started_at": 100.0}}
        return {"running": False, "session": None, "last_session": None, "universe": "test"}

    def start_session(self, manual: bool = True) -> tuple[bool, dict[str, Any]]:
        if self._running:
            return False, self.status()
        if self.refused:  # the service is shutting down
            return False, {**self.status(), "refused": self.refused}
        if self.universe_error:
            return False, {**self.status(), "start_error": {"cause": "universe", "reason": self.universe_error}}
        self.start_calls.append(manual)
        if self.start_fails:  # the session was announced as failed; nothing runs
            return False, self.status()
        self._running = True
        return True, self.status()

    def stop_session(self, final_status: str = "stopped", reason: str = "manual stop") -> SessionOutcome | None:
        self.stop_calls.append((final_status, reason))
        if not self._running:
            return None
        self._running = False
        return SessionOutcome("s-1", final_status, reason, 100.0, 160.5, 7, 42)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics()


@pytest.fixture
def make_server(fake: FakeService, metrics: ServiceMetrics) -> Iterator[Callable[..., AdminServer]]:
    """Start an AdminServer on 127.0.0.1, port 0; stopped at teardown."""
    started: list[AdminServer] = []

    def make(token: str = TOKEN, ready: tuple[bool, str] = (True, "ok"), service: Any = None,
             host: str = "127.0.0.1") -> AdminServer:
        settings = HttpSettings(enabled=True, host=host, port=0, admin_token=token)
        server = AdminServer(service or fake, metrics, settings, lambda: ready).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., AdminServer]) -> AdminServer:
    return make_server()


@pytest.fixture
def call() -> Callable[..., Response]:
    """``call(server, method, path, token=None, body=None)`` -> Response, for any status."""

    def do(server: AdminServer, method: str, path: str, token: str | None = None,
           body: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if method == "POST" and body is None:
            body = b""
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=body,
                                         headers=all_headers, method=method)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as response:
                return Response(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, dict(exc.headers), exc.read())

    return do


@pytest.fixture
def fake_service_cls() -> type[FakeService]:
    """The fake's class, for tests that need a differently configured one."""
    return FakeService


@pytest.fixture
def token() -> str:
    """The admin token the ``server`` fixture is configured with."""
    return TOKEN
