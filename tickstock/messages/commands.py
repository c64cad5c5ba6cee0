"""Messages between actors. Immutable; each names its recipient in its docstring.

Actors never call each other's methods: they ``tell`` (or, for a reply, ``ask``) one of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tickstock.messages.bars import Bar
from tickstock.messages.events import Event
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord

# --- any actor -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    """Any actor: answered with ``True``; used to confirm a child is up after ``start()``."""


@dataclass(frozen=True, slots=True)
class Open:
    """Any child: acquire connections and start work; answered with ``True`` or the exception.

    Sent with ``ask`` right after ``start()``: an exception in pykka's ``on_start`` kills the
    actor without a word, while one raised here reaches the supervisor with its reason."""


@dataclass(frozen=True, slots=True)
class GetStats:
    """Any actor: answered with an immutable snapshot of its counters."""


# --- to the SessionActor ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildFailed:
    """SessionActor: a child died or its worker thread crashed."""

    child: str
    error: str


@dataclass(frozen=True, slots=True)
class StopSession:
    """SessionActor: end the session in shutdown order with ``final_status``."""

    final_status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TimerTick:
    """SessionActor / PersistenceActor / PublisherActor: the periodic timer fired."""

    now: float


@dataclass(frozen=True, slots=True)
class SymbolDiscovered:
    """SessionActor: the ingress saw a tick for a symbol outside the universe (dynamic mode)."""

    symbol: str


# --- to the TickIngressActor -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteSymbol:
    """TickIngressActor: closed bars of ``symbol`` go to ``actor_ref`` from now on."""

    symbol: str
    actor_ref: Any


@dataclass(frozen=True, slots=True)
class Drain:
    """TickIngressActor: stop receiving, close every forming bar, deliver them; reply with stats.
    PersistenceActor: write everything buffered (within ``timeout``); reply with stats."""

    timeout: float = 10.0


# --- to a SymbolActor --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BarClosed:
    """SymbolActor: ``bar`` closed at ``closed_at`` (epoch seconds); analyse, publish, persist."""

    bar: Bar
    closed_at: float


# --- to the PersistenceActor ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersistBars:
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class PersistResults:
    patterns: tuple[PatternRecord, ...] = ()
    indicators: tuple[IndicatorRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordSession:
    """PersistenceActor: insert or finish the ``streaming_sessions`` row."""

    record: SessionRecord


@dataclass(frozen=True, slots=True)
class RecordHealth:
    record: HealthRecord


# --- to the PublisherActor -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Publish:
    """PublisherActor: publish each event on its channel(s), one PUBLISH per event."""

    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """PublisherActor: write the heartbeat key and refresh the retained session key's TTL."""

    now: float


@dataclass(frozen=True, slots=True)
class RetainSession:
    """PublisherActor: store ``payload`` (the session JSON) under the retained session key."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClearSession:
    """PublisherActor: delete the retained session key (the session has ended)."""
