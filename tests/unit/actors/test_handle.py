"""ChildHandle: a stable address whose tells survive a child's death and restart."""

from __future__ import annotations

import pykka
import pytest

from tickstock.actors.handle import ChildHandle
from tickstock.messages.commands import Ping

from .fakes import Recorder, RecordingChild

pytestmark = pytest.mark.timeout(10)


class DeadRef:
    """A reference to a child that has died: every tell raises ActorDeadError."""

    def __init__(self) -> None:
        self.attempts = 0

    def tell(self, message):
        self.attempts += 1
        raise pykka.ActorDeadError("dead")

    def is_alive(self) -> bool:
        return False


def test_tell_to_a_live_ref_is_delivered_at_once():
    live = Recorder()
    handle = ChildHandle("publisher", live)
    handle.tell("a")
    handle.tell("b")
    assert live.messages == ["a", "b"]


def test_tells_to_a_dead_ref_are_kept_and_delivered_in_order_to_the_replacement():
    dead = DeadRef()
    handle = ChildHandle("symbol:AAPL", dead)
    for m in ("m1", "m2", "m3"):
        handle.tell(m)  # never raises
    assert dead.attempts == 3
    replacement = Recorder()
    handle.replace(replacement)
    assert replacement.messages == ["m1", "m2", "m3"]
    handle.tell("m4")
    assert replacement.messages == ["m1", "m2", "m3", "m4"]
    assert handle.ref is replacement


def test_tells_before_any_ref_are_kept_for_the_first_child():
    handle = ChildHandle("ingress")
    handle.tell(1)
    handle.tell(2)
    first = Recorder()
    handle.replace(first)
    assert first.messages == [1, 2]


def test_pending_is_bounded_and_overflow_counted():
    handle = ChildHandle("persistence", DeadRef(), max_pending=2)
    for m in range(5):
        handle.tell(m)
    assert handle.dropped == 3
    replacement = Recorder()
    handle.replace(replacement)
    assert replacement.messages == [0, 1]


def test_pending_messages_reach_a_real_restarted_actor_in_order():
    log: list = []
    old_received: list = []
    old = RecordingChild.start("old", old_received, log)
    handle = ChildHandle("symbol:AAPL", old)
    handle.tell("before-death")
    old.stop()
    assert not handle.is_alive()
    handle.tell("while-dead-1")
    handle.tell("while-dead-2")
    new_received: list = []
    new = RecordingChild.start("new", new_received, log)
    handle.replace(new)
    handle.tell("after-restart")
    assert handle.ask(Ping(), timeout=2) is True
    assert old_received == ["before-death"]
    assert new_received == ["while-dead-1", "while-dead-2", "after-restart", Ping()]
    assert handle.is_alive()


def test_ask_without_a_ref_raises_actor_dead_error():
    handle = ChildHandle("ingress")
    with pytest.raises(pykka.ActorDeadError):
        handle.ask(Ping(), timeout=1)
    assert not handle.is_alive()
    assert handle.mailbox_depth() == 0


def test_ask_a_dead_actor_raises_actor_dead_error():
    ref = RecordingChild.start("x", [], [])
    ref.stop()
    handle = ChildHandle("x", ref)
    with pytest.raises(pykka.ActorDeadError):
        handle.ask(Ping(), timeout=1)


def test_stop_is_safe_on_a_missing_or_dead_child_and_stops_a_live_one():
    ChildHandle("none").stop(timeout=1)  # no ref: no error
    log: list = []
    ref = RecordingChild.start("child", [], log)
    handle = ChildHandle("child", ref)
    handle.tell("queued")
    handle.stop(timeout=2)
    assert not ref.is_alive()
    assert log == [("recv", "child", "queued"), ("stop", "child")]  # queued work done before stopping
    handle.stop(timeout=1)  # already dead: no error


def test_tell_racing_a_replace_is_still_delivered_to_the_replacement():
    replacement = Recorder("replacement")

    class DyingRef:
        """The old child: while a tell to it is in flight, the supervisor restarts it."""

        handle: ChildHandle

        def tell(self, message):
            self.handle.replace(replacement)  # what the session thread does concurrently
            raise pykka.ActorDeadError("dead")

        def is_alive(self):
            return False

    dying = DyingRef()
    handle = dying.handle = ChildHandle("publisher", dying)
    handle.tell("pattern-event")
    assert replacement.messages == ["pattern-event"]
