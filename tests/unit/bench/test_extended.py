"""``--extended`` (issue 10 item 4): the definition rows and SQL written into the run's own database,
the option's parsing, the timing of higher-timeframe events and the table (no services, but the last
test: a tiny inline floor against the real Redis)."""

import json

import orjson
import pytest

from tickstock.analysis import definitions_from_config, registry, select_definitions
from tickstock.analysis.talib_functions import TalibComponent
from tickstock.bench.__main__ import parse_args
from tickstock.bench.floor import closes_of_every_timeframe, split_by_closing
from tickstock.bench.report import render, rows
from tickstock.bench.sandbox import (
    EXTENDED_NAMES, EXTENDED_TIMEFRAMES, apply_extended, base_config, check_extended, describe_definitions,
    extended_rows, extended_statements,
)
from tickstock.bench.scenarios import (
    FEED_LEAD_PER_1000, FEED_LEAD_SECONDS, closing_minute, closing_timeframes, event_timeframe, extended_note,
    feed_boundary, last_by_timeframe, make_plan, split_last_by_closing,
)
from tickstock.bench.stats import EventTimes
from tickstock.config import validate

ALL = ("1min", "5min", "15min", "60min")
BASELINE = ("Doji", "Hammer", "HeadShoulders", "InverseHeadShoulders", "RSI", "SMA")
# 2026-11-30 10:00:00 UTC: a multiple of 3600, so :30 UTC is 1800 past it.
HOUR = 1_796_032_800
TALIB = {"Engulfing": "CDLENGULFING", "MorningStar": "CDLMORNINGSTAR", "EveningStar": "CDLEVENINGSTAR",
         "ShootingStar": "CDLSHOOTINGSTAR", "Harami": "CDLHARAMI", "ThreeAdvancingWhiteSoldiers": "CDL3WHITESOLDIERS",
         "EMA": "EMA", "MACD": "MACD", "BBANDS": "BBANDS", "ATR": "ATR"}


def baseline_rows():
    """Migration 002's rows, as the store reads them."""
    common = {"enabled": True, "applicable_timeframes": ["intraday"], "confidence_threshold": None}
    patterns = [{**common, "name": n, "min_bars_required": m, "instantiation_params": {}}
                for n, m in (("Doji", 1), ("Hammer", 2), ("HeadShoulders", 20), ("InverseHeadShoulders", 20))]
    indicators = [{**common, "name": "RSI", "min_bars_required": 15, "period": 14, "parameters": {"period": 14}},
                  {**common, "name": "SMA", "min_bars_required": 20, "period": 20, "parameters": {"period": 20}}]
    return patterns, indicators


def full_set():
    bp, bi = baseline_rows()
    ep, ei = extended_rows()
    return select_definitions(bp + ep, bi + ei)


# -- the rows and the SQL -------------------------------------------------------------------------

def test_the_ten_are_migration_005_s_common_talib_functions_on_every_timeframe():
    assert len(EXTENDED_NAMES) == 10 and len(set(EXTENDED_NAMES)) == 10
    assert EXTENDED_TIMEFRAMES == ("intraday", "5min", "15min", "60min")
    patterns, indicators = extended_rows()
    loaded = select_definitions(patterns, indicators)
    assert loaded.names() == EXTENDED_NAMES
    assert not loaded.problems() and not loaded.unknown and not loaded.invalid and not loaded.skipped
    assert all(d.timeframes == ALL for d in loaded)
    assert [d.kind for d in loaded] == ["pattern"] * 6 + ["indicator"] * 4
    params = {d.name: d.params for d in loaded}
    assert params["EMA"] == {"period": 20} and params["ATR"] == {"period": 14}
    assert params["MACD"] == {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9}
    assert params["BBANDS"] == {"period": 20, "nbdevup": 2.0, "nbdevdn": 2.0}


def test_each_name_is_the_talib_function_meant():
    for name, function in TALIB.items():
        cls = registry.lookup(function)
        assert cls.name == registry.lookup(name).name == name
        assert issubclass(cls, TalibComponent)


