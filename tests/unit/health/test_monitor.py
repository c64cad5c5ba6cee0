"""HealthMonitor against a fake session: the wire schema of its report, live rates from counter
deltas, when it publishes, the critical/recovery alerts, and children that stop reporting.

The monitor never asks a child: it reads the session's latest ``ChildReport`` of each. Here a
``FakeHandle`` stands for a child: while it has no ``error`` it has just reported its ``stats``;
with an ``error`` it reports nothing more (its last report ages)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pykka
import pytest

from tickstock.actors.health import HealthMonitor
from tickstock.actors.ingress import IngressStats
from tickstock.actors.persistence import IsolatedTable, PersistenceStats
from tickstock.actors.publisher import PublisherStats
from tickstock.config import Settings
from tickstock.messages.commands import ChildReport, Publish, RecordHealth
from tickstock.messages.events import CriticalAlert, HealthReport
from tickstock.messages.records import HealthRecord

SID = "5f0c2c8e-8f0e-4d7e-9b1a-3c2d1e0f9a88"
T0 = 1_700_000_000.0  # session start
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def ingress_stats(folded: int = 0, late: int = 0, bars_closed: int = 0, lag_sum: float = 0.0, lag_count: int = 0,
                  last_tick_at: float | None = None, last_seen: dict | None = None,
                  redis_connected: bool = True) -> IngressStats:
    return IngressStats(received=folded + late, folded=folded, late=late, rejected={}, unknown_symbols=0,
                        bars_closed=bars_closed, lag_sum=lag_sum, lag_count=lag_count, last_tick_at=last_tick_at,
                        last_seen=dict(last_seen or {}), redis_connected=redis_connected, reconnects=0, forming=0)


def persistence_stats(backlog: int = 0, db_connected: bool = True, failing_since: float | None = None) -> PersistenceStats:
    return PersistenceStats(backlog=backlog, bars_written=0, patterns_written=0, indicators_written=0,
                            rows_rejected=0, db_connected=db_connected, failing_since=failing_since, last_error="")


def publisher_stats(patterns: int = 5, indicators: int = 150, redis_connected: bool = True) -> PublisherStats:
    return PublisherStats(published=0, buffered=0, dropped=0, patterns=patterns, indicators=indicators,
                          redis_connected=redis_connected, last_error="")


class FakeHandle:
    """A child: reports ``stats`` at every check while ``error`` is None; ``tell`` records; any
    ``ask`` fails the test (the monitor must never ask)."""

    def __init__(self, stats: Any) -> None:
        self.stats = stats
        self.error: BaseException | None = None
        self.last_report: ChildReport | None = None
        self.told: list[Any] = []

    def report(self, name: str, now: float) -> ChildReport | None:
        if self.error is None:
            self.last_report = ChildReport(name, 1, self.stats, now)
        return self.last_report

    def ask(self, message: Any, timeout: float | None = None) -> Any:
        raise AssertionError("the health monitor asked a child")

    def tell(self, message: Any) -> None:
        self.told.append(message)


class FakeSession:
    def __init__(self) -> None:
        self.ingress = FakeHandle(ingress_stats())
        self.persistence = FakeHandle(persistence_stats())
        self.publisher = FakeHandle(publisher_stats())
        self.plan = SimpleNamespace(session_id=SID)
        self.started_at = T0
        self.live_at: float | None = T0
        self.policy = SimpleNamespace(last_restart_at=None)
        self.status_calls = 0
        self.now = T0
        self.quarantined: list[str] = []
        self.analysis: FakeHandle | None = None  # a session with batched TA-Lib definitions has one
        self.restarted_at: dict[str, float] = {}

    def runs_analysis(self) -> bool:
        return self.analysis is not None

    def latest(self, name: str) -> ChildReport | None:
        return getattr(self, name).report(name, self.now)

    def totals(self) -> tuple[int, int]:
        report = self.publisher.last_report
        return (report.stats.patterns, report.stats.indicators) if report else (0, 0)

    def quarantined_symbols(self) -> list[str]:
        return list(self.quarantined)

    def status(self) -> dict:
        self.status_calls += 1
        return {"session_id": SID, "state": "running"}

    def published(self) -> list[list[Any]]:
        """Events of each Publish told to the publisher."""
        return [list(m.events) for m in self.publisher.told if isinstance(m, Publish)]

    def health_records(self) -> list[HealthRecord]:
        return [m.record for m in self.persistence.told if isinstance(m, RecordHealth)]


def check(monitor: HealthMonitor, session: FakeSession, now: float, force: bool) -> HealthReport | None:
    """The session's timer: children report at ``now`` (those without an error), then the check."""
    session.now = now
    for name in ("ingress", "persistence", "publisher"):
        session.latest(name)
    return monitor.check(session, now, force)


