"""servers.ensure / EmbeddedServers with fake servers: what starts, and that it all stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickstock.adapters.embedded import EmbeddedError
from tickstock.adapters.embedded.plan import Endpoint
from tickstock.adapters.embedded.servers import ensure

REDIS_URL = "redis://127.0.0.1:6390/0"
PG_URL = "postgresql://root@127.0.0.1:5440/tickstock"


class FakeServer:
    def __init__(self, e: Endpoint, directory: Path, log: list[str], fail_start: bool = False) -> None:
        self.kind, self.endpoint, self.directory = e.kind, e, Path(directory) / e.kind
        self.log, self.fail_start = log, fail_start

    def start(self, detach: bool = False) -> None:
        self.log.append(f"start {self.kind} detach={detach}")
        if self.fail_start:
            raise EmbeddedError(f"{self.kind} would not start")

    def stop(self) -> None:
        self.log.append(f"stop {self.kind}")

    def running_pid(self) -> int | None:
        return None

    def describe(self) -> str:
        return f"{self.endpoint.name} on {self.endpoint.address}"


def fakes(log: list[str], failing: str = ""):
    return lambda e, d: FakeServer(e, d, log, fail_start=e.kind == failing)


def test_nothing_starts_when_both_answer() -> None:
    log: list[str] = []
    servers = ensure(REDIS_URL, PG_URL, answer=lambda e: True, server_for=fakes(log))
    servers.stop()
    assert log == [] and servers.started == []


def test_what_does_not_answer_starts_and_stops_newest_first_once(tmp_path: Path) -> None:
    log: list[str] = []
    servers = ensure(REDIS_URL, PG_URL, directory=tmp_path, answer=lambda e: False, server_for=fakes(log))
    assert log == ["start redis detach=False", "start postgres detach=False"]
    assert servers.summary() == (f"Redis and PostgreSQL did not answer: started embedded Redis on 127.0.0.1:6390 "
                                 f"({tmp_path / 'redis'}), PostgreSQL on 127.0.0.1:5440 ({tmp_path / 'postgres'})")
    servers.stop()
    servers.stop()  # idempotent
    assert log[2:] == ["stop postgres", "stop redis"]


def test_only_the_needed_kinds_are_considered() -> None:
    log: list[str] = []
    ensure(REDIS_URL, PG_URL, need=("postgres",), answer=lambda e: False, server_for=fakes(log)).stop()
    assert log == ["start postgres detach=False", "stop postgres"]


def test_a_server_that_fails_to_start_stops_those_already_started() -> None:
    log: list[str] = []
    with pytest.raises(EmbeddedError, match="postgres would not start"):
        ensure(REDIS_URL, PG_URL, answer=lambda e: False, server_for=fakes(log, failing="postgres"))
    assert log == ["start redis detach=False", "start postgres detach=False", "stop redis"]


def test_a_fatal_problem_raises_before_anything_starts() -> None:
    log: list[str] = []
    with pytest.raises(EmbeddedError, match="not loopback"):
        ensure("redis://10.0.0.5:6379/0", PG_URL, required=True, answer=lambda e: False, server_for=fakes(log))
    assert log == []


def test_non_fatal_problems_are_returned_and_the_rest_starts() -> None:
    log: list[str] = []
    servers = ensure("redis://10.0.0.5:6379/0", PG_URL, answer=lambda e: False, server_for=fakes(log))
    assert log == ["start postgres detach=False"]
    assert "not loopback" in servers.decision.problems[0]


def test_stop_stops_every_server_even_when_one_fails() -> None:
    log: list[str] = []

    class Stubborn(FakeServer):
        def stop(self) -> None:
            super().stop()
            raise OSError("stuck")

    servers = ensure(REDIS_URL, PG_URL, answer=lambda e: False,
                     server_for=lambda e, d: (Stubborn if e.kind == "postgres" else FakeServer)(e, d, log))
    with pytest.raises(EmbeddedError, match="postgres: stuck"):
        servers.stop()
    assert log[-2:] == ["stop postgres", "stop redis"]


def test_an_os_error_becomes_an_embedded_error_naming_the_server(tmp_path: Path) -> None:
    log: list[str] = []

    class Unwritable(FakeServer):
        def start(self, detach: bool = False) -> None:
            super().start(detach)
            raise PermissionError(13, "Permission denied", str(self.directory))

    with pytest.raises(EmbeddedError, match=r"embedded PostgreSQL could not start in .*postgres: .*Permission denied"):
        ensure(REDIS_URL, PG_URL, directory=tmp_path, answer=lambda e: False,
               server_for=lambda e, d: (Unwritable if e.kind == "postgres" else FakeServer)(e, d, log))
    assert log == ["start redis detach=False", "start postgres detach=False", "stop redis"]
