"""The written rules for the session's health status.

critical (the dashboard must act):
  - the tick feed has been silent longer than ``feed_silent_critical_seconds`` while the market is
    open (or during a manual session);
  - Redis is lost (the subscription or the publisher cannot reach it);
  - persistence has been failing longer than ``persistence_failing_critical_seconds``.
warning (degraded, still producing):
  - the feed has been silent longer than ``feed_silent_warning_seconds`` (same condition);
  - zero analysis definitions, or unknown/invalid ones;
  - database writes are failing (connection lost, or a locked table / statement timeouts: the
    database answers but the rows wait), within its bound, or the backlog exceeds ``backlog_warning``;
  - a table is isolated by a non-transient database error (permission, missing column);
  - the persistence write-ahead log cannot be written (results are then in memory only);
  - a shared child (ingress, persistence, publisher) has not reported for a while (a stuck
    database call, say): said with how long, and critical past ``persistence_failing_critical_seconds``;
  - a symbol is quarantined (it crashed past its restart budget; its bars are still stored);
  - an actor was restarted within the last ``restart_warning_seconds``.
healthy otherwise. ``issues`` says each reason in words, most severe first.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickstock.analysis.definitions import NO_DEFINITIONS_LOADED
from tickstock.config import HealthSettings

RESTART_WARNING_SECONDS = 300.0


@dataclass(frozen=True)
class HealthInputs:
    now: float
    expecting_ticks: bool               # market open, or a manual session
    last_tick_at: float | None
    session_started_at: float
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


def evaluate(i: HealthInputs, rules: HealthSettings) -> tuple[str, list[str]]:
    """(status, issues) for one set of measurements."""
    critical: list[str] = []
    warning: list[str] = []
    silent_for = i.now - (i.last_tick_at if i.last_tick_at is not None else i.session_started_at)
    if i.expecting_ticks:
        if silent_for > rules.feed_silent_critical_seconds:
            critical.append(f"tick feed silent for {silent_for:.0f}s")
        elif silent_for > rules.feed_silent_warning_seconds:
            warning.append(f"tick feed silent for {silent_for:.0f}s")
    if not i.feed_connected:
        critical.append("redis subscription lost")
    if not i.publisher_connected:
        critical.append("redis unreachable for publishing")
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
