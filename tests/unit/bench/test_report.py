"""The benchmark's table, JSON document and plot, from a made-up result of the shape scenarios.run returns."""

import json

import pytest

from tickstock.bench.report import (
    JSON_VERSION, Row, cpu_model, format_table, latency_target_ms, machine_info, machine_line, render, rows, to_json,
    write_json,
)

MACHINE = {"cores": 2, "cpu_model": "Intel(R) Xeon(R) Processor", "python": "3.11.7", "platform": "Linux",
           "loadavg_at_start": [0.5, 0.4, 0.3]}


def summary(p50, p99, mx, n=100):
    return {"n": n, "p50": p50, "p99": p99, "max": mx, "mean": p50}


def result(scenario="latency", symbols=500, **service_changes):
    service = {
        "startup_seconds": 3.21, "sent": 120_000, "in_bars": 119_990, "rows": 1500,
        "generator": {"rate": 500.2, "cpu_share": 0.012, "max_behind": 0.0021, "unheard": 0, "seconds": 120},
        "bars_in_db_s": summary(2.25, 2.4, 2.4, n=2),
        "latency_ms": {"from_deadline": summary(104.2, 126.0, 134.5, n=3000),
                       "from_close": summary(103.0, 125.0, 133.0, n=3000),
                       "close_lag": summary(0.5, 1.0, 1.0), "last_per_minute": {"1728300000": 130.0},
                       "last_per_minute_summary": summary(130.0, 134.5, 134.5, n=2),
                       "first_per_minute_summary": summary(61.0, 70.0, 70.0, n=2), "closed_early": 0},
        "events": 3000, "events_per_minute": 1500.0,
        "backlog": {"max_omem": 0, "max_tot_mem": 22_000, "reconnects": 0},
        "cpu_share": 0.38, "rss": {"max": 110 * 2**20, "end": 105 * 2**20, "first_period": 100 * 2**20},
        "metrics": {"tickstock_ticks_received_total": 120_000.0, "tickstock_ticks_late_total": 10.0, "rejected": 0.0},
        "critical_alerts": 0, "exit_code": 0,
    }
    service.update(service_changes)
    return {
        "settings": {"scenario": scenario, "symbols": symbols, "rate": 500.0, "prime": True, "minutes": 2,
                     "seconds": None, "period_minutes": 30, "burst": None, "grace": 2.0},
        "machine": MACHINE,
        "floor": {"closes": 20, "symbols": symbols, "per_close_ms": summary(30.0, 40.0, 41.0, n=20),
                  "per_close_series_ms": [30.0] * 20, "events_per_close": 1087},
        "ceiling": {"ticks_per_second": 236_176.0, "receiver_cpu_share": 0.55, "attempts": []},
        "service": service, "notes": ["a note"],
        "series": {"sent_per_second": [(1728300000, 500), (1728300001, 500)], "cpu_share": [(1728300001.0, 0.4)],
                   "latencies_ms": [104.0, 126.0], "omem_mb": [(1728300001.0, 0.0)]},
    }


def table_of(r):
    return {row.figure: row for row in rows(r)}


def test_rows_put_the_floor_and_the_ceiling_beside_the_figures():
    t = table_of(result())
    latency = next(row for f, row in t.items() if f.startswith("close -> last event"))
    assert latency.value == "130 / 134 / 134 ms"    # >= 100 ms: no decimals
    assert latency.reference == "floor p99 40.0 ms"
    assert latency.ratio == "3.36x"
    assert latency.target == "p99 <= 40 ms and <= 2x floor"
    assert t["close -> first event of the minute (p50 / p99 / max)"].value == "61.0 / 70.0 / 70.0 ms"
    rate = t["rate sent (achieved, whole run)"]
    assert rate.value == "500 ticks/s" and rate.reference == "" and rate.ratio == ""  # a paced latency run
    assert t["ticks sent -> in bars (sum of ohlcv_1min volume)"].value == "120,000 -> 119,990 (10 lost)"
    assert t["service start-up (process start -> session_started)"].value == "3.2 s"
    assert t["service RSS, max / at the end"].value == "110.0 MB / 105.0 MB"
    assert t["service CPU (with its analysis process), user+sys / wall, while fed"].value == "38% of a core, 759.7 us/tick"


def test_throughput_is_set_beside_the_receive_ceiling():
    r = result("throughput")
    r["service"]["generator"]["rate"] = 200_000.0
    rate = table_of(r)["rate sent (achieved, whole run)"]
    assert (rate.value, rate.reference, rate.ratio) == ("200,000 ticks/s", "ceiling 236,176/s", "0.85x")
    assert rate.target == ">= 200,000/s and >= 0.7 of the ceiling, nothing lost"
    cpu = table_of(r)["service CPU (with its analysis process), user+sys / wall, while fed"]
    assert (cpu.value, cpu.reference, cpu.ratio) == ("38% of a core, 1.9 us/tick", "receiver alone 2.3 us/tick", "0.82x")


def test_targets_follow_the_universe_size():
    assert latency_target_ms(500) == 40 and latency_target_ms(3000) == 100 and latency_target_ms(10_000) == 250
    t = table_of(result("scale", symbols=10_000))
    assert t["service start-up (process start -> session_started)"].target == "<= 15 s"
    assert t["service RSS, max / at the end"].target == "<= 600 MB; with its analysis process"


def test_day_reports_rss_after_the_first_period_against_the_end():
    t = table_of(result("day"))
    assert t["RSS after the first 30 min -> at the end"].value == "100.0 MB -> 105.0 MB (+5.0%)"


