"""The inline floor: the per-close work of the service done in one plain loop, without actors.

Per close, timed from the deadline: the aggregator closes every symbol's bar; for each bar the
symbol's ``AnalysisPipeline`` (the baseline/fallback definitions) runs, its events are built by the
``SymbolActor``'s own ``result_events`` and the rows derived from them as persistence derives them
(``records.pattern_record``/``indicator_record``, row ids included); all events are encoded
(``encode_for_redis``, the publisher's own) and published pipelined to Redis (``RedisPublisher``,
2,000 per round trip like the publisher) on channels of the run's own. A raw subscription listens on
those channels (drained between closes, untimed), so Redis does the same fan-out as for the service.

The ticks of each minute are folded before the clock starts: folding is the receive path's work,
not the close's.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence

from tickstock.actors.publisher import encode_for_redis
from tickstock.actors.symbol import result_events
from tickstock.adapters.redis.publisher import RedisPublisher
from tickstock.analysis import AnalysisPipeline, definitions_from_config
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.bench.observe import RawSubscriber
from tickstock.bench.stats import summary
from tickstock.bench.universe import history
from tickstock.config import ChannelSettings, Settings
from tickstock.messages.bars import BAR_SECONDS
from tickstock.messages.events import IndicatorAlertRaised, PatternDetected
from tickstock.messages.records import indicator_record, pattern_record
from tickstock.messages.ticks import Tick

TIMEFRAME = "1min"
PIPELINE = 2000  # events per round trip, as the PublisherActor's _MAX_PIPELINE


def _results(symbol: str, session_id: str, out, now: float, closed_at: float, pattern_ttl: float,
             indicator_ttl: float) -> tuple[list, list]:
    """Events of one bar's analysis, as ``SymbolActor`` builds them, and the rows persistence derives."""
    events = result_events(out, symbol, session_id, TIMEFRAME, now, closed_at)
    rows = [pattern_record(e, pattern_ttl) if type(e) is PatternDetected else indicator_record(e, indicator_ttl)
            for e in events if type(e) is not IndicatorAlertRaised]
    return events, rows


def run_floor(symbols: Sequence[str], settings: Settings, redis_url: str, channels: ChannelSettings,
              closes: int = 20, prime_bars: int = 0, ticks_per_bar: int = 4, seed: int = 11, log=print) -> dict:
    """Time ``closes`` closes of ``len(symbols)`` bars; returns per-close figures in ms."""
    a = settings.analysis
    definitions = definitions_from_config(a.fallback_definitions, a.timeframe)
    now_minute = int(time.time() // BAR_SECONDS) * BAR_SECONDS
    first_minute = now_minute - BAR_SECONDS * closes
    pipelines = {s: AnalysisPipeline(definitions, symbol=s, max_failures=a.max_component_failures) for s in symbols}
    last_close: dict[str, float] = {}
    if prime_bars:
        started = time.perf_counter()
        for symbol, series in history(symbols, prime_bars, first_minute - BAR_SECONDS):
            pipelines[symbol].prime(series)
            last_close[symbol] = series[-1].close
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
    phases: dict[str, list[float]] = {"close_bars": [], "analysis": [], "events_rows": [], "encode": [], "publish": []}
    events_per_close: list[int] = []
    rows_per_close: list[int] = []
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
            t0 = time.perf_counter()
            closed_at = time.time()
            bars = aggregator.close_due(deadline)
            t1 = time.perf_counter()
            analysis = build = 0.0
            events: list = []
            rows = 0
            for bar in bars:
                ta = time.perf_counter()
                out = pipelines[bar.symbol].on_bar(bar)
                tb = time.perf_counter()
                ev, derived = _results(bar.symbol, session_id, out, time.time(), closed_at,
                                       a.pattern_ttl_seconds, a.indicator_ttl_seconds)
                events.extend(ev)
                rows += len(derived)
                analysis += tb - ta
                build += time.perf_counter() - tb
            t2 = time.perf_counter()
            encoded = encode_for_redis(events, channels, a.high_confidence)
            t3 = time.perf_counter()
            for i in range(0, len(encoded), PIPELINE):
                publisher.publish_many(encoded[i:i + PIPELINE])
            t4 = time.perf_counter()
            per_close.append((t4 - t0) * 1000)
            for name, value in (("close_bars", t1 - t0), ("analysis", analysis), ("events_rows", build),
                                ("encode", t3 - t2), ("publish", t4 - t3)):
                phases[name].append(value * 1000)
            events_per_close.append(len(events))
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
    }
