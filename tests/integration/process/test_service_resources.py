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
    own_mb = alone.measure(0.0)[1]
    idle, burning = start("idle"), start("burn")
    try:
        resources = ServiceResources()
        first_cpu, first_mb = resources.measure(0.0)
        assert first_mb >= own_mb + 2 * 280  # both children's 300 MB (in MiB: 286 each)
        assert first_cpu < 50  # a child's first reading is no rate yet
        time.sleep(1.0)
        cpu, mb = resources.measure(1.0)
        assert cpu >= 70  # the burning child's core
        assert mb >= own_mb + 2 * 280
    finally:
        for child in (idle, burning):
            child.kill()
            child.wait(10)
    cpu, mb = resources.measure(2.0)  # the children ended: no longer counted, no error
    assert mb < own_mb + 280 and cpu < 70


def test_a_child_that_ends_between_the_list_and_its_reading_is_skipped(monkeypatch) -> None:
    child = start("idle")
    resources = ServiceResources()
    resources.measure(0.0)
    original = psutil.Process.memory_info

    def ended(self):
        if self.pid == child.pid:
            raise psutil.NoSuchProcess(child.pid)
        return original(self)

    monkeypatch.setattr(psutil.Process, "memory_info", ended)
    try:
        cpu, mb = resources.measure(1.0)
        assert mb < 280 + ServiceResources().measure(0.0)[1]
    finally:
        child.kill()
        child.wait(10)


def test_the_processes_are_listed_every_interval_and_at_once_when_one_ended(monkeypatch) -> None:
    # Listing reads every process of the machine: not on every measure (health measures each second).
    listed = []
    original = psutil.Process.children

    def counting(self, recursive=False):
        listed.append(recursive)
        return original(self, recursive)

    monkeypatch.setattr(psutil.Process, "children", counting)
    first = start("idle")
    try:
        resources = ServiceResources(relist_seconds=10.0)
        one = resources.measure(0.0)[1]
        assert len(listed) == 1
        for now in (1.0, 5.0, 9.9):
            assert resources.measure(now)[1] >= one - 5  # still counted, read without listing
        assert len(listed) == 1
        resources.measure(10.0)
        assert len(listed) == 2
        second = start("idle")  # a successor, as a restarted analysis starts its process
        first.kill()
        first.wait(10)
        mb = resources.measure(11.0)[1]  # the known one ended: listed again at once, the new one counted
        assert len(listed) == 3 and mb >= one - 5
        second.kill()
        second.wait(10)
    finally:
        first.kill()
        first.wait(10)
