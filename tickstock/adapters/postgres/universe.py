"""Universe keys and the shapes of the dashboard's ``cache_entries.value`` for a stock universe."""

from __future__ import annotations

import json
from typing import Any


class UniverseNotFound(LookupError):
    """No ``cache_entries`` row for the universe ``key`` (``reason`` says what was looked for)."""

    def __init__(self, key: str, reason: str = "") -> None:
        super().__init__(f"universe {key!r} not found" + (f": {reason}" if reason else ""))
        self.key = key
        self.reason = reason


def split_key(key: str) -> tuple[str, str]:
    """``'market_leaders:top_500'`` -> ``('market_leaders', 'top_500')``: split on the FIRST colon
    (the part after it may contain colons). ValueError if there is no colon or a part is empty."""
    name, sep, sub = key.partition(":")
    if not sep or not name or not sub:
        raise ValueError(f"universe key must look like 'name:key', got {key!r}")
    return name, sub


def parse_universe_value(key: str, value: Any) -> list[str]:
    """Tickers from a ``cache_entries.value``, upper-cased, de-duplicated, in stored order.

    Accepted shapes: ``{"stocks": [...]}``, ``{"symbols": [...]}`` and a plain list, where each
    entry is a ticker string or an object with ``"ticker"`` or ``"symbol"``. Anything else is a
    ValueError that names the shape found. A value stored as JSON text is decoded first.
    """
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"universe {key!r}: value is not JSON") from None
    if isinstance(value, dict):
        list_key = next((k for k in ("stocks", "symbols") if k in value), None)
        if list_key is None:
            raise ValueError(
                f"universe {key!r}: unrecognised value shape: object with keys {sorted(value)} "
                "(expected 'stocks' or 'symbols')"
            )
        entries, shape = value[list_key], f"{{{list_key!r}: [...]}}"
    elif isinstance(value, list):
        entries, shape = value, "list"
    else:
        raise ValueError(f"universe {key!r}: unrecognised value shape: {type(value).__name__}")
    if not isinstance(entries, list):
        raise ValueError(f"universe {key!r}: {shape} does not hold a list: {type(entries).__name__}")

    tickers: dict[str, None] = {}  # insertion-ordered set
    for position, entry in enumerate(entries):
        ticker = _ticker(entry)
        if ticker is None:
            raise ValueError(
                f"universe {key!r}: unrecognised entry #{position} in {shape}: {entry!r} "
                "(expected a ticker string or an object with 'ticker' or 'symbol')"
            )
        tickers.setdefault(ticker, None)
    return list(tickers)


def _ticker(entry: Any) -> str | None:
    if isinstance(entry, dict):
        entry = entry.get("ticker", entry.get("symbol"))
    if isinstance(entry, str) and entry.strip():
        return entry.strip().upper()
    return None
