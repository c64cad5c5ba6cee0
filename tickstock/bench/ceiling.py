"""The receive ceiling: the no-actor receive path alone, as ``tickstock/actors/ingress.py`` runs it
(the real ``RedisTickFeed``, ``decode_tick``, the route lookup and ``MinuteBarAggregator.add``, bars
closed by the clock), in one thread of a process of its own, fed by the same load generator.

``measure_ceiling`` sends flat out for a moment first (a slow reader is disconnected by Redis at its
pub/sub output limit; what it read until then is its top speed), then searches paced rates: up
after a clean attempt, down after a loss. The ceiling is the best rate received with nothing lost.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

from tickstock.adapters.redis.feed import FeedDisconnected, RedisTickFeed
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.bench.loadgen import END_MARKER, LoadGenerator, LoadSpec
from tickstock.messages.ticks import TickRejected, decode_tick

_IDLE_END = 5.0  # seconds without data after the first tick: the sender is done (or we were cut off)


@dataclass
class ReceiveResult:
    received: int = 0
    folded: int = 0
    rejected: int = 0
    late: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    cpu_seconds: float = 0.0
    disconnected: str = ""
    per_second: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        span = self.last_at - self.first_at
        return self.folded / span if span > 0 else 0.0


def receive(feed, symbols: list[str], grace: float, max_skew: float, stop_requested=lambda: False) -> ReceiveResult:
    """The ingress receive loop without actors, until the END marker, a disconnection or silence."""
    aggregator = MinuteBarAggregator(grace, now=time.time())
    routes = dict.fromkeys(symbols)
    last_seen: dict[str, float] = {}
    add = aggregator.add
    out = ReceiveResult()
    per_second: Counter[int] = Counter()
    usage0 = None
    done = False
    while not done:
        if stop_requested():
            break
        try:
            payloads = feed.read(0.2)
        except FeedDisconnected as exc:
            out.disconnected = str(exc)
            break
        now = time.time()
        if payloads:
            if usage0 is None:
                usage0 = resource.getrusage(resource.RUSAGE_SELF)
                out.first_at = now
            n = 0
            lag_sum = 0.0
            for raw in payloads:
                if raw == END_MARKER:
                    done = True
                    continue
                n += 1
                try:
                    tick = decode_tick(raw, now, max_skew)
                except TickRejected:
                    out.rejected += 1
                    continue
                symbol = tick.symbol
                if symbol not in routes:
                    continue
                if add(tick):
                    last_seen[symbol] = now
                    lag_sum += now - tick.timestamp
            out.received += n
            out.last_at = now
            per_second[int(now)] += n
        elif usage0 is not None and now - out.last_at > _IDLE_END:
            break
        deadline = aggregator.next_deadline()
        if deadline is not None and now >= deadline:
            aggregator.close_due(now)
    if usage0 is not None:
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        out.cpu_seconds = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    out.folded = aggregator.folded_ticks
    out.late = aggregator.late_ticks
    out.per_second = dict(per_second)
    return out


def _process_main(url: str, channel: str, symbols: list[str], grace: float, max_skew: float, conn) -> None:
    try:
        feed = RedisTickFeed(url, channel)
        feed.connect()
        conn.send(("ready", None))
        result = receive(feed, symbols, grace, max_skew, stop_requested=conn.poll)
        feed.close()
        conn.send(("done", result))
    except Exception as exc:
        conn.send(("error", repr(exc)))


def receive_once(url: str, channel: str, symbols: list[str], rate: float, seconds: float, grace: float = 2.0,
                 max_skew: float = 3600.0) -> dict:
    """One attempt: a receiver process and a generator process; returns the figures as a dict. The
    generator stops early once a PUBLISH reaches nobody (the receiver was disconnected)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_process_main, args=(url, channel, symbols, grace, max_skew, child),
                       name="bench-ceiling", daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("ceiling receiver did not subscribe")
        kind, detail = parent.recv()
        if kind != "ready":
            raise RuntimeError(f"ceiling receiver failed: {detail}")
        generator = LoadGenerator(LoadSpec(url, channel, symbols, rate, seconds=seconds, end_marker=True,
                                           stop_when_unheard=True)).start()
        generator.go()
        sent = generator.wait(seconds + 120)
        if not parent.poll(seconds + 60):
            parent.send("stop")
            parent.poll(10)
        kind, detail = parent.recv()
        if kind != "done":
            raise RuntimeError(f"ceiling receiver failed: {detail}")
        got: ReceiveResult = detail
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    span = got.last_at - got.first_at
    return {
        "target_rate": rate, "sent": sent.sent, "generator_rate": sent.rate,
        "generator_cpu_share": sent.cpu_seconds / sent.seconds, "received": got.received, "folded": got.folded,
        "late": got.late, "rejected": got.rejected, "lost": sent.sent - got.folded, "rate": got.rate,
        "seconds": span, "receiver_cpu_share": got.cpu_seconds / span if span > 0 else 0.0,
        "disconnected": got.disconnected, "unheard": sent.unheard, "per_second": sorted(got.per_second.items()),
    }