def make_monitor(market_open: bool = True, manual: bool = False, definitions: int = 5, problems=(),
                 observer=None, settings: Settings | None = None) -> HealthMonitor:
    return HealthMonitor(settings or Settings(), definitions, tuple(problems), market_open=lambda t: market_open,
                         manual=manual, observer=observer)


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


def flowing(session: FakeSession, now: float, folded: int, **kw: Any) -> None:
    """Ingress stats for a feed that is delivering: the last tick just now."""
    session.ingress.stats = ingress_stats(folded=folded, last_tick_at=now - 0.5, **kw)


# -- the report ----------------------------------------------------------------------------------


def test_first_check_publishes_report_matching_the_interface_schema(session: FakeSession) -> None:
    monitor = make_monitor()
    now = T0 + 10
    flowing(session, now, folded=182, bars_closed=10, lag_sum=1.2, lag_count=100,
            last_seen={"AAPL": now - 1, "MSFT": now - 2})
    report = check(monitor, session, now, force=True)

    assert isinstance(report, HealthReport)
    assert monitor.last_report is report and monitor.status == "healthy"
    assert session.published() == [[report]]  # one Publish, only the report (no alert when healthy)

    wire = report.to_wire()
    json.dumps(wire, allow_nan=False)  # no NaN/Infinity anywhere
    assert set(wire) == {"type", "health", "timestamp"}
    assert wire["type"] == "streaming_health"
    health = wire["health"]
    assert set(health) == {"session_id", "status", "active_symbols", "ticks_per_second", "patterns_detected",
                           "indicators_calculated", "data_flow", "resources", "stale_symbols", "connection",
                           "issues", "timestamp"}
    assert set(health["data_flow"]) == {"ticks_per_second", "bars_per_minute", "processing_lag_ms"}
    assert set(health["resources"]) == {"cpu_percent", "memory_mb"}
    assert set(health["stale_symbols"]) == {"count", "symbols"}
    assert set(health["connection"]) == {"redis", "database"}
    assert health["session_id"] == SID and health["status"] == "healthy"
    assert health["active_symbols"] == 2
    assert health["ticks_per_second"] == health["data_flow"]["ticks_per_second"] == 18.2
    assert health["data_flow"]["bars_per_minute"] == 60.0
    assert health["data_flow"]["processing_lag_ms"] == 12.0
    assert health["patterns_detected"] == 5 and health["indicators_calculated"] == 150
    assert health["resources"]["memory_mb"] > 0 and health["resources"]["cpu_percent"] >= 0
    assert health["stale_symbols"] == {"count": 0, "symbols": []}
    assert health["connection"] == {"redis": "connected", "database": "connected"}
    assert health["issues"] == []
    assert ISO_Z.match(health["timestamp"]) and ISO_Z.match(wire["timestamp"])
    assert health["timestamp"] == wire["timestamp"] == "2023-11-14T22:13:30.000Z"

    # ... and a streaming_health_metrics row to persistence
    records = session.health_records()
    assert len(records) == 1
    rec = records[0]
    assert (rec.session_id, rec.recorded_at, rec.status, rec.active_symbols) == (SID, now, "healthy", 2)
    assert rec.ticks_per_second == pytest.approx(18.2) and rec.bars_per_minute == pytest.approx(60.0)
    assert (rec.patterns_detected, rec.indicators_calculated) == (5, 150)
    assert rec.payload == report.health_json()