def test_the_baseline_stays_on_1min_and_the_ten_run_on_every_timeframe():
    loaded = full_set()
    assert set(loaded.names()) == set(BASELINE) | set(EXTENDED_NAMES) and len(loaded) == 16
    assert loaded.for_timeframe("1min") == loaded.definitions
    for tf in ALL[1:]:
        assert tuple(d.name for d in loaded.for_timeframe(tf)) == EXTENDED_NAMES
    assert loaded.timeframes == ALL
    check_extended(loaded)
    described = {d["name"]: d["timeframes"] for d in describe_definitions(loaded)}
    assert described["RSI"] == ["1min"] and described["MACD"] == list(ALL)


def test_the_sql_writes_the_ten_rows_only_enabled_on_every_timeframe():
    statements = extended_statements()
    assert len(statements) == 10
    patterns, indicators = extended_rows()
    for (sql, params), row in zip(statements, patterns + indicators):
        table = "pattern_definitions" if row in patterns else "indicator_definitions"
        assert sql.startswith(f"INSERT INTO {table} ")
        assert "ON CONFLICT (name) DO UPDATE SET enabled = true, applicable_timeframes = EXCLUDED" in sql
        assert "DELETE" not in sql and sql.count("%s") == len(params)
        assert params[0] == row["name"] and params[2] == ["intraday", "5min", "15min", "60min"]
        written = json.loads(params[-1])
        assert written == (row["instantiation_params"] if table == "pattern_definitions" else row["parameters"])
    assert [p[0] for _, p in statements] == list(EXTENDED_NAMES)
    assert not {p[0] for _, p in statements} & set(BASELINE)
    indicator_periods = {p[0]: p[3] for s, p in statements if "indicator_definitions" in s}
    assert indicator_periods == {"EMA": 20, "MACD": None, "BBANDS": 20, "ATR": 14}


def test_a_set_that_did_not_load_as_meant_is_refused():
    bp, bi = baseline_rows()
    with pytest.raises(RuntimeError, match="EMA runs on nothing"):
        check_extended(select_definitions(bp, bi))
    ep, ei = extended_rows()
    ei[1]["applicable_timeframes"] = ["intraday"]  # MACD 1min only
    with pytest.raises(RuntimeError, match="MACD runs on 1min$"):
        check_extended(select_definitions(ep, ei))
    ep, ei = extended_rows()
    ei[0]["parameters"] = {"timeperiod": "20"}
    with pytest.raises(RuntimeError, match="EMA"):
        check_extended(select_definitions(ep, ei))


def test_only_a_benchmark_s_own_database_is_written():
    for dsn in ("postgresql://root@127.0.0.1:5432/tickstock", "postgresql://root@127.0.0.1:5432/postgres"):
        with pytest.raises(ValueError, match="benchmark's own database"):
            apply_extended(dsn)


def test_the_floor_s_default_set_is_still_the_baseline():
    a = validate(base_config()).analysis
    baseline = definitions_from_config(a.fallback_definitions, a.timeframe)
    assert baseline.names() == BASELINE and baseline.timeframes == ("1min",)


# -- the option -----------------------------------------------------------------------------------

def test_extended_is_parsed_and_planned():
    assert parse_args(["--scenario", "latency", "--extended"]).extended is True
    assert parse_args(["--scenario", "latency"]).extended is None
    assert make_plan("latency").extended is False
    for scenario in ("latency", "throughput", "scale"):
        assert make_plan(scenario, extended=True).extended is True


def test_extended_is_refused_for_the_day_replay():
    with pytest.raises(ValueError, match="--extended is for --scenario latency, throughput, scale"):
        make_plan("day", extended=True)


def test_the_main_reports_a_refused_plan(capsys):
    from tickstock.bench.__main__ import main

    assert main(["--scenario", "day", "--extended"]) == 2
    assert "--extended" in capsys.readouterr().err


# -- higher-timeframe events ----------------------------------------------------------------------

def event(start, closed_at=None):
    return EventTimes("indicator", "AAPL", "EMA", float(start), closed_at, start + 999.0)


def test_a_higher_bar_s_event_is_timed_from_its_interval_s_last_minute():
    assert closing_minute(event(HOUR), "1min", 2.0) == HOUR
    assert closing_minute(event(HOUR), "5min", 2.0) == HOUR + 240
    assert closing_minute(event(HOUR), "15min", 2.0) == HOUR + 840
    assert closing_minute(event(HOUR + 1800), "60min", 2.0) == HOUR + 1800 + 3540
    # Closed on time (2.4 s after the 5-minute end): the same minute either way.
    assert closing_minute(event(HOUR, HOUR + 302.4), "5min", 2.0) == HOUR + 240


