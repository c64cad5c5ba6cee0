"""A short past for the simulated symbols: 1-minute bars written into ``ohlcv_1min`` before a session.

    python -m tickstock.simulate.history --universe demo --seed 1 --minutes 60 --calm AAPL --replace

Why: a session primes each symbol's indicators from its latest stored bars, and RSI(14) needs 15
of them before it has a value. Live, that takes a quarter of an hour; with this history written
first, RSI and SMA(20) are there from the session's first bar, and an RSI alert can fire on it.

Guarantees (tested in tests/unit/simulate/test_history.py):

- Each symbol gets ``minutes`` bars, one per minute, ending with the minute before ``now``'s (the
  minute a session started now would begin in is left to it). The last bar closes exactly at the
  price the simulator's walk starts the symbol from for the same symbols (in the same order) and
  seed (``RandomWalk(...).price``): ``python -m tickstock.simulate`` with them continues the history
  without a jump. Prices are in cents, ``low <= open, close <= high``, volumes are whole lots.
- An ordinary symbol's history moves like the walk: log returns with the walk's per-minute
  volatility for that symbol.
- A ``calm`` symbol's history drifts down in small steps (about 0.01 % of the price a minute, at
  least 2 cents) and leaves RSI(14) between 37 and 43 (``CALM_RSI``). A next bar closing lower by at
  least ``CALM_CROSSING_DROP`` of the price and 20 cents takes RSI below 30 -- an RSI_OVERSOLD alert
  on that bar -- because the drop outweighs the history's average move about ten times (tested for
  prices from $5 to $5,000). An injected ``hammer`` does that on its first bar (it falls 0.4 %, at
  least 20 cents, from where the walk is): ``--calm AAPL`` with ``--inject AAPL:hammer`` gives
  RSI_OVERSOLD on the hammer's first bar and the Hammer on its second when the hammer follows the
  history directly -- the simulator started in the session's first minute (partial, so not
  analysed), as ``python -m tickstock.demo`` does. (A whole minute of ordinary walk in between
  usually raises an RSI alert of its own, but not always.)
- Deterministic: the same arguments and ``now`` give the same bars.

The bars are written through the service's own store (``PostgresStore.upsert_bars``: a part of
its own, session ``simulated-history``, merged into ``ohlcv_1min``) after the schema is migrated.
They are synthetic: the command refuses a database whose name does not say ``demo`` or ``test``
unless ``--any-database``; the dashboard's database must never get them. ``--replace`` first
deletes every stored bar, detection and indicator value of the symbols (the history becomes their
only past). Exit codes: 0 written, 1 the database failed, 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from tickstock.analysis.rsi import RSI
from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.simulate.walk import SESSION_SECONDS_PER_YEAR, RandomWalk, TradeSizes

__all__ = ["CALM_CROSSING_DROP", "CALM_RSI", "HISTORY_SESSION", "SymbolPast", "history_bars", "main",
           "symbol_pasts", "walk_pasts"]

HISTORY_SESSION = "simulated-history"   # the session id the bars' parts are written under
CALM_RSI = (37.0, 43.0)                 # RSI(14) after a calm history
CALM_CROSSING_DROP = 0.001              # a next close this much lower (and >= 20 cents) crosses 30
_CALM_STEP = 0.0001                     # a calm minute's typical move, as a share of the price
_CALM_MIN_STEP = 0.02                   # ... and at least this many dollars (cents must move)
_CALM_TARGET_RSI = 40.0
_RSI_PERIOD = 14
_MAX_DRAWS = 200


@dataclass(frozen=True)
class SymbolPast:
    """What a symbol's history is built from: where the walk starts it and how it moves."""

    symbol: str
    price: float               # the walk's start price: the history's last close
    minute_volatility: float   # the walk's per-minute standard deviation of log returns
    trades_per_minute: float   # the walk's average rate for the symbol, a minute of it


def walk_pasts(symbols: Sequence[str], seed: int, rate: float) -> list[SymbolPast]:
    """Each symbol's start price, volatility and trading rate in ``RandomWalk(symbols, seed, rate)``
    -- the simulator's walk for the same arguments (start prices do not depend on ``rate``)."""
    walk = RandomWalk(list(symbols), rate=rate, seed=seed, start=0.0)
    scale = math.sqrt(BAR_SECONDS / SESSION_SECONDS_PER_YEAR)
    return [SymbolPast(s, walk.price(s), walk.volatility(s) * scale, walk.symbol_rate(s) * BAR_SECONDS)
            for s in walk.symbols]


def _cents(x: float) -> float:
    return max(0.01, round(x, 2))


def _rsi(closes: Sequence[float]) -> float | None:
    rsi = RSI(period=_RSI_PERIOD)
    value = None
    for i, c in enumerate(closes):
        value = rsi.advance(Bar("X", i * BAR_SECONDS, c, c, c, c, 0))
    return value


