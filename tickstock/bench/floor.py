"""The inline floor: the per-close work of the service done in one plain loop, without actors.

Per close, timed from the deadline: the aggregator closes every symbol's bar; for each bar the
symbol's ``AnalysisPipeline`` (``definitions``: by default config.yaml's fallback, the baseline;
``--extended`` passes the set the service loads from the run's database) runs, its events are built by the
``SymbolActor``'s own ``result_events`` and the rows derived from them by persistence's own
``records.event_records`` (row ids included; in the service, on the persistence actor's thread); all events are encoded
(``encode_for_redis``, the publisher's own) and published pipelined to Redis (``RedisPublisher``,
2,000 per round trip like the publisher) on channels of the run's own. A raw subscription listens on
those channels (drained between closes, untimed), so Redis does the same fan-out as for the service.

The ticks of each minute are folded before the clock starts: folding is the receive path's work,
not the close's.

Higher timeframes (a set with definitions on 5/15/60 minutes): as the ``SymbolActor`` does, each
symbol's closed 1-minute bar is folded by a ``Resampler`` (no session table: 60-minute bars on the
:30 grid) and every higher bar it closes, unless partial, runs through that timeframe's pipeline in
the same close (timed); priming folds the history too. ``per_close_timeframes`` says which
timeframes were analysed at each close, ``per_close_ms_by_closing`` splits the figure into closes of
1-minute bars only and closes where a higher timeframe closed too.

TA-Lib definitions (``analysis.batch_talib``, on by default, as in the service): run once per close
for all symbols by one ``CloseAnalysis`` (its own resamplers, primed with the same history), their
events built by the ``CloseAnalysisActor``'s own ``close_events``; timed in the same phases.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence

from tickstock.actors.analysis_output import close_events
from tickstock.actors.publisher import encode_for_redis
from tickstock.actors.symbol import result_events
from tickstock.adapters.redis.publisher import RedisPublisher
from tickstock.analysis import AnalysisPipeline, DefinitionSet, definitions_from_config
from tickstock.analysis.close_analysis import CloseAnalysis, split_talib
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.bars.timeframes import BASE_TIMEFRAME, TIMEFRAMES, Resampler
from tickstock.bench.observe import RawSubscriber
from tickstock.bench.stats import summary
from tickstock.bench.universe import history
from tickstock.config import ChannelSettings, Settings
from tickstock.messages.bars import BAR_SECONDS
from tickstock.messages.records import event_records
from tickstock.messages.ticks import Tick

TIMEFRAME = BASE_TIMEFRAME
PIPELINE = 2000  # events per round trip, as the PublisherActor's _MAX_PIPELINE


def run_floor(symbols: Sequence[str], settings: Settings, redis_url: str, channels: ChannelSettings,
              closes: int = 20, prime_bars: int = 0, ticks_per_bar: int = 4, seed: int = 11, log=print,
              definitions: DefinitionSet | None = None, before_close: Callable[[], None] | None = None) -> dict:
    """Time ``closes`` closes of ``len(symbols)`` bars; returns per-close figures in ms.
    ``definitions``: what runs (None: config.yaml's fallback definitions, the baseline).
    ``before_close``: called (untimed) just before each close is timed, e.g. a barrier that lines up
    the closes of several floors run at once (shards.py)."""
    a = settings.analysis
    if definitions is None:
        definitions = definitions_from_config(a.fallback_definitions, a.timeframe)
    own, talib = split_talib(definitions, a.batch_talib)
    higher_timeframes = tuple(tf for tf in own if tf != BASE_TIMEFRAME)
    now_minute = int(time.time() // BAR_SECONDS) * BAR_SECONDS
    first_minute = now_minute - BAR_SECONDS * closes
    base = own.get(BASE_TIMEFRAME, ())
    pipelines = {s: AnalysisPipeline(base, symbol=s, max_failures=a.max_component_failures) for s in symbols}
    higher = {s: {tf: AnalysisPipeline(own[tf], symbol=s, max_failures=a.max_component_failures)
                  for tf in higher_timeframes} for s in symbols} if higher_timeframes else {}
    batch = CloseAnalysis(talib, symbols, max_failures=a.max_component_failures) if talib else None
    resamplers = {s: Resampler(s, higher_timeframes) for s in symbols} if higher_timeframes else {}
    last_close: dict[str, float] = {}
    if prime_bars:
        started = time.perf_counter()
        for symbol, series in history(symbols, prime_bars, first_minute - BAR_SECONDS):
            pipelines[symbol].prime(series)
            if batch is not None:
                batch.prime(symbol, series)
            last_close[symbol] = series[-1].close
            if higher_timeframes:  # as SymbolActor._prime: the history folded, each timeframe primed
                for tf, bars in resamplers[symbol].fold(series).items():
                    if bars:
                        higher[symbol][tf].prime(bars)
        log(f"  floor: {len(symbols):,} pipelines primed with {prime_bars} bars in {time.perf_counter() - started:.1f}s")
    rng = random.Random(seed)
    prices = {s: last_close.get(s, rng.uniform(20, 400)) for s in symbols}
    session_id = str(uuid.uuid4())
    grace = settings.bars.grace_seconds
    aggregator = MinuteBarAggregator(grace, now=None, session_id=session_id)
    listener = RawSubscriber(redis_url, [channels.patterns, channels.indicators, channels.indicator_alerts])
    publisher = RedisPublisher(redis_url)
    publisher.ping()
    per_close: list[float] = []
    phases: dict[str, list[float]] = {"close_bars": [], "analysis": [], "events": [], "rows": [],
                                     "encode": [], "publish": []}
    events_per_close: list[int] = []
    rows_per_close: list[int] = []
    timeframes_per_close: list[list[str]] = []
    received = 0
    try:
        for k in range(closes):
            minute = first_minute + BAR_SECONDS * k
            for j in range(ticks_per_bar):  # the minute's ticks, folded on the receive path (untimed)
                ts = minute + 1 + j * (BAR_SECONDS - 2) / max(1, ticks_per_bar - 1)
                for s in symbols:
                    prices[s] = round(prices[s] * (1 + rng.gauss(0, 0.0015)), 4)
                    aggregator.add(Tick(s, prices[s], rng.randint(1, 500), ts, ts))
            deadline = minute + BAR_SECONDS + grace
            if before_close is not None:
                before_close()
            t0 = time.perf_counter()
            closed_at = time.time()
            bars = aggregator.close_due(deadline)
            t1 = time.perf_counter()
            analysis = build = derive = 0.0
            events: list = []
            rows = 0
            analysed: set[str] = set()
            for bar in bars:
                steps = [(pipelines[bar.symbol], bar, TIMEFRAME)]
                if higher_timeframes:  # the higher bars it closes, unless partial (as in the SymbolActor)
                    steps += [(higher[bar.symbol][c.timeframe], c.bar, c.timeframe)
                              for c in resamplers[bar.symbol].on_bar(bar) if not c.bar.partial]
                for pipeline, analysed_bar, timeframe in steps:
                    ta = time.perf_counter()
                    out = pipeline.on_bar(analysed_bar)
                    tb = time.perf_counter()
                    ev = result_events(out, bar.symbol, session_id, timeframe, time.time(), closed_at)
                    tc = time.perf_counter()
                    derived = event_records(ev, a.pattern_ttl_seconds, a.indicator_ttl_seconds)
                    events.extend(ev)
                    rows += len(derived)
                    analysed.add(timeframe)
                    analysis += tb - ta
                    build += tc - tb
                    derive += time.perf_counter() - tc
            if batch is not None:  # the TA-Lib definitions, all symbols at once
                ta = time.perf_counter()
                out = batch.on_close(bars)
                tb = time.perf_counter()
                ev = close_events(out, session_id, time.time(), closed_at)
                tc = time.perf_counter()
                rows += len(event_records(ev, a.pattern_ttl_seconds, a.indicator_ttl_seconds))
                events.extend(ev)
                analysed.update(tf for tf, _ in out.results)
                analysis += tb - ta
                build += tc - tb
                derive += time.perf_counter() - tc
            t2 = time.perf_counter()
            encoded = encode_for_redis(events, channels, a.high_confidence)
            t3 = time.perf_counter()
            for i in range(0, len(encoded), PIPELINE):
                publisher.publish_many(encoded[i:i + PIPELINE])
            t4 = time.perf_counter()
            per_close.append((t4 - t0) * 1000)
            for name, value in (("close_bars", t1 - t0), ("analysis", analysis), ("events", build), ("rows", derive),
                                ("encode", t3 - t2), ("publish", t4 - t3)):
                phases[name].append(value * 1000)
            events_per_close.append(len(events))
            timeframes_per_close.append(sorted(analysed, key=TIMEFRAMES.index))
            rows_per_close.append(rows + len(bars))
            received += len(listener.drain())
    finally:
        publisher.close()
        listener.close()
    # The first closes after an unprimed start publish little; the figure is over all closes.
    return {
        "closes": closes, "symbols": len(symbols), "prime_bars": prime_bars,
        "per_close_ms": summary(per_close), "per_close_series_ms": per_close,
        "phases_p50_ms": {k: summary(v)["p50"] for k, v in phases.items()},
        "events_per_close": summary(events_per_close)["p50"], "rows_per_close": summary(rows_per_close)["p50"],
        "events_received": received, "events_published": sum(events_per_close),
        "definitions": list(definitions.names()),
        "timeframes": list(definitions.timeframes),
        "per_close_timeframes": timeframes_per_close,
        "per_close_ms_by_closing": split_by_closing(per_close, timeframes_per_close),
        "closes_of_every_timeframe": closes_of_every_timeframe(per_close, phases, events_per_close,
                                                               timeframes_per_close, list(definitions.timeframes)),
    }


def closes_of_every_timeframe(per_close: Sequence[float], phases: dict[str, list[float]], events: Sequence[int],
                              timeframes: Sequence[Sequence[str]], configured: Sequence[str]) -> list[dict]:
    """The closes where every configured timeframe closed at once (the top of an hour at :30 UTC,
    when 1, 5, 15 and 60 minutes are configured): the heaviest close of a run, each with its time,
    its events and its time by phase. Empty when only 1-minute bars are configured."""
    if len(configured) < 2:
        return []
    return [{"ms": per_close[i], "events": events[i], "phases_ms": {k: v[i] for k, v in phases.items()}}
            for i, tfs in enumerate(timeframes) if set(tfs) == set(configured)]


def split_by_closing(values: Sequence[float], timeframes: Sequence[Sequence[str]]) -> dict:
    """``values`` (one per close) summarised apart: ``1min_only`` (closes where only 1-minute bars
    were analysed) and ``with_higher`` (a 5, 15 or 60-minute bar too), and in how many closes each
    higher timeframe was analysed (``minutes_closing``: a close is a minute's)."""
    only = [v for v, tfs in zip(values, timeframes) if all(tf == TIMEFRAME for tf in tfs)]
    with_higher = [v for v, tfs in zip(values, timeframes) if any(tf != TIMEFRAME for tf in tfs)]
    return {"1min_only": summary(only), "with_higher": summary(with_higher),
            "minutes_closing": {tf: sum(1 for tfs in timeframes if tf in tfs) for tf in TIMEFRAMES[1:]}}
