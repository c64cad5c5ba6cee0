"""RestartPolicy: the one_for_one restart intensity of the SessionActor, driven with explicit times."""

from __future__ import annotations

import pytest

from tickstock.actors.supervision import (
    Action, RestartPolicy, SessionState, START_ORDER, STOP_ORDER, child_kind,
)

pytestmark = pytest.mark.timeout(10)

RUNNING = SessionState.RUNNING


def test_failures_within_budget_are_restarted():
    policy = RestartPolicy(max_restarts=3, within_seconds=60)
    decisions = [policy.on_failure(name, RUNNING, t) for name, t in
                 (("symbol:AAPL", 0.0), ("ingress", 1.0), ("publisher", 2.0))]
    assert [d.action for d in decisions] == [Action.RESTART] * 3
    assert policy.total_restarts == 3
    assert policy.last_restart_at == 2.0
    assert "3/3" in decisions[-1].reason


def test_one_failure_more_than_the_budget_within_the_window_ends_the_session():
    policy = RestartPolicy(max_restarts=3, within_seconds=60)
    for t in (0.0, 10.0, 20.0):
        assert policy.on_failure("symbol:AAPL", RUNNING, t).action is Action.RESTART
    decision = policy.on_failure("persistence", RUNNING, 59.0)
    assert decision.action is Action.END_SESSION
    assert "3 restarts" in decision.reason
    assert policy.total_restarts == 3  # the failure that ended the session is not a restart


def test_budget_counts_failures_across_all_children():
    policy = RestartPolicy(max_restarts=2, within_seconds=60)
    assert policy.on_failure("symbol:AAPL", RUNNING, 0.0).action is Action.RESTART
    assert policy.on_failure("symbol:MSFT", RUNNING, 1.0).action is Action.RESTART
    assert policy.on_failure("ingress", RUNNING, 2.0).action is Action.END_SESSION


def test_failures_spread_beyond_the_window_keep_being_restarted():
    policy = RestartPolicy(max_restarts=2, within_seconds=60)
    times = [0.0, 30.0, 61.0, 92.0, 123.0, 154.0]  # never 3 failures inside any 60 s window
    actions = [policy.on_failure("symbol:AAPL", RUNNING, t).action for t in times]
    assert actions == [Action.RESTART] * len(times)
    assert policy.total_restarts == len(times)


def test_window_edge_a_failure_exactly_window_seconds_later_still_counts():
    policy = RestartPolicy(max_restarts=1, within_seconds=60)
    assert policy.on_failure("ingress", RUNNING, 0.0).action is Action.RESTART
    assert policy.on_failure("ingress", RUNNING, 60.0).action is Action.END_SESSION
    policy2 = RestartPolicy(max_restarts=1, within_seconds=60)
    assert policy2.on_failure("ingress", RUNNING, 0.0).action is Action.RESTART
    assert policy2.on_failure("ingress", RUNNING, 60.5).action is Action.RESTART


def test_zero_restarts_allowed_ends_on_first_failure():
    policy = RestartPolicy(max_restarts=0, within_seconds=60)
    assert policy.on_failure("symbol:AAPL", RUNNING, 0.0).action is Action.END_SESSION


def test_failure_while_starting_ends_the_session_and_is_not_counted():
    policy = RestartPolicy(max_restarts=3, within_seconds=60)
    decision = policy.on_failure("persistence", SessionState.STARTING, 0.0)
    assert decision.action is Action.END_SESSION
    assert "start-up" in decision.reason
    assert policy.total_restarts == 0


@pytest.mark.parametrize("state", [SessionState.STOPPING, SessionState.STOPPED, SessionState.FAILED])
def test_failure_while_stopping_or_stopped_is_ignored(state):
    policy = RestartPolicy(max_restarts=0, within_seconds=60)
    for name in ("symbol:AAPL", "ingress", "no-such-kind"):
        assert policy.on_failure(name, state, 0.0).action is Action.IGNORE
    assert policy.total_restarts == 0


@pytest.mark.parametrize("name", ["health", "mystery:thing", ""])
def test_unknown_child_kind_ends_the_session(name):
    policy = RestartPolicy(max_restarts=3, within_seconds=60)
    decision = policy.on_failure(name, RUNNING, 0.0)
    assert decision.action is Action.END_SESSION
    assert "not restartable" in decision.reason
    assert policy.total_restarts == 0


def test_child_kind_and_orders():
    assert child_kind("symbol:BRK.B") == "symbol"
    assert child_kind("ingress") == "ingress"
    assert START_ORDER == ("publisher", "persistence", "symbols", "ingress")
    assert STOP_ORDER == tuple(reversed(START_ORDER))