def _walk_closes(past: SymbolPast, n: int, rng: np.random.Generator) -> list[float]:
    """``n`` closes ending at the start price, log returns N(0, the walk's minute volatility)."""
    returns = rng.normal(0.0, past.minute_volatility, n)
    # Backwards from the last close: close[i-1] = close[i] / exp(return[i]).
    logs = math.log(past.price) - np.concatenate([np.cumsum(returns[:0:-1])[::-1], [0.0]])
    closes = [_cents(math.exp(x)) for x in logs]
    closes[-1] = past.price
    return closes


def _calm_closes(past: SymbolPast, n: int, rng: np.random.Generator) -> list[float]:
    """``n`` closes ending at the start price, small steps, RSI(14) at the end within CALM_RSI."""
    step = max(_CALM_STEP * past.price, _CALM_MIN_STEP)
    for _ in range(_MAX_DRAWS):
        size = np.abs(rng.normal(0.0, step, n - 1)) + 0.2 * step
        down = rng.random(n - 1) < 0.55
        gains, losses = np.where(down, 0.0, size), np.where(down, size, 0.0)
        # Wilder's weights of each move in the final averages: scale the gains so that RSI lands on
        # the target before rounding (the averages are linear in the moves).
        weights = _wilder_weights(n - 1)
        g, l = float(weights @ gains), float(weights @ losses)
        if g <= 0 or l <= 0:
            continue
        gains = gains * (_CALM_TARGET_RSI / (100.0 - _CALM_TARGET_RSI)) * l / g
        moves = gains - losses
        suffix = np.concatenate([np.cumsum(moves[::-1])[::-1], [0.0]])  # sum of the moves after i
        closes = [_cents(past.price - s) for s in suffix]
        closes[-1] = past.price
        value = _rsi(closes)
        if value is not None and CALM_RSI[0] <= value <= CALM_RSI[1] and min(closes) > 2 * step:
            return closes
    raise ValueError(f"no calm history for {past.symbol} at {past.price}")  # not seen for $5..$5,000


def _wilder_weights(moves: int) -> np.ndarray:
    """The weight of each of ``moves`` close-to-close moves in Wilder's final average (period 14):
    a simple mean over the first 14, then ``avg = (13 avg + x) / 14``."""
    n = _RSI_PERIOD
    if moves < n:
        return np.full(moves, 1.0 / moves)
    later = moves - n
    decay = (n - 1) / n
    seed = np.full(n, decay ** later / n)
    tail = np.array([decay ** (later - 1 - k) / n for k in range(later)])
    return np.concatenate([seed, tail])


def history_bars(past: SymbolPast, *, end: int, minutes: int, calm: bool, seed: int) -> list[Bar]:
    """``past.symbol``'s bars for the ``minutes`` minutes before the minute ``end`` (a minute start),
    oldest first (see the module docstring)."""
    if minutes < _RSI_PERIOD + 2:
        raise ValueError(f"minutes must be at least {_RSI_PERIOD + 2} (RSI needs them), got {minutes}")
    if end % BAR_SECONDS:
        raise ValueError(f"end must be a minute start, got {end}")
    rng = np.random.default_rng([seed, zlib.crc32(past.symbol.encode()), 1 if calm else 0])
    closes = (_calm_closes if calm else _walk_closes)(past, minutes + 1, rng)  # one before the first open
    wick = max(0.3 * (_CALM_STEP if calm else past.minute_volatility) * past.price, 0.01)
    sizes = TradeSizes()
    trades = max(6, round(past.trades_per_minute))
    bars = []
    for i in range(minutes):
        o, c = closes[i], closes[i + 1]
        h = _cents(max(o, c) + abs(float(rng.normal(0.0, wick))))
        lo = _cents(min(o, c) - abs(float(rng.normal(0.0, wick))))
        volume = int(sizes.sample(rng, trades).sum())
        start = end - BAR_SECONDS * (minutes - i)
        bars.append(Bar(past.symbol, start, o, max(h, o, c), min(lo, o, c), c, volume,
                        tick_count=trades, session_id=HISTORY_SESSION))
    return bars


def symbol_pasts(symbols: Sequence[str], seed: int, rate: float | None) -> list[SymbolPast]:
    """``walk_pasts`` with the simulator's default rate (2 ticks/s a symbol) when ``rate`` is None."""
    from tickstock.simulate.__main__ import DEFAULT_RATE_PER_SYMBOL

    return walk_pasts(symbols, seed, rate if rate is not None else DEFAULT_RATE_PER_SYMBOL * len(symbols))


# -- the command line ---------------------------------------------------------------------------

