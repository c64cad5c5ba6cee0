"""Fault injection for end-to-end tests of the supervision paths.

``TICKSTOCK_INJECT_FAULT`` holds comma-separated fault points, e.g. ``ingress:receive`` or
``symbol:AAPL:bar``. A point that is armed raises ``InjectedFault`` every time it is reached. Unset
in production: the check is a set lookup on a per-bar or per-read path, never per tick.
"""

from __future__ import annotations

import os


class InjectedFault(RuntimeError):
    pass


def armed_points(environ=os.environ) -> frozenset[str]:
    raw = environ.get("TICKSTOCK_INJECT_FAULT", "")
    return frozenset(p.strip() for p in raw.split(",") if p.strip())


_ARMED = armed_points()


def maybe_fail(point: str) -> None:
    if _ARMED and point in _ARMED:
        raise InjectedFault(f"injected fault at {point}")
