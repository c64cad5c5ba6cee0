"""A subprocess launched ahead of the test that checks it (tests/conftest.py: head_start).

    run = Launched([sys.executable, "-m", "tickstock.bench", ...], workdir, deadline=390)
    finished = run.finish()   # exit code, stdout, stderr and seconds from launch to exit
    run.close()               # kills it if it is still running

Its output goes to files in ``workdir`` (a pipe would fill and block it while nobody reads), and a
thread records when it exited: a test that only looks minutes later still sees its real duration.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str
    seconds: float  # from the launch to the exit


class Launched:
    def __init__(self, argv: Sequence[str], workdir: Path, deadline: float, cwd: Path | None = None) -> None:
        """Start ``argv`` now; ``deadline``: seconds from now by which ``finish`` expects it ended."""
        self.deadline = deadline
        self.workdir = workdir
        self._stdout, self._stderr = workdir / "stdout.txt", workdir / "stderr.txt"
        self.started = time.monotonic()
        with open(self._stdout, "w") as stdout, open(self._stderr, "w") as stderr:
            self.process = subprocess.Popen(list(argv), cwd=cwd, stdout=stdout, stderr=stderr, text=True)
        self.ended_at: float | None = None
        self._waiter = threading.Thread(target=self._wait, name="launched-exit", daemon=True)
        self._waiter.start()

    def _wait(self) -> None:
        self.process.wait()
        self.ended_at = time.monotonic()

    def finish(self) -> Finished:
        """What it did, once it has exited; fails if it is still running at the deadline."""
        self._waiter.join(timeout=max(1.0, self.deadline - (time.monotonic() - self.started)))
        assert self.ended_at is not None, f"{self.process.args[:3]} still running {self.deadline:.0f} s after launch"
        return Finished(self.process.returncode, self._stdout.read_text(), self._stderr.read_text(),
                        self.ended_at - self.started)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