def test_ticks_per_second_is_the_rate_over_the_interval(session: FakeSession) -> None:
    monitor = make_monitor()
    flowing(session, T0 + 10, folded=100, bars_closed=3, lag_sum=0.5, lag_count=100)
    first = check(monitor, session, T0 + 10, force=True)
    assert first.ticks_per_second == pytest.approx(10.0)  # 100 ticks in the 10 s since the session started

    flowing(session, T0 + 20, folded=290, late=10, bars_closed=8, lag_sum=2.5, lag_count=300)
    second = check(monitor, session, T0 + 20, force=True)
    assert second.ticks_per_second == pytest.approx(20.0)  # (300 - 100) / 10 s: late ticks count too
    assert second.to_wire()["health"]["data_flow"]["ticks_per_second"] == 20.0
    assert second.bars_per_minute == pytest.approx(30.0)  # 5 bars in 10 s
    assert second.processing_lag_ms == pytest.approx(10.0)  # 2.0 s over 200 ticks

    # no new ticks: the rate drops to zero (a live value, not a running average)
    flowing(session, T0 + 30, folded=290, late=10, bars_closed=8, lag_sum=2.5, lag_count=300)
    third = check(monitor, session, T0 + 30, force=True)
    assert third.ticks_per_second == 0.0 and third.bars_per_minute == 0.0
    assert third.processing_lag_ms is None
    assert third.to_wire()["health"]["data_flow"]["processing_lag_ms"] is None


def test_ticks_per_second_not_zero_between_reports(session: FakeSession) -> None:
    """Non-forced checks in between do not eat the delta: the next report still sees every tick."""
    monitor = make_monitor()
    flowing(session, T0 + 10, folded=100)
    check(monitor, session, T0 + 10, force=True)
    for second in range(11, 20):
        flowing(session, T0 + second, folded=100 + 10 * (second - 10))
        assert check(monitor, session, T0 + second, force=False) is None
    flowing(session, T0 + 20, folded=200)
    report = check(monitor, session, T0 + 20, force=True)
    assert report.ticks_per_second == pytest.approx(10.0)


def test_active_and_stale_symbols(session: FakeSession) -> None:
    monitor = make_monitor()
    now = T0 + 600
    flowing(session, now, folded=10, last_seen={
        "AAPL": now - 5, "MSFT": now - 60, "NVDA": now - 61, "TSLA": now - 121, "META": now - 500})
    report = check(monitor, session, now, force=True)
    assert report.active_symbols == 2  # seen within active_symbol_seconds (60)
    health = report.to_wire()["health"]
    assert health["active_symbols"] == 2
    assert health["stale_symbols"] == {"count": 2, "symbols": ["META", "TSLA"]}


def test_stale_list_is_capped_but_count_is_not(session: FakeSession) -> None:
    monitor = make_monitor()
    now = T0 + 600
    flowing(session, now, folded=10, last_seen={f"S{i:03d}": now - 300 for i in range(80)})
    health = check(monitor, session, now, force=True).to_wire()["health"]
    assert health["stale_symbols"]["count"] == 80
    assert 0 < len(health["stale_symbols"]["symbols"]) < 80
    assert health["active_symbols"] == 0


# -- when it publishes ---------------------------------------------------------------------------


def test_non_forced_check_publishes_only_on_a_status_change(session: FakeSession) -> None:
    monitor = make_monitor()
    flowing(session, T0 + 10, folded=10)
    assert check(monitor, session, T0 + 10, force=True) is not None
    flowing(session, T0 + 11, folded=20)
    assert check(monitor, session, T0 + 11, force=False) is None
    assert check(monitor, session, T0 + 12, force=False) is None
    assert len(session.published()) == 1 and len(session.health_records()) == 1

    session.persistence.stats = persistence_stats(backlog=60_000)  # -> warning
    report = check(monitor, session, T0 + 13, force=False)
    assert report is not None and report.status == "warning"
    assert report.issues == ("persistence backlog 60000 rows",)
    assert session.published()[-1] == [report]  # a warning raises no alert
    assert len(session.health_records()) == 2
    assert check(monitor, session, T0 + 14, force=False) is None  # still warning: nothing


