"""ServiceMetrics: values come from the latest snapshot of the actors' real stats dataclasses."""

from __future__ import annotations

import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tickstock.actors.ingress import IngressStats
from tickstock.actors.persistence import PersistenceStats
from tickstock.actors.publisher import PublisherStats
from tickstock.adapters.http import ServiceMetrics
from tickstock.messages.events import HealthReport


def ingress_stats(**overrides) -> IngressStats:
    values = dict(
        received=12_345, folded=12_000, late=40, rejected={"bad_price": 3, "stale": 2}, unknown_symbols=7,
        bars_closed=980, lag_sum=1.5, lag_count=980, last_tick_at=1_700_000_000.0,
        last_seen={"AAPL": 1_700_000_000.0, "MSFT": 1_699_999_990.0}, redis_connected=True, reconnects=1,
        forming=2,
    )
    values.update(overrides)
    return IngressStats(**values)


def persistence_stats(**overrides) -> PersistenceStats:
    values = dict(backlog=250, bars_written=970, patterns_written=15, indicators_written=1_900,
                  rows_rejected=4, db_connected=True, failing_since=None, last_error="")
    values.update(overrides)
    return PersistenceStats(**values)


def publisher_stats(**overrides) -> PublisherStats:
    values = dict(published=2_100, buffered=0, dropped=5, patterns=17, indicators=1_950,
                  redis_connected=False, last_error="connection refused")
    values.update(overrides)
    return PublisherStats(**values)


def health_report(status: str = "warning", lag_ms: float | None = 1.53) -> HealthReport:
    return HealthReport(
        session_id="s-1", status=status, active_symbols=2, ticks_per_second=41.5, patterns_detected=17,
        indicators_calculated=1_950, bars_per_minute=2.0, processing_lag_ms=lag_ms, cpu_percent=12.0,
        memory_mb=180.0, stale_symbols=(), stale_count=0, redis="disconnected", database="connected",
        issues=("publisher disconnected",), reported_at=1_700_000_001.0,
    )


def snapshot(**overrides) -> dict:
    values = dict(
        ingress=ingress_stats(), persistence=persistence_stats(), publisher=publisher_stats(),
        report=health_report(),
        session={"session_id": "s-1", "state": "running", "universe": "u", "symbol_count": 2,
                 "started_at": 1_699_999_000.0, "restarts": 3, "manual": True,
                 "mailboxes": {"ingress": 4, "symbol:AAPL": 1}},
    )
    values.update(overrides)
    return values


