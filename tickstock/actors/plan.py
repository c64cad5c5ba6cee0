"""Planning a session: what it streams (the universe) and what it computes (the definitions).

Runs inside the ``SessionActor``'s ``on_start`` (a planner is handed to the actor), so the service's
supervisor never reads the database itself: a slow or unreachable database delays a session's
start, never the service's heartbeat or its answers to control requests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from loguru import logger

from tickstock.analysis import definitions_from_config, select_definitions
from tickstock.config import ConfigError, Settings


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
    names = ", ".join(f"{d.name}({d.kind})" for d in definitions.definitions) or "NONE"
    log.info("loaded {} analysis definitions from {}: {}", len(definitions.definitions), source, names)
    for problem in problems:
        log.error("analysis definitions: {}", problem)
    return definitions, problems, source


def make_plan(settings: Settings, store_factory: Callable[[], Any], manual: bool, session_id: str) -> SessionPlan:
    """Resolve the universe (``UniverseError`` if it is empty or unreadable) and load the definitions."""
    symbols = resolve_universe(settings, store_factory)
    definitions, problems, source = load_definitions(settings, store_factory,
                                                     logger.bind(session_id=session_id, actor="session"))
    return SessionPlan(settings.session.universe, tuple(symbols), settings, definitions, tuple(problems),
                       session_id=session_id, manual=manual, definitions_source=source)
