"""The benchmark's output: the machine, a table (figure, value, floor/ceiling beside it, ratio,
target), the JSON document and the optional PNG.

``rows(result)`` turns a run's result (the dict ``scenarios.run`` returns, also the JSON) into table
rows; ``format_table`` prints them as a Markdown table, so the README can show it as printed.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

JSON_VERSION = 1


@dataclass(frozen=True)
class Row:
    figure: str
    value: str
    reference: str = ""   # the floor or ceiling beside it
    ratio: str = ""
    target: str = ""


def cpu_model(cpuinfo: str | None = None) -> str:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or "unknown"
    for line in cpuinfo.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {"cores": os.cpu_count(), "cpu_model": cpu_model(), "python": sys.version.split()[0],
            "platform": platform.platform(), "loadavg_at_start": load}


def machine_line(machine: dict) -> str:
    load = machine.get("loadavg_at_start") or []
    extra = f", load {load[0]:.2f} at start" if load else ""
    code = machine.get("code") or {}
    if code.get("commit"):
        changed = len(code.get("uncommitted") or [])
        extra += f"; code {code['commit']}" + (f" + {changed} uncommitted service files" if changed else "")
    return (f"machine: {machine.get('cores')} cores, {machine.get('cpu_model')}, "
            f"Python {machine.get('python')}{extra}")


# -- number formatting ------------------------------------------------------------------------

def n(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.1f} MB"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return ""
    return f"{a / b:.2f}x"


def three(s: dict | None, unit: str = "ms") -> str:
    if not s or not s.get("n"):
        return "n/a"
    return f"{ms(s['p50'])} / {ms(s['p99'])} / {ms(s['max'])} {unit}"


# -- the table -----------------------------------------------------------------------------

def latency_target_ms(symbols: int) -> float:
    """Issue 8's close -> last event p99 target for a universe of this size."""
    return 40.0 if symbols <= 500 else 100.0 if symbols <= 3000 else 250.0


EXTENDED_TARGET_MS = 100.0  # issue 10 item 4: ten TA-Lib functions on every timeframe, 500 symbols


def latency_target(symbols: int, extended: bool = False) -> str:
    """The close -> last event target printed: issue 8's for the baseline, issue 10 item 4's for
    ``--extended`` (set for 500 symbols: none above)."""
    if not extended:
        return f"p99 <= {latency_target_ms(symbols):g} ms and <= 2x floor"
    if symbols <= 500:
        return f"p99 <= {EXTENDED_TARGET_MS:g} ms (issue 10 item 4)"
    return "extended set: issue 10's 100 ms is for 500 symbols"


def _split_rows(split: dict | None, what: str, unit: str) -> list[Row]:
    """Two rows of a figure split by what closed: 1-minute bars only / a higher timeframe too."""
    if not split:
        return []
    only, higher = split.get("1min_only") or {}, split.get("with_higher") or {}
    closing = split.get("minutes_closing") or {}
    which = ", ".join(f"{tf} x{k}" for tf, k in closing.items() if k)
    return [Row(f"  {what}: {unit} of 1-minute bars only ({only.get('n', 0)}; p50 / p99 / max)", three(only)),
            Row(f"  {what}: {unit} where a 5/15/60-minute bar closed too ({higher.get('n', 0)}; p50 / p99 / max)",
                three(higher), target=which)]


