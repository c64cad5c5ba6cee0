"""Whether a process has ended, seen from outside through /proc (a zombie counts as ended: its
parent has not reaped it yet, but it runs no more)."""

from __future__ import annotations

import time


def gone(pid: int, within: float = 15.0) -> bool:
    """Whether ``pid`` has ended, or ends within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