def test_first_check_publishes_even_when_not_forced(session: FakeSession) -> None:
    monitor = make_monitor()
    flowing(session, T0 + 1, folded=1)
    report = check(monitor, session, T0 + 1, force=False)
    assert report is not None and session.published() == [[report]]


def test_transition_into_critical_and_back_raises_alerts(session: FakeSession) -> None:
    monitor = make_monitor()
    flowing(session, T0 + 10, folded=10)
    check(monitor, session, T0 + 10, force=True)

    session.ingress.stats = replace(session.ingress.stats, redis_connected=False)
    report = check(monitor, session, T0 + 11, force=False)
    assert report is not None and report.status == "critical"
    assert report.to_wire()["health"]["connection"]["redis"] == "disconnected"
    events = session.published()[-1]
    assert events[0] is report
    alerts = [e for e in events if isinstance(e, CriticalAlert)]
    assert len(alerts) == 1
    assert alerts[0].severity == "critical" and alerts[0].session_id == SID
    assert "redis subscription lost" in alerts[0].message
    wire = alerts[0].to_wire()
    assert wire["type"] == "critical_alert" and wire["severity"] == "critical"
    assert wire["data"]["component"] == "health" and wire["data"]["session_id"] == SID

    # still critical: a forced report, but no second alert
    report = check(monitor, session, T0 + 20, force=True)
    assert report.status == "critical"
    assert session.published()[-1] == [report]
    assert check(monitor, session, T0 + 21, force=False) is None

    # recovery: an info alert
    session.ingress.stats = replace(session.ingress.stats, redis_connected=True, last_tick_at=T0 + 21.5)
    report = check(monitor, session, T0 + 22, force=False)
    assert report is not None and report.status == "healthy"
    events = session.published()[-1]
    alerts = [e for e in events if isinstance(e, CriticalAlert)]
    assert len(alerts) == 1 and alerts[0].severity == "info"
    assert alerts[0].to_wire()["severity"] == "info"
    assert "recovered" in alerts[0].message


def test_leaving_critical_for_warning_is_also_an_info_alert(session: FakeSession) -> None:
    monitor = make_monitor()
    session.publisher.stats = publisher_stats(redis_connected=False)
    flowing(session, T0 + 10, folded=10)
    assert check(monitor, session, T0 + 10, force=True).status == "critical"
    session.publisher.stats = publisher_stats()
    session.persistence.stats = persistence_stats(backlog=60_000)
    report = check(monitor, session, T0 + 11, force=False)
    assert report.status == "warning"
    alerts = [e for e in session.published()[-1] if isinstance(e, CriticalAlert)]
    assert [a.severity for a in alerts] == ["info"]


def test_counters_that_go_down_never_give_negative_rates(session: FakeSession) -> None:
    monitor = make_monitor()
    flowing(session, T0 + 10, folded=10_000, late=50, bars_closed=500, lag_sum=30.0, lag_count=10_000)
    check(monitor, session, T0 + 10, force=True)
    # the ingress restarted: its counters start again from zero
    flowing(session, T0 + 20, folded=20, late=0, bars_closed=1, lag_sum=0.1, lag_count=20)
    report = check(monitor, session, T0 + 20, force=True)
    assert report.ticks_per_second >= 0 and report.bars_per_minute >= 0
    assert report.processing_lag_ms is not None and report.processing_lag_ms >= 0
    assert report.ticks_per_second == pytest.approx(2.0)  # the new counter's 20 ticks over 10 s
    assert report.bars_per_minute == pytest.approx(6.0)
    assert report.processing_lag_ms == pytest.approx(5.0)
    wire = report.to_wire()["health"]
    assert wire["ticks_per_second"] >= 0 and wire["data_flow"]["bars_per_minute"] >= 0


# -- children that do not answer -----------------------------------------------------------------


