"""CloseAnalysis: a session's TA-Lib definitions on every timeframe, for all symbols at once, give each
symbol exactly what its own pipelines give on the same bars, built as the symbol actor builds them
(one Resampler per symbol; priming folded into the higher timeframes; partial bars skipped)."""

from __future__ import annotations

from msgspec.structs import replace
from typing import Any

import pytest

from tickstock.analysis import AnalysisPipeline, Definition, create
from tickstock.analysis.close_analysis import CloseAnalysis
from tickstock.analysis.talib_batch import TalibBatch
from tickstock.bars.timeframes import BASE_TIMEFRAME, TIMEFRAMES, Resampler
from tickstock.messages.bars import Bar

from .series import candles, to_bars

SYMBOLS = ("AAA", "BBB", "CCC")
T0 = 1_700_000_400 - 1_700_000_400 % 3600 + 1800  # a :30 UTC: the 60-minute grid's own start
PRIME, LIVE = 400, 240


def definition(name: str, params: dict[str, Any] | None = None, timeframes=(BASE_TIMEFRAME,), **gating: Any) -> Definition:
    component = create(name, params or {})
    return Definition(component.name, component.kind, params or {}, timeframes=tuple(timeframes), **gating)


DEFINITIONS = (
    definition("EMA", {"timeperiod": 5}, ("1min", "5min", "15min", "60min")),
    definition("MACD", {}, ("1min", "15min")),
    definition("BBANDS", {"timeperiod": 10}, ("5min",)),
    definition("Engulfing", {}, ("1min", "5min"), confidence_threshold=0.5),
    definition("CDLDOJI", {}, ("1min", "5min")),
    definition("NATR", {"timeperiod": 3}, ("60min",)),
    definition("ATR", {"timeperiod": 14}, ("1min",), min_bars_required=PRIME + 20),
)


def by_timeframe(definitions=DEFINITIONS) -> dict[str, list[Definition]]:
    out: dict[str, list[Definition]] = {}
    for d in definitions:
        for tf in d.timeframes:
            out.setdefault(tf, []).append(d)
    return out


def series(n: int = PRIME + LIVE) -> dict[str, list[Bar]]:
    return {s: to_bars(*candles(30 + k, n, 40.0 + 25 * k, 0.004, tick=0.01), symbol=s, start=T0)
            for k, s in enumerate(SYMBOLS)}


def key(tf: str, r: Any) -> tuple:
    return (r.bar.symbol, tf, r.name, r.bar.start, getattr(r, "value", None), getattr(r, "values", None),
            getattr(r, "confidence", None), getattr(r, "parameters", None), getattr(r, "metadata", None))


def reference(bars: dict[str, list[Bar]], live_from: float | None = None,
              definitions=DEFINITIONS) -> list[list[tuple]]:
    """Each live minute's results, per symbol as the symbol actor computes them: its own pipeline per
    timeframe and its own Resampler, primed with the history folded into every timeframe."""
    per_tf = by_timeframe(definitions)
    higher = [tf for tf in per_tf if tf != BASE_TIMEFRAME]
    out: list[list[tuple]] = [[] for _ in range(LIVE)]
    for symbol, symbol_bars in bars.items():
        pipelines = {tf: AnalysisPipeline(per_tf[tf], symbol=symbol) for tf in per_tf}
        resampler = Resampler(symbol, higher)
        history = symbol_bars[:PRIME]
        pipelines[BASE_TIMEFRAME].prime(history)
        for tf, folded in resampler.fold(history).items():
            pipelines[tf].prime(folded)
        for k, bar in enumerate(symbol_bars[PRIME:]):
            if k == 0:
                resampler.observed_from(bar.start if live_from is None else min(live_from, bar.start))
            results = []
            if not bar.partial:
                o = pipelines[BASE_TIMEFRAME].on_bar(bar)
                assert not o.errors
                results += [key(BASE_TIMEFRAME, r) for r in o.patterns + o.indicators]
            for closed in resampler.on_bar(bar):
                if not closed.bar.partial:
                    o = pipelines[closed.timeframe].on_bar(closed.bar)
                    results += [key(closed.timeframe, r) for r in o.patterns + o.indicators]
            out[k] += results
    return [sorted(r) for r in out]


def batched(bars: dict[str, list[Bar]], live_from: float | None = None,
            definitions=DEFINITIONS) -> tuple[list[list[tuple]], int]:
    analysis = CloseAnalysis(by_timeframe(definitions), SYMBOLS)
    if live_from is not None:
        analysis.live_from(live_from)
    for symbol, symbol_bars in bars.items():
        assert analysis.prime(symbol, symbol_bars[:PRIME]) == []
    out, skipped = [], 0
    for k in range(PRIME, PRIME + LIVE):
        close = analysis.on_close([bars[s][k] for s in SYMBOLS])
        assert close.errors == []
        skipped += close.partial_skipped
        out.append(sorted(key(tf, r) for tf, results in close.results for r in results))
    return out, skipped


