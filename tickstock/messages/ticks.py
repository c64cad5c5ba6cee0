"""Ticks: the input message, and the one place its wire format is decoded and validated.

The rules come from the interface contract: epoch-seconds timestamps (values above 1e11 are
milliseconds and are normalised), a finite positive price, a non-negative integer volume, an
upper-case ticker that may contain ``.``, and a timestamp not absurdly far from the receive time.
"""

from __future__ import annotations

import math
import re

import msgspec

# A timestamp above this is milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
MILLISECONDS_THRESHOLD = 1e11
# How far a tick's own time may be from the moment it was received before it is absurd.
DEFAULT_MAX_SKEW_SECONDS = 24 * 3600.0

_MAX_VOLUME = 2**63 - 1  # ohlcv_1min.volume is a BIGINT
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,19}$")


class Tick(msgspec.Struct, frozen=True):
    """One validated tick. ``timestamp`` is epoch seconds UTC; ``received_at`` is when it reached us."""

    symbol: str
    price: float
    volume: int
    timestamp: float
    received_at: float


class _WireTick(msgspec.Struct):
    symbol: str
    price: float
    volume: int
    timestamp: float


class TickRejected(ValueError):
    """A message on the tick channel that is not a valid tick. ``reason`` is a short stable label."""

    REASONS = (
        "malformed_json",
        "missing_field",
        "wrong_type",
        "bad_symbol",
        "bad_price",
        "bad_volume",
        "bad_timestamp",
    )

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_decoder = msgspec.json.Decoder(_WireTick)


def decode_tick(
    raw: bytes | str,
    received_at: float,
    max_skew_seconds: float = DEFAULT_MAX_SKEW_SECONDS,
) -> Tick:
    """Decode and validate one tick message.

    Returns a ``Tick`` or raises ``TickRejected`` with one of ``TickRejected.REASONS``; never
    raises anything else for any input bytes.
    """
    try:
        wire = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "missing required field" in text:
            raise TickRejected("missing_field", text) from None
        if "out of range" in text:
            # e.g. 1e999: a number that is not finite once parsed.
            field = ("bad_timestamp" if "timestamp" in text else "bad_price" if "price" in text
                     else "bad_volume" if "volume" in text else "wrong_type")
            raise TickRejected(field, text) from None
        raise TickRejected("wrong_type", text) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise TickRejected("malformed_json", str(exc)) from None
    except Exception as exc:  # pragma: no cover - defensive: decoding must never crash ingress
        raise TickRejected("malformed_json", repr(exc)) from None

    symbol = wire.symbol
    if not _SYMBOL.fullmatch(symbol):
        raise TickRejected("bad_symbol", f"symbol {symbol[:32]!r} is not an upper-case ticker")
    price = wire.price
    if not math.isfinite(price) or price <= 0.0:
        raise TickRejected("bad_price", f"price {price!r} is not finite and positive")
    if wire.volume < 0:
        raise TickRejected("bad_volume", f"volume {wire.volume} is negative")
    if wire.volume > _MAX_VOLUME:
        raise TickRejected("bad_volume", f"volume {wire.volume} exceeds a BIGINT")
    ts = wire.timestamp
    if not math.isfinite(ts):
        raise TickRejected("bad_timestamp", f"timestamp {ts!r} is not finite")
    if ts > MILLISECONDS_THRESHOLD:
        ts = ts / 1000.0
    if abs(ts - received_at) > max_skew_seconds:
        raise TickRejected(
            "bad_timestamp", f"timestamp {ts!r} is more than {max_skew_seconds:.0f}s from now"
        )
    return Tick(symbol=symbol, price=price, volume=wire.volume, timestamp=ts, received_at=received_at)


def encode_tick(symbol: str, price: float, volume: int, timestamp: float, source: str = "tickstock") -> bytes:
    """Encode a tick as the upstream forwarder does (used by tools and tests that feed the service)."""
    return msgspec.json.encode(
        {"type": "market_tick", "symbol": symbol, "price": price, "volume": volume,
         "timestamp": timestamp, "source": source}
    )
