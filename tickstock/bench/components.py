"""``python -m tickstock.bench --scenario components``: what each analysis component costs per bar.

In-process, no service, no Redis or PostgreSQL. For ``--symbols`` symbols (500) each component is
built once per symbol, primed with ``--prime-bars`` bars (200) and then timed over ``--bars`` live
bars (60), symbol after symbol within each bar, as a bar close runs them. Printed per component: the
microseconds per bar per symbol and its priming cost, in CPU time of this process (not wall time:
on a shared machine the wall clock also counts waiting for a core), the best of ``--repeat`` runs.
The garbage collector is paused while a timing runs, as the service pauses it around its closes
(tickstock/heap.py).

Sets: the baseline (Doji, Hammer, HeadShoulders, InverseHeadShoulders, RSI 14, SMA 20) and ten
common TA-Lib functions served by ``talib.stream`` handles (Engulfing, MorningStar, ShootingStar,
Harami, EMA 20, MACD, BBANDS 20, ATR 14, ADX 14, STOCH), plus the session VWAP. For TA-Lib it
also prints every symbol's stream handle stepped in one loop ("stepped": exact, no component or
pipeline call per symbol), and the two alternatives the issue asks about: calling the Function API on each symbol's
last 200 bars at every close ("window"), and one call over the concatenated windows of all symbols
("batched", the last value of each symbol read out of it; "shortest": the same over windows of
``lookback + 1`` bars) -- and, from the measured costs, the
work of one close with every timeframe closing at once (the top of an hour: 1, 5, 15, 60 minutes).
After the analysis comes the rest of a close's path, per result of the baseline + TA-Lib pipeline:
building its event (the symbol actor's ``result_events``) and encoding it for Redis (the publisher's
``encode_for_redis``). Last, the analysis of that heaviest close two ways: every symbol's pipelines,
as the service runs them, and the TA-Lib definitions stepped across symbols by ``TalibBatch``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np
import talib
from talib import stream

from tickstock.actors.publisher import encode_for_redis
from tickstock.actors.symbol import result_events
from tickstock.analysis import AnalysisPipeline, Definition, create
from tickstock.analysis.talib_batch import TalibBatch
from tickstock.analysis.talib_functions import TalibComponent
from tickstock.bench.universe import history
from tickstock.config import ChannelSettings
from tickstock.messages.bars import Bar

BASELINE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Doji", {}), ("Hammer", {}), ("HeadShoulders", {}), ("InverseHeadShoulders", {}),
    ("RSI", {"period": 14}), ("SMA", {"period": 20}),
)
TALIB: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Engulfing", {}), ("MorningStar", {}), ("ShootingStar", {}), ("Harami", {}),
    ("EMA", {"timeperiod": 20}), ("MACD", {}), ("BBANDS", {"timeperiod": 20}), ("ATR", {"timeperiod": 14}),
    ("ADX", {"timeperiod": 14}), ("STOCH", {}),
)
OTHER: tuple[tuple[str, dict[str, Any]], ...] = (("VWAP", {}),)
TIMEFRAMES = 4  # 1, 5, 15 and 60 minutes all close at the top of an hour


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tickstock.bench --scenario components")
    p.add_argument("--scenario", default="components")
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--prime-bars", type=int, default=200)
    p.add_argument("--bars", type=int, default=60, help="live bars timed per symbol")
    p.add_argument("--window", type=int, default=200, help="bars per symbol for the window/batched alternatives")
    p.add_argument("--repeat", type=int, default=3)
    args, _ = p.parse_known_args(argv)
    return args


# 2025-10-09 15:50 New York time: the last bar; up to 380 bars back stay inside that day's session.
LAST_MINUTE = 1_760_039_400


def _series(symbols: int, bars: int) -> list[list[Bar]]:
    return [s for _, s in history([f"T{i:05d}" for i in range(symbols)], bars, LAST_MINUTE)]


def time_component(name: str, params: dict[str, Any], series: list[list[Bar]], prime: int,
                   clock: Callable[[], float] = time.process_time) -> tuple[float, float]:
    """(us per live bar per symbol, us per primed bar per symbol) for one component."""
    components = [create(name, params) for _ in series]
    t0 = clock()
    for component, bars in zip(components, series):
        warmup = component.warmup
        for bar in (bars[:prime] if warmup is None else bars[max(0, prime - warmup):prime]):
            component.advance(bar)
    t1 = clock()
    live = len(series[0]) - prime
    for k in range(prime, prime + live):
        for component, bars in zip(components, series):
            component.update(bars[k])
    t2 = clock()
    n = len(series)
    return (t2 - t1) / (n * live) * 1e6, (t1 - t0) / (n * prime) * 1e6


def _primed_pipelines(definitions: list[Definition], series: list[list[Bar]], prime: int) -> list[AnalysisPipeline]:
    """One pipeline per symbol, primed with its first ``prime`` bars."""
    pipelines = []
    for bars in series:
        pipeline = AnalysisPipeline(definitions, symbol=bars[0].symbol)
        pipeline.prime(bars[:prime])
        pipelines.append(pipeline)
    return pipelines


def time_pipeline(definitions: list[Definition], series: list[list[Bar]], prime: int,
                  clock: Callable[[], float] = time.process_time) -> float:
    """us per live bar per symbol for a whole pipeline (gating, result checks included)."""
    pipelines = _primed_pipelines(definitions, series, prime)
    live = len(series[0]) - prime
    t0 = clock()
    for k in range(prime, prime + live):
        for pipeline, bars in zip(pipelines, series):
            pipeline.on_bar(bars[k])
    return (clock() - t0) / (len(series) * live) * 1e6


def time_events(definitions: list[Definition], series: list[list[Bar]], prime: int,
                clock: Callable[[], float] = time.process_time) -> tuple[float, float, int]:
    """(us per result to build its event, us per result to encode it, results) over the live bars."""
    pipelines = _primed_pipelines(definitions, series, prime)
    outputs = [(pipeline.on_bar(bars[k]), bars[k].symbol)
               for k in range(prime, len(series[0])) for pipeline, bars in zip(pipelines, series)]
    now = time.time()
    t0 = clock()
    events = [e for out, symbol in outputs for e in result_events(out, symbol, "bench-session", "1min", now, now)]
    t1 = clock()
    encode_for_redis(events, ChannelSettings(), 0.8)
    t2 = clock()
    n = max(1, len(events))
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6, len(events)


def time_close_of_every_timeframe(baseline: list[Definition], talib_set: list[Definition], series: list[list[Bar]],
                                  prime: int, timeframes: int = TIMEFRAMES,
                                  clock: Callable[[], float] = time.process_time) -> dict[str, float]:
    """The analysis of the heaviest close, every timeframe at once (:30 UTC): the baseline on 1
    minute, ``talib_set`` on ``timeframes`` timeframes (each fed the same bars here: the cost is a
    bar's, whatever its span). ms per close and results per close, two ways: every symbol's
    pipelines in turn, as the service runs them today, and the TA-Lib definitions stepped across
    symbols by ``TalibBatch`` (the baseline still per symbol). Both give the same results (for the
    batch's exactness see tests/unit/analysis/test_talib_batch.py)."""
    live = range(prime, len(series[0]))
    base = _primed_pipelines(baseline, series, prime)
    per_tf = [_primed_pipelines(talib_set, series, prime) for _ in range(timeframes)]
    n_pipelines = 0
    t0 = clock()
    for k in live:
        for i, bars in enumerate(series):
            bar = bars[k]
            out = base[i].on_bar(bar)
            n_pipelines += len(out.patterns) + len(out.indicators)
            for pipelines in per_tf:
                out = pipelines[i].on_bar(bar)
                n_pipelines += len(out.patterns) + len(out.indicators)
    t1 = clock()
    base = _primed_pipelines(baseline, series, prime)
    batches = [TalibBatch(d, [bars[0].symbol for bars in series]) for _ in range(timeframes) for d in talib_set]
    for batch in batches:
        for bars in series:
            batch.prime(bars[0].symbol, bars[:prime])
    n_batched = 0
    t2 = clock()
    for k in live:
        close = [bars[k] for bars in series]
        for pipeline, bar in zip(base, close):
            out = pipeline.on_bar(bar)
            n_batched += len(out.patterns) + len(out.indicators)
        for batch in batches:
            n_batched += len(batch.step(close).results)
    t3 = clock()
    return {"per_symbol_ms": (t1 - t0) / len(live) * 1e3, "batched_ms": (t3 - t2) / len(live) * 1e3,
            "results": n_pipelines / len(live), "results_batched": n_batched / len(live)}


def time_stream_only(name: str, params: dict[str, Any], series: list[list[Bar]], prime: int,
                     clock: Callable[[], float] = time.process_time) -> float:
    """us per bar per symbol of the TA-Lib stream handle's update alone (no result built)."""
    components = [create(name, params) for _ in series]
    for component, bars in zip(components, series):
        for bar in bars[:prime]:
            component.advance(bar)
    live = len(series[0]) - prime
    t0 = clock()
    for k in range(prime, prime + live):
        for component, bars in zip(components, series):
            component.advance(bars[k])
    return (clock() - t0) / (len(series) * live) * 1e6


def time_stepped(name: str, params: dict[str, Any], series: list[list[Bar]], prime: int,
                 clock: Callable[[], float] = time.process_time) -> tuple[float, list[Any]]:
    """(us per symbol per close, each symbol's last output) stepping every symbol's own TA-Lib stream
    handle in one loop over the close's bars: no component or pipeline call per symbol, only
    TA-Lib's ``update``. What a close batched across symbols would cost while staying exact -- each
    symbol's values are its own stream's, so bit-identical to ``talib.X`` over its bars (tested),
    memory functions (EMA, ATR, MACD) included. No result is built."""
    component = create(name, params)
    assert isinstance(component, TalibComponent)
    opener = getattr(stream, component.spec.function)
    get = attrgetter(*component.columns)
    handles = [opener(*(np.array([float(getattr(b, c)) for b in bars[:prime]]) for c in component.columns),
                      **component.talib_params) for bars in series]
    live = len(series[0]) - prime
    last: list[Any] = []
    t0 = clock()
    for k in range(prime, prime + live):
        bars = [s[k] for s in series]  # the close's bars, one per symbol
        if len(component.columns) == 1:
            last = [h.update(get(b)) for h, b in zip(handles, bars)]
        else:
            last = [h.update(*get(b)) for h, b in zip(handles, bars)]
    return (clock() - t0) / (len(series) * live) * 1e6, last


def time_window_calls(name: str, params: dict[str, Any], series: list[list[Bar]], window: int,
                      clock: Callable[[], float] = time.process_time) -> tuple[float, float, float]:
    """(us per symbol calling the Function API on each symbol's last ``window`` bars,
    us per symbol for one call over all symbols' windows concatenated -- which reads each symbol's
    right last value only for a function without memory beyond its lookback: an EMA runs on
    across the joins --, and the same over the shortest windows, ``lookback + 1`` bars each: the
    least a batched close could pass. Timing only: how close those last values come to the
    stream's is not checked here.)"""
    component = create(name, params)
    assert isinstance(component, TalibComponent)
    function = getattr(talib, component.spec.function)
    per_symbol = [[np.array([float(getattr(b, c)) for b in bars[-window:]]) for c in component.columns]
                  for bars in series]
    t0 = clock()
    for arrays in per_symbol:
        out = function(*arrays, **component.talib_params)
        _ = out[0][-1] if isinstance(out, tuple) else out[-1]
    t1 = clock()
    joined = [np.concatenate([arrays[i] for arrays in per_symbol]) for i in range(len(component.columns))]
    ends = np.arange(1, len(series) + 1) * window - 1
    t2 = clock()
    out = function(*joined, **component.talib_params)
    _ = (out[0] if isinstance(out, tuple) else out)[ends]
    t3 = clock()
    short = min(window, component.lookback + 1)
    joined = [np.ascontiguousarray(np.stack([arrays[i][-short:] for arrays in per_symbol]).ravel())
              for i in range(len(component.columns))]
    t4 = clock()
    out = function(*joined, **component.talib_params)
    _ = (out[0] if isinstance(out, tuple) else out)[short - 1::short]
    t5 = clock()
    n = len(series)
    return (t1 - t0) / n * 1e6, (t3 - t2) / n * 1e6, (t5 - t4) / n * 1e6


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> dict[str, Any]:
    was_enabled = gc.isenabled()
    gc.disable()  # as the service around its closes: a collection would land in whichever timing it hit
    try:
        return _run(args, out)
    finally:
        if was_enabled:
            gc.enable()


def _run(args: argparse.Namespace, out: Callable[[str], None]) -> dict[str, Any]:
    series = _series(args.symbols, args.prime_bars + args.bars)
    result: dict[str, Any] = {"symbols": args.symbols, "prime_bars": args.prime_bars, "live_bars": args.bars,
                              "components": {}, "window": {}}
    out(f"components: {args.symbols} symbols, primed with {args.prime_bars} bars, {args.bars} live bars timed,"
        f" CPU time, best of {args.repeat}; numpy {np.__version__}, ta-lib {talib.__version__}")
    out(f"{'set':9s} {'component':22s} {'us/bar/symbol':>14s} {'us/primed bar':>14s}")
    totals = {}
    for label, entries in (("baseline", BASELINE), ("ta-lib", TALIB), ("other", OTHER)):
        total = 0.0
        for name, params in entries:
            runs = [time_component(name, params, series, args.prime_bars) for _ in range(args.repeat)]
            live = min(r[0] for r in runs)
            primed = min(r[1] for r in runs)
            result["components"][name] = {"set": label, "us_per_bar": live, "us_per_primed_bar": primed}
            total += live
            out(f"{label:9s} {name:22s} {live:14.2f} {primed:14.2f}")
        totals[label] = total
        out(f"{label:9s} {'(sum)':22s} {total:14.2f}")
    out("")
    out(f"TA-Lib per symbol per close (us), TA-Lib's work only: stream handle update through the component |"
        f" every symbol's handle stepped in one loop (exact) | Function API on the last {args.window} bars |"
        f" one call over all symbols' windows | the same over lookback + 1 bars each")
    out(f"  {'':22s} {'stream':>8s} {'stepped':>8s} {'window':>8s} {'batched':>8s} {'shortest':>8s}")
    for name, params in TALIB:
        runs = [time_window_calls(name, params, series, args.window) for _ in range(args.repeat)]
        window, batched, shortest = (min(r[i] for r in runs) for i in range(3))
        stream_us = min(time_stream_only(name, params, series, args.prime_bars) for _ in range(args.repeat))
        stepped = min(time_stepped(name, params, series, args.prime_bars)[0] for _ in range(args.repeat))
        result["window"][name] = {"stream": stream_us, "stepped": stepped, "window": window, "batched": batched,
                                  "shortest": shortest}
        out(f"  {name:22s} {stream_us:8.2f} {stepped:8.2f} {window:8.2f} {batched:8.2f} {shortest:8.2f}")
    definitions = {label: [Definition(create(n, p).name, create(n, p).kind, p) for n, p in entries]
                   for label, entries in (("baseline", BASELINE), ("ta-lib", TALIB))}
    base = min(time_pipeline(definitions["baseline"], series, args.prime_bars) for _ in range(args.repeat))
    both = min(time_pipeline(definitions["baseline"] + definitions["ta-lib"], series, args.prime_bars)
                             for _ in range(args.repeat))
    result["pipeline"] = {"baseline": base, "baseline+ta-lib": both}
    out("")
    out(f"pipeline per bar per symbol (gating and checks included): baseline {base:.1f} us,"
        f" baseline + ten TA-Lib {both:.1f} us")
    one_close = both * args.symbols / 1000
    out(f"one close, {args.symbols} symbols: {one_close:.1f} ms of analysis per timeframe;"
        f" {TIMEFRAMES} timeframes at the top of an hour: {one_close * TIMEFRAMES:.1f} ms (one core, no actors)")
    result["close_ms"] = {"one_timeframe": one_close, "all_timeframes": one_close * TIMEFRAMES}
    runs = [time_events(definitions["baseline"] + definitions["ta-lib"], series, args.prime_bars)
            for _ in range(args.repeat)]
    build, encode, results = min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]
    result["per_result_us"] = {"event": build, "encode": encode, "results": results}
    out(f"then, per result ({results:,} over the live bars): its event built {build:.2f} us, encoded for Redis"
        f" {encode:.2f} us")
    runs = [time_close_of_every_timeframe(definitions["baseline"], definitions["ta-lib"], series, args.prime_bars)
            for _ in range(args.repeat)]
    every = {"per_symbol_ms": min(r["per_symbol_ms"] for r in runs), "batched_ms": min(r["batched_ms"] for r in runs),
             "results": runs[0]["results"], "results_batched": runs[0]["results_batched"]}
    result["close_of_every_timeframe"] = every
    out(f"the close of every timeframe (baseline on 1 minute, the ten TA-Lib on {TIMEFRAMES} timeframes), analysis"
        f" only: every symbol's pipelines {every['per_symbol_ms']:.1f} ms, the TA-Lib definitions stepped across"
        f" symbols (TalibBatch) {every['batched_ms']:.1f} ms ({every['batched_ms'] / every['per_symbol_ms']:.2f}x);"
        f" {every['results']:,.0f} and {every['results_batched']:,.0f} results")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
