"""HealthMonitor: measures the session on its timer and reports by the rules in ``health.rules``.

Runs in the SessionActor's thread (one health publisher only). Every timer tick it reads the
latest ``ChildReport`` of each child (it never asks a child: a child stuck on a locked table must
not stall the session's health) and evaluates the rules; it publishes a ``HealthReport`` every
``health_interval_seconds`` and at once when the status changes. A child whose last report is
older than ``stale_after`` is reported as not reporting, for as long as it has been silent, with
the figures of its last report. A transition into critical raises a critical alert; leaving
critical raises an ``info`` one. A tick subscription lost and re-established since the last
published report is named in it (a slow reader dropped by Redis: critical for that report, so the
critical alert is raised even when the feed is back at once). Each report is also a
``streaming_health_metrics`` row. Its ``resources`` are the service's processes together: its own
and those under it (the close analysis's), ``ServiceResources``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import psutil
from loguru import logger

from tickstock.config import Settings
from tickstock.health.rules import HealthInputs, evaluate
from tickstock.messages.commands import Publish, RecordHealth
from tickstock.messages.events import CriticalAlert, HealthReport
from tickstock.messages.records import HealthRecord

_MAX_LISTED_STALE = 50
_SHARED = ("ingress", "persistence", "publisher")


class ServiceResources:
    """The CPU and memory of the service: its own process and every process under it (the close
    analysis's), which are the service's too. ``cpu_percent`` is over the time since the previous
    ``measure`` (psutil's ``cpu_percent(None)``; a process new since then counts from the next).

    Listing the processes under it reads every process of the machine (~2.5 ms with 80): done at
    most every ``relist_seconds``, and at once when one it knew has ended (a restarted analysis);
    between listings it reads only the ones it knows."""

    def __init__(self, process: psutil.Process | None = None, relist_seconds: float = 10.0) -> None:
        self._root = process if process is not None else psutil.Process()
        self._root.cpu_percent(None)
        self._children: dict[int, psutil.Process] = {}
        self._fresh: set[int] = set()  # listed since the last reading: no CPU rate yet
        self._relist_seconds = relist_seconds
        self._relist_at = float("-inf")

    def measure(self, now: float) -> tuple[float, float]:
        """(cpu_percent, memory_mb) of the process tree at ``now`` (seconds, any clock)."""
        cpu = self._root.cpu_percent(None)
        rss = self._root.memory_info().rss
        if now >= self._relist_at:
            self._relist(now)
        readings = self._read(self._children)
        if len(readings) < len(self._children):  # one ended: find its successor, if any, now
            self._relist(now)
            readings += self._read(self._fresh)  # the others were just read: not twice
        self._fresh = set()
        for share, process_rss in readings:
            cpu += share
            rss += process_rss
        return cpu, rss / 2**20

    def _relist(self, now: float) -> None:
        """List the processes under the root; those already known stay (their CPU rate goes on)."""
        self._relist_at = now + self._relist_seconds
        try:
            children = self._root.children(recursive=True)
        except psutil.Error:
            children = []
        known: dict[int, psutil.Process] = {}
        for child in children:
            seen = self._children.get(child.pid)
            known[child.pid] = seen if seen is not None and seen == child else child  # ==: same pid and start
        self._fresh = {pid for pid, process in known.items() if process is not self._children.get(pid)}
        self._children = known

    def _read(self, pids: Iterable[int]) -> list[tuple[float, int]]:
        """(cpu_percent, rss) of each of ``pids`` still there; a fresh one's first CPU reading is no
        rate yet and counts 0."""
        readings = []
        for pid in pids:
            try:
                share = self._children[pid].cpu_percent(None)
                readings.append((0.0 if pid in self._fresh else share, self._children[pid].memory_info().rss))
            except psutil.Error:
                continue  # ended in between
        return readings


class HealthMonitor:
    def __init__(
        self,
        settings: Settings,
        definitions_loaded: int,
        definition_problems: tuple[str, ...],
        market_open: Callable[[float], bool],
        manual: bool,
        observer: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.definitions_loaded = definitions_loaded
        self.definition_problems = tuple(definition_problems)
        self.market_open = market_open
        self.manual = manual
        self.observer = observer  # e.g. the Prometheus collector; gets every measurement
        self.status: str | None = None
        self.last_report: HealthReport | None = None
        self._prev: tuple[float, Any] | None = None
        # A child is "not reporting" once its last report is this old (several missed reports);
        # persistence may legitimately sit in one database call up to the statement timeout.
        self._stale_default = max(5.0, 3 * settings.session.report_interval_seconds)
        self.stale_after = {"persistence": max(self._stale_default, settings.database.statement_timeout_seconds
                                               + 2 * settings.session.report_interval_seconds)}
        self.feed_connected = False
        self._resources = ServiceResources()

    def check(self, session: Any, now: float, force: bool) -> HealthReport | None:
        """Measure; publish if ``force`` or the status changed. Returns the report if published."""
        reports = {name: session.latest(name) for name in _SHARED}
        reporting = dict(reports)
        if session.runs_analysis():  # the close analysis reports on its timer too (stuck in a close: silent)
            reporting["analysis"] = session.latest("analysis")
        # A child's silence counts from its last report, else from its (re)start.
        started = session.restarted_at
        silent = {name: now - (r.at if r is not None else started.get(name, session.started_at))
                  for name, r in reporting.items()}
        silent = {name: age for name, age in silent.items() if age > self.stale_after.get(name, self._stale_default)}
        ingress_report = reports["ingress"]
        ingress = ingress_report.stats if ingress_report else None
        persistence = reports["persistence"].stats if reports["persistence"] else None
        publisher = reports["publisher"].stats if reports["publisher"] else None
        prev_time, prev = self._prev if self._prev else (session.started_at, None)
        h = self.settings.health
        if ingress is not None:
            # Rates over the interval between the two reports: the figures' own times.
            elapsed = max(ingress_report.at - prev_time, 1e-6)
            received = _delta(ingress.folded + ingress.late, (prev.folded + prev.late) if prev else 0)
            tps = received / elapsed if ingress_report.at > prev_time else 0.0
            bars = _delta(ingress.bars_closed, prev.bars_closed if prev else 0)
            lag_n = _delta(ingress.lag_count, prev.lag_count if prev else 0)
            lag_sum = ingress.lag_sum - prev.lag_sum if prev and ingress.lag_count >= prev.lag_count else ingress.lag_sum
            lag_ms = lag_sum / lag_n * 1000 if lag_n > 0 and lag_sum >= 0 else None
            last_seen = ingress.last_seen
            bars_per_minute = bars * 60.0 / elapsed if ingress_report.at > prev_time else 0.0
        else:
            tps, bars_per_minute, lag_ms, last_seen = 0.0, 0.0, None, {}
        active = sum(1 for t in last_seen.values() if now - t <= h.active_symbol_seconds)
        stale = sorted(s for s, t in last_seen.items() if now - t > h.stale_symbol_seconds)
        self.feed_connected = bool(ingress and ingress.redis_connected) and "ingress" not in silent
        # Subscription gaps since the last published report (a restarted ingress counts from 0).
        new_gaps = _delta(getattr(ingress, "feed_gaps", 0), getattr(prev, "feed_gaps", 0)) if ingress else 0
        feed_gaps = tuple(getattr(ingress, "recent_gaps", ())[-new_gaps:]) if new_gaps > 0 else ()
        db_failing_since = getattr(persistence, "failing_since", None)
        inputs = HealthInputs(
            now=now,
            expecting_ticks=self.manual or self.market_open(now),
            last_tick_at=ingress.last_tick_at if ingress else None,
            # A feed cannot tick before the subscription exists: a slow start is not silence.
            subscribed_at=session.live_at if session.live_at is not None else session.started_at,
            feed_connected=self.feed_connected,
            publisher_connected=bool(publisher and publisher.redis_connected),
            db_connected=None if persistence is None else bool(persistence.db_connected),
            db_failing_since=db_failing_since if persistence is not None else None,
            persistence_backlog=persistence.backlog if persistence else 0,
            backlog_warning=self.settings.persistence.backlog_warning,
            definitions_loaded=self.definitions_loaded,
            definition_problems=self.definition_problems,
            last_restart_at=session.policy.last_restart_at,
            silent_children=tuple(sorted(silent.items())),
            quarantined=tuple(session.quarantined_symbols()),
            isolated_tables=_isolated_tables(persistence, now),
            wal_error=getattr(persistence, "wal_error", "") or "",
            db_error=(persistence.last_error if persistence is not None and db_failing_since is not None else ""),
            feed_gaps_since_last_report=feed_gaps,
        )
        status, issues = evaluate(inputs, h)
        patterns, indicators = session.totals()
        changed = status != self.status
        cpu_percent, memory_mb = self._resources.measure(now)
        report = HealthReport(
            session_id=session.plan.session_id, status=status, active_symbols=active, ticks_per_second=tps,
            patterns_detected=patterns, indicators_calculated=indicators,
            bars_per_minute=bars_per_minute, processing_lag_ms=lag_ms,
            cpu_percent=cpu_percent, memory_mb=memory_mb,
            stale_symbols=tuple(stale[:_MAX_LISTED_STALE]), stale_count=len(stale),
            redis="connected" if inputs.feed_connected and inputs.publisher_connected else "disconnected",
            database="connected" if inputs.db_connected else "disconnected",
            issues=tuple(issues), reported_at=now,
        )
        if self.observer is not None:
            self.observer({"ingress": ingress, "persistence": persistence, "publisher": publisher,
                           "report": report, "session": session.status()})
        if not (force or changed):
            return None
        events: list[Any] = [report]
        if changed and status == "critical":
            events.append(CriticalAlert(f"Streaming health critical: {'; '.join(issues)}", "health", now,
                                        "check the tick feed, Redis and PostgreSQL", session_id=report.session_id))
        elif changed and self.status == "critical":
            events.append(CriticalAlert(f"Streaming health recovered: {status}", "health", now,
                                        severity="info", session_id=report.session_id))
        if changed:
            logger.bind(session_id=report.session_id, actor="health").log(
                "WARNING" if status != "healthy" else "INFO", "health {} -> {}: {}", self.status, status,
                "; ".join(issues) or "no issues")
        session.publisher.tell(Publish(tuple(events)))
        session.persistence.tell(RecordHealth(HealthRecord(
            report.session_id, now, status, active, tps, report.bars_per_minute, lag_ms,
            report.patterns_detected, report.indicators_calculated, report.health_json())))
        self.status = status
        self.last_report = report
        if ingress is not None:
            self._prev = (ingress_report.at, ingress)
        return report


def _delta(current: int, previous: int) -> int:
    """Increase of a counter; a counter that went down was reset (a restarted actor)."""
    return current - previous if current >= previous else current


def _isolated_tables(persistence: Any, now: float) -> tuple[str, ...]:
    """'table: error (for Ns, R rows waiting)' for each table persistence has isolated."""
    return tuple(f"{t.table}: {t.error} (for {now - t.since:.0f}s, {t.rows_waiting} rows waiting)"
                 for t in getattr(persistence, "isolated", None) or ())
