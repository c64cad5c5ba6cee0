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


def attempt(target, lost=0, rate=None, cpu=0.5):
    return {"target_rate": target, "lost": lost, "disconnected": "", "rate": rate or target,
            "generator_rate": target or 2e6, "receiver_cpu_share": cpu}


def test_the_search_starts_below_what_was_read_flat_out():
    assert next_rate([attempt(0, lost=250_000, rate=300_000)]) == pytest.approx(0.85 * 300_000)


def test_the_search_goes_up_by_the_receiver_s_spare_cpu_until_a_loss():
    assert next_rate([attempt(0, lost=1, rate=300_000), attempt(100_000)]) == pytest.approx(125_000)  # at most +25%
    assert next_rate([attempt(100_000, cpu=0.9)]) == pytest.approx(100_000 * 0.95 / 0.9)
    assert next_rate([attempt(100_000, cpu=1.0)]) == pytest.approx(102_000)                          # always higher


def test_the_search_bisects_between_the_best_clean_and_the_lowest_lossy_rate():
    tries = [attempt(0, lost=9, rate=300_000), attempt(270_000), attempt(336_000), attempt(420_000),
             attempt(484_000, lost=200_000, rate=320_000)]
    assert next_rate(tries) == pytest.approx(452_000)
    tries.append(attempt(452_000, lost=5))
    assert next_rate(tries) == pytest.approx(436_000)


def test_the_search_goes_down_while_everything_loses():
    tries = [attempt(0, lost=9, rate=300_000), attempt(255_000, lost=7, rate=240_000)]
    assert next_rate(tries) == pytest.approx(0.85 * 240_000)
