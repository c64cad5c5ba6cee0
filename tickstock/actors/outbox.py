"""Outbox: many senders, one receiver; what is told within ``linger`` seconds arrives as one message.

Why: at a bar close every symbol actor tells the publisher and the persistence actor its results
within a few milliseconds of each other. Each ``tell`` to a ``ThreadingActor`` wakes its thread
(~30 us of CPU on the one GIL), so 500 symbols made ~1,000 hand-offs per close, most of the time
between the analysis and the last event on Redis. An outbox turns them into a few dozen: the first
message told starts a ``linger`` wait, and everything told meanwhile goes out merged.

Guarantees:
- Nothing is lost or reordered: messages of one type are merged in the order they were told
  (``merge(messages)`` of that type); a message type without ``merge`` is sent alone, in order.
- A message waits at most ``linger`` seconds (plus scheduling) before it is told to the target.
- ``close()`` sends whatever is pending, then stops the thread; a ``tell`` after ``close`` is sent
  at once, unmerged.
- The target is told from the outbox's own thread; ``tell`` never blocks the sender beyond a lock.
"""

from __future__ import annotations

import threading
from typing import Any


class Outbox:
    def __init__(self, target: Any, name: str, linger: float = 0.001) -> None:
        self.target = target
        self.name = name
        self.linger = linger
        self._pending: list[Any] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()  # cuts a linger short: close() never waits for one
        self._closed = False
        self.told = 0
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name=f"outbox-{name}", daemon=True)
        self._thread.start()

    def tell(self, message: Any) -> None:
        with self._lock:
            if not self._closed:
                pending = self._pending
                pending.append(message)
                self.told += 1
                if len(pending) == 1:  # the first of a batch wakes the thread; it takes them all
                    self._wake.set()
                return
        self.target.tell(message)  # closed: no merging any more, but never dropped

    def is_alive(self) -> bool:
        return self.target.is_alive()

    def close(self) -> None:
        """Send what is pending and stop; idempotent."""
        with self._lock:
            self._closed = True
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._flush()  # whatever the thread had not taken (it did not run, or timed out)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if not self._closed:
                self._closing.wait(self.linger)  # let the rest of the burst arrive
            self._wake.clear()
            self._flush()
            if self._closed:
                return

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        for message in merge_runs(batch):
            self.target.tell(message)
            self.sent += 1


def merge_runs(messages: list[Any]) -> list[Any]:
    """Messages of the same mergeable type become one (``type.merge``), placed where the first of
    them was; unmergeable messages stay as they are. Order within each type is kept."""
    out: list[Any] = []
    groups: dict[type, list[Any]] = {}
    slots: dict[type, int] = {}
    for message in messages:
        cls = type(message)
        if getattr(cls, "merge", None) is None:
            out.append(message)
            continue
        if cls not in groups:
            groups[cls] = []
            slots[cls] = len(out)
            out.append(None)
        groups[cls].append(message)
    for cls, group in groups.items():
        out[slots[cls]] = group[0] if len(group) == 1 else cls.merge(group)
    return out
