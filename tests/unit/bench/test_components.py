"""The components benchmark runs in-process and reports every component of both sets."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import talib

from tickstock.bench.__main__ import main as bench_main
from tickstock.bench.components import BASELINE, OTHER, TALIB, _series, parse_args, run, time_stepped


def test_every_component_is_timed_and_the_alternatives_reported() -> None:
    lines: list[str] = []
    result = run(parse_args(["--symbols", "3", "--prime-bars", "40", "--bars", "3", "--window", "40",
                             "--repeat", "1"]), out=lines.append)
    names = [n for n, _ in BASELINE + TALIB + OTHER]
    assert sorted(result["components"]) == sorted(names)
    assert all(c["us_per_bar"] > 0 for c in result["components"].values())
    assert sorted(result["window"]) == sorted(n for n, _ in TALIB)
    assert all(set(w) == {"stream", "stepped", "window", "batched", "shortest"} for w in result["window"].values())
    assert result["pipeline"]["baseline+ta-lib"] > 0 and result["close_ms"]["all_timeframes"] > 0
    assert result["per_result_us"]["results"] > 0 and result["per_result_us"]["encode"] > 0
    every = result["close_of_every_timeframe"]
    assert every["per_symbol_ms"] > 0 and every["batched_ms"] > 0
    assert every["results"] == every["results_batched"] > 0  # the batch keeps every result
    text = "\n".join(lines)
    assert all(name in text for name in names) and "stepped" in text and "batched" in text and "shortest" in text and "encoded for Redis" in text and "TalibBatch" in text


def test_the_bench_cli_routes_the_components_scenario(capsys) -> None:
    assert bench_main(["--scenario", "components", "--symbols", "2", "--prime-bars", "40", "--bars", "2",
                       "--window", "40", "--repeat", "1"]) == 0
    assert "us/bar/symbol" in capsys.readouterr().out


def test_the_collector_is_paused_while_timing_and_resumed_after() -> None:
    seen: list[bool] = []  # gc.isenabled() at every line printed, i.e. between the timings
    assert gc.isenabled()
    run(parse_args(["--symbols", "2", "--prime-bars", "40", "--bars", "2", "--window", "40", "--repeat", "1"]),
        out=lambda line: seen.append(gc.isenabled()))
    assert seen and not any(seen)
    assert gc.isenabled()


@pytest.mark.parametrize(("name", "params", "function"), [
    ("EMA", {"timeperiod": 20}, "EMA"), ("MACD", {}, "MACD"), ("ATR", {"timeperiod": 14}, "ATR"),
    ("Engulfing", {}, "CDLENGULFING"),
])
def test_the_stepped_column_is_exact_each_symbol_s_own_stream(name, params, function) -> None:
    """The claim the column stands on: stepping every symbol's own handle from one loop reads what
    TA-Lib's Function API reads over all of that symbol's bars, memory functions included."""
    series = _series(3, 60)
    us, last = time_stepped(name, params, series, 40)
    assert us > 0 and len(last) == 3
    columns = {"EMA": ("close",), "MACD": ("close",)}.get(name, ("open", "high", "low", "close"))
    if name == "ATR":
        columns = ("high", "low", "close")
    for bars, got in zip(series, last):
        arrays = [np.array([float(getattr(b, c)) for b in bars]) for c in columns]
        want = getattr(talib, function)(*arrays, **params)
        want = tuple(w[-1] for w in want) if isinstance(want, tuple) else want[-1]
        assert got == want
