"""health.rules.evaluate, rule by rule: status and the issue words, most severe first."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tickstock.analysis import select_definitions
from tickstock.config import HealthSettings
from tickstock.analysis.definitions import NO_DEFINITIONS_LOADED
from tickstock.health.rules import RESTART_WARNING_SECONDS, HealthInputs, evaluate

RULES = HealthSettings()  # warning 30 s, critical 120 s of silence; persistence critical after 120 s
NOW = 1_700_000_000.0


def inputs(**overrides) -> HealthInputs:
    base = HealthInputs(
        now=NOW, expecting_ticks=True, last_tick_at=NOW - 1, session_started_at=NOW - 3600,
        feed_connected=True, publisher_connected=True, db_connected=True, db_failing_since=None,
        persistence_backlog=0, backlog_warning=50_000, definitions_loaded=5, definition_problems=(),
        last_restart_at=None,
    )
    return replace(base, **overrides)


def test_healthy() -> None:
    assert evaluate(inputs(), RULES) == ("healthy", [])


def test_feed_silent_past_warning() -> None:
    status, issues = evaluate(inputs(last_tick_at=NOW - 31), RULES)
    assert status == "warning"
    assert issues == ["tick feed silent for 31s"]


def test_feed_silent_exactly_at_warning_bound_is_healthy() -> None:
    assert evaluate(inputs(last_tick_at=NOW - 30), RULES) == ("healthy", [])


def test_feed_silent_past_critical() -> None:
    status, issues = evaluate(inputs(last_tick_at=NOW - 121), RULES)
    assert status == "critical"
    assert issues == ["tick feed silent for 121s"]  # said once, not also as a warning


def test_no_tick_ever_counts_from_session_start() -> None:
    assert evaluate(inputs(last_tick_at=None, session_started_at=NOW - 10), RULES) == ("healthy", [])
    status, issues = evaluate(inputs(last_tick_at=None, session_started_at=NOW - 200), RULES)
    assert status == "critical" and issues == ["tick feed silent for 200s"]


@pytest.mark.parametrize("last_tick_at", [None, NOW - 45, NOW - 10_000])
def test_silence_ignored_when_not_expecting_ticks(last_tick_at) -> None:
    # market closed during an automatic session: no ticks is normal
    assert evaluate(inputs(expecting_ticks=False, last_tick_at=last_tick_at), RULES) == ("healthy", [])


def test_feed_disconnected_is_critical() -> None:
    status, issues = evaluate(inputs(feed_connected=False), RULES)
    assert status == "critical" and issues == ["redis subscription lost"]


def test_publisher_disconnected_is_critical() -> None:
    status, issues = evaluate(inputs(publisher_connected=False), RULES)
    assert status == "critical" and issues == ["redis unreachable for publishing"]


def test_database_failing_within_bound_is_warning() -> None:
    status, issues = evaluate(inputs(db_connected=False, db_failing_since=NOW - 60, persistence_backlog=1234), RULES)
    assert status == "warning"
    assert issues == ["database writes failing for 60s (1234 rows buffered)"]


def test_database_failing_past_bound_is_critical() -> None:
    status, issues = evaluate(inputs(db_connected=False, db_failing_since=NOW - 121, persistence_backlog=7), RULES)
    assert status == "critical"
    assert issues == ["database writes failing for 121s (7 rows buffered)"]


def test_database_failing_exactly_at_bound_is_still_warning() -> None:
    status, _ = evaluate(inputs(db_connected=False, db_failing_since=NOW - 120), RULES)
    assert status == "warning"


def test_database_disconnected_without_a_since_is_a_warning() -> None:
    status, issues = evaluate(inputs(db_connected=False, db_failing_since=None), RULES)
    assert status == "warning" and issues == ["database writes failing for 0s (0 rows buffered)"]


def test_backlog_over_threshold_is_warning() -> None:
    assert evaluate(inputs(persistence_backlog=50_000), RULES) == ("healthy", [])
    status, issues = evaluate(inputs(persistence_backlog=50_001), RULES)
    assert status == "warning" and issues == ["persistence backlog 50001 rows"]


def test_zero_definitions_is_warning() -> None:
    status, issues = evaluate(inputs(definitions_loaded=0), RULES)
    assert status == "warning" and issues == [NO_DEFINITIONS_LOADED]


def test_zero_definitions_with_other_problems_still_says_zero() -> None:
    status, issues = evaluate(inputs(definitions_loaded=0, definition_problems=("definition 'Foo' is unknown",)), RULES)
    assert status == "warning" and issues == [NO_DEFINITIONS_LOADED, "definition 'Foo' is unknown"]


def test_zero_definitions_with_the_loader_problem_text_is_listed_once() -> None:
    problems = tuple(select_definitions([], []).problems())
    assert problems  # the loader does report it
    _, issues = evaluate(inputs(definitions_loaded=0, definition_problems=problems), RULES)
    assert len([i for i in issues if "definitions loaded" in i]) == 1


def test_definition_problems_are_listed() -> None:
    problems = ("definition 'ThreeBlackCrows' matches no known component", "definition 'SMA' is invalid")
    status, issues = evaluate(inputs(definition_problems=problems), RULES)
    assert status == "warning" and issues == list(problems)


def test_recent_restart_is_warning() -> None:
    status, issues = evaluate(inputs(last_restart_at=NOW - 42), RULES)
    assert status == "warning" and issues == ["an actor was restarted 42s ago"]


def test_old_restart_is_not_a_warning() -> None:
    assert evaluate(inputs(last_restart_at=NOW - RESTART_WARNING_SECONDS - 1), RULES) == ("healthy", [])
    assert evaluate(inputs(last_restart_at=NOW - 3600), RULES) == ("healthy", [])


def test_issues_are_ordered_most_severe_first() -> None:
    status, issues = evaluate(inputs(
        last_restart_at=NOW - 5, persistence_backlog=60_000, definition_problems=("definition 'X' is invalid",),
        feed_connected=False, last_tick_at=NOW - 45, publisher_connected=False,
    ), RULES)
    assert status == "critical"
    critical = ["redis subscription lost", "redis unreachable for publishing"]
    assert issues[:2] == critical
    assert set(issues[2:]) == {"tick feed silent for 45s", "persistence backlog 60000 rows",
                               "definition 'X' is invalid", "an actor was restarted 5s ago"}
    assert len(issues) == 6


def test_critical_silence_comes_before_warnings() -> None:
    status, issues = evaluate(inputs(definitions_loaded=0, last_tick_at=NOW - 500), RULES)
    assert status == "critical"
    assert issues == ["tick feed silent for 500s", NO_DEFINITIONS_LOADED]


def test_thresholds_come_from_the_settings() -> None:
    rules = HealthSettings(feed_silent_warning_seconds=5, feed_silent_critical_seconds=10,
                           persistence_failing_critical_seconds=1)
    assert evaluate(inputs(last_tick_at=NOW - 6), rules)[0] == "warning"
    assert evaluate(inputs(last_tick_at=NOW - 11), rules)[0] == "critical"
    assert evaluate(inputs(db_connected=False, db_failing_since=NOW - 2), rules)[0] == "critical"
