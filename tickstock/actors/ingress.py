"""TickIngressActor: the Redis subscriber, and where forming bars live.

Why the forming bars live here and not in the symbol actors: a pykka ``tell`` costs ~30 us of CPU
to wake a thread, so one message per tick tops out near 20k ticks/s, while folding a tick into its
bar on the receive path costs ~0.2 us (shared/docs/domain.md). So one receive thread reads the
socket, decodes, and folds; symbol actors get one ``BarClosed`` per bar, persistence one batch per
minute, and the session's ``CloseAnalysisActor`` (if it has one) one ``BarsClosed`` per close with
all its bars, told first.

Guarantees:
- The socket is drained continuously; decoding happens right after each read, in the same thread,
  so the process never builds an internal tick backlog that Redis would then see as a slow reader.
- Bars close by the clock (``grace`` after the minute's end) even if no tick arrives. Before a close
  the receive loop reads whatever is already waiting on the socket, so a tick that reached the
  service before the deadline is never judged late.
- A malformed tick is counted per reason, logged at most once per reason per ``log_every`` seconds,
  and skipped. A lost connection (closed, or half-open: the feed PINGs) is re-established with
  back-off while bars keep closing. Once re-subscribed, the aggregator is told the gap
  (``mark_gap(lost_at, resubscribed_at)``, ``lost_at`` being the last time the subscription was
  known to deliver) so the bars of those minutes are marked partial; the time spent disconnected
  and the reconnects are counted.
- Never a silent loss: each gap (``lost_at`` = last data received, ``resubscribed_at``) is recorded
  with its cause (``feed.disconnect_cause()``, the server's counters compared across the reconnect:
  a slow reader dropped by Redis's output-buffer limit is told from a network fault), its length
  and an *estimate* of the ticks lost (``_loss_rate``). Gaps are counted in ``IngressStats`` (per
  reason, seconds, ticks-lost estimate, the latest ones) and reported to the supervisor at once;
  health and the metrics take them from there.
- The counters are pushed to the supervisor (``ChildReport``) every ``report_interval`` seconds
  from the receive loop: one clock comparison per loop iteration, nothing per tick.
- ``Quarantine(symbol)``: that symbol's bars are no longer routed (its actor is being stopped);
  they are still persisted, and its ticks and held-back bars are counted. A later
  ``RouteSymbol`` for it lifts the quarantine.
- A crash of the receive thread is reported to the supervisor as ``ChildFailed``.

Event time (``session.clock: event``, a replay; ``event_time`` given): the same loop, aggregator
and detectors; only the time bars close by differs (``_bar_time``). It is ``EventTime``: the latest
tick time received, fed once per read (the time of the read's last decoded tick: a replay publishes
in time order, so that is the read's latest; out-of-order ticks within one read can only hold it
back, never close a minute early), plus the feed's silence once it exceeds ``idle_after`` (a
replay that ended or paused: its last minute closes complete, as live it would at its deadline).
Nothing is added per tick. In event time:
- a tick is late when a tick of its minute's end plus grace or later was received in an earlier
  read, or the feed's silence carried event time past that (the aggregator's rule, judged by
  event time); a replay published in time order has none;
- a tick's time is not compared with the wall clock (a replayed day is in its past), but a read
  whose latest tick is more than ``max_skew_seconds`` ahead of the wall clock does not move event
  time (counted in ``IngressStats.event_time_refused``, logged at a bounded rate);
- the replay's start is its earliest first-read tick less grace: its first minute is partial
  unless the replay starts within the minute's first ``grace`` seconds (a file cut mid-minute);
- a lost subscription marks the gap in event time, from the latest tick time before the loss to
  the latest of the first read after it; while the subscription is lost, silence moves nothing;
- ``Drain`` closes what is forming at event time: a minute event time has not passed the end of
  is partial (a replay stopped mid-way); stop the session after the replay's last minute closed;
- ``closed_at`` (the events' ``bar_closed_at``), health's figures, the report times and the
  gap statistics stay on the wall clock; the processing lag is not measured (a replayed tick's
  own time says nothing of the service's delay), and a gap's ticks-lost estimate uses the
  receive rate.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

import pykka

from tickstock.actors.base import SupervisedActor, handles
from tickstock.actors.faults import maybe_fail
from tickstock.adapters.redis.disconnects import REASON_WORDS
from tickstock.adapters.redis.feed import FeedDisconnected
from tickstock.bars.aggregator import MinuteBarAggregator
from tickstock.clock import EventTime
from tickstock.messages.bars import Bar
from tickstock.messages.commands import (
    BarClosed, BarsClosed, Drain, GetStats, PersistBars, Quarantine, RouteSymbol, SymbolDiscovered,
)
from tickstock.messages.ticks import TickRejected, decode_tick
from tickstock.messages.wire import iso_utc

_MAX_WAIT = 0.2          # longest the loop blocks on the socket: bounds how late a close can run
_DRAIN_READS = 64        # reads (up to 1 MiB each) taken before a close to empty the socket
# A read that brought fewer ticks than this is followed by a pause of ``read_pace`` seconds (never
# past the next close's deadline): at 500 ticks/s each read found one or two ticks, and those reads
# (~50 us each of per-read work, and a claim on the GIL each time) took turns with a bar close's
# analysis. Paced, the loop reads ~100 times a second at low rates, and not at all differently from
# ~25,000 ticks/s up (each read then brings enough); the ticks wait in the socket meanwhile (at most
# this many: a few KB, nothing Redis would notice).
_PACE_BELOW = 256
READ_PACE_SECONDS = 0.01
_MAX_BACKOFF = 5.0
_RECENT_GAPS = 16        # gaps kept in the stats for health to name
_RATE_MIN_SPAN = 0.25    # seconds: a shorter window before a gap gives no rate (no estimate)
_RATE_MARKS = 32         # reports kept: the rate's window is the latest; the usual lag is the least of all


@dataclass(frozen=True, slots=True)
class _RateMark:
    """The receive counters at one report: the windows the rate before a gap is measured over."""

    at: float                   # clock
    received: int
    tick_time: float | None     # source time of the ticks of the latest read (received_at - their mean lag)
    lag: float | None           # their mean lag


@dataclass(frozen=True, slots=True)
class FeedGap:
    """One lost subscription: nothing published between ``lost_at`` and ``resubscribed_at``
    reached the service (pub/sub is at-most-once)."""

    lost_at: float              # epoch s: the last data received before the loss
    resubscribed_at: float      # epoch s: the server confirmed the new subscription
    reason: str                 # tickstock.adapters.redis.disconnects reason (the metric label)
    words: str                  # the reason in words: "dropped by Redis for a slow reader (...)"
    detail: str                 # the evidence
    ticks_lost_estimate: int | None  # None: the rate before the gap was not known
    confirmed: bool = False     # the server's own counter named the reason
    reader_behind_seconds: float = 0.0  # how much further behind the source the reader was at the loss

    @property
    def seconds(self) -> float:
        return max(0.0, self.resubscribed_at - self.lost_at)


@dataclass(frozen=True, slots=True)
class IngressStats:
    received: int
    folded: int
    late: int
    rejected: dict[str, int]
    unknown_symbols: int
    bars_closed: int
    lag_sum: float
    lag_count: int
    last_tick_at: float | None
    last_seen: dict[str, float]
    redis_connected: bool
    reconnects: int
    forming: int
    disconnected_since: float | None = None  # epoch s: the subscription was found lost then, still is
    disconnected_seconds: float = 0.0  # total of the disconnections that ended (re-subscribed)
    quarantined: dict[str, int] = field(default_factory=dict)  # symbol -> bars held back from its actor
    quarantined_ticks: dict[str, int] = field(default_factory=dict)  # symbol -> ticks since quarantined
    feed_gaps: int = 0                 # subscriptions lost and re-established (each a gap)
    feed_gap_seconds: float = 0.0      # their total length (last data received -> re-subscribed)
    feed_gaps_by_reason: dict[str, int] = field(default_factory=dict)
    ticks_lost_estimate: int = 0       # an ESTIMATE: the sum over the gaps whose rate was known
    last_gap_reason: str = ""
    recent_gaps: tuple[FeedGap, ...] = ()  # the latest gaps, oldest first (at most _RECENT_GAPS)
    event_time: float | None = None    # event time (session.clock: event): the watermark; None live
    event_time_refused: int = 0        # reads whose latest tick was too far ahead of the wall clock


class TickIngressActor(SupervisedActor):
    def __init__(
        self,
        supervisor: pykka.ActorRef | None,
        session_id: str,
        feed_factory: Callable[[], Any],
        routes: dict[str, Any],
        persistence: Any,
        aggregator: MinuteBarAggregator,
        accept_new_symbols: bool = False,
        max_skew_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
        log_every: float = 10.0,
        report_interval: float = 1.0,
        event_time: EventTime | None = None,
        read_pace: float = READ_PACE_SECONDS,
        analysis: Any = None,
    ) -> None:
        """``clock``: the wall clock. ``event_time``: bars close by it instead (a replay); one per
        session, shared with a restarted ingress as the aggregator is. ``read_pace``: the pause
        after a read that brought few ticks (see ``_PACE_BELOW``; 0: none). ``analysis``: the
        session's CloseAnalysisActor, if it has one: told every close's bars in one ``BarsClosed``."""
        super().__init__(supervisor, "ingress", session_id)
        self._feed_factory = feed_factory
        self._feed = None
        self.routes = dict(routes)
        self.persistence = persistence
        self.analysis = analysis
        self.aggregator = aggregator
        self.accept_new_symbols = accept_new_symbols
        self.event_time = event_time
        self.clock_mode = "wall" if event_time is None else "event"
        # Event time: a tick's own time is not checked against the wall clock (a replay is in its
        # past); only a read's latest is, against the future (``_advance_event_time``).
        self.max_skew = max_skew_seconds if event_time is None else float("inf")
        self._max_ahead = max_skew_seconds
        self.event_time_refused = 0
        self._refused_logged_at = float("-inf")
        self._event_gap_since: float | None = None  # event time a lost subscription's gap starts at
        if event_time is not None and event_time.watermark is None:
            self._start_aggregator_at(None)  # the replay's start comes with its first ticks
        self._clock = clock
        self._log_every = log_every
        self._control: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._requested: set[str] = set()
        self._pending: dict[str, list[Bar]] = defaultdict(list)
        self._next_connect_at = 0.0
        self._backoff = 0.5
        # Counters: written by the receive thread only, read as snapshots.
        self.received = 0
        self.rejected: Counter[str] = Counter()
        self._rejected_logged: dict[str, tuple[float, int]] = {}
        self.unknown_symbols = 0
        self.bars_closed = 0
        self.lag_sum = 0.0
        self.lag_count = 0
        self.last_tick_at: float | None = None
        self.last_seen: dict[str, float] = {}
        self.reconnects = 0
        self.disconnected_since: float | None = None
        self.disconnected_seconds = 0.0
        self._alive_at: float | None = None  # last time the subscription was known to deliver
        self._lost_at: float | None = None   # where the current gap starts
        self.quarantined: dict[str, int] = {}
        self.quarantined_ticks: Counter[str] = Counter()
        self.feed_gaps = 0
        self.feed_gap_seconds = 0.0
        self.feed_gaps_by_reason: Counter[str] = Counter()
        self.ticks_lost_estimate = 0
        self._recent_gaps: deque[FeedGap] = deque(maxlen=_RECENT_GAPS)
        self._rate_marks: deque[_RateMark] = deque(maxlen=_RATE_MARKS)  # one per report
        self._tick_time: float | None = None   # of the latest read: received_at - the mean lag of its ticks
        self._read_lag: float | None = None
        self._lost_reason = ""                 # the current loss, as the feed raised it
        self._lost_detail = ""
        self._loss_rate_at_loss: tuple[float, float, bool] | None = None
        self._report_interval = report_interval
        self._next_report_at = 0.0
        self._read_pace = read_pace
        self.paced_reads = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """Subscribe (raising if Redis refuses) and start the receive thread."""
        self._feed = self._feed_factory()
        self._feed.connect()
        self._alive_at = self._clock()
        self._thread = threading.Thread(target=self._run, name="ingress-receive", daemon=True)
        self._thread.start()
        self.log.info("subscribed to ticks, {} symbols routed", len(self.routes))

    def on_stop(self) -> None:
        self._stop_thread()

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self._stop_thread()
        super().on_failure(exception_type, exception_value, traceback)

    def _stop_thread(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self._feed is not None:
            self._feed.close()

    # -- messages -------------------------------------------------------------------------------

    @handles(RouteSymbol, Quarantine)
    def _route(self, message: RouteSymbol | Quarantine) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._control.put(message)  # routes belong to the receive thread
        else:
            self._apply(message)

    @handles(Drain)
    def _drain(self, message: Drain) -> IngressStats:
        """Stop receiving, close every forming bar now and deliver it: the session's last bars."""
        self._stop_thread()
        self._apply_control()
        stopped_at = self._clock()
        # A minute not over by now (in the time bars close by) was cut short: its bar is partial.
        now = stopped_at if self.event_time is None else self._bar_time()
        if self._event_gap_since is not None:  # lost, and nothing received since: cut from there on
            self.aggregator.mark_gap(self._event_gap_since, max(self._event_gap_since, now))
            self._event_gap_since = None
        self._deliver(self.aggregator.close_all(now), stopped_at)
        return self._stats(GetStats())

    def _bar_time(self) -> float | None:
        """The time bars close by: the wall clock, or event time (None before the first tick)."""
        event_time = self.event_time
        if event_time is None:
            return self._clock()
        # While the subscription is lost (or its gap not yet placed), silence is not the source's.
        return event_time.now(extrapolate=self.disconnected_since is None and self._event_gap_since is None)

    @handles(GetStats)
    def _stats(self, message: GetStats) -> IngressStats:
        return self._snapshot()

    def _snapshot(self) -> IngressStats:
        agg = self.aggregator
        return IngressStats(
            self.received, agg.folded_ticks, agg.late_ticks, dict(self.rejected), self.unknown_symbols,
            self.bars_closed, self.lag_sum, self.lag_count, self.last_tick_at, self.last_seen.copy(),
            self._feed is not None and self._feed.connected, self.reconnects, agg.forming_count(),
            self.disconnected_since, self.disconnected_seconds, dict(self.quarantined),
            dict(self.quarantined_ticks), self.feed_gaps, self.feed_gap_seconds, dict(self.feed_gaps_by_reason),
            self.ticks_lost_estimate, self._recent_gaps[-1].reason if self._recent_gaps else "",
            tuple(self._recent_gaps),
            self.event_time.watermark if self.event_time is not None else None, self.event_time_refused,
        )

    # -- receive loop (its own thread) ----------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._step()
        except Exception as exc:  # the thread must never die silently
            self.log.exception("ingress receive loop crashed")
            self.report_failure(f"receive loop: {exc!r}")

    def _step(self) -> None:
        self._apply_control()
        now = self._clock()
        if now >= self._next_report_at:
            self._next_report_at = now + self._report_interval
            self._rate_marks.append(_RateMark(now, self.received, self._tick_time, self._read_lag))
            self.report(self._snapshot())
        deadline = self.aggregator.next_deadline()
        # An event-time deadline is no moment of the wall clock: wait the longest, ticks wake us.
        wait = _MAX_WAIT if deadline is None or self.event_time is not None else \
            min(_MAX_WAIT, max(0.0, deadline - now))
        if self._feed.connected:
            got = self._read(wait)
            if 0 < got < _PACE_BELOW and self._read_pace > 0:
                self._pace(deadline)
        else:
            self._reconnect(now, wait)
        bar_time = self._bar_time()
        if deadline is not None and bar_time is not None and bar_time >= deadline:
            for _ in range(_DRAIN_READS):
                if not self._feed.connected or not self._read(0.0):
                    break
            closed_at = self._clock()
            self._deliver(self.aggregator.close_due(closed_at if self.event_time is None else self._bar_time()),
                          closed_at)
        elif deadline is None and bar_time is not None:
            # Nothing was forming: still move the watermark, so a tick for a minute that ended
            # during a quiet spell is late rather than a bar delivered a minute after the fact.
            # What this read folded may be due already (in event time, a read spanning minutes):
            # delivered, never dropped.
            self._deliver(self.aggregator.close_due(bar_time), self._clock())

    def _pace(self, deadline: float | None) -> None:
        """Let the few ticks of a slow feed gather in the socket for ``read_pace`` seconds, but
        never past the next close (in event time the wall clock sets no deadline)."""
        pause = self._read_pace
        if deadline is not None and self.event_time is None:
            pause = min(pause, deadline - self._clock())
        if pause > 0:
            self.paced_reads += 1
            self._stopping.wait(pause)

    def _read(self, wait: float) -> int:
        try:
            payloads = self._feed.read(wait)
        except FeedDisconnected as exc:
            now = self._clock()
            if self.disconnected_since is None:
                self.disconnected_since = now
                self._lost_at = min(now, self._alive_at if self._alive_at is not None else now)
                self._lost_reason = getattr(exc, "reason", "") or "connection_lost"
                self._lost_detail = str(exc)
                self._loss_rate_at_loss = self._loss_rate(self._lost_at)
            self.log.error("tick feed lost: {}", exc)
            self._next_connect_at = 0.0
            return 0
        if payloads:
            maybe_fail("ingress:receive")
            received_at = self._alive_at = self._clock()
            self._ingest(payloads, received_at)
        return len(payloads)

    def _reconnect(self, now: float, wait: float) -> None:
        if now < self._next_connect_at:
            self._stopping.wait(min(wait, self._next_connect_at - now) or 0.01)
            return
        try:
            self._feed.connect()
        except ConnectionError as exc:
            self._next_connect_at = now + self._backoff
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
            self.log.warning("tick feed reconnect failed, next try in {:.1f}s: {}", self._backoff, exc)
            return
        resubscribed_at = self._alive_at = self._clock()
        self.reconnects += 1
        self._backoff = 0.5
        if self.disconnected_since is None:
            self.log.info("tick feed re-subscribed (reconnect #{})", self.reconnects)
            return
        lost_at = self._lost_at if self._lost_at is not None else self.disconnected_since
        self.disconnected_seconds += resubscribed_at - self.disconnected_since
        self.log.warning("tick feed re-subscribed (reconnect #{}) after {:.1f}s disconnected; ticks published "
                         "in the {:.1f}s since it last delivered may be missing",
                         self.reconnects, resubscribed_at - self.disconnected_since, resubscribed_at - lost_at)
        self.disconnected_since = self._lost_at = None
        self._count_gap(lost_at, resubscribed_at)
        if self.event_time is not None:
            # In event time the gap starts at the latest tick time received; where it ends is
            # known with the next read (``_advance_event_time``).
            if self.event_time.watermark is not None and self._event_gap_since is None:
                self._event_gap_since = self.event_time.watermark
            return
        mark_gap = getattr(self.aggregator, "mark_gap", None)
        if mark_gap is not None:
            mark_gap(lost_at, resubscribed_at)  # the bars of those minutes are partial

    # -- gaps (per lost subscription, never per tick) ---------------------------------------------

    def _loss_rate(self, lost_at: float) -> tuple[float, float, bool] | None:
        """(ticks/s, seconds the reader was behind beyond its usual lag, by tick times?) just
        before a loss; None if no window before it is ``_RATE_MIN_SPAN`` long.

        With tick times (the ticks' own time stamps, as their lag gives them: no per-tick work)
        the rate is the rate the ticks were *published* at over the latest report window, and
        the ticks lost are those published after the newest one received until re-subscribed:
        ``rate * (gap + behind)``, ``behind`` being how much the reader's lag at the loss exceeds
        the smallest lag of the last ``_RATE_MARKS`` reports (the source's usual latency; a reader
        behind for longer than those reports is under-counted). That covers a slow reader's
        loss in full: the backlog the server discarded and what was published while the reader
        drained its socket. Without tick times: the receive rate, and the gap alone (the feed's
        estimate of the discarded backlog is then added)."""
        now_time, now_lag = self._tick_time, self._read_lag
        marks = list(self._rate_marks)
        if now_time is not None and now_lag is not None:
            for mark in reversed(marks):
                if mark.tick_time is not None and now_time - mark.tick_time >= _RATE_MIN_SPAN:
                    baseline = min([now_lag] + [m.lag for m in marks if m.lag is not None])
                    rate = max(0, self.received - mark.received) / (now_time - mark.tick_time)
                    return rate, max(0.0, now_lag - baseline), True
        for mark in reversed(marks):
            span = lost_at - mark.at
            if span >= _RATE_MIN_SPAN:
                return max(0, self.received - mark.received) / span, 0.0, False
        return None

    def _count_gap(self, lost_at: float, resubscribed_at: float) -> None:
        cause = None
        explain = getattr(self._feed, "disconnect_cause", None)
        if callable(explain):
            cause = explain()
        reason = cause.reason if cause is not None else self._lost_reason or "connection_lost"
        detail = cause.detail if cause is not None else self._lost_detail
        words = cause.words if cause is not None else REASON_WORDS.get(reason, "lost")
        seconds = max(0.0, resubscribed_at - lost_at)
        estimate: float | None = None
        behind = 0.0
        by_tick_times = False
        if self._loss_rate_at_loss is not None:
            rate, behind, by_tick_times = self._loss_rate_at_loss
            estimate = rate * (seconds + behind)
        discarded = getattr(cause, "discarded_messages_estimate", None)
        if discarded is not None and not by_tick_times:  # by tick times it is inside the window
            estimate = (estimate or 0.0) + discarded
        gap = FeedGap(lost_at, resubscribed_at, reason, words, detail,
                      None if estimate is None else int(round(estimate)), bool(getattr(cause, "confirmed", False)),
                      behind)
        self._recent_gaps.append(gap)
        self.feed_gaps += 1
        self.feed_gap_seconds += seconds
        self.feed_gaps_by_reason[reason] += 1
        if gap.ticks_lost_estimate is not None:
            self.ticks_lost_estimate += gap.ticks_lost_estimate
        self._rate_marks.clear()  # a rate window never spans a gap
        self._tick_time = self._read_lag = None
        self._rate_marks.append(_RateMark(resubscribed_at, self.received, None, None))
        self._next_report_at = 0.0  # report the gap now, not at the next interval
        lost = "ticks lost unknown" if gap.ticks_lost_estimate is None else \
            f"~{gap.ticks_lost_estimate:,} ticks lost (estimate)"
        if behind:
            lost += f", the reader {behind:.2f} s behind the source when it went"
        self.log.log("ERROR" if reason == "output_buffer_limit" else "WARNING",
                     "tick subscription {}: {:.3f} s gap, {}; {}", words, seconds, lost, detail)

    def _ingest(self, payloads: list[bytes], received_at: float) -> None:
        """Decode and fold one read's worth of ticks. The per-tick path: keep it lean."""
        routes = self.routes
        last_seen = self.last_seen
        add = self.aggregator.add
        lag_sum = 0.0
        folded = 0
        tick = None
        for raw in payloads:
            try:
                tick = decode_tick(raw, received_at, self.max_skew)
            except TickRejected as rejected:
                self._count_rejected(rejected, received_at)
                continue
            symbol = tick.symbol
            if symbol not in routes and not self._admit(symbol):
                continue
            if add(tick):
                last_seen[symbol] = received_at
                lag_sum += received_at - tick.timestamp
                folded += 1
        self.received += len(payloads)
        if self.event_time is not None:
            if folded:
                self.last_tick_at = received_at
            if tick is not None:  # the read's last decoded tick: once per read, never per tick
                self._advance_event_time(tick.timestamp, received_at)
        elif folded:
            self.lag_sum += lag_sum
            self.lag_count += folded
            self.last_tick_at = received_at
            self._read_lag = lag_sum / folded  # per read: the ticks' source time, for a gap's estimate
            self._tick_time = received_at - self._read_lag

    def _start_aggregator_at(self, start: float | None) -> bool:
        """Event time: the session's start as the aggregator judges it (late, partial); False
        when it has already decided by another start (it keeps that one)."""
        try:
            self.aggregator.start_at(start)
            return True
        except ValueError as exc:
            self.log.warning("event time: the aggregator keeps its start ({})", exc)
            return False

    def _advance_event_time(self, tick_time: float, received_at: float) -> None:
        """Event time: a read's latest tick has been folded (see the module's docstring)."""
        event_time = self.event_time
        if tick_time > received_at + self._max_ahead:
            self.event_time_refused += 1
            if received_at - self._refused_logged_at >= self._log_every:
                self._refused_logged_at = received_at
                self.log.warning("event time not moved to {:.3f}: {:.0f} s ahead of the wall clock (more than "
                                 "bars.max_tick_skew_seconds); {} reads refused so far", tick_time,
                                 tick_time - received_at, self.event_time_refused)
            return
        if event_time.watermark is None:
            # The replay starts with its earliest first tick: its minute is partial unless that
            # tick lies within the minute's first ``grace`` seconds.
            earliest = self.aggregator.earliest_tick_at()
            start = (tick_time if earliest is None else earliest) - self.aggregator.grace_seconds
            if self._start_aggregator_at(start):
                self.log.info("event time starts at {} (the replay's first ticks)", iso_utc(start))
        if self._event_gap_since is not None:
            since = self._event_gap_since
            self._event_gap_since = None
            self.aggregator.mark_gap(since, max(since, tick_time))  # those minutes' bars are partial
        event_time.observe(tick_time, received_at)

    def _admit(self, symbol: str) -> bool:
        """A tick of a symbol without a route (the per-tick path never comes here otherwise)."""
        if symbol in self.quarantined:
            self.quarantined_ticks[symbol] += 1
            return True  # folded and stored, never routed
        if not self.accept_new_symbols:
            self.unknown_symbols += 1
            return False
        if symbol not in self._requested:
            self._requested.add(symbol)
            self.log.info("new symbol {} seen: asking for a symbol actor", symbol)
            if self.supervisor is not None:
                self.supervisor.tell(SymbolDiscovered(symbol))
        return True

    def _count_rejected(self, rejected: TickRejected, now: float) -> None:
        reason = rejected.reason
        self.rejected[reason] += 1
        last_at, last_count = self._rejected_logged.get(reason, (0.0, 0))
        if now - last_at >= self._log_every:
            total = self.rejected[reason]
            self.log.warning("rejected tick ({}; {} since last report): {}", reason, total - last_count, rejected.detail)
            self._rejected_logged[reason] = (now, total)

    # -- routing --------------------------------------------------------------------------------

    def _apply_control(self) -> None:
        while True:
            try:
                message = self._control.get_nowait()
            except queue.Empty:
                return
            self._apply(message)

    def _apply(self, message: RouteSymbol | Quarantine) -> None:
        if type(message) is Quarantine:
            self._apply_quarantine(message.symbol)
        else:
            self._apply_route(message)

    def _apply_quarantine(self, symbol: str) -> None:
        self.routes.pop(symbol, None)
        held = self._pending.pop(symbol, [])
        self.quarantined[symbol] = self.quarantined.get(symbol, 0) + len(held)
        self.quarantined_ticks.setdefault(symbol, 0)
        self.log.warning("{} quarantined: its bars are stored but no longer analysed ({} held back)",
                         symbol, len(held))

    def _apply_route(self, message: RouteSymbol) -> None:
        if self.quarantined.pop(message.symbol, None) is not None:
            ticks = self.quarantined_ticks.pop(message.symbol, 0)
            self.log.info("{} routed again: quarantine lifted ({} ticks while quarantined)", message.symbol, ticks)
        self.routes[message.symbol] = message.actor_ref
        held = self._pending.pop(message.symbol, [])
        for bar in held:
            message.actor_ref.tell(BarClosed(bar, self._clock()))

    def _deliver(self, bars: list[Bar], closed_at: float) -> None:
        if not bars:
            return
        if self.analysis is not None:  # first: at a close it has the most work of all
            quarantined = self.quarantined
            self.analysis.tell(BarsClosed(tuple(b for b in bars if b.symbol not in quarantined) if quarantined
                                          else tuple(bars), closed_at))
        for bar in bars:
            target = self.routes.get(bar.symbol)
            if target is not None:
                target.tell(BarClosed(bar, closed_at))
            elif bar.symbol in self.quarantined:
                self.quarantined[bar.symbol] += 1  # stored below, analysed by nobody
            else:
                self._pending[bar.symbol].append(bar)  # its actor is being started
        self.bars_closed += len(bars)
        self.persistence.tell(PersistBars(tuple(bars)))
