"""The written rules for the session's health status.

critical (the dashboard must act):
  - the tick feed has been silent longer than ``feed_silent_critical_seconds`` while the market is
    open (or during a manual session);
  - Redis is lost (the subscription or the publisher cannot reach it);
  - the tick subscription was dropped by Redis for a slow reader (its output-buffer limit) since
    the last report: said with the gap's length and the ticks lost (an estimate), critical for that
    one report (so the monitor raises the critical alert) even when it was re-established at once;
  - persistence has been failing longer than ``persistence_failing_critical_seconds``.
warning (degraded, still producing):
  - the tick subscription was lost for any other reason since the last report (a gap: ticks
    published meanwhile are lost), said the same way;
  - the feed has been silent longer than ``feed_silent_warning_seconds`` (same condition);
  - zero analysis definitions, or unknown/invalid ones;
  - database writes are failing (connection lost, or a locked table / statement timeouts: the
    database answers but the rows wait), within its bound, or the backlog exceeds ``backlog_warning``;
  - a table is isolated by a non-transient database error (permission, missing column);
  - the persistence write-ahead log cannot be written (results are then in memory only);
  - a shared child (ingress, persistence, publisher, and the close analysis where one runs) has not
    reported for a while (a stuck database call, an analysis stuck in a close, say): said with how
    long, and critical past ``persistence_failing_critical_seconds``;
  - a symbol is quarantined (it crashed past its restart budget; its bars are still stored);
  - an actor was restarted within the last ``restart_warning_seconds``.
healthy otherwise. ``issues`` says each reason in words, most severe first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tickstock.analysis.definitions import NO_DEFINITIONS_LOADED
from tickstock.config import HealthSettings

RESTART_WARNING_SECONDS = 300.0
SLOW_READER = "output_buffer_limit"  # the gap reason that is critical


@dataclass(frozen=True)
class HealthInputs:
    now: float
    expecting_ticks: bool               # market open, or a manual session
    last_tick_at: float | None
    subscribed_at: float          # when the tick subscription went live (a feed is silent since then)
    feed_connected: bool
    publisher_connected: bool
    db_connected: bool | None           # None: unknown (persistence has not reported)
    db_failing_since: float | None
    persistence_backlog: int
    backlog_warning: int
    definitions_loaded: int
    definition_problems: tuple[str, ...]
    last_restart_at: float | None
    silent_children: tuple[tuple[str, float], ...] = ()   # (child, seconds since its last report)
    quarantined: tuple[str, ...] = ()
    isolated_tables: tuple[str, ...] = ()                  # 'table: error (...)', in words
    wal_error: str = ""                                    # the write-ahead log cannot be written
    db_error: str = ""                                     # the latest database error, in words
    # Subscription gaps since the last report: objects with ``reason``, ``words``, ``seconds`` and
    # ``ticks_lost_estimate`` (``tickstock.actors.ingress.FeedGap``), oldest first.
    feed_gaps_since_last_report: tuple[Any, ...] = ()


def evaluate(i: HealthInputs, rules: HealthSettings) -> tuple[str, list[str]]:
    """(status, issues) for one set of measurements."""
    critical: list[str] = []
    warning: list[str] = []
    silent_for = i.now - (i.last_tick_at if i.last_tick_at is not None else i.subscribed_at)
    if i.expecting_ticks:
        if silent_for > rules.feed_silent_critical_seconds:
            critical.append(f"tick feed silent for {silent_for:.0f}s")
        elif silent_for > rules.feed_silent_warning_seconds:
            warning.append(f"tick feed silent for {silent_for:.0f}s")
    if not i.feed_connected:
        critical.append("redis subscription lost")
    if not i.publisher_connected:
        critical.append("redis unreachable for publishing")
    for reason, text in _feed_gaps(i.feed_gaps_since_last_report):
        (critical if reason == SLOW_READER else warning).append(text)
    if i.db_connected is False or i.db_failing_since is not None:
        # Lost connection, or a database that answers but cannot take the writes (a locked table,
        # statement timeouts): either way results wait, and for how long is the true figure.
        failing = i.now - (i.db_failing_since if i.db_failing_since is not None else i.now)
        text = f"database writes failing for {failing:.0f}s ({i.persistence_backlog} rows buffered)"
        if i.db_error:
            text += f": {i.db_error}"
        (critical if failing > rules.persistence_failing_critical_seconds else warning).append(text)
    elif i.persistence_backlog > i.backlog_warning:
        warning.append(f"persistence backlog {i.persistence_backlog} rows")
    if i.wal_error:
        warning.append(f"write-ahead log unavailable, results kept in memory only: {i.wal_error}")
    for table in i.isolated_tables:
        warning.append(f"database table isolated: {table}")
    for child, silent in i.silent_children:
        text = f"{child} not reporting for {silent:.0f}s"
        (critical if silent > rules.persistence_failing_critical_seconds else warning).append(text)
    if i.quarantined:
        warning.append(f"symbols quarantined (crashed past their restart budget): {', '.join(i.quarantined)}")
    # Zero loaded is always an issue; the loader usually says so itself (with its counts), and
    # then it is not said twice.
    if i.definitions_loaded == 0 and not any(p.startswith(NO_DEFINITIONS_LOADED) for p in i.definition_problems):
        warning.append(NO_DEFINITIONS_LOADED)
    warning.extend(i.definition_problems)
    if i.last_restart_at is not None and i.now - i.last_restart_at < RESTART_WARNING_SECONDS:
        warning.append(f"an actor was restarted {i.now - i.last_restart_at:.0f}s ago")
    status = "critical" if critical else "warning" if warning else "healthy"
    return status, critical + warning


def _feed_gaps(gaps: tuple[Any, ...]) -> list[tuple[str, str]]:
    """(reason, words) per reason, in the order first seen: 'tick subscription dropped by Redis for
    a slow reader (output buffer limit): 3.2 s gap, ~45,000 ticks lost (estimate)'."""
    by_reason: dict[str, list[Any]] = {}
    for gap in gaps:
        by_reason.setdefault(gap.reason, []).append(gap)
    said = []
    for reason, group in by_reason.items():
        seconds = sum(g.seconds for g in group)
        known = [g.ticks_lost_estimate for g in group if g.ticks_lost_estimate is not None]
        if not known:
            lost = "ticks lost unknown"
        else:
            lost = f"~{sum(known):,} ticks lost (estimate{'' if len(known) == len(group) else ', some gaps unknown'})"
        head = f"tick subscription {group[-1].words}"
        if len(group) == 1:
            said.append((reason, f"{head}: {_seconds(seconds)} gap, {lost}"))
        else:
            said.append((reason, f"{head} {len(group)} times: {_seconds(seconds)} of gaps, {lost}"))
    return said


def _seconds(seconds: float) -> str:
    """'3.2 s'; a gap shorter than 0.1 s in milliseconds ('8 ms'), never '0.0 s'."""
    return f"{seconds:.1f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"
