"""python -m tickstock.monitor: a live terminal view of what the dashboard sees on Redis.

    python -m tickstock.monitor [--config FILE] [--interval S]        # updates in place until Ctrl-C
    python -m tickstock.monitor --once --json [--wait S]              # one JSON snapshot, for scripts

Reads only Redis, as a consumer does: the output channels and the heartbeat and retained session
keys named in the configuration. Exit codes: 0 done, 1 Redis unreachable (or lost during --once),
2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from tickstock.clock import Clock, SystemClock
from tickstock.config import ConfigError, Settings, load_settings
from tickstock.config import safe_url
from tickstock.monitor.source import MonitorRedisError, RedisReader
from tickstock.monitor.state import ConnectionChanged, MonitorState

_RECONNECT_MAX_SECONDS = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tickstock.monitor", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="configuration file (default $TICKSTOCK_CONFIG, else config.yaml)")
    parser.add_argument("--interval", type=float, default=1.0, metavar="S",
                        help="seconds between key reads and screen updates (default 1)")
    parser.add_argument("--once", action="store_true", help="collect for --wait seconds, print one snapshot, exit")
    parser.add_argument("--json", action="store_true", help="with --once: print the snapshot as JSON")
    parser.add_argument("--wait", type=float, metavar="S",
                        help="with --once: seconds to collect (default: the heartbeat interval + 1 s)")
    parser.add_argument("--rows", type=int, default=10, help="rows per table on screen (default 10)")
    args = parser.parse_args(argv)
    if args.json and not args.once:
        parser.error("--json needs --once")
    if args.wait is not None and not args.once:
        parser.error("--wait needs --once")
    if not 0.05 <= args.interval <= 60:
        parser.error("--interval must be between 0.05 and 60 seconds")
    if args.wait is not None and not 0 <= args.wait <= 3600:
        parser.error("--wait must be between 0 and 3600 seconds")
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    return args


def reader_for(settings: Settings, clock: Clock) -> RedisReader:
    channels = {name: getattr(settings.channels, name) for name in settings.channels.__struct_fields__
                if name != "ticks"}
    return RedisReader(settings.redis.url, channels, settings.keys.heartbeat, settings.keys.session, clock)


def collect(reader: RedisReader, state: MonitorState, clock: Clock, seconds: float, interval: float) -> None:
    """Fold what Redis carries for ``seconds``: the keys at the start, every ``interval`` and at the end."""
    end = clock.now() + seconds
    next_keys = clock.now()
    while True:
        now = clock.now()
        if now >= next_keys:
            state.fold(reader.read_keys())
            next_keys = now + interval
        if now >= end:
            break
        for message in reader.messages(timeout=max(0.0, min(0.2, end - now, next_keys - now))):
            state.fold(message)
    state.fold(reader.read_keys())


def run_once(settings: Settings, args: argparse.Namespace, clock: Clock) -> int:
    wait = args.wait if args.wait is not None else settings.session.heartbeat_interval_seconds + 1.0
    state = MonitorState(max_detections=max(args.rows, 20))
    reader = reader_for(settings, clock)
    try:
        reader.open()
        collect(reader, state, clock, wait, args.interval)
    except MonitorRedisError as exc:
        print(f"tickstock.monitor: {exc}", file=sys.stderr)
        return 1
    finally:
        reader.close()
    view = state.view(clock.now())
    if args.json:
        print(json.dumps(view.to_json(), indent=2, allow_nan=False))
    else:
        from rich.console import Console

        from tickstock.monitor.render import render

        Console().print(render(view, safe_url(settings.redis.url), args.rows))
    return 0


def run_live(settings: Settings, args: argparse.Namespace, clock: Clock) -> int:
    from rich.live import Live

    from tickstock.monitor.render import render

    url = safe_url(settings.redis.url)
    state = MonitorState(max_detections=max(args.rows, 20))
    reader = reader_for(settings, clock)
    try:
        reader.open()  # unreachable at start: say so and stop, as --once does
    except MonitorRedisError as exc:
        print(f"tickstock.monitor: {exc}", file=sys.stderr)
        return 1
    backoff = 0.5
    try:
        with Live(render(state.view(clock.now()), url, args.rows), auto_refresh=False, transient=False) as live:
            while True:
                try:
                    collect(reader, state, clock, args.interval, args.interval)
                    backoff = 0.5
                except MonitorRedisError as exc:
                    state.fold(ConnectionChanged(False, clock.now(), str(exc)))
                    live.update(render(state.view(clock.now()), url, args.rows), refresh=True)
                    clock.sleep(backoff)
                    backoff = min(backoff * 2, _RECONNECT_MAX_SECONDS)
                    try:
                        reader.open()
                        state.fold(ConnectionChanged(True, clock.now()))
                    except MonitorRedisError as again:
                        state.fold(ConnectionChanged(False, clock.now(), str(again)))
                live.update(render(state.view(clock.now()), url, args.rows), refresh=True)
    except KeyboardInterrupt:
        return 0
    finally:
        reader.close()


def main(argv: list[str] | None = None, clock: Clock | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"tickstock.monitor: {exc}", file=sys.stderr)
        return 2
    clock = clock or SystemClock()
    return run_once(settings, args, clock) if args.once else run_live(settings, args, clock)


if __name__ == "__main__":
    sys.exit(main())
