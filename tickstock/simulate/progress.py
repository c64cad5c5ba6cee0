"""What the simulator shows: a live progress line on a terminal (rich), a one-line summary at the end.

``ProgressLine`` redraws one line in place (ticks sent, rate, elapsed, and for a replay the event
time reached and the share done), at most ``refresh_per_second`` times a second however often it
is updated; lines printed meanwhile (loguru, through ``sys.stderr``) appear above it. ``summary``
is the single line printed when a run ends, on a terminal or not: ``sent 1234 ticks in 5.00 s
(246.8 ticks/s) on tickstock:market:ticks``.
"""

from __future__ import annotations

import time
from rich.console import Console
from rich.live import Live
from rich.text import Text

from tickstock.simulate.publish import RunStats

__all__ = ["ProgressLine", "describe", "summary"]


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _hms(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def describe(stats: RunStats, channel: str) -> str:
    """The progress line's text."""
    text = f"{stats.sent:,} ticks sent  {stats.rate:,.1f}/s  elapsed {_clock(stats.elapsed)}  -> {channel}"
    if stats.total is not None:
        share = 100.0 * stats.sent / stats.total if stats.total else 100.0
        text += f"  {share:.0f}% of {stats.total:,}"
        if stats.event_time is not None:
            text += f"  event time {_hms(stats.event_time)}"
    return text


def summary(stats: RunStats, channel: str) -> str:
    """One line for the end of a run (parsable: ``sent N ticks``)."""
    return (f"sent {stats.sent} ticks in {stats.elapsed:.2f} s ({stats.rate:.1f} ticks/s) on {channel}")


class ProgressLine:
    """A rich Live line on ``console`` (default: one on stderr)."""

    def __init__(self, channel: str, console: Console | None = None, refresh_per_second: float = 4.0) -> None:
        self.channel = channel
        self._console = console or Console(stderr=True)
        self._live = Live(Text(""), console=self._console, refresh_per_second=refresh_per_second,
                          transient=False, redirect_stdout=False, redirect_stderr=True)
        self._min_gap = 1.0 / refresh_per_second
        self._last = 0.0

    def __enter__(self) -> ProgressLine:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def update(self, stats: RunStats) -> None:
        now = time.monotonic()
        if now - self._last < self._min_gap:
            return
        self._last = now
        self._live.update(Text(describe(stats, self.channel), style="bold"))

    def final(self, stats: RunStats) -> None:
        """Draw the last figures whatever the throttle says."""
        self._last = 0.0
        self.update(stats)
