"""The inline floor split over K processes: what sharding the symbols over the machine's cores
could give, measured before anyone builds it.

Each process runs ``run_floor`` on its share of the symbols (every K-th one, so each share has
the same mix) with channels of its own; a barrier lines up their closes, so close j of every shard
starts at the same moment and competes for the cores (and Redis) as sharded services would. The
figure is, per close, the slowest shard's time: when the last event of the minute would have gone.
Priming, the minute's ticks and the barrier wait are untimed, as in the single floor.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Sequence

import msgspec

from tickstock.analysis import DefinitionSet
from tickstock.bench.floor import run_floor
from tickstock.bench.stats import summary
from tickstock.config import ChannelSettings, Settings

# Generous: a shard primes its symbols before its first close (3,000 symbols: seconds).
_BARRIER_TIMEOUT_SECONDS = 600.0


def _shard(index: int, symbols: list[str], settings: Settings, redis_url: str, channels: ChannelSettings,
           closes: int, prime_bars: int, definitions: DefinitionSet | None, barrier, results) -> None:
    try:
        prefixed = {name: f"shard{index}:{channel}" for name, channel in msgspec.structs.asdict(channels).items()}
        own = channels.replace(**prefixed)
        figures = run_floor(symbols, settings, redis_url, own, closes, prime_bars=prime_bars, log=lambda text: None,
                            definitions=definitions, before_close=lambda: barrier.wait(_BARRIER_TIMEOUT_SECONDS))
        results.put((index, figures["per_close_series_ms"], figures["events_published"], figures["events_received"],
                     None))
    except BaseException as exc:  # the parent reports it; the other shards are released by abort()
        barrier.abort()
        results.put((index, None, 0, 0, repr(exc)))


def run_sharded_floor(symbols: Sequence[str], settings: Settings, redis_url: str, channels: ChannelSettings,
                      shards: int, closes: int = 20, prime_bars: int = 0,
                      definitions: DefinitionSet | None = None) -> dict:
    """Run the floor in ``shards`` processes at once; per-close figures are the slowest shard's (ms).
    Raises ``RuntimeError`` naming the shard if one of them failed."""
    if shards < 2:
        raise ValueError("shards must be >= 2 (one shard is the inline floor itself)")
    context = multiprocessing.get_context("spawn")  # a clean interpreter each: no inherited threads
    barrier, results = context.Barrier(shards), context.Queue()
    shares = [list(symbols[i::shards]) for i in range(shards)]
    processes = [context.Process(target=_shard, name=f"floor-shard-{i}", daemon=True,
                                 args=(i, shares[i], settings, redis_url, channels, closes, prime_bars, definitions,
                                       barrier, results))
                 for i in range(shards)]
    for process in processes:
        process.start()
    try:
        got = sorted(_collect(results, processes))
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    failed = [(index, error) for index, _, _, _, error in got if error is not None]
    if failed:
        raise RuntimeError("floor shard(s) failed: " + "; ".join(f"{i}: {e}" for i, e in failed))
    series = [s for _, s, _, _, _ in got]
    slowest = [max(shard[j] for shard in series) for j in range(closes)]
    return {
        "shards": shards, "closes": closes, "symbols_per_shard": [len(share) for share in shares],
        "per_close_ms": summary(slowest), "per_close_series_ms": slowest,
        "per_shard_p50_ms": [summary(shard)["p50"] for shard in series],
        "events_published": sum(p for _, _, p, _, _ in got), "events_received": sum(r for _, _, _, r, _ in got),
    }


def _collect(results, processes) -> list[tuple]:
    """One report per shard; a shard that died without one (killed, a crash in the interpreter) is
    reported as failed instead of being waited for."""
    got: dict[int, tuple] = {}
    while len(got) < len(processes):
        try:
            report = results.get(timeout=1.0)
            got[report[0]] = report
        except queue.Empty:
            for index, process in enumerate(processes):
                if index not in got and not process.is_alive() and results.empty():
                    got[index] = (index, None, 0, 0, f"exited with code {process.exitcode} and no report")
    return list(got.values())