def test_the_replayed_day_reports_its_bars_late_ticks_last_minute_and_rss_in_event_minutes():
    r = result("day", rows=195_000, day={"date": "2025-03-12", "minutes": 390, "bars_expected": 195_000,
                                         "idle_after": 5.0, "last_minute": {"events": 1084,
                                                                            "closed_after_last_batch_s": 5.02}})
    r["service"]["metrics"].update(tickstock_bars_closed_total=195_000.0, tickstock_ticks_late_total=0.0)
    r["settings"].update(minutes=390, speed=60.0, date="2025-03-12", rate=2000.0, prime=False)
    t = table_of(r)
    bars = t["bars of the replayed day in ohlcv_1min (rows) / closed by the service (/metrics)"]
    assert (bars.value, bars.target) == ("195,000 / 195,000", "== 195,000 (500 x 390)")
    assert t["the service's own count (/metrics): received / late / rejected"].target == "late == 0"
    assert t["the service's own count (/metrics): received / late / rejected"].value == "120,000 / 0 / 0"
    last = t["last minute: closed after the last batch (by the feed's silence) / its events"]
    assert last.value == "5.0 s / 1,084" and "not in the latencies" in last.target
    assert t["RSS after the first 30 event min -> at the end"].value == "100.0 MB -> 105.0 MB (+5.0%)"
    assert t["minute's bars all in the database, after the minute's end (p50 / max)"].reference == \
        "grace 2 s of event time"
    assert render(r).splitlines()[0] == ("scenario day: 500 symbols, 2,000 ticks/s, 390 event minutes of "
                                         "2025-03-12 replayed at speed 60 (6.5 min wall)")
    r["settings"].update(minutes=12, speed=120.0)
    assert render(r).splitlines()[0].endswith("at speed 120 (6 s wall)")
    assert "late == 0" not in render(result())  # live scenarios: no such target


def test_missing_figures_read_n_a_not_a_crash():
    r = result("throughput", latency_ms={}, bars_in_db_s={"n": 0}, metrics={}, rss={}, backlog={})
    r["floor"] = None
    r["ceiling"] = {"ticks_per_second": None, "attempts": []}
    text = format_table(rows(r))
    assert "not reached without loss" in text and "close -> event" not in text
    assert "| n/a / n/a " in text


def test_format_table_is_an_aligned_markdown_table():
    text = format_table([Row("a", "1"), Row("longer figure", "22", "floor 3", "7.33x", "t")])
    lines = text.splitlines()
    assert lines[0].startswith("| figure") and set(lines[1]) <= {"|", "-"}
    assert len({len(line) for line in lines}) == 1
    assert lines[3] == "| longer figure | 22    | floor 3         | 7.33x | t             |"


def test_render_names_the_scenario_and_the_machine():
    text = render(result())
    first, second = text.splitlines()[:2]
    assert first == "scenario latency: 500 symbols primed, 500 ticks/s, 2 minutes"
    assert second == "machine: 2 cores, Intel(R) Xeon(R) Processor, Python 3.11.7, load 0.50 at start"
    assert text.rstrip().endswith("note: a note")


def test_json_shape(tmp_path):
    path = tmp_path / "out.json"
    write_json(result(), path)
    doc = json.loads(path.read_text())
    assert doc["version"] == JSON_VERSION
    assert set(doc) >= {"settings", "machine", "floor", "ceiling", "service", "series", "table", "notes"}
    assert set(doc["machine"]) >= {"cores", "cpu_model", "python"}
    assert all(set(row) == {"figure", "value", "reference", "ratio", "target"} for row in doc["table"])
    assert doc["service"]["latency_ms"]["from_deadline"]["p99"] == 126.0
    assert doc["series"]["sent_per_second"] == [[1728300000, 500], [1728300001, 500]]
    assert to_json(result()) == doc


def test_cpu_model_and_machine():
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    info = machine_info()
    assert info["cores"] >= 1 and info["python"].count(".") == 2
    assert machine_line(info).startswith(f"machine: {info['cores']} cores, ")


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from tickstock.bench.report import plot

    path = tmp_path / "bench.png"
    plot(result(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_sharded_floor_is_set_beside_the_single_floor():
    r = result()
    r["floor_sharded"] = {"shards": 2, "closes": 20, "symbols_per_shard": [1500, 1500],
                          "per_close_ms": summary(18.0, 25.0, 26.0, n=20), "per_close_series_ms": [18.0] * 20}
    row = table_of(r)["inline floor over 2 processes, closes lined up: the slowest shard (p50 / p99 / max)"]
    assert row.value == "18.0 / 25.0 / 26.0 ms" and row.reference == "floor p50 30.0 ms"
    assert row.ratio == "0.60x" and row.target == "1,500 + 1,500 symbols"
    assert not any(f.startswith("inline floor over") for f in table_of(result()))  # only when asked


def test_the_floor_s_phases_are_one_row_named_in_order():
    r = result()
    r["floor"]["phases_p50_ms"] = {"close_bars": 1.94, "analysis": 57.3, "events": 17.7, "rows": 63.1,
                                   "encode": 34.2, "publish": 17.9}
    row = table_of(r)["inline floor, one close by phase (p50 of each)"]
    assert row.value == "1.9 / 57.3 / 17.7 / 63.1 / 34.2 / 17.9 ms"
    assert row.target == "close_bars / analysis / events / rows / encode / publish"
    assert "inline floor, one close by phase (p50 of each)" not in table_of(result())
