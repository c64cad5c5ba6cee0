"""The embedded servers a program needs, started and stopped together.

    servers = ensure(redis_url, database_url, mode="auto", required=False)
    try:
        ...  # the configured URLs answer: the real servers, or embedded ones started here
    finally:
        servers.stop()

Guarantees: nothing is started for a server that answers (``plan.decide``); a fatal problem raises
``EmbeddedError`` before anything starts; a server that cannot start raises ``EmbeddedError`` (an
``OSError`` included), after those already started by the call are stopped; ``stop`` stops what
this call started (newest first), is idempotent, and leaves alone servers it did not start (the
real ones, or embedded ones started earlier by ``python -m tickstock.adapters.embedded start``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tickstock.adapters.embedded.plan import Decision, Endpoint, Kind, Mode, decide, endpoint
from tickstock.adapters.embedded.process import EmbeddedError, answers

DEFAULT_DIR = Path("var/embedded")  # relative to the working directory, like persistence.spill_dir


class Server(Protocol):
    kind: str
    endpoint: Endpoint
    directory: Path

    def start(self, detach: bool = False) -> None: ...
    def stop(self) -> None: ...
    def running_pid(self) -> int | None: ...
    def describe(self) -> str: ...


def make_server(e: Endpoint, directory: Path = DEFAULT_DIR) -> Server:
    """The embedded server for ``e``, its files in ``directory/<redis|postgres>``."""
    if e.kind == "redis":
        from tickstock.adapters.embedded.redis import EmbeddedRedis

        return EmbeddedRedis(e, Path(directory) / "redis")
    from tickstock.adapters.embedded.postgres import EmbeddedPostgres

    return EmbeddedPostgres(e, Path(directory) / "postgres")


@dataclass
class EmbeddedServers:
    """What one ``ensure`` call decided and started."""

    decision: Decision
    started: list[Server] = field(default_factory=list)

    def stop(self) -> None:
        errors = []
        while self.started:
            server = self.started.pop()
            try:
                server.stop()
            except Exception as exc:  # stop the others all the same
                errors.append(f"{server.kind}: {exc}")
        if errors:
            raise EmbeddedError("embedded servers did not stop cleanly: " + "; ".join(errors))

    def summary(self) -> str:
        """One line: what was started, where its data lives."""
        where = ", ".join(f"{s.describe()} ({s.directory})" for s in self.started)
        quiet = " and ".join(s.endpoint.name for s in self.started)
        return f"{quiet} did not answer: started embedded {where}"

    def __enter__(self) -> EmbeddedServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def endpoints(redis_url: str, database_url: str, need: Sequence[Kind] = ("redis", "postgres")) -> list[Endpoint]:
    urls = {"redis": redis_url, "postgres": database_url}
    return [endpoint(kind, urls[kind]) for kind in need]


def ensure(
    redis_url: str,
    database_url: str,
    mode: Mode = "auto",
    required: bool = False,
    need: Sequence[Kind] = ("redis", "postgres"),
    directory: Path = DEFAULT_DIR,
    detach: bool = False,
    answer: Callable[[Endpoint], bool] = lambda e: answers(str(e.host), e.port),
    server_for: Callable[[Endpoint, Path], Server] = make_server,
) -> EmbeddedServers:
    """Decide (``plan.decide``) and start what is needed. ``detach``: the servers outlive this
    process (a daemon each); otherwise they die with it. Raises ``EmbeddedError`` for a fatal
    problem or a server that cannot start; non-fatal problems are in ``decision.problems``."""
    servers = {e: server_for(e, directory) for e in endpoints(redis_url, database_url, need)}
    decision = decide(servers, mode, required, answers=answer, ours=lambda e: servers[e].running_pid() is not None)
    if decision.fatal:
        raise EmbeddedError("; ".join(decision.problems))
    result = EmbeddedServers(decision)
    try:
        for e in decision.start:
            try:
                servers[e].start(detach=detach)
            except OSError as exc:  # a directory that cannot be made, a binary that cannot run
                raise EmbeddedError(f"embedded {e.name} could not start in {servers[e].directory}: {exc}") from exc
            result.started.append(servers[e])
    except BaseException:
        result.stop()
        raise
    return result
