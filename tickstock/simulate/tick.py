"""The simulator's tick: what it publishes, before the wire format (tickstock/messages/ticks.py).

Ordered by ``timestamp`` first (a NamedTuple compares field by field), so a list of them sorts into
event-time order; ``sorted`` is stable, so ticks with equal times keep the order they were made in.
"""

from __future__ import annotations

from typing import NamedTuple

from tickstock.messages.ticks import encode_tick

__all__ = ["SimTick", "encode"]


class SimTick(NamedTuple):
    """One trade: epoch seconds UTC (event time), upper-case ticker, price, volume (shares)."""

    timestamp: float
    symbol: str
    price: float
    volume: int


def encode(tick: SimTick, source: str) -> bytes:
    """The tick in the contract's format, as the upstream forwarder sends it."""
    return encode_tick(tick.symbol, tick.price, tick.volume, tick.timestamp, source)