def rows(result: dict) -> list[Row]:
    settings = result["settings"]
    floor = result.get("floor") or {}
    ceiling = result.get("ceiling") or {}
    svc = result.get("service") or {}
    scenario = settings["scenario"]
    nsym = settings["symbols"]
    out: list[Row] = []
    floor_close = floor.get("per_close_ms")
    if floor_close:
        out.append(Row(f"inline floor: one close of {nsym:,} bars, no actors (p50 / p99 / max)", three(floor_close),
                       target=f"{floor.get('events_per_close') or 0:,.0f} events, {floor.get('closes')} closes"))
        phases = floor.get("phases_p50_ms")
        if phases:
            out.append(Row("inline floor, one close by phase (p50 of each)",
                           " / ".join(ms(v) for v in phases.values()) + " ms",
                           target=" / ".join(phases)))
        if len(floor.get("timeframes") or ()) > 1:
            out += _split_rows(floor.get("per_close_ms_by_closing"), "floor", "closes")
        for close in floor.get("closes_of_every_timeframe") or ():
            out.append(Row(f"  floor: the close of every timeframe ({'/'.join(floor['timeframes'])}), by phase",
                           f"{ms(close['ms'])} ms: " + " / ".join(ms(v) for v in close["phases_ms"].values()) + " ms",
                           target=f"{close['events']:,} events; " + " / ".join(close["phases_ms"])))
    sharded = result.get("floor_sharded")
    if sharded and floor_close:
        shares = " + ".join(f"{k:,}" for k in sharded["symbols_per_shard"])
        out.append(Row(f"inline floor over {sharded['shards']} processes, closes lined up: the slowest shard "
                       f"(p50 / p99 / max)", three(sharded["per_close_ms"]), f"floor p50 {ms(floor_close['p50'])} ms",
                       ratio(sharded["per_close_ms"]["p50"], floor_close["p50"]), f"{shares} symbols"))
    ceil_rate = ceiling.get("ticks_per_second")
    if ceiling:
        out.append(Row("receive ceiling: socket -> decode -> fold, one thread, nothing lost",
                       f"{n(ceil_rate)} ticks/s" if ceil_rate else "not reached without loss",
                       target=f"receiver at {pct(ceiling.get('receiver_cpu_share'))} of a core"))
    if not svc:
        return out
    if svc.get("startup_seconds") is not None:
        out.append(Row("service start-up (process start -> session_started)", f"{svc['startup_seconds']:.1f} s",
                       target="<= 15 s" if scenario == "scale" else ""))
    gen = svc.get("generator", {})
    sent, in_bars = svc.get("sent"), svc.get("in_bars")
    lost = None if sent is None or in_bars is None else sent - in_bars
    out.append(Row("ticks sent -> in bars (sum of ohlcv_1min volume)", f"{n(sent)} -> {n(in_bars)} ({n(lost)} lost)",
                   target="nothing lost"))
    day = svc.get("day")
    if day:
        expected = day.get("bars_expected")
        closed = (svc.get("metrics") or {}).get("tickstock_bars_closed_total")
        out.append(Row("bars of the replayed day in ohlcv_1min (rows) / closed by the service (/metrics)",
                       f"{n(svc.get('rows'))} / {n(closed)}",
                       target=f"== {n(expected)} ({nsym:,} x {day.get('minutes')})"))
        last = day.get("last_minute") or {}
        after = last.get("closed_after_last_batch_s")
        out.append(Row("last minute: closed after the last batch (by the feed's silence) / its events",
                       f"{after:.1f} s / {n(last.get('events'))}" if after is not None
                       else f"n/a / {n(last.get('events'))}",
                       target=f">= idle_after {day.get('idle_after', 0):g} s; not in the latencies"))
    achieved = gen.get("rate")
    beside = scenario in ("throughput", "scale") and ceil_rate
    out.append(Row("rate sent (achieved, whole run)", f"{n(achieved)} ticks/s",
                   f"ceiling {n(ceil_rate)}/s" if beside else "", ratio(achieved, ceil_rate) if beside else "",
                   ">= 200,000/s and >= 0.7 of the ceiling, nothing lost" if scenario == "throughput"
                   else "100,000/s sustained" if scenario == "scale" else ""))
    bars = svc.get("bars_in_db_s")
    if bars and bars.get("n"):
        out.append(Row("minute's bars all in the database, after the minute's end (p50 / max)",
                       f"{bars['p50']:.2f} / {bars['max']:.2f} s",
                       f"grace {settings['grace']:g} s" + (" of event time" if svc.get("day") else ""),
                       target=f"{bars['n']} minutes"))
    lat = svc.get("latency_ms") or {}
    floor_p99 = floor_close.get("p99") if floor_close else None
    target = latency_target(nsym, bool(settings.get("extended")))
    if lat.get("from_deadline", {}).get("n"):
        out.append(Row("close -> event, every event (minute end + grace -> received; p50 / p99 / max)",
                       three(lat["from_deadline"]),
                       f"floor p99 {ms(floor_p99)} ms" if floor_p99 else "",
                       ratio(lat["from_deadline"]["p99"], floor_p99)))
        last = lat.get("last_per_minute_summary") or {}
        out.append(Row(f"close -> last event of the minute ({last.get('n', 0)} minutes; p50 / p99 / max)",
                       three(last), f"floor p99 {ms(floor_p99)} ms" if floor_p99 else "",
                       ratio(last.get("p99"), floor_p99), target))
        out += _split_rows(lat.get("last_per_minute_by_closing"), "last event", "minutes")
        by_tf = lat.get("last_by_timeframe") or {}
        if by_tf:  # do a close's 1-minute events wait for its higher timeframes?
            out.append(Row("  last event of each timeframe, minutes where a 5/15/60-minute bar closed (p50 / max)",
                           "; ".join(f"{tf} {ms(v.get('p50'))} / {ms(v.get('max'))}" for tf, v in by_tf.items())
                           + " ms"))
        first = lat.get("first_per_minute_summary") or {}
        if first.get("n"):  # how long the close took before anything of it reached Redis
            out.append(Row("close -> first event of the minute (p50 / p99 / max)", three(first)))
        out.append(Row("bar_closed_at -> event received (p50 / p99 / max)", three(lat.get("from_close"))))
        per_minute = svc.get("events_per_minute")
        out.append(Row("events per minute (patterns + indicators)", n(per_minute),
                       f"floor {n(floor.get('events_per_close'))} per close" if floor else ""))
    elif scenario != "throughput":
        out.append(Row("close -> event", "no events measured"))
    backlog = svc.get("backlog") or {}
    out.append(Row("tick subscription's output backlog in Redis, max (omem / tot-mem)",
                   f"{mb(backlog.get('max_omem'))} / {mb(backlog.get('max_tot_mem'))}",
                   target=f"< 32 MB; {backlog.get('reconnects', 0)} reconnects"))
    cpu = svc.get("cpu_share")
    per_tick = cpu / achieved * 1e6 if cpu is not None and achieved else None
    receiver = ceiling.get("receiver_cpu_share")
    receiver_per_tick = receiver / ceil_rate * 1e6 if receiver and ceil_rate else None
    out.append(Row("service CPU (with its analysis process), user+sys / wall, while fed",
                   f"{pct(cpu)} of a core" + (f", {per_tick:.1f} us/tick" if per_tick is not None else ""),
                   f"receiver alone {receiver_per_tick:.1f} us/tick" if receiver_per_tick and beside else "",
                   ratio(per_tick, receiver_per_tick) if beside else ""))
    rss = svc.get("rss") or {}
    out.append(Row("service RSS, max / at the end", f"{mb(rss.get('max'))} / {mb(rss.get('end'))}",
                   target=("<= 600 MB; " if scenario == "scale" else "") + "with its analysis process"))
    if scenario == "day" and rss.get("first_period") is not None:
        growth = rss["end"] / rss["first_period"] - 1 if rss.get("end") else None
        unit = "event min" if svc.get("day") else "min"
        out.append(Row(f"RSS after the first {settings.get('period_minutes')} {unit} -> at the end",
                       f"{mb(rss['first_period'])} -> {mb(rss.get('end'))} ({growth:+.1%})" if growth is not None
                       else "n/a", target="within 10%"))
    metrics = svc.get("metrics") or {}
    if metrics:
        out.append(Row("the service's own count (/metrics): received / late / rejected",
                       f"{n(metrics.get('tickstock_ticks_received_total'))} / "
                       f"{n(metrics.get('tickstock_ticks_late_total'))} / {n(metrics.get('rejected'))}",
                       target="late == 0" if svc.get("day") else ""))
    out.append(Row("load generator", f"{pct(gen.get('cpu_share'))} of a core; behind schedule <= "
                   f"{ms((gen.get('max_behind') or 0) * 1000)} ms; {n(gen.get('unheard'))} PUBLISH unheard"))
    if svc.get("critical_alerts"):
        out.append(Row("critical alerts published", n(svc["critical_alerts"])))
    return out