def test_persistence_not_reporting_is_said_with_its_true_age_then_critical(session: FakeSession) -> None:
    monitor = make_monitor()
    session.persistence.error = pykka.Timeout("stuck")  # it never reports
    flowing(session, T0 + 10, folded=10)
    # Within one statement timeout (10 s) plus two report intervals a database call may be running.
    assert check(monitor, session, T0 + 10, force=True).status == "healthy"
    flowing(session, T0 + 15, folded=12)
    report = check(monitor, session, T0 + 15, force=True)  # no exception
    assert report.status == "warning"
    assert report.to_wire()["health"]["connection"]["database"] == "disconnected"
    assert report.issues == ("persistence not reporting for 15s",)  # never "failing for 0s (0 rows)"
    assert session.health_records()  # still told (kept by its handle until it answers again)

    flowing(session, T0 + 100, folded=20)
    assert check(monitor, session, T0 + 100, force=True).status == "warning"  # 100 s: within the bound
    flowing(session, T0 + 131, folded=30)
    report = check(monitor, session, T0 + 131, force=False)
    assert report is not None and report.status == "critical"
    assert "persistence not reporting for 131s" in report.issues
    assert any(isinstance(e, CriticalAlert) and e.severity == "critical" for e in session.published()[-1])

    # it reports again, connected: the silence is forgotten
    session.persistence.error = None
    flowing(session, T0 + 132, folded=31)
    assert check(monitor, session, T0 + 132, force=False).status == "healthy"


def test_a_close_analysis_stuck_in_a_close_is_named_and_one_that_reports_is_not(session: FakeSession) -> None:
    monitor = make_monitor()
    session.analysis = FakeHandle(SimpleNamespace(closes=3))
    flowing(session, T0 + 10, folded=10)
    assert check(monitor, session, T0 + 10, force=True).status == "healthy"  # it reports on its timer
    session.analysis.error = pykka.Timeout("stuck in a close")  # its last report ages from T0 + 10
    flowing(session, T0 + 16, folded=12)
    report = check(monitor, session, T0 + 16, force=True)
    assert report.status == "warning" and report.issues == ("analysis not reporting for 6s",)
    session.analysis = None  # a session without batched definitions has no analysis to hear from
    flowing(session, T0 + 17, folded=13)
    assert check(monitor, session, T0 + 17, force=True).status == "healthy"


def test_a_restarted_child_is_silent_from_its_restart_not_from_the_session_s_start(session: FakeSession) -> None:
    monitor = make_monitor()
    session.analysis = FakeHandle(SimpleNamespace(closes=0))
    session.analysis.error = pykka.Timeout("priming")  # no report yet from the new incarnation
    session.restarted_at["analysis"] = T0 + 3598
    flowing(session, T0 + 3600, folded=10)
    assert check(monitor, session, T0 + 3600, force=True).status == "healthy"  # 2 s since its restart
    flowing(session, T0 + 3606, folded=12)
    assert "analysis not reporting for 8s" in check(monitor, session, T0 + 3606, force=True).issues


def test_a_stale_report_keeps_its_true_failure_duration_and_backlog(session: FakeSession) -> None:
    monitor = make_monitor()
    session.persistence.stats = persistence_stats(backlog=1234, db_connected=False, failing_since=T0 + 5)
    flowing(session, T0 + 10, folded=10)
    check(monitor, session, T0 + 10, force=True)
    session.persistence.error = pykka.Timeout("now stuck")  # its last report ages from T0 + 10
    flowing(session, T0 + 60, folded=20)
    report = check(monitor, session, T0 + 60, force=True)
    assert "database writes failing for 55s (1234 rows buffered)" in report.issues
    assert "persistence not reporting for 50s" in report.issues


def test_a_database_that_answers_but_cannot_take_the_writes_is_failing(session: FakeSession) -> None:
    monitor = make_monitor()  # a locked table: the connection is fine, each write times out
    session.persistence.stats = replace(persistence_stats(backlog=42, db_connected=True, failing_since=T0 + 3),
                                        last_error="55P03 LockNotAvailable: canceling statement due to lock timeout")
    flowing(session, T0 + 20, folded=10)
    report = check(monitor, session, T0 + 20, force=True)
    assert report.status == "warning"
    assert report.issues == ("database writes failing for 17s (42 rows buffered): "
                             "55P03 LockNotAvailable: canceling statement due to lock timeout",)


