"""The benchmark's Sampler counts the service's processes together: a child's memory and CPU (the
analysis process) are the service's too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tickstock.bench.observe import Sampler

pytestmark = pytest.mark.timeout(60)

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_a_child_s_rss_and_cpu_are_counted_with_its_parent_s() -> None:
    # the parent idles; its child holds 200 MB and burns ~1 s of CPU, then says so
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import time\\nx = bytearray(200_000_000)\\nx[::4096] = b'1' * len(x[::4096])\\n"
            "end = time.process_time() + 1.0\\nwhile time.process_time() < end: pass\\n"
            "print('ready', flush=True)\\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
        print(child.stdout.readline().strip(), flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        sampler = Sampler(parent.pid, REDIS_URL, interval=3600)
        try:
            sample = sampler.sample_now()
        finally:
            sampler.close()
        assert sample is not None
        assert sample.rss >= 200_000_000  # the parent alone is ~10 MB
        assert sample.cpu >= 0.9
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait(10)


def test_the_subscription_is_found_with_its_addresses_listed_once_and_again_after_a_reconnect(monkeypatch) -> None:
    # Listing a process's TCP addresses walks all its descriptors: once, and again only when the
    # subscription is not among the addresses known (here: it reconnected).
    listed = []
    original = psutil.Process.net_connections

    def counting(self, kind="inet"):
        listed.append(kind)
        return original(self, kind)

    monkeypatch.setattr(psutil.Process, "net_connections", counting)
    subscriber = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, redis
        for _ in range(2):
            client = redis.Redis.from_url({REDIS_URL!r})
            pubsub = client.pubsub()
            pubsub.subscribe("tickstock:test:sampler")
            pubsub.get_message(timeout=5)
            print("subscribed", flush=True)
            sys.stdin.readline()
            pubsub.close()
            client.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert subscriber.stdout.readline().strip() == "subscribed"
    sampler = Sampler(subscriber.pid, REDIS_URL, interval=3600)  # samples once at once, on its thread
    try:
        deadline = time.monotonic() + 10
        while not sampler.samples and time.monotonic() < deadline:
            time.sleep(0.01)
        first = [*sampler.samples, *(sampler.sample_now() for _ in range(3))]
        assert all(s is not None and s.omem is not None and s.sub_id == first[0].sub_id for s in first)
        assert len(listed) == 1
        subscriber.stdin.write("\n")
        subscriber.stdin.flush()
        assert subscriber.stdout.readline().strip() == "subscribed"
        again = sampler.sample_now()
        assert again is not None and again.omem is not None and again.sub_id != first[0].sub_id
        assert len(listed) == 2
    finally:
        sampler.close()
        subscriber.kill()
        subscriber.wait(10)
