"""RestartPolicy: the one_for_one restart intensity of the SessionActor, driven with explicit times."""

from __future__ import annotations

import pytest

from tickstock.actors.supervision import (
    SHUTDOWN_STAGES, Action, RestartPolicy, RetryBackoff, SessionState, ShutdownBudget, START_ORDER, STOP_ORDER,
    child_kind,
)

pytestmark = pytest.mark.timeout(10)

RUNNING = SessionState.RUNNING


def test_failures_within_budget_are_restarted():
    policy = RestartPolicy(max_restarts=3, within_seconds=60)
    decisions = [policy.on_failure("publisher", RUNNING, t) for t in (0.0, 1.0, 2.0)]
    assert [d.action for d in decisions] == [Action.RESTART] * 3
    assert policy.total_restarts == 3
    assert policy.last_restart_at == 2.0
    assert "3/3" in decisions[-1].reason


def test_a_shared_child_one_failure_past_its_budget_ends_the_session():
    policy = RestartPolicy(max_restarts=3, within_seconds=60)
    for t in (0.0, 10.0, 20.0):
        assert policy.on_failure("persistence", RUNNING, t).action is Action.RESTART
    decision = policy.on_failure("persistence", RUNNING, 59.0)
    assert decision.action is Action.END_SESSION
    assert "3 restarts" in decision.reason
    assert policy.total_restarts == 3  # the failure that ended the session is not a restart


def test_budgets_are_per_child():
    policy = RestartPolicy(max_restarts=1, within_seconds=60, symbol_max_restarts=1, symbol_within_seconds=60)
    for name in ("symbol:AAPL", "symbol:MSFT", "symbol:NVDA", "symbol:TSLA", "ingress", "publisher"):
        assert policy.on_failure(name, RUNNING, 0.0).action is Action.RESTART
    assert policy.total_restarts == 6


def test_a_symbol_past_its_budget_is_quarantined_not_the_session():
    policy = RestartPolicy(max_restarts=0, within_seconds=60, symbol_max_restarts=2, symbol_within_seconds=60)
    assert [policy.on_failure("symbol:AAPL", RUNNING, t).action for t in (0.0, 1.0)] == [Action.RESTART] * 2
    decision = policy.on_failure("symbol:AAPL", RUNNING, 2.0)
    assert decision.action is Action.QUARANTINE and "2 restarts" in decision.reason
    assert policy.quarantined == {"symbol:AAPL": decision.reason}
    assert policy.on_failure("symbol:AAPL", RUNNING, 3.0).action is Action.IGNORE  # already out


def test_symbol_budget_defaults_to_the_shared_one():
    policy = RestartPolicy(max_restarts=1, within_seconds=60)
    assert policy.on_failure("symbol:AAPL", RUNNING, 0.0).action is Action.RESTART
    assert policy.on_failure("symbol:AAPL", RUNNING, 1.0).action is Action.QUARANTINE


def test_failures_spread_beyond_the_window_keep_being_restarted():
    policy = RestartPolicy(max_restarts=2, within_seconds=60)
    times = [0.0, 30.0, 61.0, 92.0, 123.0, 154.0]  # never 3 failures inside any 60 s window
    actions = [policy.on_failure("ingress", RUNNING, t).action for t in times]
    assert actions == [Action.RESTART] * len(times)
    assert policy.total_restarts == len(times)


def test_window_edge_a_failure_exactly_window_seconds_later_still_counts():
    policy = RestartPolicy(max_restarts=1, within_seconds=60)
    assert policy.on_failure("ingress", RUNNING, 0.0).action is Action.RESTART
    assert policy.on_failure("ingress", RUNNING, 60.0).action is Action.END_SESSION
    policy2 = RestartPolicy(max_restarts=1, within_seconds=60)
    assert policy2.on_failure("ingress", RUNNING, 0.0).action is Action.RESTART
    assert policy2.on_failure("ingress", RUNNING, 60.5).action is Action.RESTART


def test_zero_restarts_allowed_ends_on_first_failure_of_a_shared_child():
    policy = RestartPolicy(max_restarts=0, within_seconds=60)
    assert policy.on_failure("ingress", RUNNING, 0.0).action is Action.END_SESSION


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
    assert START_ORDER == ("publisher", "persistence", "analysis", "symbols", "ingress")
    assert STOP_ORDER == tuple(reversed(START_ORDER))


# -- the shutdown budget and the retry back-off ----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_shutdown_stages_end_at_fixed_points_of_one_deadline():
    clock = Clock()
    budget = ShutdownBudget(20.0, clock=clock)
    ends = [budget.ends_at(stage) - 100.0 for stage, _ in SHUTDOWN_STAGES]
    assert ends == sorted(ends) and ends[-1] < 20.0  # in order, all inside the deadline
    assert [stage for stage, _ in SHUTDOWN_STAGES] == ["ingress", "symbols", "totals", "persistence",
                                                          "announce", "publisher"]
    assert budget.remaining("ingress") == pytest.approx(3.0)
    clock.t += 1.0  # the ingress took 1 s: its unspent 2 s go to the symbols
    assert budget.remaining("symbols") == pytest.approx(5.0)
    clock.t += 10.0  # a stage that hung spent only its own share: the announcement keeps time
    assert budget.remaining("persistence") == 0.0
    assert budget.remaining("announce") == pytest.approx(5.0)
    assert 0 < budget.service_close_remaining() < 20.0 - 11.0


def test_shutdown_budget_counts_from_the_request():
    clock = Clock()
    budget = ShutdownBudget(20.0, clock=clock, started_at=90.0)  # SIGTERM 10 s ago
    assert budget.remaining("announce") == pytest.approx(0.8 * 20 - 10)


def test_retry_back_off_doubles_to_its_maximum_and_resets():
    backoff = RetryBackoff(30.0, 300.0)
    assert backoff.allows(0.0)
    delays = []
    now = 0.0
    for _ in range(6):
        backoff.failed(now)
        delays.append(backoff.retry_after - now)
        assert not backoff.allows(now + delays[-1] - 0.1) and backoff.allows(now + delays[-1])
        now += delays[-1]
    assert delays == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]
    backoff.succeeded()
    backoff.failed(now)
    assert backoff.retry_after - now == 30.0
