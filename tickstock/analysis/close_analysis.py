"""CloseAnalysis: a session's TA-Lib definitions, on every timeframe, for all its symbols at once.

Why: at a close, stepping one TA-Lib definition for every symbol in one loop (``TalibBatch``) costs
0.7-0.8x of running it inside each symbol's pipeline, with the same results
(``python -m tickstock.bench --scenario components``). That needs one place that sees every
symbol's 1-minute bars of a close: this class, owned by the session's ``CloseAnalysisActor``. The
hand-written components (Doji, Hammer, head-and-shoulders, RSI, SMA, VWAP) stay in the symbols'
own pipelines.

Guarantees (tests/unit/analysis/test_close_analysis.py proves each):

- **The same results as the symbols' own pipelines**, for the same bars: on 1-minute bars and on
  the 5/15/60-minute bars built from them by one ``Resampler`` per symbol (as the symbol actor
  builds them), with the pipelines' rules per symbol (``TalibBatch``: gating, thresholds, stale
  bars, isolation after ``max_failures``).
- **Partial bars** (``Bar.partial``) of any timeframe are not analysed unless
  ``analyse_partial_bars``; each of a timeframe this analysis runs is counted in ``partial_skipped``
  (so analyses that share a session's timeframes count each skipped bar once between them). The stretch between a symbol's
  history and ``live_from`` (or its first live bar, if earlier) was not seen: a higher bar
  overlapping it is partial, as in the symbol actor.
- **In parts** (``close_in_parts``): one output per timeframe analysed at a close, 1min first,
  each handed out before the next timeframe is analysed, so the owner can publish a close's
  1-minute results while its 5/15/60-minute ones are still being computed. Together they are
  ``on_close``'s output.
- **Priming** (``prime``) folds a symbol's history into its higher timeframes too and moves every
  definition's state; it keeps no result.
- A symbol must be ``add``ed before its bars come (``on_close`` raises ``KeyError`` otherwise: the
  owner decides how a new symbol is primed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

from tickstock.analysis.base import Result
from tickstock.analysis.definitions import Definition, DefinitionSet
from tickstock.analysis.pipeline import ComponentError, short_repr
from tickstock.analysis.registry import served_by_talib
from tickstock.analysis.talib_batch import TalibBatch
from tickstock.bars.timeframes import BASE_TIMEFRAME, TIMEFRAMES, Resampler, SessionTable
from tickstock.messages.bars import Bar

__all__ = ["CloseAnalysis", "CloseOutput", "split_talib"]


def split_talib(definitions: DefinitionSet, batch: bool = True) -> tuple[dict[str, tuple[Definition, ...]],
                                                                          dict[str, tuple[Definition, ...]]]:
    """(the definitions each symbol runs itself, the TA-Lib ones run for all symbols at once), each
    as timeframe -> definitions in load order; a timeframe with none is left out. ``batch`` False
    (``analysis.batch_talib: false``): every definition is the symbols' own."""
    talib_names = {d.name for d in definitions if batch and served_by_talib(d.name)}
    own: dict[str, tuple[Definition, ...]] = {}
    talib: dict[str, tuple[Definition, ...]] = {}
    for tf in definitions.timeframes:
        defs = definitions.for_timeframe(tf)
        mine = tuple(d for d in defs if d.name not in talib_names)
        theirs = tuple(d for d in defs if d.name in talib_names)
        if mine:
            own[tf] = mine
        if theirs:
            talib[tf] = theirs
    return own, talib


@dataclass(slots=True)
class CloseOutput:
    """What one close produced: ``(timeframe, results)`` per definition that kept any, failures
    per symbol as ``(timeframe, error)``, and the partial bars not analysed. ``timeframe``: the one
    timeframe a part of ``close_in_parts`` is of ("" for a whole close, or a part with nothing
    analysed)."""

    results: list[tuple[str, list[Result]]] = field(default_factory=list)
    errors: list[tuple[str, ComponentError]] = field(default_factory=list)
    partial_skipped: int = 0
    timeframe: str = ""


