"""The inline floor split over processes (tickstock/bench/shards.py), against the real Redis: every
shard runs its share with channels of its own and its closes lined up with the others'; the figure
per close is the slowest shard's; a shard that fails or dies is reported, never waited for."""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path

import pytest
import yaml

from tickstock.bench.sandbox import REDIS_URL
from tickstock.bench import shards
from tickstock.bench.shards import run_sharded_floor
from tickstock.config import ChannelSettings, Settings, validate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "META"]
CONFIG = Path(__file__).resolve().parents[3] / "config.yaml"


def settings() -> Settings:
    """config.yaml's, as the benchmark runs it: its fallback definitions are the baseline set."""
    return validate(yaml.safe_load(CONFIG.read_text()))


def channels() -> ChannelSettings:
    prefix = f"shardtest{uuid.uuid4().hex[:8]}:"
    defaults = ChannelSettings()
    return ChannelSettings(**{name: prefix + getattr(defaults, name) for name in ChannelSettings.__struct_fields__})


def test_each_shard_runs_its_share_and_the_slowest_close_is_the_figure():
    got = run_sharded_floor(SYMBOLS, settings(), REDIS_URL, channels(), shards=2, closes=3, prime_bars=30)
    assert got["shards"] == 2 and got["symbols_per_shard"] == [3, 2]  # every 2nd symbol: 3 + 2
    assert got["per_close_ms"]["n"] == 3 and len(got["per_close_series_ms"]) == 3
    assert len(got["per_shard_p50_ms"]) == 2
    assert got["per_close_ms"]["p50"] >= min(got["per_shard_p50_ms"])  # per close: the slower shard
    assert got["events_published"] > 0 and got["events_received"] == got["events_published"]  # own channels


def test_a_failing_shard_is_reported_not_waited_for():
    with pytest.raises(RuntimeError, match="floor shard\\(s\\) failed: 0: .*1: "):
        run_sharded_floor(SYMBOLS, Settings(), "redis://127.0.0.1:1/0", channels(), shards=2, closes=2)


def test_a_shard_that_dies_without_a_report_is_reported():
    class Dead:
        exitcode = -9

        def is_alive(self):
            return False

    results = multiprocessing.get_context("spawn").Queue()
    results.put((1, [1.0], 1, 1, None))
    reports = sorted(shards._collect(results, [Dead(), Dead()]))
    assert reports[0] == (0, None, 0, 0, "exited with code -9 and no report") and reports[1][4] is None


def test_one_shard_is_refused():
    with pytest.raises(ValueError, match="shards must be >= 2"):
        run_sharded_floor(SYMBOLS, Settings(), REDIS_URL, channels(), shards=1)


def test_the_floor_calls_before_close_once_before_each_timed_close():
    from tickstock.bench.floor import run_floor

    calls: list[int] = []
    got = run_floor(SYMBOLS[:2], settings(), REDIS_URL, channels(), closes=3, log=lambda text: None,
                    before_close=lambda: calls.append(len(calls)))
    assert calls == [0, 1, 2] and got["per_close_ms"]["n"] == 3
    assert list(got["phases_p50_ms"]) == ["close_bars", "analysis", "events", "rows", "encode", "publish"]
