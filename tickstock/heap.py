"""Python's cyclic garbage collector, kept away from bar closes.

Why: CPython's collector runs when enough allocations have piled up, i.e. during a bar close, the
moment the service allocates most. A full (generation-2) collection walks every object the process
holds: with 500 primed symbols it paused a close for ~110 ms (in-process, this machine), with
10,000 symbols for seconds -- far beyond the close -> event budget (tens of ms).

Policy (``HeapKeeper``):
- While a session starts (its actors built, each primed with its history), the automatic collector
  is paused: it would walk the growing heap again and again (a quarter of the priming time of
  5,000 symbols, this machine). Start-up allocates little that is cyclic; what it does is collected
  when the session is live.
- When a session is live (its symbols primed: the heap start-up built is in place), collect once and
  ``gc.freeze()`` everything that survived: frozen objects are never walked again by the automatic
  collector (they are still freed by reference counting as usual).
- Once a minute, at a quiet moment (``quiet_second`` seconds into the wall-clock minute, far from
  the closes at the minute's start + grace), collect what the last minute left and freeze the
  survivors. The automatic collector so only ever walks about a minute's new objects.
- From the start of each minute until that quiet moment -- the window of the minute's closes -- the
  automatic collector is paused; the quiet moment's collection resumes it. A close allocates most
  (every event of every symbol in flight at once), and even a young-generation collection then walks
  all of them: 6-16 ms per close at 3,000 symbols (this machine). Cycles made meanwhile wait at most
  until the quiet moment: the tick path (decode, fold) frees by reference counting, not cycles.
  The pause starts at the session timer's first tick of the minute (every second), before closes at
  the minute's start + grace (2 s).
- When the session ends (no close waits on it), ``gc.unfreeze()`` and one full collection, so a
  cycle that died after being frozen (a restarted actor's state, say) is reclaimed then, not never.

The process has one collector: the ``HeapKeeper`` belongs to the runtime, and the session calls it
(and logs what each collection did, with its session id). ``collector`` is the ``gc`` module in
production; tests pass a recorder.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Collection:
    """What one managed collection did."""

    reason: str
    collected: int       # unreachable objects found
    frozen: int          # objects in the permanent generation afterwards
    seconds: float


class HeapKeeper:
    """Schedules the collector (see the module); every method is cheap when there is nothing to do."""

    def __init__(self, collector: Any = gc, quiet_second: float = 30.0, perf_counter: Any = time.perf_counter) -> None:
        if not 0 <= quiet_second < 60:
            raise ValueError(f"quiet_second must be within a minute (0 <= s < 60), got {quiet_second!r}")
        self._gc = collector
        self.quiet_second = quiet_second
        self._perf_counter = perf_counter
        self._last_minute: int | None = None
        self._paused_for_closes = False

    @property
    def paused_for_closes(self) -> bool:
        """Whether the collector is paused for this minute's closes (until its quiet moment)."""
        return self._paused_for_closes

    def session_starting(self) -> None:
        """Pause the automatic collector until ``session_live`` or ``session_ended``."""
        self._gc.disable()

    def session_live(self, now: float) -> Collection:
        """Resume the collector; collect and freeze what start-up built; the next quiet moment is
        next minute's."""
        self._resume()
        self._last_minute = int(now // 60)
        return self._collect("session live", unfreeze=False)

    def tick(self, now: float) -> Collection | None:
        """Called on the session's timer (about every second). Before a minute's quiet second, pause
        the automatic collector for the minute's closes (unless this minute's collection is done
        already: the minute the session went live); once per minute, at or after the quiet second,
        collect the last minute's survivors, freeze them and resume the collector. Returns that
        collection, None when none was due."""
        minute = int(now // 60)
        if self._last_minute == minute:
            return None
        if now - minute * 60 < self.quiet_second:
            if not self._paused_for_closes:
                self._gc.disable()
                self._paused_for_closes = True
            return None
        self._last_minute = minute
        done = self._collect("quiet moment", unfreeze=False)
        self._resume()
        return done

    def session_ended(self) -> Collection:
        """Resume the collector (a start-up that failed paused it), unfreeze and collect everything:
        between sessions nothing waits on a pause."""
        self._resume()
        self._last_minute = None
        return self._collect("session ended", unfreeze=True)

    def _resume(self) -> None:
        self._paused_for_closes = False
        self._gc.enable()

    def _collect(self, reason: str, unfreeze: bool) -> Collection:
        started = self._perf_counter()
        if unfreeze:
            self._gc.unfreeze()
        collected = self._gc.collect()
        if not unfreeze:
            self._gc.freeze()
        return Collection(reason, collected, self._gc.get_freeze_count(), self._perf_counter() - started)
