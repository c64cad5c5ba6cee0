"""The written rules for the session's health status.

critical (the dashboard must act):
  - the tick feed has been silent longer than ``feed_silent_critical_seconds`` while the market is
    open (or during a manual session);
  - Redis is lost (the subscription or the publisher cannot reach it);
  - persistence has been failing longer than ``persistence_failing_critical_seconds``.
warning (degraded, still producing):
  - the feed has been silent longer than ``feed_silent_warning_seconds`` (same condition);
  - zero analysis definitions, or unknown/invalid ones;
  - persistence is failing (within its bound) or its backlog exceeds ``backlog_warning`` rows;
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
    db_connected: bool
    db_failing_since: float | None
    persistence_backlog: int
    backlog_warning: int
    definitions_loaded: int
    definition_problems: tuple[str, ...]
    last_restart_at: float | None


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
    if not i.db_connected:
        failing = i.now - (i.db_failing_since if i.db_failing_since is not None else i.now)
        text = f"database writes failing for {failing:.0f}s ({i.persistence_backlog} rows buffered)"
        (critical if failing > rules.persistence_failing_critical_seconds else warning).append(text)
    elif i.persistence_backlog > i.backlog_warning:
        warning.append(f"persistence backlog {i.persistence_backlog} rows")
    # Zero loaded is always an issue; the loader usually says so itself (with its counts), and
    # then it is not said twice.
    if i.definitions_loaded == 0 and not any(p.startswith(NO_DEFINITIONS_LOADED) for p in i.definition_problems):
        warning.append(NO_DEFINITIONS_LOADED)
    warning.extend(i.definition_problems)
    if i.last_restart_at is not None and i.now - i.last_restart_at < RESTART_WARNING_SECONDS:
        warning.append(f"an actor was restarted {i.now - i.last_restart_at:.0f}s ago")
    status = "critical" if critical else "warning" if warning else "healthy"
    return status, critical + warning