_SAFE_NAME_PARTS = ("demo", "test")


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from tickstock.simulate.__main__ import _positive, _symbols

    p = argparse.ArgumentParser(prog="python -m tickstock.simulate.history",
                                description="Write a short synthetic past of 1-minute bars for the simulated "
                                            "symbols into ohlcv_1min, ending where the simulator's walk starts.")
    p.add_argument("--config", help="settings file (default: TICKSTOCK_CONFIG or config.yaml)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--universe", help="a universe of the settings (default: session.universe)")
    which.add_argument("--symbols", type=_symbols, help="SYMBOL[,SYMBOL...] instead of a universe")
    p.add_argument("--seed", type=int, default=1, help="the simulator's --seed (default 1)")
    p.add_argument("--rate", type=_positive(float), metavar="TICKS_PER_S",
                   help="the simulator's --rate (default 2 per symbol): sets the bars' volumes")
    p.add_argument("--minutes", type=int, default=60, help="bars per symbol (default 60, at least 16)")
    p.add_argument("--calm", type=_symbols, default=[], metavar="SYMBOL[,SYMBOL...]",
                   help="symbols whose history drifts down calmly, RSI ~40: a sharp drop next crosses 30")
    p.add_argument("--replace", action="store_true",
                   help="first delete the symbols' stored bars, detections and indicator values")
    p.add_argument("--any-database", action="store_true",
                   help="write even where the database's name has neither 'demo' nor 'test' in it")
    args = p.parse_args(argv)
    if args.minutes < _RSI_PERIOD + 2 or args.minutes > 10_000:
        p.error(f"--minutes must be between {_RSI_PERIOD + 2} and 10000, got {args.minutes}")
    return args


def main(argv: list[str] | None = None, now: float | None = None) -> int:
    from tickstock.config import ConfigError, load_settings

    args = parse_args(argv)
    try:
        settings = load_settings(args.config, universe=args.universe)
        symbols = args.symbols or settings.universe_symbols(args.universe)
    except ConfigError as exc:
        print(f"tickstock.simulate.history: {exc}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.calm) - set(symbols))
    if unknown:
        print(f"tickstock.simulate.history: --calm {', '.join(unknown)}: not among the symbols", file=sys.stderr)
        return 2
    url = settings.database.url
    name = _database_name(url)
    if not args.any_database and not any(part in name.lower() for part in _SAFE_NAME_PARTS):
        print(f"tickstock.simulate.history: refusing to write synthetic bars into database {name!r} "
              f"(its name says neither 'demo' nor 'test'; --any-database to insist)", file=sys.stderr)
        return 2

    end = int((time.time() if now is None else now) // BAR_SECONDS) * BAR_SECONDS
    calm = set(args.calm)
    bars = [bar for past in symbol_pasts(symbols, args.seed, args.rate)
            for bar in history_bars(past, end=end, minutes=args.minutes, calm=past.symbol in calm, seed=args.seed)]
    try:
        written = write(url, symbols, bars, replace=args.replace,
                        connect_timeout=settings.database.connect_timeout_seconds)
    except Exception as exc:  # psycopg2.Error and the migration's errors: say which database
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"tickstock.simulate.history: database {name!r}: {detail}", file=sys.stderr)
        return 1
    first, last = bars[0].start, bars[-1].start
    notes = f"; calm: {', '.join(s for s in symbols if s in calm)}" if calm else ""
    print(f"wrote {written} bars into {name}: {len(symbols)} symbols x {args.minutes} minutes, "
          f"{_hhmm(first)} .. {_hhmm(last)} UTC (seed {args.seed}){notes}"
          + (" after deleting their earlier rows" if args.replace else ""))
    return 0


_DELETES = (
    "DELETE FROM ohlcv_1min WHERE symbol = ANY(%(s)s)",
    "DELETE FROM ohlcv_1min_parts WHERE symbol = ANY(%(s)s)",
    "DELETE FROM intraday_patterns WHERE symbol = ANY(%(s)s)",
    "DELETE FROM intraday_indicators WHERE symbol = ANY(%(s)s)",
)


def write(url: str, symbols: Sequence[str], bars: Sequence[Bar], *, replace: bool, connect_timeout: float) -> int:
    """Migrate the schema, delete the symbols' rows first with ``replace``, then store ``bars``
    through ``PostgresStore.upsert_bars``. Returns the bars written; raises on any failure."""
    import psycopg2

    from tickstock.adapters.postgres import PostgresStore, migrate

    migrate(url, connect_timeout=max(1, math.ceil(connect_timeout)))
    if replace:
        conn = psycopg2.connect(url, connect_timeout=max(1, math.ceil(connect_timeout)))
        try:
            with conn, conn.cursor() as cur:
                for statement in _DELETES:
                    cur.execute(statement, {"s": list(symbols)})
        finally:
            conn.close()
    with PostgresStore(url, connect_timeout=connect_timeout) as store:
        result = store.upsert_bars(bars)
    if result.rejected:
        raise RuntimeError(f"{len(result.rejected)} bars refused, e.g. {result.rejected[0]}")
    return result.written


def _hhmm(t: int) -> str:
    return time.strftime("%H:%M", time.gmtime(t))


if __name__ == "__main__":
    sys.exit(main())
