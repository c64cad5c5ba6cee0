"""Health's resources are the service's: its own process and the processes under it (the close
analysis's), measured as health measures them (``ServiceResources``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tickstock.actors.health import ServiceResources

pytestmark = pytest.mark.timeout(60)

CHILD = textwrap.dedent("""
    import sys, time
    x = bytearray(300_000_000)
    x[::4096] = b'1' * len(x[::4096])
    print('ready', flush=True)
    if sys.argv[1] == 'burn':
        while True: pass
    time.sleep(60)
""")


def start(mode: str) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def test_the_memory_and_cpu_of_the_processes_under_the_service_are_the_service_s() -> None:
    alone = ServiceResources()
    own_mb = alone.measure()[1]
    idle, burning = start("idle"), start("burn")
    try:
        resources = ServiceResources()
        first_cpu, first_mb = resources.measure()
        assert first_mb >= own_mb + 2 * 280  # both children's 300 MB (in MiB: 286 each)
        assert first_cpu < 50  # a child's first reading is no rate yet
        time.sleep(1.0)
        cpu, mb = resources.measure()
        assert cpu >= 70  # the burning child's core
        assert mb >= own_mb + 2 * 280
    finally:
        for child in (idle, burning):
            child.kill()
            child.wait(10)
    cpu, mb = resources.measure()  # the children ended: no longer counted, no error
    assert mb < own_mb + 280 and cpu < 70


def test_a_child_that_ends_between_the_list_and_its_reading_is_skipped(monkeypatch) -> None:
    child = start("idle")
    resources = ServiceResources()
    resources.measure()
    original = psutil.Process.memory_info

    def ended(self):
        if self.pid == child.pid:
            raise psutil.NoSuchProcess(child.pid)
        return original(self)

    monkeypatch.setattr(psutil.Process, "memory_info", ended)
    try:
        cpu, mb = resources.measure()
        assert mb < 280 + ServiceResources().measure()[1]
    finally:
        child.kill()
        child.wait(10)