class CloseAnalysis:
    """``definitions``: timeframe -> the TA-Lib definitions that run on it. A definition that cannot
    be built is left out and named in ``broken`` (``(timeframe, name, error)``)."""

    def __init__(self, definitions: Mapping[str, Sequence[Definition]], symbols: Iterable[str] = (), *,
                 sessions: SessionTable | None = None, max_failures: int = 3,
                 analyse_partial_bars: bool = False) -> None:
        self.broken: list[tuple[str, str, str]] = []
        self._batches: dict[str, list[TalibBatch]] = {}
        for tf in TIMEFRAMES:  # ascending: a close's results come 1min first, as in the symbol actor
            for definition in definitions.get(tf, ()):
                try:
                    batch = TalibBatch(definition, max_failures=max_failures)
                except Exception as exc:  # validated at load time; still, one bad row must not stop the rest
                    self.broken.append((tf, definition.name, short_repr(exc)))
                    continue
                self._batches.setdefault(tf, []).append(batch)
        unknown = set(definitions) - set(TIMEFRAMES)
        if unknown:
            raise ValueError(f"unknown timeframes {sorted(unknown)}; expected some of {', '.join(TIMEFRAMES)}")
        self._higher = tuple(tf for tf in self._batches if tf != BASE_TIMEFRAME)
        self._sessions = sessions
        self._analyse_partial_bars = analyse_partial_bars
        self._resamplers: dict[str, Resampler | None] = {}
        self._awaiting_live: set[str] = set()
        self._live_from: float | None = None
        for symbol in symbols:
            self.add(symbol)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._resamplers)

    @property
    def definitions(self) -> int:
        """How many (definition, timeframe) pairs run."""
        return sum(len(batches) for batches in self._batches.values())

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._resamplers

    def add(self, symbol: str) -> None:
        """Start ``symbol`` from scratch (fresh state in every definition and timeframe)."""
        for batches in self._batches.values():
            for batch in batches:
                batch.add(symbol)
        self._resamplers[symbol] = Resampler(symbol, self._higher, self._sessions) if self._higher else None
        self._awaiting_live.add(symbol)

    def live_from(self, t: float) -> None:
        """Live bars are fed from ``t`` on (the owner's start): what lies between a symbol's history
        and then was not seen."""
        self._live_from = t

    def prime(self, symbol: str, bars: Sequence[Bar]) -> list[tuple[str, ComponentError]]:
        """Feed ``symbol``'s history, oldest first; keep nothing. Returns the failures."""
        errors: list[tuple[str, ComponentError]] = []
        if not bars:
            return errors
        per_timeframe: dict[str, Sequence[Bar]] = {BASE_TIMEFRAME: bars}
        resampler = self._resamplers[symbol]
        if resampler is not None:
            per_timeframe.update(resampler.fold(bars))
        for tf, batches in self._batches.items():
            history = per_timeframe.get(tf)
            if history:
                for batch in batches:
                    errors += [(tf, e) for e in batch.prime(symbol, history)]
        return errors

    def on_close(self, bars: Sequence[Bar]) -> CloseOutput:
        """Analyse one close's 1-minute bars (a symbol's oldest first) and the higher bars they close:
        every part of ``close_in_parts`` in one output."""
        out = CloseOutput()
        for part in self.close_in_parts(bars):
            out.results += part.results
            out.errors += part.errors
            out.partial_skipped += part.partial_skipped
        return out

    def close_in_parts(self, bars: Sequence[Bar]) -> Iterator[CloseOutput]:
        """Analyse one close as ``on_close`` does, one timeframe at a time: one ``CloseOutput`` per
        timeframe with bars to analyse, ascending (1min first), each yielded as soon as that
        timeframe is analysed and before the next one is, so its results can go out while the
        higher timeframes are computed. The 1-minute bars are folded into the higher timeframes
        before the first part; the partial bars skipped are counted in the first part (a close with
        nothing to analyse yields one empty part carrying them). Iterate to the end: a timeframe not
        reached is not analysed at this close."""
        skipped, per_timeframe = self._fold(bars)
        parts = 0
        for tf, batches in self._batches.items():
            tf_bars = per_timeframe.get(tf)
            if not tf_bars:
                continue
            part = CloseOutput(partial_skipped=skipped if parts == 0 else 0, timeframe=tf)
            for batch in batches:
                step = batch.step(tf_bars)
                if step.results:
                    part.results.append((tf, step.results))
                if step.errors:
                    part.errors += [(tf, e) for e in step.errors]
            parts += 1
            yield part
        if parts == 0:
            yield CloseOutput(partial_skipped=skipped)

    def _fold(self, bars: Sequence[Bar]) -> tuple[int, dict[str, list[Bar]]]:
        """(partial bars skipped, the bars to analyse per timeframe) of one close's 1-minute bars."""
        skipped = 0
        analyse_partial = self._analyse_partial_bars
        counts_base = BASE_TIMEFRAME in self._batches  # a partial 1-minute bar is skipped only where analysed
        base: list[Bar] = []
        higher: dict[str, list[Bar]] = {tf: [] for tf in self._higher}
        resamplers = self._resamplers
        for bar in bars:
            resampler = resamplers[bar.symbol]
            if bar.partial and not analyse_partial:
                if counts_base:
                    skipped += 1
            else:
                base.append(bar)
            if resampler is None:
                continue
            if bar.symbol in self._awaiting_live:  # what lies between the history and now was not seen
                self._awaiting_live.discard(bar.symbol)
                opened = self._live_from
                resampler.observed_from(bar.start if opened is None else min(opened, bar.start))
            for closed in resampler.on_bar(bar):
                if closed.bar.partial and not analyse_partial:
                    skipped += 1
                else:
                    higher[closed.timeframe].append(closed.bar)
        return skipped, {BASE_TIMEFRAME: base, **higher}