def test_every_close_gives_each_symbol_what_its_own_pipelines_give_on_every_timeframe() -> None:
    bars = series()
    got, skipped = batched(bars)
    assert got == reference(bars)
    assert skipped == 0
    found = {(r[1], r[2]) for close in got for r in close}
    # not vacuous: every definition on every timeframe it names produced results
    assert found == {(tf, d.name) for d in DEFINITIONS for tf in d.timeframes}


def test_a_partial_bar_of_any_timeframe_is_skipped_and_counted() -> None:
    bars = series()
    k = PRIME + 7  # a live minute inside a 5-, 15- and 60-minute interval
    bars["BBB"][k] = replace(bars["BBB"][k], partial=True)
    got, skipped = batched(bars)
    assert got == reference(bars)
    # the 1-minute bar, and the 5-, 15- and 60-minute bars containing it
    assert skipped == 4
    assert not any(r[0] == "BBB" and r[3] == bars["BBB"][k].start for close in got for r in close)


def test_the_stretch_between_history_and_live_from_makes_the_overlapping_higher_bars_partial() -> None:
    bars = series()
    gap = {s: b[:PRIME - 3] + b[PRIME:] for s, b in bars.items()}  # three minutes never seen
    live_from = bars["AAA"][PRIME].start - 30  # live from 30 s before the first live minute
    analysis = CloseAnalysis(by_timeframe(), SYMBOLS)
    analysis.live_from(live_from)
    for symbol in SYMBOLS:
        analysis.prime(symbol, gap[symbol][:PRIME - 3])
    first = analysis.on_close([gap[s][PRIME - 3] for s in SYMBOLS])
    assert first.errors == []
    # The 5-minute bar before the first live minute lost its last three minutes: partial, closed
    # late and skipped, for each symbol (the 15- and 60-minute bars around them are still forming).
    assert first.partial_skipped == len(SYMBOLS)
    assert sorted(key(tf, r) for tf, results in first.results for r in results) == _reference_first_close(gap, live_from)


def _reference_first_close(bars: dict[str, list[Bar]], live_from: float) -> list[tuple]:
    per_tf = by_timeframe()
    out = []
    for symbol, symbol_bars in bars.items():
        pipelines = {tf: AnalysisPipeline(per_tf[tf], symbol=symbol) for tf in per_tf}
        resampler = Resampler(symbol, [tf for tf in per_tf if tf != BASE_TIMEFRAME])
        history = symbol_bars[:PRIME - 3]
        pipelines[BASE_TIMEFRAME].prime(history)
        for tf, folded in resampler.fold(history).items():
            pipelines[tf].prime(folded)
        bar = symbol_bars[PRIME - 3]
        resampler.observed_from(min(live_from, bar.start))
        o = pipelines[BASE_TIMEFRAME].on_bar(bar)
        out += [key(BASE_TIMEFRAME, r) for r in o.patterns + o.indicators]
        for closed in resampler.on_bar(bar):
            if not closed.bar.partial:
                o = pipelines[closed.timeframe].on_bar(closed.bar)
                out += [key(closed.timeframe, r) for r in o.patterns + o.indicators]
    return sorted(out)


def test_analyse_partial_bars_runs_the_definitions_on_them() -> None:
    bars = series()
    bars["AAA"][PRIME] = replace(bars["AAA"][PRIME], partial=True)
    analysis = CloseAnalysis(by_timeframe(), SYMBOLS, analyse_partial_bars=True)
    for symbol in SYMBOLS:
        analysis.prime(symbol, bars[symbol][:PRIME])
    close = analysis.on_close([bars[s][PRIME] for s in SYMBOLS])
    assert close.partial_skipped == 0
    assert any(r.bar.symbol == "AAA" and tf == "1min" for tf, results in close.results for r in results)


def test_a_close_in_parts_is_the_close_one_timeframe_at_a_time_each_handed_out_before_the_next_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bars = series()
    for k in (PRIME + 7, PRIME + 61):  # partial bars: their counts must survive the split
        bars["BBB"][k] = replace(bars["BBB"][k], partial=True)
    whole, in_parts = CloseAnalysis(by_timeframe(), SYMBOLS), CloseAnalysis(by_timeframe(), SYMBOLS)
    for symbol in SYMBOLS:
        whole.prime(symbol, bars[symbol][:PRIME])
        in_parts.prime(symbol, bars[symbol][:PRIME])
    trace: list[str] = []
    step = TalibBatch.step
    monkeypatch.setattr(TalibBatch, "step", lambda self, tf_bars: trace.append("step") or step(self, tf_bars))
    per_tf = {tf: len(defs) for tf, defs in by_timeframe().items()}
    seen_timeframes: set[tuple[str, ...]] = set()
    skipped = 0
    for k in range(PRIME, PRIME + LIVE):
        close = [bars[s][k] for s in SYMBOLS]
        want = whole.on_close(close)
        trace.clear()
        parts = []
        for part in in_parts.close_in_parts(close):
            timeframes = {tf for tf, _ in part.results} | {tf for tf, _ in part.errors}
            assert len(timeframes) <= 1  # one timeframe per part
            parts.append((part, timeframes))
            trace.append(f"part {'/'.join(timeframes)}")
        # each timeframe's definitions ran after the previous part was handed out, before its own
        tfs = [next(iter(t)) for _, t in parts if t]
        assert tfs == sorted(tfs, key=TIMEFRAMES.index)
        assert [p.timeframe for p, t in parts if t] == tfs  # each part names its timeframe
        expected = [entry for tf in tfs for entry in ["step"] * per_tf[tf] + [f"part {tf}"]]
        assert [e for e in trace if e != "part "] == expected
        assert [r for p, _ in parts for r in p.results] == [r for r in want.results]
        assert [e for p, _ in parts for e in p.errors] == want.errors
        assert sum(p.partial_skipped for p, _ in parts) == want.partial_skipped
        assert all(p.partial_skipped == 0 for p, _ in parts[1:])  # counted in the first part
        skipped += want.partial_skipped
        seen_timeframes.add(tuple(tfs))
    assert skipped == 8  # not vacuous: two 1-minute bars and their 5-, 15- and 60-minute bars
    assert ("1min", "5min", "15min", "60min") in seen_timeframes  # ...and every timeframe at once