def format_table(table: list[Row]) -> str:
    header = Row("figure", "value", "floor / ceiling", "ratio", "target / note")
    cells = [[r.figure, r.value, r.reference, r.ratio, r.target] for r in [header, *table]]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    lines = []
    for k, c in enumerate(cells):
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def title(result: dict) -> str:
    s = result["settings"]
    primed = " primed" if s.get("prime") else ""
    scenario = s["scenario"]
    if scenario == "latency":
        what = f"{s['symbols']:,} symbols{primed}, {n(s['rate'])} ticks/s, {s.get('minutes')} minutes"
    elif scenario == "throughput":
        what = f"{s['symbols']:,} symbols{primed}, {n(s['rate'])} ticks/s for {s.get('seconds') or 0:g} s"
    elif scenario == "day" and s.get("speed"):
        wall = 60 * (s.get("minutes") or 0) / s["speed"]
        took = f"{wall:.0f} s" if wall < 120 else f"{wall / 60:.1f} min"
        what = (f"{s['symbols']:,} symbols{primed}, {n(s['rate'])} ticks/s, {s.get('minutes')} event minutes of "
                f"{s.get('date')} replayed at speed {s['speed']:g} ({took} wall)")
    else:
        what = f"{s['symbols']:,} symbols{primed}, {n(s['rate'])} ticks/s, {s.get('minutes')} minutes"
    burst = f", bursts {s['burst']}" if s.get("burst") else ""
    extended = ", extended: baseline + 10 TA-Lib functions on 1/5/15/60min" if s.get("extended") else ""
    return f"scenario {scenario}: {what}{burst}{extended}"


