"""``python -m tickstock.simulate``: publish simulated or replayed ticks for the service.

    python -m tickstock.simulate --universe test:small --rate 50 --inject NVDA:doji --inject AAPL:hammer
    python -m tickstock.simulate --symbols NVDA,AAPL --seconds 600 --inject NVDA:rsi_overbought
    python -m tickstock.simulate --replay day.csv --speed 60        # ticks or 1-minute bars, by the header
    python -m tickstock.simulate --replay-db postgresql://root@127.0.0.1/tickstock --date 2025-10-07 --speed max

Ticks go to the configured ticks channel (config.yaml ``channels.ticks``; ``--channel`` overrides)
on the configured Redis (``redis.url`` / ``TICKSTOCK_REDIS_URL``), in the contract's format. A
progress line on a terminal; a one-line summary (``sent N ticks in ...``) on stdout at the end.
Exit codes: 0 done (also after Ctrl-C / SIGTERM), 1 Redis failed, 2 bad arguments, settings or
replay input (the message names the file and line).
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
from contextlib import nullcontext

from loguru import logger

from tickstock.clock import SystemClock
from tickstock.config import ConfigError, load_settings
from tickstock.logs import FORMAT
from tickstock.market.calendar import MarketCalendar
from tickstock.simulate.activity import IntradayActivity
from tickstock.simulate.pacing import parse_speed
from tickstock.simulate.progress import ProgressLine, summary
from tickstock.simulate.publish import PublishFailed, RedisTickSink, RunStats, run_live, run_replay
from tickstock.simulate.replay import ReplayError, ReplaySource, load_db_bars, read_csv, source_from_bars
from tickstock.simulate.shapes import SHAPES, InjectedMarket, Injection
from tickstock.simulate.walk import RandomWalk

DEFAULT_RATE_PER_SYMBOL = 2.0


def _symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError("expected SYMBOL[,SYMBOL...]")
    return symbols


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _positive(kind: type) -> object:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value
    return parse


def _injection(text: str) -> Injection:
    try:
        return Injection.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _speed(text: str) -> float | None:
    try:
        return parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tickstock.simulate",
        description="Publish simulated ticks (a random walk with injected shapes) or replay a day, "
                    "on the service's tick channel.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:7]))
    p.add_argument("--config", help="settings file (default: TICKSTOCK_CONFIG or config.yaml)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--universe", help="a universe of the settings (default: session.universe)")
    which.add_argument("--symbols", type=_symbols, help="SYMBOL[,SYMBOL...] instead of a universe")
    p.add_argument("--rate", type=_positive(float), metavar="TICKS_PER_S",
                   help=f"ticks/s over all symbols, the session's average "
                        f"(default {DEFAULT_RATE_PER_SYMBOL:g} per symbol)")
    p.add_argument("--seconds", type=_positive(float), help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=1, help="the walk's seed: same seed, same market (default 1)")
    p.add_argument("--inject", type=_injection, action="append", default=[], metavar="SYMBOL:SHAPE",
                   help=f"from the next minute, shape SYMBOL's ticks so that the engine detects it; "
                        f"SHAPE is one of {', '.join(SHAPES)} (repeatable)")
    p.add_argument("--inject-every", type=_positive(int), metavar="MINUTES",
                   help="run each symbol's injections again MINUTES after they end (default: once)")
    p.add_argument("--channel", help="publish on this channel instead of channels.ticks")
    p.add_argument("--replay", metavar="FILE.csv", help="replay ticks or 1-minute bars from a CSV file")
    p.add_argument("--replay-db", nargs="?", const="", metavar="DSN",
                   help="replay ohlcv_1min bars of --date (DSN default: database.url)")
    p.add_argument("--date", type=_date, help="the exchange date (America/New_York) to replay from the database")
    p.add_argument("--speed", type=_speed, default=1.0,
                   help="replay at this many times real time, or 'max' (default 1)")
    p.add_argument("--ticks-per-bar", type=_positive(int), default=4,
                   help="ticks a replayed bar is expanded into (default 4, at least its path)")
    p.add_argument("--quiet", action="store_true", help="no progress line and no event lines: the summary only")
    args = p.parse_args(argv)
    replay = args.replay is not None or args.replay_db is not None
    if args.replay is not None and args.replay_db is not None:
        p.error("--replay and --replay-db are exclusive")
    if args.replay_db is not None and args.date is None:
        p.error("--replay-db needs --date YYYY-MM-DD")
    if args.date is not None and args.replay_db is None:
        p.error("--date goes with --replay-db")
    if replay and (args.inject or args.rate is not None or args.inject_every is not None):
        p.error("--inject, --inject-every and --rate are for the simulated market, not a replay")
    if replay and args.universe:
        p.error("a replay takes --symbols to filter, not --universe")
    return args


def _configure_logging(quiet: bool) -> None:
    logger.remove()
    logger.configure(extra={"session_id": "-", "actor": "simulate"})
    # Looked up at each write: under the progress line sys.stderr is rich's proxy, which prints
    # above the line instead of through it.
    logger.add(lambda message: sys.stderr.write(message), level="WARNING" if quiet else "INFO",
               format=FORMAT, backtrace=False, diagnose=False)


def _load_replay(args: argparse.Namespace, database_url: str) -> ReplaySource:
    if args.replay is not None:
        return read_csv(args.replay, symbols=args.symbols, ticks_per_bar=args.ticks_per_bar)
    dsn = args.replay_db or database_url
    bars = load_db_bars(dsn, args.date, args.symbols)
    return source_from_bars(bars, f"ohlcv_1min {args.date.isoformat()}", args.ticks_per_bar)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _configure_logging(args.quiet)
    try:
        settings = load_settings(args.config, universe=args.universe)
        symbols = args.symbols or settings.universe_symbols(args.universe)
    except ConfigError as exc:
        print(f"tickstock.simulate: {exc}", file=sys.stderr)
        return 2
    channel = args.channel or settings.channels.ticks
    clock = SystemClock()
    replay = args.replay is not None or args.replay_db is not None

    source: ReplaySource | None = None
    market = None
    if replay:
        try:
            source = _load_replay(args, settings.database.url)
        except ReplayError as exc:
            print(f"tickstock.simulate: {exc}", file=sys.stderr)
            return 2
        if not source.ticks:
            print(f"tickstock.simulate: nothing to replay in {source.origin}", file=sys.stderr)
            return 2
    else:
        try:
            market, start = _build_market(args, symbols, clock.now())
        except ValueError as exc:
            print(f"tickstock.simulate: {exc}", file=sys.stderr)
            return 2

    sink = RedisTickSink(settings.redis.url, channel)
    try:
        sink.check()
    except PublishFailed as exc:
        print(f"tickstock.simulate: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}

    show = not args.quiet and sys.stderr.isatty()
    progress = ProgressLine(channel) if show else None
    on_progress = progress.update if progress else (lambda stats: None)
    stats = RunStats()
    code = 0
    try:
        with progress or nullcontext():
            try:
                if source is not None:
                    speed = "max" if args.speed is None else f"{args.speed:g}x"
                    count = len(source.symbols)
                    as_ticks = f" as {len(source.ticks)} ticks" if source.kind == "bars" else ""
                    logger.info(f"replaying {source.rows} {source.kind} of {count} symbol{'s' if count != 1 else ''} "
                                f"from {source.origin}{as_ticks}, event time {_iso(source.first)} .. "
                                f"{_iso(source.last)}, speed {speed}, on {channel}")
                    stats = run_replay(source.ticks, sink, clock, speed=args.speed, stop=stop,
                                       seconds=args.seconds, on_progress=on_progress)
                else:
                    logger.info(f"simulating {len(symbols)} symbols at {market.walk.rate:g} ticks/s "
                                f"(seed {args.seed}) on {channel}")
                    stats = run_live(market, sink, clock, start=start, seconds=args.seconds, stop=stop,
                                     on_progress=on_progress)
            except PublishFailed as exc:
                logger.error(str(exc))
                code = 1
            if progress:
                progress.final(stats)
    finally:
        sink.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(summary(stats, channel), flush=True)
    return code


def _build_market(args: argparse.Namespace, symbols: list[str], now: float) -> tuple[InjectedMarket, float]:
    rate = args.rate if args.rate is not None else DEFAULT_RATE_PER_SYMBOL * len(symbols)
    walk = RandomWalk(symbols, rate=rate, seed=args.seed, start=now,
                      activity=IntradayActivity(MarketCalendar(now)))
    market = InjectedMarket(walk, args.inject, seed=args.seed, every_minutes=args.inject_every,
                            on_event=lambda text: logger.info(text))
    return market, now


def _iso(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    sys.exit(main())
