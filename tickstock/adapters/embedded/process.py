"""Child processes for the embedded servers: spawned tied to this process (they die with it, even
after kill -9, by the kernel's parent-death signal) or detached (a daemon of their own), found
again through their pid files, and stopped by signal with a deadline.

Guarantees: every child runs in a session (and process group) of its own, so a Ctrl-C at the
terminal (SIGINT to the foreground group) reaches the service, which then stops them in order, not
the servers under it; ``spawn(..., detach=False)`` children get ``die_signal`` when the spawning
thread's process ends, however it ends; ``stop_process`` returns only once the process is gone (signal,
then SIGKILL after ``timeout``); ``alive_pid`` never names a process that is not ``executable``
(a pid file left behind and its pid reused by another program is ignored).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import psutil

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class EmbeddedError(RuntimeError):
    """An embedded server could not be started or stopped; the message says why (with its log)."""


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Something accepts TCP connections at ``host:port`` within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tied_to_this_process(die_signal: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child receives ``die_signal`` when the
    calling thread's process ends, however it ends (the kernel's parent-death signal)."""
    parent = os.getpid()

    def tie_to_parent() -> None:  # runs in the child, after a user switch (which would clear it)
        _libc.prctl(_PR_SET_PDEATHSIG, int(die_signal), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl: nobody would signal us
            os._exit(1)

    return tie_to_parent


def spawn(argv: list[str], log: Path, *, detach: bool, die_signal: int = signal.SIGTERM,
          user: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``argv`` in a session of its own, stdout and stderr appended to ``log``. ``detach``:
    it outlives this process; otherwise it receives ``die_signal`` when this process ends.
    ``user``: run as that system user (PostgreSQL refuses to run as root)."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=None if detach else tied_to_this_process(die_signal),
                                user=user, env=env, close_fds=True)


def alive_pid(pid: int | None, executable: Path) -> int | None:
    """``pid`` if it is a live process running ``executable``, else None."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        exe = proc.exe()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    try:
        return pid if os.path.samefile(exe, executable) else None
    except OSError:
        return None


def stop_process(pid: int, sig: int, timeout: float, child: subprocess.Popen | None = None) -> None:
    """Send ``sig`` to ``pid`` and wait until it is gone; SIGKILL after ``timeout`` seconds."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    if _wait_gone(pid, timeout, child):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not _wait_gone(pid, 10.0, child):
        raise EmbeddedError(f"process {pid} did not end after SIGKILL")


def _wait_gone(pid: int, timeout: float, child: subprocess.Popen | None) -> bool:
    if child is not None:  # our own child: reap it, or it stays a zombie
        try:
            child.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def read_pid(path: Path) -> int | None:
    """The pid on the first line of ``path`` (a pid file), or None."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
        return int(first) if first else None
    except (OSError, ValueError):
        return None


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a server log, for an error message."""
    try:
        text = path.read_text(errors="replace").rstrip().splitlines()
    except OSError as exc:
        return f"(no log: {errno.errorcode.get(exc.errno, exc)})"
    return "\n".join(text[-lines:]) or "(empty log)"
