"""How busy the market is at an instant: the intraday U-shape of trading activity.

``IntradayActivity.at(t)`` is a rate multiplier. Inside an NYSE session (from the market calendar,
so early closes, holidays and DST come from exchange_calendars, never from the host's clock or
zone) it follows

    m(u) = (1 + a * exp(-u / tau) + b * exp(-(1 - u) / tau)) / mean,   u = (t - open) / (close - open)

with ``a`` the burst after the open, ``b`` the one before the close and ``tau`` their decay as a
share of the session; ``mean`` makes the average over the session exactly 1, so a rate given to the
simulator is the session's average rate. With the defaults the first minute trades ~2.6x and the
last ~1.9x the session average, midday ~0.86x. Outside a session (a demo at night, a weekend)
the multiplier is 1: the session's average.
"""

from __future__ import annotations

import math

from tickstock.market.calendar import MarketCalendar

__all__ = ["IntradayActivity"]


class IntradayActivity:
    """The U-shaped activity curve over the NYSE session containing ``t`` (1 outside sessions).

    ``calendar=None`` gives a flat curve (1 everywhere), for tests that want a steady rate."""

    def __init__(
        self,
        calendar: MarketCalendar | None,
        *,
        open_boost: float = 2.0,
        close_boost: float = 1.2,
        decay: float = 0.05,
    ) -> None:
        if open_boost < 0 or close_boost < 0 or not 0 < decay <= 1:
            raise ValueError("need open_boost, close_boost >= 0 and 0 < decay <= 1")
        self.calendar = calendar
        self.open_boost = open_boost
        self.close_boost = close_boost
        self.decay = decay
        # The integral of the bumps over [0, 1] in closed form.
        self._mean = 1.0 + (open_boost + close_boost) * decay * (1.0 - math.exp(-1.0 / decay))

    def shape(self, u: float) -> float:
        """The multiplier at ``u`` in 0..1 of a session (its mean over 0..1 is 1)."""
        tau = self.decay
        bumps = self.open_boost * math.exp(-u / tau) + self.close_boost * math.exp(-(1.0 - u) / tau)
        return (1.0 + bumps) / self._mean

    def at(self, t: float) -> float:
        """The multiplier at epoch second ``t`` (UTC)."""
        if self.calendar is None:
            return 1.0
        window = self.calendar.window_at(t)
        if window is None:
            return 1.0
        return self.shape((t - window.open) / (window.close - window.open))