def render(result: dict) -> str:
    parts = [title(result), machine_line(result["machine"]), "", format_table(rows(result))]
    for note in result.get("notes", []):
        parts.append(f"note: {note}")
    return "\n".join(parts)


def to_json(result: dict) -> dict:
    """The JSON document: the result plus its table rows, versioned."""
    doc = {"version": JSON_VERSION, **result, "table": [asdict(r) for r in rows(result)]}
    return json.loads(json.dumps(doc, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, set):
        return sorted(value)
    if hasattr(value, "__dict__"):
        return vars(value)
    return str(value)


def write_json(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_json(result), indent=1) + "\n")


def plot(result: dict, path: str | Path) -> None:
    """Latency distribution (left) and throughput over time (right) as a PNG (needs matplotlib:
    ``pip install -e '.[bench]'``)."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install -e '.[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result.get("series") or {}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    latencies = series.get("latencies_ms") or []
    floor = (result.get("floor") or {}).get("per_close_series_ms") or []
    both = latencies + floor
    if both:
        low, high = min(both), max(both)
        pad = max(1.0, 0.02 * (high - low))
        bins = [low - pad + k * (high - low + 2 * pad) / 60 for k in range(61)]
        if latencies:
            left.hist(latencies, bins=bins, color="tab:blue", alpha=0.8, label=f"service, {len(latencies):,} events")
        if floor:
            left.hist(floor, bins=bins, color="tab:green", alpha=0.7, label=f"inline floor, {len(floor)} closes")
        left.set_yscale("log")
    for name, value, style in (("p50", _p(latencies, 50), "--"), ("p99", _p(latencies, 99), ":")):
        if value is not None:
            left.axvline(value, color="k", linestyle=style, linewidth=1, label=f"service {name} {value:.0f} ms")
    left.set_xlabel("minute end + grace -> event received (ms)")
    left.set_ylabel("events")
    left.set_title("close -> event")
    if latencies or floor:
        left.legend(fontsize=8)
    t0 = min([t for t, _ in series.get("sent_per_second") or []] or [0])
    sent = series.get("sent_per_second") or []
    if sent:
        right.plot([t - t0 for t, _ in sent], [v for _, v in sent], color="tab:blue", label="ticks sent/s")
    health = series.get("service_ticks_per_second") or []
    if health:
        right.plot([t - t0 for t, _ in health], [v for _, v in health], "o", color="tab:orange",
                   label="ticks/s (service's health)")
    ceiling = (result.get("ceiling") or {}).get("ticks_per_second")
    if ceiling and sent and max(v for _, v in sent) >= 0.1 * ceiling:  # else it flattens the curve
        right.axhline(ceiling, color="tab:green", linestyle="--", label=f"receive ceiling {ceiling:,.0f}/s")
    right.set_xlabel("seconds since the first tick")
    right.set_ylabel("ticks/s")
    cpu = series.get("cpu_share") or []
    if cpu:
        twin = right.twinx()
        twin.plot([t - t0 for t, _ in cpu], [100 * v for _, v in cpu], color="tab:red", alpha=0.6,
                  label="service CPU % of a core")
        omem = series.get("omem_mb") or []
        if omem and max(v for _, v in omem) > 0:
            twin.plot([t - t0 for t, _ in omem], [v for _, v in omem], color="tab:purple", alpha=0.6,
                      label="subscriber backlog MB")
        twin.set_ylabel("CPU % / backlog MB")
        twin.legend(loc="lower right", fontsize=8)
    right.legend(loc="upper left", fontsize=8)
    right.set_title("throughput over time")
    fig.suptitle(f"{title(result)}\n{machine_line(result['machine'])}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _p(values: list[float], p: float) -> float | None:
    from tickstock.bench.stats import percentile

    return percentile(values, p)
