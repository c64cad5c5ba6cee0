"""``python -m tickstock.bench``: the service measured from outside, beside the inline floor and the
receive ceiling measured in the same run.

    python -m tickstock.bench --scenario latency                 # 500 primed symbols, 1 tick/s each, 2 minutes
    python -m tickstock.bench --scenario throughput --rate 200000 --seconds 60
    python -m tickstock.bench --scenario scale                   # 10,000 primed symbols, 100,000 ticks/s
    python -m tickstock.bench --scenario day                     # 2025-03-12 replayed in event time, 60x: RSS 30 min vs end
    python -m tickstock.bench --scenario latency --extended --minutes 120  # issue 10 item 4: + 10 TA-Lib on 1/5/15/60min

``--extended`` (latency, throughput, scale): the run's own database also runs ten common TA-Lib
functions (Engulfing, MorningStar, EveningStar, ShootingStar, Harami, ThreeAdvancingWhiteSoldiers,
EMA 20, MACD, BBANDS 20, ATR 14) on every timeframe (1, 5, 15, 60 minutes), beside the unchanged
baseline; the inline floor runs the same set. Higher bars close only at 5/15/60-minute boundaries
(60: :30 UTC), and the interval the feed starts in is partial (not analysed), so close -> last
event is also split by what closed; 120 minutes hold an analysed close of every timeframe.

Prints a table (figure, value, floor/ceiling beside it, ratio, target), ``--json FILE`` writes every
figure, ``--plot FILE.png`` draws the latency distribution and throughput over time (matplotlib:
``pip install -e '.[bench]'``). Needs Redis and PostgreSQL (``TICKSTOCK_BENCH_REDIS_URL``,
``TICKSTOCK_BENCH_ADMIN_DSN``: a role that may CREATE DATABASE); every run has a database and
channel names of its own.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from tickstock.bench.pacing import Burst
from tickstock.bench.report import render, write_json
from tickstock.bench.scenarios import SCENARIOS, make_plan, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tickstock.bench", description="The streaming service measured from outside, beside the inline floor and the receive ceiling.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:15]))
    p.add_argument("--scenario", choices=(*SCENARIOS, "components"), default="latency",
                   help="components: per-bar cost of each analysis component, in-process (bench/components.py)")
    p.add_argument("--symbols", type=int, help="universe size (500 / 3000 / 10000; names generated past config.yaml's)")
    p.add_argument("--rate", type=float, help="ticks/s sent to the service (latency: one per symbol per second)")
    p.add_argument("--rate-of-ceiling", type=float, metavar="SHARE",
                   help="feed the service at this share of the receive ceiling measured first (e.g. 0.7)")
    p.add_argument("--seconds", type=float, help="throughput: how long to send")
    p.add_argument("--minutes", type=int, help="latency/scale: full minutes to measure; day: event minutes "
                                               "replayed from the open (390, the whole session)")
    p.add_argument("--period", type=int, dest="period_minutes", help="day: RSS after this many event minutes (30)")
    p.add_argument("--date", help="day: the past trading day replayed (YYYY-MM-DD, default 2025-03-12)")
    p.add_argument("--speed", type=float, help="day: event seconds per wall second (60: the day in 6.5 min; at most "
                                               "rate x 60 / symbols, so every symbol ticks every event minute)")
    p.add_argument("--prime", action=argparse.BooleanOptionalAction, default=None,
                   help="seed 200 bars per symbol of history first (latency, scale: on; day: off, ending before the open)")
    p.add_argument("--prime-bars", type=int, default=None)
    p.add_argument("--burst", type=Burst.parse, help="FACTORxSECONDS/EVERY, e.g. 4x1/10: every 10 s, 1 s at 4x the rate")
    p.add_argument("--floor-closes", type=int, default=None, help="closes timed for the inline floor (20)")
    p.add_argument("--floor-shards", type=int, metavar="K",
                   help="also run the inline floor split over K processes, closes lined up (the slowest shard "
                        "per close): what sharding the symbols over the cores could give")
    p.add_argument("--no-floor", dest="floor", action="store_false", default=None)
    p.add_argument("--ceiling-seconds", type=float, default=None, help="seconds per receive-ceiling attempt (8)")
    p.add_argument("--no-ceiling", dest="ceiling", action="store_false", default=None)
    p.add_argument("--extended", action="store_true", default=None,
                   help="latency/throughput/scale: also ten common TA-Lib functions (Engulfing, MorningStar, "
                        "EveningStar, ShootingStar, Harami, ThreeAdvancingWhiteSoldiers, EMA, MACD, BBANDS, ATR) on "
                        "every timeframe (1/5/15/60min), in the run's own database and in the inline floor "
                        "(issue 10 item 4)")
    p.add_argument("--analysis-processes", type=int, default=None, metavar="N",
                   help="the service's analysis.processes (1-4; default: config.yaml's): the close analysis "
                        "split by timeframe over N processes")
    p.add_argument("--keep-dir", help="keep the config and the service's log in this directory")
    p.add_argument("--json", help="write every figure to this file")
    p.add_argument("--plot", help="write a PNG: latency distribution and throughput over time")
    return p.parse_args(argv)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--scenario")
    if pre.parse_known_args(argv)[0].scenario == "components":  # no service: its own options
        from tickstock.bench.components import main as components

        return components(argv)
    args = parse_args(argv)
    try:
        plan = make_plan(args.scenario, symbols=args.symbols, rate=args.rate, minutes=args.minutes,
                         seconds=args.seconds, prime=args.prime, period_minutes=args.period_minutes,
                         burst=args.burst, prime_bars=args.prime_bars, floor_closes=args.floor_closes,
                         floor_shards=args.floor_shards,
                         floor=args.floor, ceiling_seconds=args.ceiling_seconds, ceiling=args.ceiling,
                         keep_dir=args.keep_dir, rate_of_ceiling=args.rate_of_ceiling, date=args.date,
                         speed=args.speed, extended=args.extended, analysis_processes=args.analysis_processes)
    except ValueError as exc:
        print(f"tickstock.bench: {exc}", file=sys.stderr)
        return 2

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    # A SIGTERM (a timeout, a kill) unwinds like an error: the service is stopped, the run's database
    # dropped and its keys deleted, instead of a service left running on a database of its own.
    signal.signal(signal.SIGTERM, _terminated)

    result = run(plan, log=log)
    result["settings"]["command"] = "python -m tickstock.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(render(result))
    if args.json:
        write_json(result, args.json)
        log(f"JSON written to {args.json}")
    if args.plot:
        from tickstock.bench.report import plot

        plot(result, args.plot)
        log(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
