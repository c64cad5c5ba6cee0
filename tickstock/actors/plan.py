"""Planning a session: what it streams (the universe) and what it computes (the definitions).

Runs inside the ``SessionActor``'s ``on_start`` (a planner is handed to the actor), so the service's
supervisor never reads the database itself: a slow or unreachable database delays a session's
start, never the service's heartbeat or its answers to control requests.

Timeframes: each definition runs on the timeframes its row names (``Definition.timeframes``); a
symbol gets one pipeline per timeframe that has definitions (``symbol_pipelines``), so a 1min-only
set builds exactly what it always did.

Where a definition runs (``analysis.batch_talib``, default true): a TA-Lib definition runs once per
close for all symbols, in the session's ``CloseAnalysisActor`` (``batched_definitions``); the
hand-written ones in each symbol's pipelines. With the setting false, or a set without TA-Lib
definitions (the baseline set), every definition runs in the symbols' pipelines and no
``CloseAnalysisActor`` is started. Only a definition on 60min makes the plan read the exchange
calendar (``sessions``: where the session-aligned hours start and end).
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from loguru import logger

from tickstock.analysis import AnalysisPipeline, definitions_from_config, select_definitions
from tickstock.analysis.close_analysis import split_talib
from tickstock.bars.timeframes import BASE_TIMEFRAME, SessionTable
from tickstock.config import ConfigError, Settings

DAY = 86_400.0
# The 60-minute table covers the primed history (analysis.prime_bars <= 10,000 one-minute bars is
# ~26 sessions) and a long manual session; outside it hours fall back to the :30 grid, which differs
# only in not cutting a session's last hour at its close (tickstock/bars/timeframes.py).
SESSIONS_DAYS_BACK = 60
SESSIONS_DAYS_AHEAD = 14


class UniverseError(ValueError):
    """The configured universe cannot be resolved to symbols."""


@dataclass(frozen=True)
class SessionPlan:
    """Everything decided before a session starts."""

    universe: str
    symbols: tuple[str, ...]
    settings: Settings
    definitions: Any = None                  # analysis.DefinitionSet, opaque to the actors
    problems: tuple[str, ...] = ()           # definition problems to announce loudly
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    manual: bool = False
    definitions_source: str = ""
    sessions: SessionTable | None = None     # for 60-minute bars; None unless a definition runs on 60min


def resolve_universe(settings: Settings, store_factory: Callable[[], Any]) -> list[str]:
    """The session's symbols, from YAML or the dashboard's ``cache_entries``; never empty."""
    key = settings.session.universe
    if settings.session.universe_source == "yaml":
        try:
            symbols = settings.universe_symbols(key)
        except ConfigError as exc:
            raise UniverseError(str(exc)) from None
    else:
        store = store_factory()
        try:
            symbols = store.load_universe(key)
        except Exception as exc:
            raise UniverseError(f"universe {key!r} could not be read from cache_entries: {exc}") from None
        finally:
            store.close()
    symbols = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
    if not symbols:
        raise UniverseError(f"universe {key!r} resolves to no symbols")
    return symbols


def load_definitions(settings: Settings, store_factory: Callable[[], Any], log: Any = logger) -> tuple[Any, list[str], str]:
    """(DefinitionSet, problems in words, source). Falls back to config.yaml if the database is down."""
    try:
        store = store_factory()
        try:
            pattern_rows, indicator_rows = store.load_definitions()
        finally:
            store.close()
        definitions = select_definitions(pattern_rows, indicator_rows, settings.analysis.timeframe)
        source = "database"
        problems = list(definitions.problems())
    except Exception as exc:
        definitions = definitions_from_config(settings.analysis.fallback_definitions)
        source = "config.yaml (database unreachable)"
        problems = [f"definitions database unreachable ({exc.__class__.__name__}): using config.yaml fallback"]
        problems += list(definitions.problems())
    names = ", ".join(f"{d.name}({d.kind}{_on(d)})" for d in definitions.definitions) or "NONE"
    log.info("loaded {} analysis definitions from {}: {}", len(definitions.definitions), source, names)
    for problem in problems:
        log.error("analysis definitions: {}", problem)
    return definitions, problems, source


def _on(definition: Any) -> str:
    timeframes = getattr(definition, "timeframes", (BASE_TIMEFRAME,))
    return "" if timeframes == (BASE_TIMEFRAME,) else f" on {'/'.join(timeframes)}"


def session_table(now: float, calendar_factory: Callable[..., Any] | None = None) -> SessionTable:
    """The exchange sessions from ``SESSIONS_DAYS_BACK`` days before ``now`` to
    ``SESSIONS_DAYS_AHEAD`` days after, from tickstock.market's calendar; a bar outside them (a
    replay of another day in event time) gets the same span around its own time, read then."""
    if calendar_factory is None:
        from tickstock.market.calendar import MarketCalendar as calendar_factory
    return _sessions_around(calendar_factory, now)


def _sessions_around(calendar_factory: Callable[..., Any], t: float) -> SessionTable:
    """``session_table`` at ``t``; its source is this function again (a partial, not a closure:
    the table pickles, for the analysis process)."""
    calendar = calendar_factory(t, lookback_days=SESSIONS_DAYS_BACK + 1)
    return SessionTable.from_calendar(calendar, t - SESSIONS_DAYS_BACK * DAY, t + SESSIONS_DAYS_AHEAD * DAY,
                                      source=functools.partial(_sessions_around, calendar_factory))


def _split(plan: SessionPlan) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]] | None:
    """(the symbols' definitions, the batched ones) per timeframe, by ``analysis.batch_talib``;
    None for a plain iterable of definitions (1min only, nothing batched)."""
    if not hasattr(plan.definitions, "for_timeframe"):
        return None
    return split_talib(plan.definitions, plan.settings.analysis.batch_talib)


def batched_definitions(plan: SessionPlan) -> dict[str, tuple[Any, ...]]:
    """Timeframe -> the TA-Lib definitions the session's ``CloseAnalysisActor`` runs on it; empty
    (no such actor) when ``analysis.batch_talib`` is off or no definition is served by TA-Lib."""
    split = _split(plan)
    return split[1] if split is not None else {}


def symbol_pipelines(plan: SessionPlan, symbol: str, max_failures: int) -> tuple[AnalysisPipeline, dict[str, AnalysisPipeline]]:
    """``symbol``'s 1-minute pipeline and one per higher timeframe that has definitions (none for a
    1min-only set); without the definitions ``batched_definitions`` gives the ``CloseAnalysisActor``."""
    split = _split(plan)
    if split is None:  # a plain iterable of definitions: 1min only
        return AnalysisPipeline(plan.definitions or (), symbol=symbol, max_failures=max_failures), {}
    own = split[0]
    base = AnalysisPipeline(own.get(BASE_TIMEFRAME, ()), symbol=symbol, max_failures=max_failures)
    higher = {tf: AnalysisPipeline(defs, symbol=symbol, max_failures=max_failures)
              for tf, defs in own.items() if tf != BASE_TIMEFRAME}
    return base, higher


def make_plan(settings: Settings, store_factory: Callable[[], Any], manual: bool, session_id: str,
              clock: Callable[[], float] = time.time) -> SessionPlan:
    """Resolve the universe (``UniverseError`` if it is empty or unreadable) and load the definitions;
    read the exchange calendar when a definition runs on 60min (if that fails, the hours fall back
    to the :30 grid, logged as an error)."""
    symbols = resolve_universe(settings, store_factory)
    log = logger.bind(session_id=session_id, actor="session")
    definitions, problems, source = load_definitions(settings, store_factory, log)
    sessions = None
    if "60min" in getattr(definitions, "timeframes", ()):
        try:
            sessions = session_table(clock())
        except Exception as exc:  # the hours still form, on the grid: not a reason to fail the session
            log.error("exchange calendar unavailable for 60-minute bars (the :30 grid is used): {!r}", exc)
    return SessionPlan(settings.session.universe, tuple(symbols), settings, definitions, tuple(problems),
                       session_id=session_id, manual=manual, definitions_source=source, sessions=sessions)