def scrape(metrics: ServiceMetrics) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value}, parsed back from the exposition text."""
    samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def families(metrics: ServiceMetrics) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())}


def test_values_come_from_the_observed_snapshot():
    metrics = ServiceMetrics()
    metrics.set_running_probe(lambda: True)
    metrics.observe(snapshot())
    s = scrape(metrics)
    assert s[("tickstock_ticks_received_total", ())] == 12_345
    assert s[("tickstock_ticks_rejected_total", (("reason", "bad_price"),))] == 3
    assert s[("tickstock_ticks_rejected_total", (("reason", "stale"),))] == 2
    assert s[("tickstock_ticks_late_total", ())] == 40
    assert s[("tickstock_ticks_unknown_symbol_total", ())] == 7
    assert s[("tickstock_bars_closed_total", ())] == 980
    assert s[("tickstock_patterns_detected_total", ())] == 17
    assert s[("tickstock_indicator_values_total", ())] == 1_950
    assert s[("tickstock_persistence_backlog", ())] == 250
    assert s[("tickstock_rows_written_total", (("table", "ohlcv_1min"),))] == 970
    assert s[("tickstock_rows_written_total", (("table", "intraday_patterns"),))] == 15
    assert s[("tickstock_rows_written_total", (("table", "intraday_indicators"),))] == 1_900
    assert s[("tickstock_rows_rejected_total", ())] == 4
    assert s[("tickstock_db_connected", ())] == 1
    assert s[("tickstock_redis_connected", (("client", "feed"),))] == 1
    assert s[("tickstock_redis_connected", (("client", "publisher"),))] == 0
    assert s[("tickstock_actor_restarts_total", ())] == 3
    assert s[("tickstock_mailbox_depth", (("actor", "ingress"),))] == 4
    assert s[("tickstock_mailbox_depth", (("actor", "symbol:AAPL"),))] == 1
    assert s[("tickstock_session_state", (("state", "running"),))] == 1
    assert s[("tickstock_session_state", (("state", "idle"),))] == 0
    assert s[("tickstock_health_status", (("status", "warning"),))] == 1
    assert s[("tickstock_health_status", (("status", "healthy"),))] == 0
    assert s[("tickstock_health_status", (("status", "critical"),))] == 0
    assert s[("tickstock_processing_lag_seconds", ())] == pytest.approx(0.00153)
    assert s[("tickstock_ticks_per_second", ())] == 41.5
    assert s[("tickstock_active_symbols", ())] == 2


def test_latest_snapshot_wins():
    metrics = ServiceMetrics()
    metrics.observe(snapshot())
    metrics.observe(snapshot(ingress=ingress_stats(received=20_000, rejected={"bad_price": 9}),
                             report=health_report("critical")))
    s = scrape(metrics)
    assert s[("tickstock_ticks_received_total", ())] == 20_000
    assert s[("tickstock_ticks_rejected_total", (("reason", "bad_price"),))] == 9
    assert ("tickstock_ticks_rejected_total", (("reason", "stale"),)) not in s
    assert s[("tickstock_health_status", (("status", "critical"),))] == 1
    assert s[("tickstock_health_status", (("status", "warning"),))] == 0


def test_before_any_snapshot_families_exist_without_made_up_values():
    metrics = ServiceMetrics()
    kinds = families(metrics)
    assert kinds["tickstock_ticks_received"] == "counter"
    assert kinds["tickstock_persistence_backlog"] == "gauge"
    assert kinds["tickstock_publish_latency_seconds"] == "histogram"
    s = scrape(metrics)
    assert ("tickstock_ticks_received_total", ()) not in s
    assert s[("tickstock_session_state", (("state", "idle"),))] == 1
    assert s[("tickstock_session_state", (("state", "running"),))] == 0


def test_absent_parts_and_mailboxes_are_tolerated():
    metrics = ServiceMetrics()
    session = {"session_id": "s-1", "state": "starting", "restarts": 0}
    metrics.observe({"ingress": None, "persistence": None, "publisher": publisher_stats(),
                     "report": health_report(lag_ms=None), "session": session})
    s = scrape(metrics)
    assert ("tickstock_ticks_received_total", ()) not in s
    assert ("tickstock_db_connected", ()) not in s
    assert ("tickstock_processing_lag_seconds", ()) not in s
    assert not any(name == "tickstock_mailbox_depth" for name, _ in s)
    assert s[("tickstock_patterns_detected_total", ())] == 17
    assert s[("tickstock_session_state", (("state", "starting"),))] == 1


def test_observe_never_raises():
    metrics = ServiceMetrics()
    metrics.observe(snapshot())
    metrics.observe(None)  # type: ignore[arg-type] - the session actor's timer must survive anything
    assert scrape(metrics)[("tickstock_ticks_received_total", ())] == 12_345  # previous one kept


def test_idle_service_keeps_counters_but_drops_live_gauges():
    running = [True]
    metrics = ServiceMetrics()
    metrics.set_running_probe(lambda: running[0])
    metrics.observe(snapshot())
    running[0] = False  # the session ended; no snapshot arrives while idle
    s = scrape(metrics)
    assert s[("tickstock_session_state", (("state", "idle"),))] == 1
    assert s[("tickstock_session_state", (("state", "running"),))] == 0
    assert s[("tickstock_ticks_received_total", ())] == 12_345
    for gone in ("tickstock_ticks_per_second", "tickstock_persistence_backlog", "tickstock_db_connected",
                 "tickstock_active_symbols"):
        assert (gone, ()) not in s, gone
    assert not any(name in ("tickstock_health_status", "tickstock_mailbox_depth") for name, _ in s)


def test_record_detection_counts_per_pattern_across_threads():
    metrics = ServiceMetrics()

    def feed() -> None:
        for _ in range(1_000):
            metrics.record_detection("Doji")
        metrics.record_detection("Hammer", 5)

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = scrape(metrics)
    assert s[("tickstock_detections_total", (("pattern", "Doji"),))] == 4_000
    assert s[("tickstock_detections_total", (("pattern", "Hammer"),))] == 20


def test_latency_histograms():
    metrics = ServiceMetrics()
    for seconds in (0.0004, 0.003, 0.2):
        metrics.observe_publish_latency(seconds)
    metrics.observe_db_write_latency(0.05)
    metrics.observe_db_write_latency(12.0)
    s = scrape(metrics)
    assert s[("tickstock_publish_latency_seconds_count", ())] == 3
    assert s[("tickstock_publish_latency_seconds_sum", ())] == pytest.approx(0.2034)
    assert s[("tickstock_publish_latency_seconds_bucket", (("le", "0.0005"),))] == 1
    assert s[("tickstock_publish_latency_seconds_bucket", (("le", "0.005"),))] == 2
    assert s[("tickstock_db_write_latency_seconds_count", ())] == 2
    assert s[("tickstock_db_write_latency_seconds_bucket", (("le", "10.0"),))] == 1
    assert s[("tickstock_db_write_latency_seconds_bucket", (("le", "+Inf"),))] == 2


def test_each_instance_has_its_own_registry():
    a, b = ServiceMetrics(), ServiceMetrics()  # the global registry would reject the second
    a.observe(snapshot())
    assert ("tickstock_ticks_received_total", ()) in scrape(a)
    assert ("tickstock_ticks_received_total", ()) not in scrape(b)


def test_scrape_over_http_parses(make_server, call, metrics, fake_service_cls):
    server = make_server(service=fake_service_cls(running=True))
    metrics.observe(snapshot())
    metrics.observe_publish_latency(0.001)
    response = call(server, "GET", "/metrics")
    assert response.status == 200
    parsed = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    received = parsed["tickstock_ticks_received"].samples
    assert [s.value for s in received] == [12_345]
    rejected = {s.labels["reason"]: s.value for s in parsed["tickstock_ticks_rejected"].samples}
    assert rejected == {"bad_price": 3, "stale": 2}
    health = {s.labels["status"]: s.value for s in parsed["tickstock_health_status"].samples}
    assert health == {"healthy": 0, "warning": 1, "critical": 0}
    assert any(s.name == "tickstock_publish_latency_seconds_count" and s.value == 1
               for s in parsed["tickstock_publish_latency_seconds"].samples)


def test_server_wires_the_running_probe(make_server, call, metrics, fake_service_cls):
    service = fake_service_cls(running=True)
    server = make_server(service=service)
    metrics.observe(snapshot())
    assert b'tickstock_session_state{state="running"} 1.0' in call(server, "GET", "/metrics").body
    service._running = False
    assert b'tickstock_session_state{state="idle"} 1.0' in call(server, "GET", "/metrics").body


# -- tick subscription gaps ----------------------------------------------------------------------


def test_feed_gaps_by_reason_seconds_and_ticks_lost_estimate():
    metrics = ServiceMetrics()
    metrics.observe(snapshot(ingress=ingress_stats(
        feed_gaps=3, feed_gaps_by_reason={"output_buffer_limit": 2, "connection_lost": 1},
        feed_gap_seconds=4.75, ticks_lost_estimate=276_587, last_gap_reason="output_buffer_limit")))
    s = scrape(metrics)
    assert s[("tickstock_feed_gaps_total", (("reason", "output_buffer_limit"),))] == 2
    assert s[("tickstock_feed_gaps_total", (("reason", "connection_lost"),))] == 1
    assert s[("tickstock_feed_gap_seconds_total", ())] == 4.75
    assert s[("tickstock_feed_ticks_lost_estimate_total", ())] == 276_587
    kinds = families(metrics)
    assert kinds["tickstock_feed_gaps"] == kinds["tickstock_feed_gap_seconds"] == "counter"
    assert kinds["tickstock_feed_ticks_lost_estimate"] == "counter"


def test_no_gap_yet_is_zero_and_no_ingress_is_no_sample():
    metrics = ServiceMetrics()
    metrics.observe(snapshot())  # stats without a gap
    s = scrape(metrics)
    assert s[("tickstock_feed_gap_seconds_total", ())] == 0
    assert s[("tickstock_feed_ticks_lost_estimate_total", ())] == 0
    assert not any(name == "tickstock_feed_gaps_total" for name, _ in s)  # no reason seen yet
    metrics.observe(snapshot(ingress=None))
    s = scrape(metrics)
    assert ("tickstock_feed_gap_seconds_total", ()) not in s
    assert ("tickstock_feed_ticks_lost_estimate_total", ()) not in s


def test_gap_counters_keep_the_last_sessions_totals_when_idle():
    running = [True]
    metrics = ServiceMetrics()
    metrics.set_running_probe(lambda: running[0])
    metrics.observe(snapshot(ingress=ingress_stats(feed_gaps=1, feed_gaps_by_reason={"output_buffer_limit": 1},
                                                   feed_gap_seconds=3.2, ticks_lost_estimate=45_000)))
    running[0] = False
    s = scrape(metrics)
    assert s[("tickstock_feed_gaps_total", (("reason", "output_buffer_limit"),))] == 1
    assert s[("tickstock_feed_ticks_lost_estimate_total", ())] == 45_000


def test_the_gap_reasons_are_copied_at_observe():
    by_reason = {"output_buffer_limit": 1}
    metrics = ServiceMetrics()
    metrics.observe(snapshot(ingress=ingress_stats(feed_gaps=1, feed_gaps_by_reason=by_reason)))
    by_reason["output_buffer_limit"] = 99  # a later change of the stats' dict is not seen
    assert scrape(metrics)[("tickstock_feed_gaps_total", (("reason", "output_buffer_limit"),))] == 1
