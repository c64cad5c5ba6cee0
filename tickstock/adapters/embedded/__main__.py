"""``python -m tickstock.adapters.embedded``: the embedded Redis and PostgreSQL as daemons.

    python -m tickstock.adapters.embedded start [redis] [postgres]   # those whose URL does not answer
    python -m tickstock.adapters.embedded stop [redis] [postgres]    # the ones running under --dir
    python -m tickstock.adapters.embedded status                     # exit 0 when all named run
    python -m tickstock.adapters.embedded database                   # the configured role + database

URLs come from the configuration (``--config``, ``$TICKSTOCK_CONFIG``, config.yaml, environment
overrides) unless ``--redis-url``/``--database-url`` are given; files go under ``--dir``
(``var/embedded``). ``start`` detaches the servers (they outlive this command: ``stop`` ends
them); the service itself starts its own, tied to its life, when it needs them.

``database`` works on whichever PostgreSQL answers at ``database.url``: it creates the URL's role
(``LOGIN``) and database (owned by it) when missing, connected as that role or else as ``postgres``.
When nothing answers it exits 0 if the service will start an embedded server (``embedded`` is not
``never``), 1 otherwise. Exit codes: 0 done, 1 failed, 2 bad configuration, 3 ``status``: not all running.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tickstock.adapters.embedded.plan import NAMES, endpoint
from tickstock.adapters.embedded.process import EmbeddedError, answers
from tickstock.adapters.embedded.servers import DEFAULT_DIR, endpoints, ensure, make_server
from tickstock.config import ConfigError, load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tickstock.adapters.embedded",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("start", "stop", "status", "database"))
    parser.add_argument("servers", nargs="*", metavar="redis|postgres", help="which servers (default: both)")
    parser.add_argument("--config", help="settings file (default: $TICKSTOCK_CONFIG or config.yaml)")
    parser.add_argument("--redis-url", help="instead of the configured redis.url")
    parser.add_argument("--database-url", help="instead of the configured database.url")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"where their files go (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    for name in args.servers:
        if name not in ("redis", "postgres"):
            parser.error(f"unknown server {name!r} (redis or postgres)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"tickstock: {exc}", file=sys.stderr)
        return 2
    redis_url = args.redis_url or settings.redis.url
    database_url = args.database_url or settings.database.url
    need = tuple(dict.fromkeys(args.servers)) or ("redis", "postgres")
    try:
        if args.command == "database":
            return database(database_url, settings.embedded)
        if args.command == "start":
            servers = ensure(redis_url, database_url, mode="auto", required=True, need=need, directory=args.dir,
                             detach=True)
            for e in servers.decision.use:
                print(f"{e.kind}: {e.name} already answers at {e.address}: nothing started")
            if servers.started:
                print(servers.summary() + "; running detached (stop: python -m tickstock.adapters.embedded stop)")
            return 0
        servers_ = [make_server(e, args.dir) for e in endpoints(redis_url, database_url, need)]
        if args.command == "stop":
            for server in servers_:
                pid = server.running_pid()
                server.stop()
                print(f"{server.kind}: " + (f"stopped (pid {pid})" if pid else "was not running"))
            return 0
        running = 0
        for server in servers_:
            pid = server.running_pid()
            running += pid is not None
            state = f"running (pid {pid})" if pid else "not running"
            heard = "answers" if answers(str(server.endpoint.host), server.endpoint.port) else "nothing answers"
            where = server.endpoint.address
            print(f"{server.kind}: embedded {state}, files in {server.directory}; at {where}: {heard}")
        return 0 if running == len(servers_) else 3
    except EmbeddedError as exc:
        print(f"tickstock: {exc}", file=sys.stderr)
        return 1


def database(url: str, mode: str) -> int:
    """The configured role and database on the PostgreSQL answering at ``url``."""
    import psycopg2
    from psycopg2.extensions import make_dsn

    from tickstock.adapters.embedded.postgres import ensure_roles_and_database

    e = endpoint("postgres", url)
    if not e.host or not answers(e.host, e.port):
        if mode == "never" or e.unservable:
            print(f"tickstock: {NAMES['postgres']} at {e.address} does not answer "
                  f"({'embedded: never' if mode == 'never' else e.unservable})", file=sys.stderr)
            return 1
        print(f"{NAMES['postgres']} at {e.address} does not answer: the service starts an embedded one "
              f"(embedded: {mode}) and creates role {e.user} and database {e.database} in it")
        return 0
    problems = []
    for admin in (e.user, "postgres"):
        dsn = make_dsn(url, user=admin, dbname="postgres")
        try:
            created = ensure_roles_and_database(dsn, (e.user,), superuser=False, database=e.database, owner=e.user)
        except psycopg2.Error as exc:
            problems.append(f"as {admin}: {str(exc).strip()}")
            continue
        print(f"{NAMES['postgres']} at {e.address}: " + (f"created {', '.join(created)}" if created else
              f"role {e.user} and database {e.database} exist"))
        return 0
    print(f"tickstock: cannot create role {e.user} / database {e.database} at {e.address}: "
          + "; ".join(problems), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
