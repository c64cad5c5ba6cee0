"""process.py with real (tiny) processes: a tied child dies with its parent, even after kill -9;
a pid file naming another program is ignored; stop_process waits for the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tickstock.adapters.embedded.process import alive_pid, read_pid, spawn, stop_process

SLEEP = Path(shutil.which("sleep") or "/bin/sleep")

PARENT = """
import sys, time
from pathlib import Path
from tickstock.adapters.embedded.process import spawn
child = spawn([sys.argv[1], "60"], Path(sys.argv[2]), detach=sys.argv[3] == "detach")
print(child.pid, flush=True)
time.sleep(60)
"""


def _child_of_killed_parent(tmp_path: Path, mode: str) -> psutil.Process:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(SLEEP), str(tmp_path / "log"), mode],
                              stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    parent.kill()  # kill -9: no Python clean-up runs
    parent.wait()
    return child


def _gone(proc: psutil.Process, timeout: float = 5.0) -> bool:
    try:
        proc.wait(timeout)
        return True
    except psutil.TimeoutExpired:
        return False


def test_a_tied_child_dies_with_its_parent_even_after_kill_9(tmp_path: Path) -> None:
    assert _gone(_child_of_killed_parent(tmp_path, "tied"))


def test_a_terminal_ctrl_c_to_the_parents_group_does_not_reach_the_child(tmp_path: Path) -> None:
    child = spawn([str(SLEEP), "60"], tmp_path / "log", detach=False)
    try:
        assert os.getpgid(child.pid) != os.getpgid(0) and os.getsid(child.pid) == child.pid
    finally:
        stop_process(child.pid, signal.SIGTERM, 5, child)


def test_a_detached_child_outlives_its_parent(tmp_path: Path) -> None:
    child = _child_of_killed_parent(tmp_path, "detach")
    try:
        assert not _gone(child, 0.5)
        assert os.getsid(child.pid) == child.pid  # a session of its own
    finally:
        child.kill()


def test_alive_pid_names_only_the_expected_program(tmp_path: Path) -> None:
    child = spawn([str(SLEEP), "60"], tmp_path / "log", detach=False)
    try:
        pidfile = tmp_path / "x.pid"
        pidfile.write_text(f"{child.pid}\n/some/dir\n")
        assert read_pid(pidfile) == child.pid
        assert alive_pid(child.pid, SLEEP) == child.pid
        assert alive_pid(child.pid, Path(sys.executable)) is None  # a reused pid: not ours
        assert alive_pid(os.getpid() + 10_000_000, SLEEP) is None
    finally:
        stop_process(child.pid, signal.SIGTERM, 5, child)
    assert child.poll() is not None
    assert alive_pid(child.pid, SLEEP) is None


def test_stop_process_kills_what_ignores_the_signal(tmp_path: Path) -> None:
    child = spawn([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(60)"], tmp_path / "log", detach=False)
    deadline = time.monotonic() + 10
    while "ready" not in (tmp_path / "log").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    stop_process(child.pid, signal.SIGTERM, 0.5, child)
    assert child.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5