def test_an_hour_cut_short_is_timed_from_the_minute_its_close_stamp_names():
    start = HOUR + 1800  # 15:30-16:00 ET would look like this: closed with its 30th minute
    assert closing_minute(event(start, start + 1800 + 2.1), "60min", 2.0) == start + 1740
    assert closing_minute(event(start, start + 1800 + 2.1), "60min", 2.0, wall_clock=False) == start + 3540


def test_which_timeframes_close_with_a_minute():
    assert closing_timeframes(HOUR) == ["1min"]
    assert closing_timeframes(HOUR + 240) == ["1min", "5min"]
    assert closing_timeframes(HOUR + 840) == ["1min", "5min", "15min"]
    assert closing_timeframes(HOUR + 1740) == ["1min", "5min", "15min", "60min"]   # :30 UTC
    assert closing_timeframes(HOUR + 3540) == ["1min", "5min", "15min"]            # :00: no hour closes
    assert closing_timeframes(HOUR + 1740, timeframes=()) == ["1min"]             # the baseline
    assert closing_timeframes(HOUR + 3540, seen=["60min"]) == ["1min", "5min", "15min", "60min"]


def test_an_interval_the_feed_started_in_is_partial_and_not_counted_as_closing():
    # Fed from HOUR + 120 (the first whole minute): 10:00-10:05 and the hour from 9:30 are partial.
    assert closing_timeframes(HOUR + 240, observed_from=HOUR + 120) == ["1min"]
    assert closing_timeframes(HOUR + 540, observed_from=HOUR + 120) == ["1min", "5min"]
    assert closing_timeframes(HOUR + 840, observed_from=HOUR + 120) == ["1min", "5min"]    # 10:00-10:15 partial
    assert closing_timeframes(HOUR + 1740, observed_from=HOUR + 120) == ["1min", "5min", "15min"]
    assert closing_timeframes(HOUR + 5340, observed_from=HOUR + 120) == ["1min", "5min", "15min", "60min"]
    assert closing_timeframes(HOUR + 240, observed_from=HOUR) == ["1min", "5min"]          # fed from its start


def test_the_feed_starts_at_a_minute_boundary_far_enough_ahead_for_start_up():
    # The history is written to end the minute before: a boundary, never sooner than the lead.
    for symbols in (50, 500, 3_000, 10_000):
        lead = FEED_LEAD_SECONDS + FEED_LEAD_PER_1000 * symbols / 1000
        for now in (HOUR, HOUR + 0.5, HOUR + 29.9, HOUR + 59.99, HOUR + 3_599.0):
            start = feed_boundary(symbols, now)
            assert start % 60 == 0
            assert now + lead <= start < now + lead + 60
    assert feed_boundary(10_000, HOUR + 10) > feed_boundary(50, HOUR + 10)  # a larger universe starts up longer


def test_a_history_reaching_the_feed_leaves_no_interval_partial():
    # Contiguous history (observed_from None): the first :30 UTC after the start closes all four.
    assert closing_timeframes(HOUR + 1740, observed_from=None) == ["1min", "5min", "15min", "60min"]
    # Fed after a gap from HOUR + 900 instead: the hour from 9:30 is partial, 15 minutes whole.
    assert closing_timeframes(HOUR + 1740, observed_from=HOUR + 900) == ["1min", "5min", "15min"]


def test_the_timeframe_is_read_from_the_event():
    assert event_timeframe(orjson.dumps({"calculation": {"indicator": "EMA", "timeframe": "15min"}})) == "15min"
    assert event_timeframe(orjson.dumps({"detection": {"pattern": "Harami", "timeframe": "60min"}})) == "60min"
    assert event_timeframe(orjson.dumps({"detection": {"pattern": "Doji"}})) == "1min"
    assert event_timeframe(orjson.dumps({"detection": {"pattern": "Doji", "timeframe": "daily"}})) == "1min"
    assert event_timeframe(b"not json") == "1min"


