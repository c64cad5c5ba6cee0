"""Messages between actors. Immutable; each names its recipient in its docstring.

Actors never call each other's methods: they ``tell`` (or, for a reply, ``ask``) one of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tickstock.messages.bars import Bar
from tickstock.messages.events import Event, IndicatorCalculated, PatternDetected
from tickstock.messages.records import HealthRecord, IndicatorRecord, PatternRecord, SessionRecord

# --- any actor -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    """Any actor: answered with ``True``; used to confirm a child is up after ``start()``."""


@dataclass(frozen=True, slots=True)
class Open:
    """Any child: acquire connections and start work.

    The supervisor sends it first to every new child (before the child's handle is pointed at it,
    so it is the first message the child handles) and never waits for it: the child answers with
    ``ChildOpened`` or dies, and its death arrives as ``ChildFailed``. ``incarnation`` numbers the
    supervisor's starts of this child; the child quotes it in everything it reports, so reports of
    an earlier incarnation are recognised and ignored (one crash, one restart)."""

    incarnation: int = 0


@dataclass(frozen=True, slots=True)
class GetStats:
    """Any actor: answered with an immutable snapshot of its counters."""


# --- to the SessionActor ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildFailed:
    """Supervisor: a child died or its worker thread crashed. ``final_stats`` is the child's last
    counters when it could still give them (the publisher's session totals survive its restart)."""

    child: str
    error: str
    incarnation: int = 0
    final_stats: Any = None


@dataclass(frozen=True, slots=True)
class ChildOpened:
    """Supervisor: the child handled ``Open`` and is working."""

    child: str
    incarnation: int = 0


@dataclass(frozen=True, slots=True)
class ChildReport:
    """Supervisor: a child's counters, pushed every ``session.report_interval_seconds``.

    The supervisor never asks a child for its state (a stuck child would stall it): it acts on the
    latest report and knows how old it is (``at``, epoch seconds when the child made it)."""

    child: str
    incarnation: int
    stats: Any
    at: float


@dataclass(frozen=True, slots=True)
class StopSession:
    """SessionActor: end the session in shutdown order with ``final_status``. ``requested_at``
    (``time.monotonic()``) is when the stop was asked for, e.g. SIGTERM: the shutdown budget is
    counted from there."""

    final_status: str
    reason: str = ""
    requested_at: float | None = None


@dataclass(frozen=True, slots=True)
class TimerTick:
    """Any actor with a ``Ticker``: the periodic timer fired at ``now``. A ticker never has more
    than one tick queued (``source`` is the ticker, told when the tick is handled), so a slow actor
    sees one late tick, never a backlog of stale ones."""

    now: float
    source: Any = None


@dataclass(frozen=True, slots=True)
class SymbolDiscovered:
    """SessionActor: the ingress saw a tick for a symbol outside the universe (dynamic mode)."""

    symbol: str


# --- to the ServiceActor ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartRequest:
    """ServiceActor (ask): start a session unless one runs; answered with a ``StartTicket``."""

    manual: bool = True


@dataclass(frozen=True, slots=True)
class StopRequest:
    """ServiceActor (ask): end the running session; answered with the future of its outcome, or
    ``None`` when no session runs."""

    final_status: str = "stopped"
    reason: str = "manual stop"


@dataclass(frozen=True, slots=True)
class Shutdown:
    """ServiceActor (ask): the process is stopping. Control requests are refused from now on; the
    running session (if any) is stopped; answered with the future of its outcome or ``None``."""

    requested_at: float | None = None


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """ServiceActor: a session has announced its end (told from the session's stop path)."""

    outcome: Any


# --- to the TickIngressActor -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteSymbol:
    """TickIngressActor: closed bars of ``symbol`` go to ``actor_ref`` from now on."""

    symbol: str
    actor_ref: Any


@dataclass(frozen=True, slots=True)
class Quarantine:
    """TickIngressActor: ``symbol``'s actor was stopped for good (past its restart budget): keep
    storing its bars and counting its ticks, but route nothing to it."""

    symbol: str


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


# --- to the CloseAnalysisActor -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BarsClosed:
    """CloseAnalysisActor: one close's 1-minute bars (a symbol's oldest first; a stop's drain can
    close several minutes at once), closed at ``closed_at``; analyse them all, publish, persist."""

    bars: tuple[Bar, ...]
    closed_at: float


@dataclass(frozen=True, slots=True)
class RedoClose:
    """CloseAnalysisActor (a restarted incarnation): the close its predecessor's analysis process
    died in, to analyse again. The events of the timeframes in ``published`` already went out and
    are not published again; the close's rows, which had not been told, are all stored."""

    close: BarsClosed
    published: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PrimeSymbol:
    """CloseAnalysisActor: ``symbol``'s recent bars, oldest first, to prime with (session start)."""

    symbol: str
    bars: tuple[Bar, ...]


# --- to the PersistenceActor ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersistBars:
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class PersistResults:
    patterns: tuple[PatternRecord, ...] = ()
    indicators: tuple[IndicatorRecord, ...] = ()

    @classmethod
    def merge(cls, messages: list["PersistResults"]) -> "PersistResults":
        """One message holding every row of ``messages``, in order."""
        return cls(tuple(r for m in messages for r in m.patterns), tuple(r for m in messages for r in m.indicators))


@dataclass(frozen=True, slots=True)
class PersistEvents:
    """PersistenceActor: store these published detections and indicator values; their rows are
    derived there (``records.pattern_record``/``indicator_record``), off the bar-close path."""

    events: tuple[PatternDetected | IndicatorCalculated, ...] = ()

    @classmethod
    def merge(cls, messages: list["PersistEvents"]) -> "PersistEvents":
        """One message holding every event of ``messages``, in order."""
        return cls(tuple(e for m in messages for e in m.events))


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

    @classmethod
    def merge(cls, messages: list["Publish"]) -> "Publish":
        """One message holding every event of ``messages``, in order."""
        return cls(tuple(e for m in messages for e in m.events))


@dataclass(frozen=True, slots=True)
class PublishEncoded:
    """PublisherActor: PUBLISH these ``(channel, JSON)`` entries, encoded already where they were
    computed (the close analysis, ``analysis_output.py``), in order; ``patterns`` and
    ``indicators`` are how many detections and indicator values they carry (the session's totals)."""

    entries: tuple[tuple[str, bytes], ...]
    patterns: int = 0
    indicators: int = 0


@dataclass(frozen=True, slots=True)
class PublishConfirmed:
    """PublisherActor (ask): publish ``events`` and answer only when Redis has acknowledged every
    PUBLISH (``True``), reconnecting and retrying until ``deadline`` (epoch seconds); ``False`` if
    the deadline passed first. Used for ``session_stopped``, which must not be lost quietly."""

    events: tuple[Event, ...]
    deadline: float


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """PublisherActor: write the heartbeat key and refresh the retained session key's TTL."""

    now: float


@dataclass(frozen=True, slots=True)
class RetainSession:
    """Heartbeat (or PublisherActor): store ``payload`` (the session JSON) under the retained
    session key; then, if ``then`` is given, tell it to ``then_tell``.

    The chain is what orders two actors' writes: the announcement that goes in ``then`` reaches its
    publisher only after the key is written (or the write failed), so a listener that reads the key
    on hearing the announcement finds it. ``then_tell`` is a ``ChildHandle`` (its ``tell`` never
    raises, and it follows a restarted child)."""

    payload: dict[str, Any]
    then: Any = None
    then_tell: Any = None

    def follow_up(self) -> None:
        """Tell ``then`` to ``then_tell``, if there is one: call it once the key is written."""
        if self.then is not None and self.then_tell is not None:
            self.then_tell.tell(self.then)


@dataclass(frozen=True, slots=True)
class ClearSession:
    """Heartbeat (or PublisherActor): delete the retained session key (the session has ended).
    Answers ``None`` when asked, once the delete was tried."""
