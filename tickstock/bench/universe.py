"""The benchmark's symbols and their history (pure: no I/O).

``bench_symbols(n)`` takes the first ``n`` tickers of config.yaml's largest universe and, beyond it,
generated ones (``T00000``, ``T00001``, ...: valid tickers no real listing uses). ``history`` makes
``bars`` one-minute bars per symbol ending at a given minute, the same for the database the service
primes from and for the inline floor's pipelines.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from tickstock.messages.bars import BAR_SECONDS, Bar
from tickstock.messages.ticks import TickRejected, decode_tick, encode_tick


def bench_symbols(n: int, known: Sequence[str]) -> list[str]:
    """``n`` distinct valid tickers: ``known`` first (in order), then generated names."""
    if n < 1:
        raise ValueError("need at least one symbol")
    out = list(dict.fromkeys(known))[:n]
    taken = set(out)
    i = 0
    while len(out) < n:
        name = f"T{i:05d}"
        i += 1
        if name not in taken:
            out.append(name)
            taken.add(name)
    for name in out:  # the validation the service applies to every tick
        try:
            decode_tick(encode_tick(name, 1.0, 1, 1e9), 1e9)
        except TickRejected:
            raise ValueError(f"{name!r} is not a ticker the service accepts") from None
    return out


def history(symbols: Sequence[str], bars: int, last_minute: int, seed: int = 3) -> Iterator[tuple[str, list[Bar]]]:
    """(symbol, ``bars`` closed bars ending with the one starting at ``last_minute``, oldest first)."""
    if last_minute % BAR_SECONDS:
        raise ValueError("last_minute must be a minute start")
    rng = random.Random(seed)
    first = last_minute - BAR_SECONDS * (bars - 1)
    for symbol in symbols:
        price = rng.uniform(20.0, 400.0)
        series = []
        for k in range(bars):
            o = price
            price = round(price * (1 + rng.gauss(0, 0.002)), 4)
            high = round(max(o, price) * (1 + abs(rng.gauss(0, 0.0005))), 4)
            low = round(min(o, price) * (1 - abs(rng.gauss(0, 0.0005))), 4)
            series.append(Bar(symbol, first + BAR_SECONDS * k, o, high, low, price, rng.randint(100, 5000)))
        yield symbol, series
