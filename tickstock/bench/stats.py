"""Figures from what was recorded: percentiles, close -> event latencies, CPU and memory (pure).

Latency of an event = its receive time - (its bar's minute end + grace), the moment the bar was due
to close; in event time (the ``day`` replay) that moment mapped to the wall clock (``wall_of``, the
replay's ``EventMap.wall_at``: where the generator's stamps pass it). Per minute, the "last event"
latency is that of the minute's latest event: when a subscriber had everything of that minute.
Events of a bar closed before its deadline (the session's stop closes forming bars early) are left
out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

BAR_SECONDS = 60


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100): the smallest value with at least p% of the values
    at or below it. None for no values."""
    if not 0 <= p <= 100:
        raise ValueError("p must be within 0..100")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict:
    """n, p50, p99, max and mean of ``values`` (None when empty)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values), "mean": sum(values) / len(values)}


def iso_seconds(text: str) -> float:
    """``2025-10-07T13:41:30.000Z`` (or ``+00:00``) -> epoch seconds."""
    return datetime.fromisoformat(text).timestamp()


@dataclass(frozen=True, slots=True)
class EventTimes:
    kind: str              # "pattern" | "indicator"
    symbol: str
    name: str              # Doji, RSI, ...
    bar_start: float       # epoch seconds, the bar's minute start
    bar_closed_at: float | None
    received_at: float


def parse_event(payload: bytes, received_at: float) -> EventTimes | None:
    """The times of one pattern/indicator event (None for anything else)."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict):
        return None
    if isinstance(message.get("detection"), dict):
        body, kind = message["detection"], "pattern"
        bar_ts = (body.get("parameters") or {}).get("bar_timestamp")
        name = body.get("pattern")
    elif isinstance(message.get("calculation"), dict):
        body, kind = message["calculation"], "indicator"
        bar_ts = (body.get("metadata") or {}).get("bar_timestamp")
        name = body.get("indicator")
    else:
        return None
    if not bar_ts:
        return None
    closed = (body.get("metadata") or {}).get("bar_closed_at")
    return EventTimes(kind, str(body.get("symbol")), str(name), iso_seconds(bar_ts),
                      iso_seconds(closed) if closed else None, received_at)


def event_latencies(events: Iterable[EventTimes], grace: float,
                    wall_of: Callable[[float], float] | None = None) -> dict:
    """Per-event and per-minute latencies in milliseconds.

    The deadline is ``wall_of(minute end + grace)`` (the wall clock's own minute end + grace when
    ``wall_of`` is None; ``bar_closed_at`` and the receive time are wall times either way).
    ``from_deadline``: receive - deadline, every event; ``from_close``: receive -
    bar_closed_at (the service's own close stamp); ``close_lag``: bar_closed_at - deadline;
    ``last_per_minute``: {minute start: latency of the minute's last event}; ``first_per_minute``:
    the same for its first event (the time before anything of the close reached Redis);
    ``events_per_minute``."""
    from_deadline: list[float] = []
    from_close: list[float] = []
    close_lag: list[float] = []
    last: dict[int, float] = {}
    first: dict[int, float] = {}
    per_minute: dict[int, int] = defaultdict(int)
    early = 0
    for e in events:
        deadline = e.bar_start + BAR_SECONDS + grace
        if wall_of is not None:
            deadline = wall_of(deadline)
        if e.bar_closed_at is not None and e.bar_closed_at < deadline - 0.001:
            early += 1  # closed by the session's stop, not by the clock
            continue
        minute = int(e.bar_start)
        latency = (e.received_at - deadline) * 1000
        from_deadline.append(latency)
        if e.bar_closed_at is not None:
            from_close.append((e.received_at - e.bar_closed_at) * 1000)
            close_lag.append((e.bar_closed_at - deadline) * 1000)
        per_minute[minute] += 1
        if latency > last.get(minute, -math.inf):
            last[minute] = latency
        if latency < first.get(minute, math.inf):
            first[minute] = latency
    return {"from_deadline": from_deadline, "from_close": from_close, "close_lag": close_lag,
            "last_per_minute": dict(sorted(last.items())), "first_per_minute": dict(sorted(first.items())),
            "events_per_minute": dict(sorted(per_minute.items())),
            "closed_early": early}


def cpu_share(samples: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """(user + sys seconds) / wall seconds between ``start`` and ``end`` from (time, cumulative CPU)
    samples: the samples nearest inside the window. None without two samples in it."""
    inside = [(t, c) for t, c in samples if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def per_interval_rates(samples: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(time, rate) between consecutive (time, cumulative value) samples: e.g. CPU share per second."""
    out = []
    for (t0, v0), (t1, v1) in zip(samples, samples[1:]):
        if t1 > t0:
            out.append((t1, (v1 - v0) / (t1 - t0)))
    return out


def value_at(samples: Sequence[tuple[float, float]], t: float) -> float | None:
    """The last sampled value at or before ``t`` (None before the first sample)."""
    best = None
    for ts, v in samples:
        if ts <= t:
            best = v
        else:
            break
    return best
