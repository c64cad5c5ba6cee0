"""The load generator's schedule: how many ticks are due after ``elapsed`` seconds, and when a count
falls due. Pure arithmetic on a monotonic clock, no sleeping here.

A rate of 0 means flat out (everything is due at once). A burst ``FxS/E`` multiplies the rate by ``F``
during the last ``S`` seconds of every ``E`` (``4x1/10``: every 10 s, 1 s at four times the rate), so a
run starts at the base rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_BURST = re.compile(r"^\s*(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Burst:
    factor: float   # rate multiplier during a burst
    seconds: float  # burst length
    every: float    # period: one burst at the end of each

    def __post_init__(self) -> None:
        if not (self.factor > 0 and 0 < self.seconds <= self.every):
            raise ValueError(f"burst needs factor > 0 and 0 < seconds <= every, got {self}")

    @classmethod
    def parse(cls, text: str) -> Burst:
        """``"4x1/10"`` -> Burst(4, 1, 10); ValueError for anything else."""
        match = _BURST.match(text)
        if not match:
            raise ValueError(f"burst {text!r} is not FACTORxSECONDS/EVERY, e.g. 4x1/10")
        return cls(float(match[1]), float(match[2]), float(match[3]))

    def __str__(self) -> str:
        return f"{self.factor:g}x{self.seconds:g}/{self.every:g}"


@dataclass(frozen=True)
class Schedule:
    rate: float                     # ticks/s at the base rate; 0 = flat out
    burst: Burst | None = None
    batch_seconds: float = 0.005    # a batch is this much of the base rate...
    max_batch: int = 2000           # ...but never more ticks than this in one write

    def __post_init__(self) -> None:
        if self.rate < 0 or not math.isfinite(self.rate):
            raise ValueError(f"rate must be finite and >= 0, got {self.rate!r}")
        if self.max_batch < 1 or self.batch_seconds <= 0:
            raise ValueError("max_batch must be >= 1 and batch_seconds > 0")

    @property
    def flat_out(self) -> bool:
        return self.rate == 0

    @property
    def batch(self) -> int:
        """Ticks per write at the base rate (1..max_batch)."""
        if self.flat_out:
            return self.max_batch
        return max(1, min(self.max_batch, round(self.rate * self.batch_seconds)))

    def _per_period(self) -> tuple[float, float, float]:
        b = self.burst
        assert b is not None
        calm = b.every - b.seconds
        return calm, self.rate * calm, self.rate * (calm + b.factor * b.seconds)

    def cumulative(self, elapsed: float) -> float:
        """Ticks due by ``elapsed`` seconds (a real number; ``inf`` when flat out)."""
        if elapsed <= 0:
            return 0.0
        if self.flat_out:
            return math.inf
        if self.burst is None:
            return self.rate * elapsed
        calm, at_calm_end, per_period = self._per_period()
        periods, within = divmod(elapsed, self.burst.every)
        done = periods * per_period
        if within <= calm:
            return done + self.rate * within
        return done + at_calm_end + self.rate * self.burst.factor * (within - calm)

    def due(self, elapsed: float) -> int | float:
        """Whole ticks due by ``elapsed`` (``inf`` when flat out)."""
        total = self.cumulative(elapsed)
        return total if math.isinf(total) else int(math.floor(total + 1e-9))

    def time_of(self, count: float) -> float:
        """The elapsed second at which ``count`` ticks are due (0 when flat out): the inverse of
        ``cumulative``."""
        if count <= 0 or self.flat_out:
            return 0.0
        if self.burst is None:
            return count / self.rate
        calm, at_calm_end, per_period = self._per_period()
        periods, rest = divmod(count, per_period)
        start = periods * self.burst.every
        if rest <= at_calm_end:
            return start + rest / self.rate
        return start + calm + (rest - at_calm_end) / (self.rate * self.burst.factor)

    def mean_rate(self) -> float:
        """Average ticks/s over whole periods (the base rate without bursts; 0 when flat out)."""
        if self.flat_out or self.burst is None:
            return self.rate
        return self._per_period()[2] / self.burst.every
