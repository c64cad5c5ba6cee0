"""Which embedded servers to start: a pure decision from the configured URLs, the mode and what
answers. Nothing here opens a socket or starts a process; ``answers`` and ``ours`` are passed in.

Modes (the top-level ``embedded`` setting):

- ``auto``: a server that answers is used; one that does not answer is replaced by an embedded
  server on the URL's loopback host and port.
- ``always``: as ``auto``, but the server on the configured port must be this checkout's embedded
  one: anything else answering there is a problem.
- ``never``: nothing embedded; a server that does not answer is a problem.

Guarantees: a server that answers is never replaced (nothing embedded is started for it); an
embedded server is only ever planned for a plain ``redis://`` / ``postgresql://`` URL on a loopback
host (``127.0.0.0/8``, ``::1``, ``localhost``), never for another host, a unix socket or TLS; every
reason not to start one is a problem naming the URL and the way out.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlparse

from tickstock.config import is_loopback, safe_url

Kind = Literal["redis", "postgres"]
Mode = Literal["auto", "always", "never"]
DEFAULT_PORTS: dict[str, int] = {"redis": 6379, "postgres": 5432}
NAMES: dict[str, str] = {"redis": "Redis", "postgres": "PostgreSQL"}


@dataclass(frozen=True)
class Endpoint:
    """Where a configured server is expected. ``unservable`` says why no embedded server can stand
    in for it (None when one can)."""

    kind: Kind
    url: str
    host: str | None
    port: int
    user: str | None = None  # PostgreSQL: the role to connect as
    database: str | None = None  # PostgreSQL: the database to connect to
    password: str | None = None  # Redis: the embedded server requires it (requirepass)
    unservable: str | None = None

    @property
    def name(self) -> str:
        return NAMES[self.kind]

    @property
    def address(self) -> str:
        host = self.host or "?"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def endpoint(kind: Kind, url: str) -> Endpoint:
    """The endpoint of a configured URL (already validated by ``tickstock.config``)."""
    parsed = urlparse(url)
    try:
        port = parsed.port or DEFAULT_PORTS[kind]
    except ValueError:
        port = DEFAULT_PORTS[kind]
    host = parsed.hostname
    why = None
    if kind == "redis":
        if parsed.scheme == "unix":
            why = "a unix socket URL (the embedded Redis listens on a loopback TCP port: use redis://127.0.0.1:PORT)"
        elif parsed.scheme != "redis":
            why = f"{parsed.scheme}:// (TLS) is not served by the embedded Redis: use redis://"
        user, database = None, None
        password = unquote(parsed.password) if parsed.password else None
    else:
        user = unquote(parsed.username) if parsed.username else getpass.getuser()  # libpq's default
        database = unquote(parsed.path.strip("/")) or user
        password = None
    if why is None and not host:
        why = "no host (a unix socket): the embedded server listens on a loopback TCP port"
    elif why is None and not is_loopback(host):
        why = f"host {host!r} is not loopback: an embedded server only stands in for 127.0.0.1, ::1 or localhost"
    return Endpoint(kind, url, host, port, user, database, password if kind == "redis" else None, why)


@dataclass(frozen=True)
class Decision:
    """What to do: start these, use those; ``problems`` in words, ``fatal`` when they stop the program."""

    start: tuple[Endpoint, ...]
    use: tuple[Endpoint, ...]
    problems: tuple[str, ...]
    fatal: bool


def decide(
    endpoints: Iterable[Endpoint],
    mode: Mode,
    required: bool,
    answers: Callable[[Endpoint], bool],
    ours: Callable[[Endpoint], bool],
) -> Decision:
    """Decide per endpoint. ``answers(e)``: something accepts connections at e's host and port;
    ``ours(e)``: that is this checkout's embedded server. ``required`` (``--embedded``) makes
    problems fatal, as does ``always``; with ``auto`` and ``never`` they are reported and the
    program goes on as it always did (its own retries)."""
    start: list[Endpoint] = []
    use: list[Endpoint] = []
    problems: list[str] = []
    if required and mode == "never":
        mode = "auto"  # the command line asked for it
    for e in endpoints:
        if answers(e):
            if mode == "always" and not ours(e):
                problems.append(f"{e.name} at {e.address} is another server, not the embedded one "
                                f"(embedded: always): free the port, change {_key(e)} or set embedded: auto")
            else:
                use.append(e)
        elif mode == "never":
            problems.append(f"{e.name} at {e.address} does not answer and embedded: never: start it, "
                            f"or set embedded: auto (or pass --embedded) to run one from the Python wheel")
        elif e.unservable:
            problems.append(f"{e.name} at {safe_url(e.url)} does not answer, and no embedded "
                            f"server can stand in: {e.unservable}")
        else:
            start.append(e)
    return Decision(tuple(start), tuple(use), tuple(problems), fatal=bool(problems) and (required or mode == "always"))


def _key(e: Endpoint) -> str:
    return "redis.url" if e.kind == "redis" else "database.url"
