"""Run ``python -m tickstock.actors`` as a subprocess and watch Redis from outside, as the dashboard does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import yaml

from tickstock.adapters.redis.keys import delete_keys_with_prefix

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TICKSTOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# Every key prefix e2e_config handed out in this process, in order.
_PREFIXES: list[str] = []


def e2e_config(tmp_path: Path, dsn: str, **overrides: Any) -> tuple[Path, dict]:
    """A config file whose channels and keys carry a unique prefix, so runs never see each other.
    Its keys are deleted after the test that made it, or at the end of the session for a config
    made outside a test (a run launched ahead of its test): tests/e2e/conftest.py."""
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    prefix = f"e2e{uuid.uuid4().hex[:8]}:"
    _PREFIXES.append(prefix)
    base["channels"] = {k: prefix + v for k, v in base["channels"].items()}
    base["keys"] = {k: prefix + v for k, v in base["keys"].items()}
    base["database"]["url"] = dsn
    base["redis"]["url"] = REDIS_URL
    base["universes"] = {"test:e2e": ["AAPL", "MSFT", "NVDA"]}
    base["session"].update(universe="test:e2e", auto_start=False, heartbeat_interval_seconds=2,
                           session_key_ttl_seconds=10, reannounce_interval_seconds=5,
                           health_interval_seconds=3)
    base["bars"]["grace_seconds"] = 0.5
    # A write-ahead log of the test's own: the log is locked by one service at a time.
    base["persistence"]["spill_dir"] = str(tmp_path / "spill")
    base["http"]["enabled"] = False
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        base[section][key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base))
    return path, base


def prefixes_made() -> int:
    """How many prefixes e2e_config has handed out so far (a mark for ``delete_keys_of_configs``)."""
    return len(_PREFIXES)


def delete_keys_of_configs(since: int = 0) -> int:
    """Delete the keys under the prefixes e2e_config handed out from mark ``since`` on (the
    service's heartbeat key has no TTL, by the interface: without this each run would leave one in
    the shared Redis). Returns how many keys were deleted."""
    return sum(delete_keys_with_prefix(REDIS_URL, prefix) for prefix in _PREFIXES[since:])


class Watcher:
    """Subscribes to every output channel before the service starts and keeps what it saw."""

    def __init__(self, channels: dict[str, str], read_on_hearing: dict[str, str] | None = None) -> None:
        """``read_on_hearing``: {channel name: key}. On hearing a message on that channel the
        watcher reads the key at once, as a dashboard does; ``read_when_heard(name)`` lists the
        values (bytes or None) in order."""
        self.client = redis.Redis.from_url(REDIS_URL)
        self.read_on_hearing = dict(read_on_hearing or {})
        self.read_at_hearing: list[tuple[str, bytes | None]] = []
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.by_name = {v: k for k, v in channels.items()}
        self.pubsub.subscribe(*[v for k, v in channels.items() if k != "ticks"])
        self.messages: list[tuple[str, dict]] = []
        self.received_at: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.pubsub.get_message(timeout=0.1)
            if msg and msg["type"] == "message":
                payload = json.loads(msg["data"])  # one JSON object per PUBLISH, never a batch
                name = self.by_name[msg["channel"].decode()]
                key = self.read_on_hearing.get(name)
                value = self.client.get(key) if key is not None else None
                with self._lock:
                    if key is not None:
                        self.read_at_hearing.append((name, value))
                    self.messages.append((name, payload))
                    self.received_at.append(time.time())

    def read_when_heard(self, name: str) -> list[bytes | None]:
        with self._lock:
            return [value for n, value in self.read_at_hearing if n == name]

    def on(self, name: str) -> list[dict]:
        with self._lock:
            return [p for n, p in self.messages if n == name]

    def timed(self, name: str) -> list[tuple[float, dict]]:
        """(received at, payload) of everything seen on ``name``, in arrival order."""
        with self._lock:
            return [(t, p) for t, (n, p) in zip(self.received_at, self.messages) if n == name]

    def wait_for(self, name: str, predicate=lambda p: True, timeout: float = 30.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for payload in self.on(name):
                if predicate(payload):
                    return payload
            time.sleep(0.05)
        raise AssertionError(f"nothing on {name} matching within {timeout}s; saw {[n for n, _ in self.messages]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.pubsub.close()


class Service:
    """The service under test, as a subprocess with its log captured."""

    def __init__(self, config: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ("--now",)) -> None:
        env = {**os.environ, "TICKSTOCK_CONFIG": str(config), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        env.pop("TICKSTOCK_INJECT_FAULT", None) if not extra_env or "TICKSTOCK_INJECT_FAULT" not in extra_env else None
        self.log_path = config.parent / "service.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "tickstock.actors", *args], cwd=REPO, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def terminate(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def publish_tick(client: redis.Redis, channel: str, symbol: str, price: float, volume: int, ts: float) -> None:
    client.publish(channel, json.dumps({"type": "market_tick", "symbol": symbol, "price": price,
                                        "volume": volume, "timestamp": ts, "source": "e2e"}))


def sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def write_config(directory: Path, cfg: dict) -> Path:
    """Write an ``e2e_config`` dict again in ``directory`` (created): a second service process with
    the same channels, keys and database gets a log of its own there."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def numsub(client: redis.Redis, channel: str) -> int:
    """How many connections the Redis server counts as subscribed to ``channel``: seen from
    outside, whether the service is (re-)subscribed."""
    return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))
