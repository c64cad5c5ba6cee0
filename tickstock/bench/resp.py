"""PUBLISH commands for ticks, pre-encoded as RESP bytes, so the load generator's hot path is a
slice, one ``bytes.replace`` (the timestamp) and one ``sendall`` per batch.

A tick payload is the contract's JSON (``interface.md``, "Input: ticks") written with a fixed-width
placeholder where the timestamp goes: ``TS_MARK``, 14 bytes, the width of ``"%.3f"`` of any epoch
second between 2001 and 2286. ``stamp`` puts the send time in place of every mark in a batch, so the
RESP bulk lengths computed at encoding time stay right.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence

import msgspec

TS_MARK = b"@@@@@@@@@@@@@@"
TS_WIDTH = len(TS_MARK)
SOURCE = "bench"


def _arg(value: bytes | str | int) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(f"a RESP argument is bytes, str or int, not {type(value).__name__}")


def command(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings: ``*<n>\\r\\n`` then ``$<len>\\r\\n<arg>\\r\\n``
    per argument (what redis-py and hiredis send)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _arg(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def publish_command(channel: str | bytes, payload: bytes) -> bytes:
    return command(b"PUBLISH", channel, payload)


def tick_payload(symbol: str, price: float, volume: int, timestamp: bytes = TS_MARK, source: str = SOURCE) -> bytes:
    """The contract's tick JSON, keys in the forwarder's order; ``timestamp`` is written as given
    (the mark, or digits)."""
    return b'{"type":"market_tick","symbol":%s,"price":%s,"volume":%d,"timestamp":%s,"source":%s}' % (
        msgspec.json.encode(symbol), msgspec.json.encode(float(price)), int(volume), timestamp,
        msgspec.json.encode(source))


def format_timestamp(epoch: float) -> bytes:
    """``epoch`` as the 14 bytes that replace ``TS_MARK``; ValueError outside 2001..2286."""
    text = b"%.3f" % epoch
    if len(text) != TS_WIDTH:
        raise ValueError(f"epoch {epoch!r} does not format to {TS_WIDTH} bytes")
    return text


def stamp(batch: bytes, epoch: float) -> bytes:
    """``batch`` with every timestamp mark replaced by ``epoch`` (one C-level pass)."""
    return batch.replace(TS_MARK, format_timestamp(epoch))


def price_paths(symbols: Sequence[str], variants: int, seed: int = 7) -> list[list[float]]:
    """``variants`` prices per symbol on a closed loop (a slow wave plus noise around a base), so the
    cycle of pre-encoded ticks has no jump where it wraps. Rounded to cents."""
    rng = random.Random(seed)
    paths = []
    for _ in symbols:
        base = rng.uniform(20.0, 400.0)
        amplitude = rng.uniform(0.002, 0.01)
        phase = rng.uniform(0, 2 * math.pi)
        paths.append([round(base * (1 + amplitude * math.sin(phase + 2 * math.pi * k / variants)
                                    + rng.gauss(0, 0.0005)), 2) for k in range(variants)])
    return paths


class TickCommands:
    """Every tick the generator can send, pre-encoded once: tick ``j`` (counting from 0) is symbol
    ``j % N`` at price variant ``(j // N) % variants``, so consecutive ticks go round-robin over the
    symbols and each symbol walks its own price path. ``take(j, n)`` returns ticks ``j..j+n-1`` as one
    unstamped byte string."""

    def __init__(self, channel: str, symbols: Sequence[str], variants: int | None = None, volume: int = 1,
                 seed: int = 7, max_bytes: int = 48 << 20) -> None:
        if not symbols:
            raise ValueError("no symbols")
        n = len(symbols)
        if variants is None:
            # Enough variety for real-looking bars, bounded in memory (10,000 symbols: 20 variants).
            variants = max(4, min(64, 200_000 // n))
        self.symbols = list(symbols)
        self.variants = variants
        self.volume = volume
        paths = price_paths(symbols, variants, seed)
        channel_bytes = channel.encode()
        offsets = array("q", [0])
        chunks: list[bytes] = []
        size = 0
        for k in range(variants):
            for i, symbol in enumerate(symbols):
                cmd = publish_command(channel_bytes, tick_payload(symbol, paths[i][k], volume))
                chunks.append(cmd)
                size += len(cmd)
                offsets.append(size)
            if size > max_bytes:
                raise ValueError(f"pre-encoded ticks exceed {max_bytes} bytes: use fewer variants")
        self.blob = b"".join(chunks)
        self.offsets = offsets
        self.cycle = n * variants

    def take(self, start: int, count: int) -> bytes:
        """Ticks ``start .. start+count-1`` (wrapping around the cycle), unstamped."""
        out = []
        offsets, blob, cycle = self.offsets, self.blob, self.cycle
        position = start % cycle
        while count > 0:
            n = min(count, cycle - position)
            out.append(blob[offsets[position]:offsets[position + n]])
            count -= n
            position = 0
        return out[0] if len(out) == 1 else b"".join(out)