def test_last_event_latencies_are_split_by_what_closed():
    last = {HOUR: 10.0, HOUR + 60: 11.0, HOUR + 240: 50.0, HOUR + 1740: 90.0}
    closing = {m: closing_timeframes(m) for m in last}
    split = split_last_by_closing(last, closing)
    assert split["1min_only"]["n"] == 2 and split["1min_only"]["max"] == 11.0
    assert split["with_higher"]["n"] == 2 and split["with_higher"]["max"] == 90.0
    assert split["minutes_closing"] == {"5min": 2, "15min": 1, "60min": 1}
    floor = split_by_closing([1.0, 2.0, 9.0], [["1min"], ["1min"], ["1min", "5min"]])
    assert floor["1min_only"]["n"] == 2 and floor["with_higher"]["p50"] == 9.0
    assert floor["minutes_closing"] == {"5min": 1, "15min": 0, "60min": 0}


def test_each_timeframe_s_last_event_is_summarised_over_the_minutes_where_a_higher_bar_closed():
    minutes = (HOUR, HOUR + 240, HOUR + 1740)  # 1min only; 5min too; every timeframe (:30)
    closing = {m: closing_timeframes(m) for m in minutes}
    last = {"60min": {HOUR + 1740: 130.0},
            "1min": {HOUR: 40.0, HOUR + 240: 45.0, HOUR + 1740: 60.0},
            "5min": {HOUR + 240: 90.0, HOUR + 1740: 110.0}}
    got = last_by_timeframe(last, closing)
    assert list(got) == ["1min", "5min", "60min"]  # ascending; 15min never closed here
    assert got["1min"]["n"] == 2 and got["1min"]["max"] == 60.0  # the 1min-only minute left out
    assert got["5min"]["p50"] in (90.0, 110.0) and got["5min"]["max"] == 110.0
    assert got["60min"]["max"] == 130.0
    assert last_by_timeframe({"1min": {HOUR: 40.0}}, {HOUR: ["1min"]}) == {}


def test_the_close_of_every_timeframe_is_kept_with_its_phases_and_events():
    phases = {"analysis": [1.0, 2.0, 30.0], "encode": [0.5, 0.6, 9.0]}
    timeframes = [["1min"], ["1min", "5min", "15min"], list(ALL)]
    got = closes_of_every_timeframe([2.0, 4.0, 50.0], phases, [100, 200, 900], timeframes, ALL)
    assert got == [{"ms": 50.0, "events": 900, "phases_ms": {"analysis": 30.0, "encode": 9.0}}]
    # 1, 5 and 15 minutes configured: the close of those three is the close of every timeframe
    assert [c["ms"] for c in closes_of_every_timeframe([2.0, 4.0], phases, [1, 2], timeframes[:2], ALL[:3])] == [4.0]
    assert closes_of_every_timeframe([2.0], phases, [1], [["1min"]], ["1min"]) == []  # 1 minute only: none


# -- the table and the notes ----------------------------------------------------------------------

def extended_result():
    from tests.unit.bench.test_report import result

    r = result()
    r["settings"]["extended"] = True
    lat = r["service"]["latency_ms"]
    lat["last_per_minute_by_closing"] = split_last_by_closing(
        {HOUR: 60.0, HOUR + 240: 95.0}, {HOUR: ["1min"], HOUR + 240: ["1min", "5min"]})
    lat["last_by_timeframe"] = last_by_timeframe({"1min": {HOUR: 60.0, HOUR + 240: 41.0}, "5min": {HOUR + 240: 95.0}},
                                                 {HOUR: ["1min"], HOUR + 240: ["1min", "5min"]})
    r["floor"]["timeframes"] = list(ALL)
    r["floor"]["per_close_ms_by_closing"] = split_by_closing([30.0, 45.0], [["1min"], ["1min", "5min"]])
    return r


def test_the_table_says_the_extended_set_was_on_and_splits_by_what_closed():
    r = extended_result()
    text = render(r)
    assert "extended: baseline + 10 TA-Lib functions on 1/5/15/60min" in text.splitlines()[0]
    table = {row.figure: row for row in rows(r)}
    last = next(row for f, row in table.items() if f.startswith("close -> last event of the minute"))
    assert last.target == "p99 <= 100 ms (issue 10 item 4)"
    only = next(row for f, row in table.items() if "last event: minutes of 1-minute bars only (1;" in f)
    higher = next(row for f, row in table.items() if "last event: minutes where a 5/15/60-minute bar closed too (1;" in f)
    assert only.value == "60.0 / 60.0 / 60.0 ms" and higher.value == "95.0 / 95.0 / 95.0 ms"
    assert higher.target == "5min x1"
    by_tf = next(row for f, row in table.items() if f.startswith("  last event of each timeframe"))
    assert by_tf.value == "1min 41.0 / 41.0; 5min 95.0 / 95.0 ms"
    assert any("floor: closes where a 5/15/60-minute bar closed too (1;" in f and table[f].target == "5min x1"
               for f in table)
    assert not any("close of every timeframe" in f for f in table)  # no :30 close in this run


