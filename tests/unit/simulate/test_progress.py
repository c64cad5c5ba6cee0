"""The progress line (throttled, lines written meanwhile land above it) and the summary line."""

from __future__ import annotations

import io
import re
import sys

from rich.console import Console

from tickstock.simulate import progress as progress_module
from tickstock.simulate.progress import ProgressLine, describe, summary
from tickstock.simulate.publish import RunStats


def test_summary_is_one_parsable_line() -> None:
    stats = RunStats(sent=1234, started=100.0, now=105.0)
    line = summary(stats, "tickstock:market:ticks")
    assert line == "sent 1234 ticks in 5.00 s (246.8 ticks/s) on tickstock:market:ticks"
    assert "\n" not in line


def test_describe_live_and_replay() -> None:
    live = describe(RunStats(sent=12_345, started=0.0, now=3725.0), "ch")
    assert live == "12,345 ticks sent  3.3/s  elapsed 1:02:05  -> ch"
    replay = describe(RunStats(sent=50, started=0.0, now=1.0, event_time=1741786260.0, total=200), "ch")
    assert replay.endswith("25% of 200  event time 2025-03-12 13:31:00Z")


def test_updates_are_throttled_and_the_final_one_is_drawn(monkeypatch) -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    line = ProgressLine("ch", console=console, refresh_per_second=4.0)
    drawn = []
    monkeypatch.setattr(line._live, "update", lambda renderable: drawn.append(str(renderable)))
    clock = iter(x * 0.01 for x in range(10_000))
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    with line:
        for i in range(100):  # one second of updates every 10 ms
            line.update(RunStats(sent=i, started=0.0, now=1.0))
        line.final(RunStats(sent=999, started=0.0, now=1.0))
    assert 4 <= len(drawn) <= 6  # ~4 a second, plus the final one
    assert drawn[-1].startswith("999 ticks sent")


def test_lines_written_to_stderr_meanwhile_land_above_the_line() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with ProgressLine("ch", console=console) as line:
        line.final(RunStats(sent=7, started=0.0, now=1.0))
        sys.stderr.write("NVDA: doji from 14:05Z\n")
        line.final(RunStats(sent=8, started=0.0, now=2.0))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert "NVDA: doji from 14:05Z" in text
    assert text.rstrip().splitlines()[-1].strip().startswith("8 ticks sent")