def _clean(attempt: dict) -> bool:
    return not attempt["lost"] and not attempt["disconnected"]


def next_rate(tries: list[dict]) -> float:
    """The next paced rate of the search from the attempts so far (``target_rate`` 0 = flat out):
    halfway between the best clean rate and the lowest lossy one once both are known; before a
    loss, up by what the receiver's spare CPU suggests (+2% .. +25%); before a clean attempt, 85%
    of the slowest rate received while losing."""
    paced = [t for t in tries if t["target_rate"]]
    clean = [t["target_rate"] for t in paced if _clean(t)]
    lossy = [t["target_rate"] for t in paced if not _clean(t)]
    if clean and lossy and min(lossy) > max(clean):
        return (max(clean) + min(lossy)) / 2
    if clean:
        best = max((t for t in paced if _clean(t)), key=lambda t: t["target_rate"])
        cpu = best["receiver_cpu_share"] or 1.0
        return best["target_rate"] * max(1.02, min(1.25, 0.95 / cpu))
    return 0.85 * min(t["rate"] or t["generator_rate"] for t in tries)


def measure_ceiling(url: str, channel: str, symbols: list[str], seconds: float = 10.0, rate: float = 0.0,
                    grace: float = 2.0, attempts: int = 4, log=print) -> dict:
    """The receive path's ceiling: one short flat-out burst (what the receiver reads when it is
    overwhelmed), then ``attempts`` paced attempts of ``seconds`` each (``next_rate``), the first at
    ``rate`` if given. The ceiling is the best rate received in an attempt with nothing lost."""
    tries: list[dict] = []

    def attempt(r: float, secs: float) -> None:
        one = receive_once(url, channel, symbols, r, secs, grace)
        tries.append(one)
        log(f"  ceiling at {'flat out' if not r else f'{r:,.0f}/s'}: received {one['folded']:,} of "
            f"{one['sent']:,} at {one['rate']:,.0f}/s, lost {one['lost']:,}, receiver "
            f"{one['receiver_cpu_share']:.0%} of a core, generator {one['generator_cpu_share']:.0%}")

    if not rate:
        attempt(0.0, min(2.0, seconds))
    for k in range(attempts):
        attempt(rate if k == 0 and rate else next_rate(tries), seconds)
    clean = [t for t in tries if t["target_rate"] and _clean(t)]
    best = max(clean, key=lambda t: t["rate"]) if clean else None
    return {"ticks_per_second": best["rate"] if best else None, "attempts": tries,
            "receiver_cpu_share": best["receiver_cpu_share"] if best else None,
            "seconds_per_attempt": seconds}


__all__ = ["ReceiveResult", "receive", "receive_once", "measure_ceiling", "next_rate"]