def test_quarantined_symbols_and_isolated_tables_warn(session: FakeSession) -> None:
    monitor = make_monitor()
    session.quarantined = ["NVDA"]
    session.persistence.stats = replace(persistence_stats(), isolated=(
        IsolatedTable("intraday_patterns", "permission denied", T0, 7, T0 + 60),), wal_error="disk full")
    flowing(session, T0 + 30, folded=10)
    report = check(monitor, session, T0 + 30, force=True)
    assert report.status == "warning"
    assert any("quarantined" in i and "NVDA" in i for i in report.issues)
    assert "database table isolated: intraday_patterns: permission denied (for 30s, 7 rows waiting)" in report.issues
    assert "write-ahead log unavailable, results kept in memory only: disk full" in report.issues


def test_ingress_not_answering_is_handled(session: FakeSession) -> None:
    monitor = make_monitor()
    session.ingress.error = pykka.ActorDeadError("ingress is not running")
    report = check(monitor, session, T0 + 10, force=True)
    assert report.ticks_per_second == 0.0 and report.active_symbols == 0
    assert report.status == "critical" and "redis subscription lost" in report.issues
    assert monitor.feed_connected is False
    assert report.to_wire()["health"]["connection"]["redis"] == "disconnected"


def test_no_child_answering_raises_nothing(session: FakeSession) -> None:
    monitor = make_monitor()
    for handle in (session.ingress, session.persistence, session.publisher):
        handle.error = RuntimeError("boom")
    report = check(monitor, session, T0 + 5, force=True)
    assert report.status == "critical"
    assert report.patterns_detected == 0 and report.indicators_calculated == 0
    assert report.to_wire()["health"]["connection"] == {"redis": "disconnected", "database": "disconnected"}


# -- rules seen through the monitor --------------------------------------------------------------


def test_silence_is_ignored_when_the_market_is_closed(session: FakeSession) -> None:
    session.ingress.stats = ingress_stats(last_tick_at=None)
    closed = make_monitor(market_open=False, manual=False)
    assert check(closed, session, T0 + 1000, force=True).status == "healthy"
    manual = make_monitor(market_open=False, manual=True)  # a manual session expects ticks
    report = check(manual, session, T0 + 1000, force=True)
    assert report.status == "critical" and report.issues == ("tick feed silent for 1000s",)


def test_a_slow_start_is_not_counted_as_feed_silence(session: FakeSession) -> None:
    # 10,000 symbols took 36 s to prime once: the feed was reported silent for 36 s the moment the
    # session went live, though no subscription had existed to deliver a tick.
    session.ingress.stats = ingress_stats(last_tick_at=None)
    session.live_at = T0 + 990
    report = check(make_monitor(market_open=True), session, T0 + 1000, force=True)
    assert report.status == "healthy" and report.issues == ()
    report = check(make_monitor(market_open=True), session, T0 + 990 + 121, force=True)
    assert report.issues == ("tick feed silent for 121s",)


def test_recent_restart_and_definition_problems_warn(session: FakeSession) -> None:
    monitor = make_monitor(definitions=0, problems=("definition 'Foo' matches no known component",))
    session.policy.last_restart_at = T0 + 5
    flowing(session, T0 + 10, folded=10)
    report = check(monitor, session, T0 + 10, force=True)
    assert report.status == "warning"
    assert set(report.issues) == {"no pattern or indicator definitions loaded",
                                  "definition 'Foo' matches no known component", "an actor was restarted 5s ago"}


def test_observer_is_called_on_every_check(session: FakeSession) -> None:
    seen: list[dict] = []
    monitor = make_monitor(observer=seen.append)
    for i, force in enumerate([True, False, False, True, False]):
        flowing(session, T0 + 10 + i, folded=10 * (i + 1))
        check(monitor, session, T0 + 10 + i, force=force)
    assert len(seen) == 5 and session.status_calls == 5
    for item in seen:
        assert set(item) == {"ingress", "persistence", "publisher", "report", "session"}
        assert isinstance(item["report"], HealthReport) and isinstance(item["ingress"], IngressStats)
        assert item["session"] == {"session_id": SID, "state": "running"}
    assert [item["report"].reported_at for item in seen] == [T0 + 10 + i for i in range(5)]
    assert len(session.published()) == 2  # only the forced ones
