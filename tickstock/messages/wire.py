"""Shared wire helpers: ISO-8601 UTC times and strict JSON encoding."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import orjson


def iso_utc(epoch_seconds: float) -> str:
    """Format epoch seconds as ``2025-10-07T13:41:30.000Z`` (always UTC, millisecond precision)."""
    dt = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def finite_or_none(value: float | None) -> float | None:
    """Return ``value`` if it is a finite number, else ``None`` (the wire never carries NaN/Inf)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _scrub(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_scrub(v) for v in obj]
    return obj


def dumps(payload: dict[str, Any]) -> bytes:
    """Encode one event as UTF-8 JSON; non-finite floats become ``null``, never NaN/Infinity."""
    return orjson.dumps(_scrub(payload))
