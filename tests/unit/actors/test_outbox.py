"""Outbox: what many senders tell within the linger arrives merged, in order, never lost."""

from __future__ import annotations

import threading

import pytest

from tickstock.actors.outbox import Outbox, merge_runs
from tickstock.messages.commands import PersistResults, Ping, Publish

from .fakes import Recorder, wait_until

pytestmark = pytest.mark.timeout(10)


def test_merge_runs_merges_each_type_in_order_and_keeps_others():
    a, b, c = Publish(("a",)), Publish(("b", "c")), Publish(("d",))
    r1, r2 = PersistResults(("p1",), ("i1",)), PersistResults((), ("i2",))
    ping = Ping()
    out = merge_runs([a, r1, ping, b, r2, c])
    assert out == [Publish(("a", "b", "c", "d")), PersistResults(("p1",), ("i1", "i2")), ping]
    assert merge_runs([a]) == [a] and merge_runs([]) == []


def test_a_burst_told_from_many_threads_arrives_as_few_messages_with_everything_in_order():
    target = Recorder()
    outbox = Outbox(target, "test", linger=0.05)
    go = threading.Event()

    def sender(k: int) -> None:
        go.wait()
        for i in range(50):
            outbox.tell(Publish(((k, i),)))

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    assert wait_until(lambda: sum(len(m.events) for m in target.messages) == 200)
    assert len(target.messages) < 200  # merged
    events = [e for m in target.messages for e in m.events]
    for k in range(4):  # each sender's events in the order it told them
        assert [i for kk, i in events if kk == k] == list(range(50))
    outbox.close()


def test_a_lone_message_is_delivered_without_anything_else_told():
    target = Recorder()
    outbox = Outbox(target, "test", linger=0.001)
    outbox.tell(Publish(("x",)))
    assert wait_until(lambda: target.messages == [Publish(("x",))])
    outbox.close()


def test_close_delivers_what_is_pending_and_later_tells_go_straight_through():
    target = Recorder()
    outbox = Outbox(target, "test", linger=30.0)  # a linger far longer than the test's timeout
    outbox.tell(PersistResults(("p",)))
    outbox.close()  # cuts the linger short
    assert target.messages == [PersistResults(("p",))]
    outbox.tell(Publish(("late",)))
    assert target.messages[-1] == Publish(("late",))
