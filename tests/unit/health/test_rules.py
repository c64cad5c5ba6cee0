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
        now=NOW, expecting_ticks=True, last_tick_at=NOW - 1, subscribed_at=NOW - 3600,
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
    assert evaluate(inputs(last_tick_at=None, subscribed_at=NOW - 10), RULES) == ("healthy", [])
    status, issues = evaluate(inputs(last_tick_at=None, subscribed_at=NOW - 200), RULES)
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


# -- tick subscription gaps ----------------------------------------------------------------------

from tickstock.actors.ingress import FeedGap  # noqa: E402


def gap(reason: str = "output_buffer_limit", seconds: float = 3.2, lost: int | None = 45_000,
        words: str = "dropped by Redis for a slow reader (output buffer limit)") -> FeedGap:
    return FeedGap(NOW - 10, NOW - 10 + seconds, reason, words, "server closed the connection", lost)


def test_a_slow_reader_dropped_by_redis_is_critical_and_named_with_its_gap() -> None:
    status, issues = evaluate(inputs(feed_gaps_since_last_report=(gap(),)), RULES)
    assert status == "critical"
    assert issues == ["tick subscription dropped by Redis for a slow reader (output buffer limit): "
                      "3.2 s gap, ~45,000 ticks lost (estimate)"]


def test_a_slow_reader_gap_is_critical_even_when_the_feed_is_connected_again() -> None:
    # The reconnect took milliseconds: feed_connected is True, nothing else is wrong.
    status, _ = evaluate(inputs(feed_connected=True, feed_gaps_since_last_report=(gap(seconds=0.004),)), RULES)
    assert status == "critical"


def test_other_gaps_are_a_warning_said_the_same_way() -> None:
    status, issues = evaluate(inputs(feed_gaps_since_last_report=(
        gap("connection_lost", 1.25, 300, "lost (network error)"),)), RULES)
    assert status == "warning"
    assert issues == ["tick subscription lost (network error): 1.2 s gap, ~300 ticks lost (estimate)"]


def test_a_gap_whose_rate_was_unknown_says_so() -> None:
    _, issues = evaluate(inputs(feed_gaps_since_last_report=(gap(lost=None),)), RULES)
    assert issues == ["tick subscription dropped by Redis for a slow reader (output buffer limit): "
                      "3.2 s gap, ticks lost unknown"]


def test_several_gaps_are_summed_per_reason_slow_reader_first_among_equals() -> None:
    gaps = (gap("server_closed", 0.5, 10, "closed by the Redis server"), gap(seconds=1.0, lost=1_000),
            gap(seconds=2.5, lost=None))
    status, issues = evaluate(inputs(feed_gaps_since_last_report=gaps), RULES)
    assert status == "critical"
    assert issues == [
        "tick subscription dropped by Redis for a slow reader (output buffer limit) 2 times: 3.5 s of gaps, "
        "~1,000 ticks lost (estimate, some gaps unknown)",
        "tick subscription closed by the Redis server: 0.5 s gap, ~10 ticks lost (estimate)",
    ]


def test_a_gap_of_milliseconds_is_said_in_milliseconds() -> None:
    _, issues = evaluate(inputs(feed_gaps_since_last_report=(gap(seconds=0.0084),)), RULES)
    assert issues == ["tick subscription dropped by Redis for a slow reader (output buffer limit): "
                      "8 ms gap, ~45,000 ticks lost (estimate)"]


def test_no_gap_since_the_last_report_is_healthy() -> None:
    assert evaluate(inputs(feed_gaps_since_last_report=()), RULES) == ("healthy", [])


# -- the monitor's side: gaps since the last PUBLISHED report, the critical alert ------------------

from collections import Counter  # noqa: E402

from tickstock.messages.events import CriticalAlert  # noqa: E402

from .test_monitor import T0, FakeSession, check, ingress_stats, make_monitor  # noqa: E402


def with_gaps(*gaps: FeedGap, last_tick_at: float) -> object:
    return replace(ingress_stats(folded=100, last_tick_at=last_tick_at), feed_gaps=len(gaps),
                   feed_gap_seconds=sum(g.seconds for g in gaps), recent_gaps=tuple(gaps),
                   feed_gaps_by_reason=dict(Counter(g.reason for g in gaps)))


def test_monitor_a_slow_reader_gap_is_critical_for_one_report_and_raises_the_alert() -> None:
    session, monitor = FakeSession(), make_monitor()
    session.ingress.stats = ingress_stats(folded=100, last_tick_at=T0 + 1)
    assert check(monitor, session, T0 + 1, force=True).status == "healthy"
    dropped = FeedGap(T0 + 1.25, T0 + 1.75, "output_buffer_limit",
                      "dropped by Redis for a slow reader (output buffer limit)", "evidence", 45_000)
    session.ingress.stats = with_gaps(dropped, last_tick_at=T0 + 2)
    report = check(monitor, session, T0 + 2, force=False)  # not due: published because it changed
    assert report is not None and report.status == "critical"
    assert report.issues == ("tick subscription dropped by Redis for a slow reader (output buffer limit): "
                             "0.5 s gap, ~45,000 ticks lost (estimate)",)
    [events] = session.published()[-1:]
    [alert] = [e for e in events if isinstance(e, CriticalAlert)]
    assert "slow reader" in alert.message and alert.severity == "critical"
    # The next report has no new gap: the alarm was raised once, and health recovers.
    recovered = check(monitor, session, T0 + 3, force=False)
    assert recovered is not None and recovered.status == "healthy"
    assert [e.severity for e in session.published()[-1] if isinstance(e, CriticalAlert)] == ["info"]


def test_monitor_names_only_the_gaps_since_the_last_published_report() -> None:
    session, monitor = FakeSession(), make_monitor()
    old = FeedGap(T0, T0 + 0.2, "output_buffer_limit", "dropped by Redis for a slow reader (output buffer limit)",
                  "", 10)
    new = FeedGap(T0 + 2, T0 + 2.5, "connection_lost", "lost (network error)", "", 20)
    session.ingress.stats = with_gaps(old, last_tick_at=T0 + 1)
    assert check(monitor, session, T0 + 1, force=True).status == "critical"
    session.ingress.stats = with_gaps(old, new, last_tick_at=T0 + 3)
    report = check(monitor, session, T0 + 3, force=True)
    assert report.status == "warning"
    assert report.issues == ("tick subscription lost (network error): 0.5 s gap, ~20 ticks lost (estimate)",)
