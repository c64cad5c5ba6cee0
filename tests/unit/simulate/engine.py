"""The engine's own path for the simulator's tests: ticks -> MinuteBarAggregator (its clock driven
by the ticks' time) -> AnalysisPipeline with the default definitions, partial bars skipped as the
symbol actor skips them (analysis.analyse_partial_bars: false)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tickstock.analysis import AnalysisPipeline, definitions_from_config
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.config import load_settings
from tickstock.messages.bars import Bar
from tickstock.messages.ticks import Tick
from tickstock.simulate.tick import SimTick

SETTINGS = load_settings(environ={})
# config.yaml's fallback definitions: the same rows and min_bars_required as the seed migration.
DEFAULTS = definitions_from_config(SETTINGS.analysis.fallback_definitions)
GRACE = SETTINGS.bars.grace_seconds


def fold(ticks: Iterable[SimTick], started_at: float | None = None) -> list[Bar]:
    """Every bar the service would close from ``ticks`` (in time order), its clock at each tick's
    time; ``started_at`` marks the minute it began in as partial, as a session does."""
    agg = MinuteBarAggregator(grace_seconds=GRACE, now=started_at)
    bars: list[Bar] = []
    for t in ticks:
        assert agg.add(Tick(t.symbol, t.price, t.volume, t.timestamp, t.timestamp)), "a tick came late"
        bars.extend(agg.close_due(t.timestamp))
    bars.extend(agg.close_all())
    return sorted(bars, key=lambda b: (b.start, b.symbol))


@dataclass(frozen=True)
class Seen:
    """One published detection or alert, on the bar starting at ``start``."""

    start: int
    name: str     # a pattern name ("Doji") or an alert type ("RSI_OVERBOUGHT")


def detect(bars: Sequence[Bar], symbol: str, history: Sequence[Bar] = ()) -> list[Seen]:
    """What the engine publishes for ``symbol``'s ``bars`` after priming with ``history``."""
    pipeline = AnalysisPipeline(DEFAULTS, symbol=symbol)
    pipeline.prime([b for b in history if b.symbol == symbol and not b.partial])
    seen: list[Seen] = []
    for bar in bars:
        if bar.symbol != symbol or bar.partial:
            continue
        out = pipeline.on_bar(bar)
        assert not out.errors, out.errors
        seen += [Seen(bar.start, p.name) for p in out.patterns]
        seen += [Seen(bar.start, a.alert_type) for a in out.alerts]
    return seen
