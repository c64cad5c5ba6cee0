"""The receive ceiling's loop (against a fake feed) and its rate search (pure)."""

import time

import pytest

from tickstock.adapters.redis.feed import FeedDisconnected
from tickstock.bench.ceiling import next_rate, receive
from tickstock.bench.loadgen import END_MARKER
from tickstock.bench.resp import stamp, tick_payload


class FakeFeed:
    def __init__(self, reads, then=None):
        self.reads = list(reads)
        self.then = then

    def read(self, timeout):
        if self.reads:
            return self.reads.pop(0)
        if self.then:
            raise self.then
        return []


def ticks(n, symbol="AAPL"):
    now = time.time()
    return [stamp(tick_payload(symbol, 100.0 + i * 0.01, 1), now) for i in range(n)]


def test_receive_folds_every_tick_until_the_end_marker():
    feed = FakeFeed([ticks(3), [b"not json", *ticks(2, "MSFT")], [END_MARKER], ticks(5)])
    out = receive(feed, ["AAPL", "MSFT"], grace=2.0, max_skew=3600)
    assert (out.received, out.folded, out.rejected, out.disconnected) == (6, 5, 1, "")
    assert out.first_at <= out.last_at and sum(out.per_second.values()) == 6


def test_receive_counts_unknown_symbols_as_not_folded():
    out = receive(FakeFeed([ticks(2, "ZZZZ"), ticks(1), [END_MARKER]]), ["AAPL"], 2.0, 3600)
    assert (out.received, out.folded) == (3, 1)


def test_receive_stops_at_a_disconnection_and_says_so():
    out = receive(FakeFeed([ticks(4)], then=FeedDisconnected("server closed the connection")), ["AAPL"], 2.0, 3600)
    assert out.folded == 4 and out.disconnected == "server closed the connection"


def test_the_search_goes_down_after_a_loss_and_up_after_a_clean_run():
    lossy = {"lost": 10, "disconnected": "x", "rate": 200_000.0, "receiver_cpu_share": 0.9}
    assert next_rate(300_000, lossy) == 0.85 * 200_000
    assert next_rate(0, lossy) == 0.85 * 200_000
    clean = {"lost": 0, "disconnected": "", "rate": 100_000.0, "receiver_cpu_share": 0.5}
    assert next_rate(100_000, clean) == 125_000          # at most +25%
    busy = {**clean, "receiver_cpu_share": 0.9}
    assert next_rate(100_000, busy) == pytest.approx(100_000 * 0.95 / 0.9)
    saturated = {**clean, "receiver_cpu_share": 1.0}
    assert next_rate(100_000, saturated) == 102_000      # always a little higher