def test_the_floor_s_close_of_every_timeframe_is_a_row_with_its_phases():
    r = extended_result()
    r["floor"]["closes_of_every_timeframe"] = [
        {"ms": 146.8, "events": 9512, "phases_ms": {"close_bars": 0.3, "analysis": 70.2, "events": 4.1,
                                                    "rows": 38.0, "encode": 19.5, "publish": 14.7}}]
    row = {row.figure: row for row in rows(r)}["  floor: the close of every timeframe (1min/5min/15min/60min), by phase"]
    assert row.value == "147 ms: 0.3 / 70.2 / 4.1 / 38.0 / 19.5 / 14.7 ms"
    assert row.target == "9,512 events; close_bars / analysis / events / rows / encode / publish"


def test_a_baseline_run_keeps_issue_8_s_target_and_no_split():
    from tests.unit.bench.test_report import result

    table = rows(result())
    assert not any("closed too" in row.figure for row in table)
    last = next(row for row in table if row.figure.startswith("close -> last event of the minute"))
    assert last.target == "p99 <= 40 ms and <= 2x floor"
    assert "extended" not in render(result()).splitlines()[0]


def test_the_note_names_every_definition_and_timeframe():
    note = extended_note(describe_definitions(full_set()), BASELINE)
    for name in (*EXTENDED_NAMES, *BASELINE):
        assert name in note
    assert "1min, 5min, 15min, 60min" in note and "{intraday,5min,15min,60min}" in note
    assert "16 definitions, 46 per symbol over the timeframes" in note


# -- the floor on every timeframe (the real Redis) -------------------------------------------------

@pytest.mark.integration
def test_the_floor_runs_the_higher_timeframes_when_the_set_has_them():
    from tickstock.bench.floor import run_floor
    from tickstock.bench.sandbox import REDIS_URL, new_prefix
    from tickstock.config import ChannelSettings

    cfg = base_config()
    prefix = new_prefix()
    settings = validate(cfg)
    channels = ChannelSettings(**{k: f"{prefix}floor:{v}" for k, v in cfg["channels"].items()})
    symbols = ["AAPL", "MSFT", "T00001"]
    out = run_floor(symbols, settings, REDIS_URL, channels, closes=6, prime_bars=200, log=lambda text: None,
                    definitions=full_set())
    assert out["timeframes"] == list(ALL) and len(out["definitions"]) == 16
    assert len(out["per_close_timeframes"]) == 6
    assert any("5min" in tfs for tfs in out["per_close_timeframes"])  # 6 minutes hold a 5-minute end
    split = out["per_close_ms_by_closing"]
    assert split["1min_only"]["n"] + split["with_higher"]["n"] == 6 and split["with_higher"]["n"] >= 1
    baseline = run_floor(symbols, settings, REDIS_URL, channels, closes=2, prime_bars=30, log=lambda text: None)
    assert baseline["timeframes"] == ["1min"] and baseline["definitions"] == list(BASELINE)
    assert all(tfs == ["1min"] for tfs in baseline["per_close_timeframes"])


def test_the_json_keeps_the_option_the_set_and_the_split(tmp_path):
    from tickstock.bench.report import write_json

    r = extended_result()
    r["definitions"] = {"extended": list(EXTENDED_NAMES), "timeframes": list(ALL),
                        "applicable_timeframes": list(EXTENDED_TIMEFRAMES), "loaded": describe_definitions(full_set())}
    write_json(r, tmp_path / "out.json")
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["settings"]["extended"] is True
    assert doc["definitions"]["extended"] == list(EXTENDED_NAMES)
    assert {d["name"]: d["timeframes"] for d in doc["definitions"]["loaded"]}["ATR"] == list(ALL)
    assert doc["service"]["latency_ms"]["last_per_minute_by_closing"]["with_higher"]["max"] == 95.0
    assert any(row["figure"].startswith("  last event: minutes where") for row in doc["table"])
