"""``python -m tickstock.actors``: run the streaming service.

    python -m tickstock.actors [--config FILE] [--universe KEY] [--now] [--check] [--migrate] [--embedded]

Exit codes: 0 after a clean stop (SIGINT/SIGTERM end the session with ``stopped``), 1 when
``--check`` finds a problem or the service cannot run, 2 for a bad configuration.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable

from loguru import logger

from tickstock.config import ConfigError, Settings, load_settings
from tickstock.logs import configure_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tickstock.actors", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML settings file (default: $TICKSTOCK_CONFIG or config.yaml)")
    parser.add_argument("--universe", help="universe key to stream, e.g. market_leaders:top_500")
    parser.add_argument("--now", action="store_true", help="start a session immediately, whatever the clock says")
    parser.add_argument("--check", action="store_true", help="validate settings and connections, print the plan, exit")
    parser.add_argument("--migrate", action="store_true", help="create or upgrade the database schema and exit")
    parser.add_argument("--embedded", action="store_true",
                        help="where the configured Redis/PostgreSQL do not answer, run real ones from the Python "
                             "wheels on their loopback ports (var/embedded; a run does so by default: embedded: auto)")
    return parser.parse_args(argv)


def check(settings: Settings) -> int:
    """Validate connections and print what would run. Returns the exit code."""
    from tickstock.actors.plan import UniverseError, load_definitions, resolve_universe
    from tickstock.actors.wiring import store_for
    from tickstock.adapters.redis import RedisPublisher

    problems = []
    try:
        RedisPublisher(settings.redis.url).ping()
        print(f"redis:     ok ({settings.redis.url})")
    except Exception as exc:
        problems.append(f"redis {settings.redis.url}: {exc}")
    try:
        store = store_for(settings)
        store.ping()
        store.close()
        print(f"database:  ok ({settings.database.url})")
    except Exception as exc:
        problems.append(f"database {settings.database.url}: {exc}")
    try:
        symbols = resolve_universe(settings, lambda: store_for(settings))
        print(f"universe:  {settings.session.universe} ({settings.session.universe_source}), "
              f"{len(symbols)} symbols: {', '.join(symbols[:10])}{' ...' if len(symbols) > 10 else ''}")
    except UniverseError as exc:
        problems.append(str(exc))
    definitions, def_problems, source = load_definitions(settings, lambda: store_for(settings))
    print(f"analysis:  {', '.join(d.name for d in definitions.definitions) or 'NONE'} (from {source})")
    problems += def_problems
    print(f"ticks:     {settings.channels.ticks}; http: {settings.http.host}:{settings.http.port}")
    for problem in problems:
        print(f"PROBLEM:   {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config, universe=args.universe)
    except ConfigError as exc:
        print(f"tickstock: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.level)
    if args.check:
        return check(settings)

    from tickstock.adapters.embedded import EmbeddedError

    try:
        stop_embedded = start_embedded(settings, args)
    except EmbeddedError as exc:
        logger.error("{}", exc)
        return 1
    try:
        return serve(args, settings, stop_embedded)
    finally:
        stop_embedded()


def start_embedded(settings: Settings, args: argparse.Namespace) -> Callable[[], None]:
    """Start embedded Redis/PostgreSQL where the configured ones do not answer and ``embedded``
    (or ``--embedded``) allows it; say so in one line. Returns what stops them (idempotent, never
    raises). ``--migrate`` needs PostgreSQL only, and starts it only with ``--embedded`` or
    ``embedded: always``. Raises ``EmbeddedError`` when ``--embedded``/``always`` cannot be honoured."""
    from tickstock.adapters.embedded import ensure

    if args.migrate and not (args.embedded or settings.embedded == "always"):
        return lambda: None
    servers = ensure(settings.redis.url, settings.database.url, mode=settings.embedded, required=args.embedded,
                     need=("postgres",) if args.migrate else ("redis", "postgres"))
    for problem in servers.decision.problems:  # not fatal: the service goes on and retries, as always
        logger.error("{}", problem)
    if servers.started:
        logger.info("{}; data kept there, stopped when the service stops", servers.summary())

    def stop() -> None:
        if servers.started:
            try:
                servers.stop()
                logger.info("embedded servers stopped")
            except Exception as exc:
                logger.error("{}", exc)

    return stop


def serve(args: argparse.Namespace, settings: Settings, stop_embedded: Callable[[], None]) -> int:
    """Migrate, then run the service until SIGINT/SIGTERM (or migrate only)."""
    from tickstock.actors.wiring import store_for
    from tickstock.adapters.postgres import migrate

    try:
        applied = migrate(settings.database.url)
        logger.info("database schema up to date ({})", ", ".join(applied) if applied else "no changes")
    except Exception as exc:
        logger.error("database schema could not be migrated: {!r}", exc)
        if args.migrate:
            return 1
    if args.migrate:
        return 0

    from tickstock.actors.runtime import build_runtime
    from tickstock.actors.supervision import ShutdownBudget

    stop = threading.Event()
    signalled_at: list[float] = []

    def on_signal(signum, frame):
        if not stop.is_set():
            signalled_at.append(time.monotonic())
            logger.info("received {}: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime = build_runtime(settings, lambda: store_for(settings))
    budget = None
    try:
        runtime.start()
        if args.now:
            started, status = runtime.service.start_session(manual=True)
            if not started:
                logger.error("session did not start: {}", status.get("start_error") or status.get("refused") or status)
        while not stop.wait(1.0):
            pass
        # One deadline from the signal to the exit, split in supervision.SHUTDOWN_STAGES.
        budget = ShutdownBudget(settings.session.shutdown_deadline_seconds, started_at=signalled_at[0])
        runtime.service.shutdown(budget.started_at)
    finally:
        runtime.close(budget)
    return _exit_within(budget, stop_embedded)


def _exit_within(budget, before_exit: Callable[[], None] = lambda: None) -> int:
    """The shutdown deadline holds whatever an actor is stuck on (a database call, say): actors
    still stopping when the budget is spent are abandoned; what they had not written is in the
    persistence write-ahead log, written by the next session."""
    import os

    import pykka

    remaining = budget.service_close_remaining() if budget is not None else 0.0
    deadline = time.monotonic() + remaining
    while pykka.ActorRegistry.get_all() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = pykka.ActorRegistry.get_all()
    if left:
        logger.warning("exiting with {} actors still stopping: {}", len(left),
                       ", ".join(sorted({ref.actor_class.__name__ for ref in left})))
        before_exit()  # os._exit skips the callers' finally blocks
        logger.complete()
        os._exit(0)
    logger.info("service stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
