"""python -m tickstock.chart: a PNG of one symbol's stored bars, detections, SMA and RSI.

    python -m tickstock.chart AAPL --session 0b7c6a52-... -o aapl.png
    python -m tickstock.chart AAPL --date 2025-10-07 -o aapl.png   # that America/New_York trading date
    python -m tickstock.chart AAPL --minutes 90 -o aapl.png         # the 90 minutes up to AAPL's newest bar
    python -m tickstock.chart AAPL -o aapl.png                      # the date of AAPL's newest bar

Reads only PostgreSQL (``database.url`` / ``TICKSTOCK_DATABASE_URL``), on a read-only connection:
``ohlcv_1min`` for the candles, ``intraday_patterns`` for the detections (by their
``pattern_data.bar_timestamp``; for a session, ``metadata.session_id``), ``intraday_indicators`` for
SMA and RSI. A session's bars are those from its start to its stop (``streaming_sessions``; when
it has no row there, the span of its detections and indicator values). ``--minutes N``: the N
minutes that end with the symbol's newest bar, whatever dates they fall on. Exit codes: 0 written,
1 nothing to draw or the database unreadable, 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from tickstock.config import ConfigError, load_settings
from tickstock.market.calendar import EXCHANGE_TZ, EXCHANGE_TZ_NAME
from tickstock.messages.bars import BAR_SECONDS

_MAX_MINUTES = 366 * 24 * 60
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,19}$")


class NothingToDraw(Exception):
    """No bars for the request: the message says what was looked for."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tickstock.chart", description=__doc__.splitlines()[0])
    parser.add_argument("symbol", help="ticker, e.g. AAPL")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--session", metavar="ID", help="a session id (streaming_sessions / metadata.session_id)")
    scope.add_argument("--date", metavar="YYYY-MM-DD", help=f"a trading date ({EXCHANGE_TZ_NAME} calendar date)")
    scope.add_argument("--minutes", type=int, metavar="N", help="the N minutes that end with the newest bar")
    parser.add_argument("--config", help="configuration file (default $TICKSTOCK_CONFIG, else config.yaml)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.png", help="the PNG to write")
    args = parser.parse_args(argv)
    args.symbol = args.symbol.upper()
    if not _SYMBOL.fullmatch(args.symbol):
        parser.error(f"symbol {args.symbol!r} is not a ticker")
    if args.minutes is not None and not 1 <= args.minutes <= _MAX_MINUTES:
        parser.error(f"--minutes must be between 1 and {_MAX_MINUTES:,} (a year), got {args.minutes}")
    if args.session is not None:
        try:
            args.session = str(uuid.UUID(args.session))
        except ValueError:
            parser.error(f"--session {args.session!r} is not a session id (a UUID)")
    if args.date is not None:
        try:
            args.date = date.fromisoformat(args.date)
        except ValueError:
            parser.error(f"--date {args.date!r} is not a date (YYYY-MM-DD)")
    if not args.output.lower().endswith(".png"):
        parser.error(f"-o {args.output!r}: the chart is a PNG, name it FILE.png")
    return args


def day_range(day: date) -> tuple[float, float]:
    """``[start, end)`` in epoch seconds of the America/New_York calendar date ``day``."""
    start = datetime.combine(day, time(0), EXCHANGE_TZ)
    end = datetime.combine(day + timedelta(days=1), time(0), EXCHANGE_TZ)
    return start.timestamp(), end.timestamp()


def exchange_date(epoch: float) -> date:
    return datetime.fromtimestamp(epoch, EXCHANGE_TZ).date()


def safe_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def load(db, symbol: str, session_id: str | None, day: date | None, minutes: int | None = None):
    """The chart's data for the request, read through ``db`` (a ``ReadbackQueries``)."""
    from tickstock.adapters.postgres.readback import bar_time
    from tickstock.chart.data import assemble

    if session_id is not None:
        patterns = db.detections(symbol, session_id=session_id)
        indicators = db.indicator_values(symbol, session_id=session_id)
        row = db.session(session_id)
        start = row.started_at if row is not None else None
        end = row.stopped_at if row is not None else None
        if start is None:  # no row: the span of what the session computed for the symbol
            times = [t for t in [bar_time(p.pattern_data) for p in patterns]
                     + [bar_time(i.metadata) for i in indicators] if t is not None]
            if not times:
                raise NothingToDraw(f"no session {session_id} in streaming_sessions and no detection or "
                                    f"indicator value of it for {symbol}")
            start, end = min(times), max(times) + BAR_SECONDS
        start = start - start % BAR_SECONDS  # the bar the session started in
        bars = db.bars(symbol, start, end)
        scope = f"session {session_id}"
        if not bars:
            raise NothingToDraw(f"no bars for {symbol} in ohlcv_1min during session {session_id}")
    else:  # a time range: the last minutes, a date, or the date of the newest bar
        if minutes is not None or day is None:
            latest = db.latest_bar_start(symbol)
            if latest is None:
                raise NothingToDraw(f"no bars for {symbol} in ohlcv_1min")
        if minutes is not None:
            end = latest + BAR_SECONDS
            start = end - minutes * BAR_SECONDS
            scope = f"the {minutes} minutes to {datetime.fromtimestamp(end, timezone.utc):%Y-%m-%d %H:%M} UTC"
            where = f"in {scope}"
        else:
            if day is None:
                day = exchange_date(latest)
            start, end = day_range(day)
            scope = f"{day.isoformat()} ({EXCHANGE_TZ_NAME})"
            where = f"on {scope}"
        bars = db.bars(symbol, start, end)
        if not bars:
            raise NothingToDraw(f"no bars for {symbol} {where} in ohlcv_1min")
        patterns = db.detections(symbol, start, end)
        indicators = db.indicator_values(symbol, start, end)
    return assemble(symbol, scope, bars, patterns, indicators)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"tickstock.chart: {exc}", file=sys.stderr)
        return 2
    from tickstock.adapters.postgres.readback import ReadbackQueries

    url = settings.database.url
    try:
        with ReadbackQueries(url, connect_timeout=settings.database.connect_timeout_seconds) as db:
            data = load(db, args.symbol, args.session, args.date, args.minutes)
    except NothingToDraw as exc:
        print(f"tickstock.chart: {exc}", file=sys.stderr)
        return 1
    except psycopg2.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"tickstock.chart: cannot read the database at {safe_dsn(url)}: {detail}", file=sys.stderr)
        return 1

    from tickstock.chart.figure import draw

    figure = draw(data)
    output = Path(args.output)
    try:
        figure.savefig(output, format="png")
    except OSError as exc:
        print(f"tickstock.chart: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    series = ", ".join(s.name for s in data.overlays + data.panel) or "no indicator values"
    notes = []
    if data.unplaced:
        notes.append(f"{data.unplaced} detection(s) not at a stored bar")
    if data.unreadable:
        notes.append(f"{data.unreadable} detection(s) without a readable bar_timestamp")
    if data.ignored:
        notes.append(f"not drawn: {', '.join(data.ignored)}")
    print(f"wrote {output}: {args.symbol}, {data.scope}, {len(data.bars)} bars, {len(data.markers)} detections, "
          f"{series}" + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