def test_a_close_with_nothing_to_analyse_is_one_empty_part_carrying_its_partial_bars() -> None:
    bars = series()
    ema = definition("EMA", {"timeperiod": 5}, ("1min", "5min"))
    analysis = CloseAnalysis({"1min": [ema], "5min": [ema]}, SYMBOLS)
    minute = [replace(bars[s][1], partial=True) for s in SYMBOLS]  # no 5-minute bar closes here
    parts = list(analysis.close_in_parts(minute))
    assert [(p.results, p.errors, p.partial_skipped, p.timeframe) for p in parts] == [([], [], len(SYMBOLS), "")]


def test_a_partial_bar_is_counted_only_by_the_analysis_that_runs_its_timeframe() -> None:
    # A session's timeframes shared between analyses (ProcessGroup): each skipped bar counted once.
    bars = series()
    ema = definition("EMA", {"timeperiod": 5}, ("1min", "5min"))
    one, five = CloseAnalysis({"1min": [ema]}, SYMBOLS), CloseAnalysis({"5min": [ema]}, SYMBOLS)
    skipped = {"1min": 0, "5min": 0}
    for k in range(10):  # the first five minutes partial: their 5-minute bar is partial too
        minute = [replace(bars[s][k], partial=k < 5) for s in SYMBOLS]
        skipped["1min"] += one.on_close(minute).partial_skipped
        skipped["5min"] += five.on_close(minute).partial_skipped
    assert skipped == {"1min": 5 * len(SYMBOLS), "5min": len(SYMBOLS)}


def test_a_symbol_must_be_added_before_its_bars_and_starts_from_scratch() -> None:
    bars = series()
    analysis = CloseAnalysis(by_timeframe(), ("AAA",))
    with pytest.raises(KeyError):
        analysis.on_close([bars["BBB"][0]])
    analysis.add("BBB")
    assert analysis.symbols == ("AAA", "BBB") and "BBB" in analysis and "CCC" not in analysis
    # unprimed: the EMA(5) on 1 minute is first published at the symbol's fifth bar
    emas = [[r for tf, results in analysis.on_close([bars["BBB"][k]]).results for r in results
             if tf == "1min" and r.name == "EMA"] for k in range(6)]
    assert [len(e) for e in emas] == [0, 0, 0, 0, 1, 1]


def test_a_failure_costs_only_that_symbol_s_result_and_is_reported_with_its_timeframe() -> None:
    bars = series()
    analysis = CloseAnalysis({"5min": [definition("EMA", {"timeperiod": 5}, ("5min",))]}, SYMBOLS)
    batch = analysis._batches["5min"][0]

    def broken(bar: Bar) -> Any:
        raise RuntimeError("boom")

    batch._states["BBB"].output = broken
    errors, symbols = [], set()
    for k in range(60):
        close = analysis.on_close([bars[s][k] for s in SYMBOLS])
        errors += close.errors
        symbols |= {r.bar.symbol for _, results in close.results for r in results}
    assert symbols == {"AAA", "CCC"}
    assert [(tf, e.symbol, e.disabled) for tf, e in errors] == [("5min", "BBB", False), ("5min", "BBB", False),
                                                                 ("5min", "BBB", True)]


def test_a_definition_that_cannot_be_built_is_left_out_and_named() -> None:
    good = definition("EMA", {"timeperiod": 5})
    bad = Definition("EMA", "indicator", {"timeperiod": -1})
    analysis = CloseAnalysis({"1min": [good, bad]}, SYMBOLS)
    assert analysis.definitions == 1
    assert [(tf, name) for tf, name, _ in analysis.broken] == [("1min", "EMA")]
    assert "timeperiod" in analysis.broken[0][2]


def test_an_unknown_timeframe_is_refused() -> None:
    with pytest.raises(ValueError, match="2min"):
        CloseAnalysis({"2min": [definition("EMA", {"timeperiod": 5})]})
