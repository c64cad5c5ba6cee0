"""The terminal view of a :class:`MonitorView` with rich: a pure function, view in, renderable out.

Times are shown as ISO-8601 UTC. A health status outside healthy/warning/critical is shown in red,
as the dashboard does.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tickstock.messages.wire import iso_utc
from tickstock.monitor.state import MonitorView

_HEALTH_STYLE = {"healthy": "bold green", "warning": "bold yellow", "critical": "bold red"}


def _iso(t: float | None) -> str:
    return "-" if t is None else iso_utc(t)


def _number(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _header(view: MonitorView, redis_url: str) -> Panel:
    line = Text()
    if view.online and view.session is not None:
        s = view.session
        line.append("● ONLINE ", style="bold green")
        line.append(f"session {s.session_id}  universe {s.universe}  {s.symbol_count} symbols  "
                    f"started {_iso(s.started_at)}  (from {view.session_source})")
    else:
        line.append("○ IDLE ", style="bold yellow")
        line.append(view.idle_reason)
    beat = Text("heartbeat ")
    if view.heartbeat_age is None:
        beat.append("never seen", style="bold red")
    else:
        style = "green" if view.heartbeat_age <= 10 else "yellow" if view.producer_alive else "bold red"
        beat.append(f"{view.heartbeat_age:.1f} s ago", style=style)
        beat.append(f" ({_iso(view.heartbeat_at)})")
        if not view.producer_alive:
            beat.append("  producer offline (> 30 s)", style="bold red")
    redis = Text(f"redis {redis_url} ")
    redis.append("connected" if view.redis_connected else f"LOST: {view.redis_error}",
                 style="green" if view.redis_connected else "bold red")
    last = Text()
    if view.last_stop is not None:
        stop = view.last_stop
        last.append(f"last stop: session {stop.session_id} {stop.final_status} at {_iso(stop.stopped_at)}"
                    + (f" ({stop.reason})" if stop.reason else ""))
    return Panel(Group(line, beat, redis, last), title="TickStock monitor", subtitle=_iso(view.at))


def _health(view: MonitorView) -> Panel:
    h = view.health
    if h is None:
        return Panel(Text("no health report seen yet"), title="health")
    head = Text()
    head.append(h.status.upper(), style=_HEALTH_STYLE.get(h.status, "bold red"))
    head.append(f"  ticks/s {_number(h.ticks_per_second)}  active symbols {h.active_symbols}  "
                f"patterns {h.patterns_detected:,}  indicators {h.indicators_calculated:,}  "
                f"lag {_number(h.processing_lag_ms)} ms  redis {h.redis or '-'}  database {h.database or '-'}")
    lines: list[RenderableType] = [head]
    lines += [Text(f"- {issue}", style=_HEALTH_STYLE.get(h.status, "red")) for issue in h.issues]
    if h.stale_symbols:
        lines.append(Text(f"stale: {', '.join(h.stale_symbols[:20])}"))
    return Panel(Group(*lines), title=f"health (reported {_iso(h.reported_at)})")


def _with_timeframe(name: str, timeframe: str) -> str:
    return name if timeframe in ("1min", "") else f"{name} ({timeframe})"


def _table(title: str, time_column: str, *columns: str) -> Table:
    """A table whose first column is an ISO-8601 time, never cut or wrapped."""
    table = Table(title=title, expand=True)
    table.add_column(time_column, no_wrap=True, min_width=len("2025-10-07T13:41:30.000Z"))
    for column in columns:
        table.add_column(column)
    return table


def _detections(view: MonitorView, rows: int) -> Table:
    table = _table("latest detections (★ also on the high-confidence channel)", "bar (UTC)", "symbol", "pattern",
                   "confidence", "close")
    for d in view.detections[:rows]:
        p = d.pattern
        confidence = "-" if p.confidence is None else f"{p.confidence:.0%}" + (" ★" if d.high_confidence else "")
        table.add_row(_iso(p.bar.start), p.symbol, _with_timeframe(p.pattern, p.timeframe), confidence,
                      _number(p.bar.close, 4))
    return table


def _indicators(view: MonitorView, rows: int) -> Table:
    latest = sorted(view.indicators, key=lambda i: (i.bar_start or 0.0, i.calculated_at), reverse=True)[:rows]
    table = _table(f"indicator values (the latest {len(latest)} of {len(view.indicators)})", "bar (UTC)", "symbol",
                   "indicator", "value")
    for i in sorted(latest, key=lambda i: (i.symbol, i.indicator, i.timeframe)):
        period = i.metadata.get("period")
        name = f"{i.indicator} {period}" if period is not None else i.indicator
        table.add_row(_iso(i.bar_start), i.symbol, _with_timeframe(name, i.timeframe), _number(i.value, 4))
    return table


def _alerts(view: MonitorView, rows: int) -> Table:
    table = _table("alerts", "at (UTC)", "kind", "symbol / component", "detail")
    merged = [(a.raised_at, "alert", a) for a in view.alerts] + [(c.raised_at, "critical", c) for c in view.critical_alerts]
    for at, kind, item in sorted(merged, key=lambda x: x[0], reverse=True)[:rows]:
        if kind == "alert":
            table.add_row(_iso(at), Text(_with_timeframe(item.alert_type, item.timeframe), style="yellow"), item.symbol,
                          f"{item.indicator} {_number(item.value)} {item.direction or ''} {item.threshold}")
        else:
            style = "green" if item.severity == "info" else "bold red"
            table.add_row(_iso(at), Text(item.severity, style=style), item.component or "-", item.message)
    return table


def _footer(view: MonitorView) -> Text:
    counts = "  ".join(f"{name} {n}" for name, n in sorted(view.counts.items())) or "nothing received yet"
    text = Text(f"received: {counts}")
    total = sum(view.rejected.values())
    if total:
        text.append(f"\nrejected: {total} (last: {view.last_rejection})", style="red")
    return text


def render(view: MonitorView, redis_url: str = "", rows: int = 10) -> RenderableType:
    """The whole screen for ``view``: header, health, detections, indicators, alerts, counts."""
    return Group(_header(view, redis_url), _health(view), _detections(view, rows), _indicators(view, rows),
                 _alerts(view, rows), _footer(view))
