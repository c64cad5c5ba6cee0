"""The rule by which the partial parts of one minute (one bar per session) make the minute's bar.

The PostgreSQL adapter applies the same rule in SQL when it re-merges ``ohlcv_1min`` from
``ohlcv_1min_parts``; this pure version states it once, for the tests and for any reader. It
applies to PARTIAL parts (sessions that each saw part of the minute); a minute with a complete
part is that part alone (the store's rule: tickstock/adapters/postgres/parts.py).

- open: of the part whose first tick is earliest (``first_tick_at``; unknown counts as the
  minute's start), ties to the smallest session id;
- close: of the part whose last tick is latest (``last_tick_at``; unknown counts as the minute's
  end), ties to the largest session id;
- high: the highest high, low: the lowest low, volume and tick_count: the sums.

So a minute split across sessions holds every tick of all of them, and the order in which the
parts arrive does not matter.
"""

from __future__ import annotations

from collections.abc import Iterable

from tickstock.messages.bars import BAR_SECONDS, Bar


def _first(part: Bar) -> float:
    return part.start if part.first_tick_at is None else part.first_tick_at


def _last(part: Bar) -> float:
    return part.start + BAR_SECONDS if part.last_tick_at is None else part.last_tick_at


def merge_parts(parts: Iterable[Bar]) -> Bar:
    """One bar from the parts of one (symbol, minute). ValueError if there are none or if they do
    not share symbol and start. ``session_id`` is kept only if all parts share it; ``partial`` is
    True if any part is partial (the merge may still miss ticks)."""
    parts = list(parts)
    if not parts:
        raise ValueError("no parts to merge")
    symbol, start = parts[0].symbol, parts[0].start
    if any(p.symbol != symbol or p.start != start for p in parts):
        raise ValueError("parts of different bars")
    opening = min(parts, key=lambda p: (_first(p), p.session_id))
    closing = max(parts, key=lambda p: (_last(p), p.session_id))
    firsts = [p.first_tick_at for p in parts if p.first_tick_at is not None]
    lasts = [p.last_tick_at for p in parts if p.last_tick_at is not None]
    sessions = {p.session_id for p in parts}
    return Bar(
        symbol=symbol,
        start=start,
        open=opening.open,
        high=max(p.high for p in parts),
        low=min(p.low for p in parts),
        close=closing.close,
        volume=sum(p.volume for p in parts),
        tick_count=sum(p.tick_count for p in parts),
        session_id=parts[0].session_id if len(sessions) == 1 else "",
        first_tick_at=min(firsts) if firsts else None,
        last_tick_at=max(lasts) if lasts else None,
        partial=any(p.partial for p in parts),
    )
