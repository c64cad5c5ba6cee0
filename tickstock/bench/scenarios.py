"""The scenarios and one run of them: floor, ceiling, then the service fed and watched from outside.

- ``latency``: N primed symbols (500), one tick per second per symbol, over M full minutes: close ->
  event.
- ``throughput``: a rate (50,000/s) for S seconds (60) over N symbols (500): nothing lost? against
  the receive ceiling.
- ``scale``: 10,000 symbols primed with 200 bars: start-up time, RSS, a rate (100,000/s), latency.
- ``day``: issue 8 item 4, a whole regular session compressed in time: a past trading day D
  (2025-03-12) replayed in event time (the service with ``session.clock: event``), N symbols (500)
  at 2,000 ticks/s, ``speed`` (60) event seconds per wall second, M event minutes (390) from D's
  open, so N x M bars; RSS after the first P event minutes (30) against the end; close -> event
  latency from each minute's deadline mapped to the wall clock (bench/eventtime.py), the last
  minute (closed by the feed's silence) left out.

``--extended`` (latency, throughput, scale; issue 10 item 4): the run's own database gets ten common
TA-Lib functions enabled on every timeframe beside the baseline (bench/sandbox.py ``EXTENDED_*``),
before the floor, which then runs the set the service loads, on all four timeframes. A 5/15/60-minute
bar closes with the 1-minute bar that ends its interval: its events are timed from that minute's end
+ grace (``closing_minute``), and the close -> last event figure is split into minutes that closed
1-minute bars only and minutes where a higher timeframe closed too (``closing_timeframes``).

The floor and the ceiling run first, while the machine is otherwise quiet, then the service.
"""

from __future__ import annotations

import math
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tickstock.bench.ceiling import measure_ceiling
from tickstock.bench.eventtime import (
    DEFAULT_DATE, REGULAR_MINUTES, EventMap, check_speed, default_speed, last_close_wall, regular_session,
    ticks_per_bar,
)
from tickstock.bench.floor import run_floor, split_by_closing
from tickstock.bench.loadgen import LoadGenerator, LoadSpec
from tickstock.bench.observe import BarPoller, EventRecorder, Sampler, volume_since
from tickstock.bench.pacing import Burst
from tickstock.bench.shards import run_sharded_floor
from tickstock.bench.report import machine_info
from tickstock.bars.timeframes import BASE_TIMEFRAME, HIGHER_TIMEFRAMES, TIMEFRAMES, timeframe_seconds
from tickstock.bench.sandbox import (
    EXTENDED_NAMES, EXTENDED_TIMEFRAMES, REDIS_URL, Sandbox, apply_extended, base_config, check_extended,
    describe_definitions, load_definition_set, seed_history,
)
from tickstock.bench.stats import (
    EventTimes, cpu_share, event_latencies, parse_event, per_interval_rates, summary, value_at,
)
from tickstock.bench.universe import bench_symbols
from tickstock.clock import DEFAULT_IDLE_AFTER_SECONDS
from tickstock.config import ChannelSettings, validate

SCENARIOS = ("latency", "throughput", "scale", "day")
EXTENDED_SCENARIOS = ("latency", "throughput", "scale")  # --extended: wall-clock runs
LAST_MINUTE_MARGIN = 2.0  # wall seconds after the last minute can close before the service is stopped


def day_note(plan: Plan) -> str:
    """What the day scenario's figures mean, for the printed notes."""
    return (f"day: {plan.date} replayed in event time (session.clock: event) at speed {plan.speed:g}: "
            f"event = open + (wall - t0) x {plan.speed:g}, t0 = the first batch, one stamp per batch, "
            f"{ticks_per_bar(plan.rate, plan.symbols, plan.speed):.1f} ticks per bar; a minute's deadline is its "
            f"end + grace in event time mapped to the wall clock (t0 + (m + 60 + grace - open) / speed); "
            f"the last minute (closed by the feed's silence, {DEFAULT_IDLE_AFTER_SECONDS:g} s) is left out of "
            f"the latencies; RSS after the first {plan.period_minutes} event minutes")


@dataclass
class Plan:
    scenario: str
    symbols: int
    rate: float
    prime: bool
    minutes: int | None = None       # latency, scale, day: full minutes measured
    seconds: float | None = None     # throughput: how long the generator sends
    period_minutes: int | None = None  # day: RSS after this many (event) minutes
    burst: Burst | None = None
    prime_bars: int = 200
    floor: bool = True
    floor_closes: int = 20
    floor_shards: int = 1            # > 1: the floor also split over this many processes (shards.py)
    ceiling: bool = True
    ceiling_seconds: float = 8.0
    startup_timeout: float = 300.0
    align: bool = False              # start sending at a minute boundary (throughput: a full minute measured)
    rate_of_ceiling: float | None = None  # feed the service at this share of the ceiling just measured
    keep_dir: str | None = None
    redis_url: str = REDIS_URL
    date: str | None = None          # day: the replayed session (YYYY-MM-DD)
    speed: float | None = None       # day: event seconds per wall second
    day_open: float | None = None    # day: its open, epoch seconds (from the calendar)
    extended: bool = False           # ten TA-Lib functions on every timeframe beside the baseline
    analysis_processes: int | None = None  # analysis.processes for the service (None: config.yaml's)


def make_plan(scenario: str, symbols: int | None = None, rate: float | None = None, minutes: int | None = None,
              seconds: float | None = None, prime: bool | None = None, **extra) -> Plan:
    """The scenario's defaults, overridden by what was given."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
    defaults = {
        "latency": dict(symbols=500, prime=True, minutes=2),
        "throughput": dict(symbols=500, prime=False, seconds=60.0, rate=50_000.0, align=True),
        "scale": dict(symbols=10_000, prime=True, minutes=2, rate=100_000.0),
        "day": dict(symbols=500, prime=False, minutes=REGULAR_MINUTES, rate=2_000.0),
    }[scenario]
    nsym = symbols or defaults["symbols"]
    plan = Plan(
        scenario=scenario, symbols=nsym,
        rate=rate if rate is not None else defaults.get("rate", float(nsym)),  # latency: 1 tick/s/symbol
        prime=defaults["prime"] if prime is None else prime,
        minutes=minutes if minutes is not None else defaults.get("minutes"),
        seconds=seconds if seconds is not None else defaults.get("seconds"),
        **{"align": defaults.get("align", False), **{k: v for k, v in extra.items() if v is not None}},
    )
    if plan.rate <= 0:
        raise ValueError("the service is fed at a rate: give --rate > 0")
    if plan.extended and scenario not in EXTENDED_SCENARIOS:
        raise ValueError(f"--extended is for --scenario {', '.join(EXTENDED_SCENARIOS)}")
    if scenario == "day":
        _plan_day(plan)
    elif plan.speed is not None or plan.date is not None:
        raise ValueError("--speed and --date are for --scenario day (a replay in event time)")
    if plan.floor_shards < 1 or (plan.floor_shards > 1 and not plan.floor):
        raise ValueError("--floor-shards needs a count >= 1 and the inline floor measured")
    if plan.rate_of_ceiling is not None and (plan.rate_of_ceiling <= 0 or not plan.ceiling):
        raise ValueError("--rate-of-ceiling needs a share > 0 and the ceiling measured")
    return plan


def extended_note(definitions: list[dict], baseline: Iterable[str]) -> str:
    """What ``--extended`` ran, for the printed notes."""
    on = {d["name"]: d["timeframes"] for d in definitions}
    ten = [n for n in EXTENDED_NAMES if n in on]
    return (f"extended definitions on (--extended, issue 10 item 4): {', '.join(ten)} enabled on "
            f"{', '.join(TIMEFRAMES)} (applicable_timeframes {{{','.join(EXTENDED_TIMEFRAMES)}}}, in the run's own "
            f"database), beside the baseline {', '.join(baseline)} on 1min: {len(definitions)} definitions, "
            f"{sum(len(t) for t in on.values())} per symbol over the timeframes")


def event_timeframe(payload: bytes) -> str:
    """The ``timeframe`` of a pattern/indicator event (1min when absent or unknown)."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return BASE_TIMEFRAME
    body = (message.get("detection") or message.get("calculation")) if isinstance(message, dict) else None
    timeframe = body.get("timeframe") if isinstance(body, dict) else None
    return timeframe if timeframe in TIMEFRAMES else BASE_TIMEFRAME


def closing_minute(event: EventTimes, timeframe: str, grace: float, wall_clock: bool = True) -> int:
    """The start of the 1-minute bar whose close closed ``event``'s bar. A higher timeframe's event
    carries its interval's start: its bar closes with the interval's last minute (start + length -
    60), or, on the wall clock, the earlier minute its ``bar_closed_at`` says (an hour cut short by
    the session's close)."""
    start = int(event.bar_start)
    if timeframe == BASE_TIMEFRAME:
        return start
    minute = start + timeframe_seconds(timeframe) - 60
    if wall_clock and event.bar_closed_at is not None:
        by_stamp = int((event.bar_closed_at - grace) // 60) * 60 - 60
        if start <= by_stamp < minute:
            minute = by_stamp
    return minute


def closing_timeframes(minute: int, timeframes: Iterable[str] = HIGHER_TIMEFRAMES, seen: Iterable[str] = (),
                       observed_from: float | None = None) -> list[str]:
    """The timeframes (of ``timeframes`` beside 1min) whose bars close, and are analysed, with the
    1-minute bar starting at ``minute`` (epoch seconds): 5 and 15 minutes on the clock's grid, 60
    minutes at :30 UTC (the session's hours; :30 ET is :30 UTC), each only when its interval starts
    at or after ``observed_from`` (the first whole minute fed: an interval overlapping the time before
    it is partial, not analysed), plus any seen in that minute's events (an hour cut short)."""
    end = minute + 60
    found = {BASE_TIMEFRAME, *seen}
    for tf, grid, phase in (("5min", 300, 0), ("15min", 900, 0), ("60min", 3600, 1800)):
        if end % grid == phase and (observed_from is None or end - grid >= observed_from):
            found.add(tf)
    wanted = {BASE_TIMEFRAME, *timeframes}
    return [tf for tf in TIMEFRAMES if tf in found and tf in wanted]


def split_last_by_closing(last: dict[int, float], closing: dict[int, list[str]]) -> dict:
    """The minutes' last-event latencies summarised apart: ``1min_only`` and ``with_higher`` (a 5,
    15 or 60-minute bar closed in that minute too), plus how many minutes each timeframe closed in."""
    return split_by_closing(list(last.values()), [closing.get(m, [BASE_TIMEFRAME]) for m in last])


def last_by_timeframe(last: dict[str, dict[int, float]], closing: dict[int, list[str]]) -> dict[str, dict]:
    """Each timeframe's last event per minute (``last``: timeframe -> {minute: latency}), summarised
    over the minutes where a higher timeframe closed too: whether a close's 1-minute events wait for
    its 5/15/60-minute ones, and how long each of those takes. Timeframes in ascending order."""
    higher = {m for m, tfs in closing.items() if any(tf != BASE_TIMEFRAME for tf in tfs)}
    return {tf: summary([v for m, v in last[tf].items() if m in higher]) for tf in TIMEFRAMES
            if any(m in higher for m in last.get(tf, ()))}


def _plan_day(plan: Plan) -> None:
    """The replayed session, its length, the speed and the RSS period of a ``day`` plan (in place)."""
    session = regular_session(plan.date or DEFAULT_DATE, time.time())
    plan.date, plan.day_open = session.date.isoformat(), session.open
    length = int(session.close - session.open) // 60
    if plan.minutes is None or not 1 <= plan.minutes <= length:
        raise ValueError(f"--minutes must be 1..{length} (event minutes of {plan.date}'s session), got {plan.minutes}")
    if plan.rate_of_ceiling is not None:
        raise ValueError("day: the speed follows from the rate: give --rate, not --rate-of-ceiling")
    plan.speed = (default_speed(plan.rate, plan.symbols) if plan.speed is None
                  else check_speed(plan.speed, plan.rate, plan.symbols))
    if plan.period_minutes is None:
        plan.period_minutes = min(30, max(1, plan.minutes // 2))
    if not 1 <= plan.period_minutes < plan.minutes:
        raise ValueError(f"--period must be 1..{plan.minutes - 1} event minutes (RSS after it against the end)")


def scrape_metrics(port: int) -> dict:
    """Unlabelled samples of the service's /metrics, plus ``rejected`` (summed over reasons)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict = {"rejected": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels:
                out[sample.name] = sample.value
            elif sample.name == "tickstock_ticks_rejected_total":
                out["rejected"] += sample.value
    return out


def code_version() -> dict:
    """The commit under test and the service files changed from it (the working tree is what runs)."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", "tickstock"], cwd=repo, capture_output=True,
                                 text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "uncommitted": sorted(line[3:] for line in changed if "tickstock/bench/" not in line)}


def run(plan: Plan, log=print) -> dict:
    machine = machine_info()
    machine["code"] = code_version()
    base_settings = validate(base_config())
    largest = max(base_settings.universes.values(), key=len, default=[])  # config.yaml's top 500
    symbols = bench_symbols(plan.symbols, largest)
    result: dict = {"settings": {**asdict(plan), "burst": str(plan.burst) if plan.burst else None,
                                 "grace": base_settings.bars.grace_seconds},
                    "machine": machine, "notes": [], "series": {}}
    if plan.scenario == "day":
        result["notes"].append(day_note(plan))
    clock = "event" if plan.scenario == "day" else None
    with Sandbox(symbols, plan.redis_url, keep_dir=plan.keep_dir, clock=clock,
                 analysis_processes=plan.analysis_processes) as sb:
        settings = validate(sb.cfg)
        if settings.analysis.process:
            result["notes"].append(
                f"the service's close analysis: analysis.processes {settings.analysis.processes}"
                f" ({'--analysis-processes' if plan.analysis_processes is not None else 'config.yaml'}), its"
                " timeframes split over that many processes at most (AnalysisSpec.split)")
        definitions = None
        if plan.extended:  # written before the floor, so the floor runs what the service will load
            sb.migrate()
            apply_extended(sb.dsn)
            definitions = load_definition_set(sb.dsn, settings.analysis.timeframe)
            check_extended(definitions)
            loaded = describe_definitions(definitions)
            result["definitions"] = {"extended": list(EXTENDED_NAMES), "timeframes": list(TIMEFRAMES),
                                     "applicable_timeframes": list(EXTENDED_TIMEFRAMES), "loaded": loaded}
            baseline = [d["name"] for d in loaded if d["name"] not in EXTENDED_NAMES]
            result["notes"].append(extended_note(loaded, baseline))
            log(f"extended: {len(loaded)} definitions in {sb.dsn.rsplit('/', 1)[-1]}")
        if plan.floor:
            # Extended: primed like the service, so the higher timeframes' indicators warm up alike.
            floor_prime = (plan.prime_bars if plan.extended else min(plan.prime_bars, 50)) if plan.prime else 0
            log(f"inline floor: {len(symbols):,} symbols, {plan.floor_closes} closes")
            floor_channels = ChannelSettings(**{k: f"{sb.prefix}floor:{v}" for k, v in sb.cfg["channels"].items()})
            result["floor"] = run_floor(symbols, settings, plan.redis_url, floor_channels, plan.floor_closes,
                                        prime_bars=floor_prime, log=log, definitions=definitions)
            if plan.floor_shards > 1:
                log(f"inline floor over {plan.floor_shards} processes, closes lined up")
                result["floor_sharded"] = run_sharded_floor(symbols, settings, plan.redis_url, floor_channels,
                                                            plan.floor_shards, plan.floor_closes,
                                                            prime_bars=floor_prime, definitions=definitions)
            if plan.extended:
                split = result["floor"]["per_close_ms_by_closing"]["with_higher"]
                result["notes"].append(
                    f"the inline floor ran the same {len(definitions)} definitions on all four timeframes as the "
                    f"service does (TA-Lib ones once per close for all symbols with analysis.batch_talib on, "
                    f"{'on' if settings.analysis.batch_talib else 'off'} here; higher bars folded per symbol, "
                    f"60-minute on the :30 grid, partial ones skipped), "
                    f"primed with {floor_prime} bars; {split['n']} of its {plan.floor_closes} closes analysed a "
                    "5/15/60-minute bar too")
        if plan.ceiling:
            log(f"receive ceiling: {len(symbols):,} symbols, {plan.ceiling_seconds:g} s per attempt")
            result["ceiling"] = measure_ceiling(plan.redis_url, f"{sb.prefix}ceiling:ticks", symbols,
                                                plan.ceiling_seconds, grace=sb.grace, log=log)
            ceiling = result["ceiling"]["ticks_per_second"]
            if plan.rate_of_ceiling is not None:
                if not ceiling:
                    raise RuntimeError("no clean ceiling attempt: cannot feed at a share of it")
                plan.rate = result["settings"]["rate"] = round(plan.rate_of_ceiling * ceiling)
                result["notes"].append(f"fed at {plan.rate_of_ceiling:g} of the receive ceiling: {plan.rate:,.0f} ticks/s")
        result["service"] = run_service(plan, sb, result, log)
    return result


#: --extended: the feed's first minute is at least this long after the history is written (start-up,
#: encoding the load), plus this much per 1,000 symbols.
FEED_LEAD_SECONDS = 30.0
FEED_LEAD_PER_1000 = 3.0
#: ...and the service must be live and the load encoded at least this long before that minute begins.
FEED_MARGIN_SECONDS = 1.0


def feed_boundary(symbols: int, now: float) -> int:
    """The minute (epoch seconds) an ``--extended`` feed starts at: the first boundary at least
    ``FEED_LEAD_SECONDS`` (+ ``FEED_LEAD_PER_1000`` per 1,000 symbols) after ``now``, so the
    service is live and the load encoded before it; the history is written to end just before it."""
    lead = FEED_LEAD_SECONDS + FEED_LEAD_PER_1000 * symbols / 1000
    return math.ceil((now + lead) / 60) * 60


def _planned_end(plan: Plan, go_at: float, boundary: float | None = None) -> tuple[float | None, float | None]:
    """(until epoch, seconds) for the generator: ``plan.minutes`` whole minutes, or ``plan.seconds``.

    The whole minutes start at ``boundary`` when the feed starts on one (--align, --extended), else
    at the first minute beginning at least half a second after ``go_at`` (the minute the feed starts
    in is partial and not measured). The run measures exactly the minutes in [until - 60 *
    minutes, until): see ``whole_minutes``."""
    if plan.minutes is None:
        return None, plan.seconds
    first = boundary if boundary is not None else math.ceil((go_at + 0.5) / 60) * 60
    return first + 60 * plan.minutes, None


def whole_minutes(plan: Plan, until: float | None, started_at: float, ended_at: float) -> range:
    """The starts of the minutes the feed covered whole, which the run measures: with ``--minutes``
    the planned ones (``_planned_end``) that the feed covered, to a second; with ``--seconds`` every
    minute between the first and the last batch, to a second."""
    first = math.ceil((started_at - 1) / 60) * 60
    end = math.floor((ended_at + 1) / 60) * 60  # the last whole minute ends here
    if until is not None and plan.minutes is not None:
        first, end = max(first, int(until) - 60 * plan.minutes), min(end, int(until))
    return range(int(first), int(end), 60)


def run_service(plan: Plan, sb: Sandbox, result: dict, log=print) -> dict:
    symbols = sb.symbols
    grace = sb.grace
    day = plan.scenario == "day"
    out: dict = {}
    feed_from: int | None = None  # --extended: the minute the history reaches and the feed starts at
    if plan.prime:
        sb.migrate()  # the service's own --migrate, so the history has its table
        # Day: the history ends before the replayed open (bars after it would make every replayed
        # bar stale to the symbol actors, which take bars in time order).
        if day:
            last = int(plan.day_open) - 60
        elif plan.extended:
            # The history runs up to the feed's first minute, so the 5/15/60-minute bars the feed
            # starts in are whole (history + fed bars) and analysed: every timeframe closes by the
            # first :30 UTC after the start, not an hour after it.
            feed_from = feed_boundary(len(symbols), time.time())
            last = feed_from - 60
        else:
            last = (int(time.time() // 60) - 3) * 60
        started = time.time()
        rows = seed_history(sb.dsn, symbols, plan.prime_bars, last)
        log(f"history: {rows:,} bars ({plan.prime_bars} per symbol) in {time.time() - started:.1f}s")
    ch = sb.cfg["channels"]
    recorder = EventRecorder(sb.redis_url, [ch["patterns"], ch["indicators"], ch["session_started"], ch["health"],
                                            ch["critical_alerts"], ch["session_stopped"]])
    spec = LoadSpec(sb.redis_url, ch["ticks"], symbols, plan.rate, burst=plan.burst)
    if day:
        spec.event_open, spec.speed = plan.day_open, plan.speed
        spec.event_until = plan.day_open + 60 * plan.minutes  # stamps stop before this
    emap: EventMap | None = None
    generator = None
    service = sb.service()
    sampler = poller = None
    try:
        service.start()
        sampler = Sampler(service.pid, sb.redis_url)
        log(f"service: pid {service.pid}, {len(symbols):,} symbols, log {service.log_path}")
        t_started, _ = recorder.wait_for(ch["session_started"], plan.startup_timeout, alive=service.alive)
        out["startup_seconds"] = t_started - service.started_at
        at_start = sampler.sample_now()
        out["rss_at_start"] = at_start.rss if at_start else None
        log(f"session started after {out['startup_seconds']:.1f}s")
        if day:
            # Pre-encoded after start-up (its CPU is not the service's); event time starts with the
            # first batch (t0), so the map is known once it is sent.
            generator = LoadGenerator(spec).start()
            generator.go(None)
            emap = EventMap(plan.day_open, plan.speed, generator.first_batch_at(60))
            planned_end = emap.wall_at(spec.event_until)
            poller = BarPoller(sb.dsn, symbols, grace, wall_of=emap.wall_at, by_symbol=True)
            for minute in day_minutes(plan)[:-1]:  # the last closes by the feed's silence: not timed
                poller.expect(minute)
            log(f"replaying {plan.date} from its open: {plan.minutes} event minutes at speed {plan.speed:g}, "
                f"{plan.rate:,.0f} ticks/s until {time.strftime('%H:%M:%S', time.localtime(planned_end))}")
        else:
            poller = BarPoller(sb.dsn, symbols, grace)
            # Pre-encode after start-up (its CPU is not the service's) and before the first tick.
            spec.seconds = _planned_end(plan, 0.0)[1]
            generator = LoadGenerator(spec).start()
            if feed_from is not None and time.time() > feed_from - FEED_MARGIN_SECONDS:
                result["notes"].append(
                    f"start-up overran the minute the history reaches ({time.strftime('%H:%M', time.gmtime(feed_from))}"
                    " UTC): the feed starts at the next one, so the 5/15/60-minute bars it starts in are partial")
                feed_from = None
            if plan.align or plan.extended:
                boundary = feed_from or math.ceil(time.time() / 60) * 60
                log(f"waiting {boundary - time.time():.0f}s for the minute to begin")
                while time.time() < boundary:  # sleep may wake a hair early on the wall clock
                    time.sleep(min(0.5, boundary - time.time()) + 0.0005)
            spec.until = _planned_end(plan, time.time(), boundary if plan.align or plan.extended else None)[0]
            if plan.align and spec.seconds is not None:
                # A hard stop at the minute's end too: a generator a few ms late must not start a minute.
                generator.go(boundary + spec.seconds)
            else:
                generator.go(spec.until)
            if spec.until is not None:
                log(f"feeding {plan.rate:,.0f} ticks/s until {time.strftime('%H:%M:%S', time.localtime(spec.until))}")
                planned_end = spec.until
            else:
                log(f"feeding {plan.rate:,.0f} ticks/s for {spec.seconds:g}s")
                planned_end = generator.go_at + spec.seconds
            if plan.rate * 60 >= len(symbols):  # every symbol has a bar every minute: watch the database
                for minute in whole_minutes(plan, spec.until, generator.go_at, planned_end):
                    poller.expect(minute)
        sent = generator.wait(planned_end - time.time() + 120)
        log(f"sent {sent.sent:,} ticks at {sent.rate:,.0f}/s; waiting for the last minute to close")
        if emap is not None:
            first_minute = int(plan.day_open)
            # Only the feed's silence closes the last minute (idle_after wall seconds).
            last_deadline = last_close_wall(sent.ended_at, sent.last_stamp, spec.event_until, grace,
                                            DEFAULT_IDLE_AFTER_SECONDS)
        else:
            # The minute of the first tick's own stamp: a batch stamped just before the first batch's
            # wall time would otherwise fall outside the count.
            first_minute = int(min(sent.started_at, sent.first_stamp or sent.started_at) // 60) * 60
            last_deadline = int(sent.ended_at // 60) * 60 + 60 + grace
        in_bars, rows = _wait_for_bars(sb.dsn, first_minute, sent.sent, last_deadline, service.alive)
        wait_until = time.time() + 20
        while poller.pending() and time.time() < wait_until:
            time.sleep(0.2)
        while emap is not None and time.time() < last_deadline + LAST_MINUTE_MARGIN:
            time.sleep(0.2)  # the replay's last minute closed, its events out: nothing forming at the stop
        time.sleep(1.0)  # the last events in flight
        try:
            out["metrics"] = scrape_metrics(sb.http_port)
        except OSError as exc:
            out["metrics"] = {}
            result["notes"].append(f"/metrics not read: {exc}")
        end_sample = sampler.sample_now()
    finally:
        if sampler:
            sampler.close()
        if poller:
            poller.close()
        if generator is not None:
            generator.kill()
        out["exit_code"] = service.stop()
        recorder.close()
    if out["exit_code"] not in (0, None):
        result["notes"].append(f"the service exited with {out['exit_code']}: {service.log_tail(5)}")
    if sent is not None and in_bars < sent.sent:
        # Ticks stamped past the last whole minute sit in a bar still forming when the volume is read;
        # the service's stop drains every forming bar into the database: count those too.
        drained, drained_rows = volume_since(sb.dsn, first_minute)
        if drained > in_bars:
            result["notes"].append(f"{drained - in_bars:,} ticks were in a minute still forming when the bars were "
                                   "read; counted once the service's stop had stored it")
            in_bars, rows = drained, drained_rows
    out.update(sent=sent.sent, in_bars=in_bars, rows=rows, first_minute=first_minute)
    out["generator"] = {"rate": sent.rate, "cpu_share": sent.cpu_seconds / sent.seconds, "max_behind": sent.max_behind,
                        "unheard": sent.unheard, "seconds": sent.seconds, "error": sent.error}
    # Latency, from the events recorded.
    wall_of = emap.wall_at if emap is not None else None
    events: list[EventTimes] = []
    seen: dict[int, set[str]] = {}  # minute -> higher timeframes whose events it closed
    timeframes: list[str] = []  # each event's
    for channel in (ch["patterns"], ch["indicators"]):
        for t, p in recorder.on(channel):
            e = parse_event(p, t)
            if e is None:
                continue
            timeframe = event_timeframe(p) if plan.extended else BASE_TIMEFRAME
            if timeframe != BASE_TIMEFRAME:  # timed from the end + grace of the minute that closed it
                e = replace(e, bar_start=float(closing_minute(e, timeframe, grace, wall_of is None)))
                seen.setdefault(int(e.bar_start), set()).add(timeframe)
            events.append(e)
            timeframes.append(timeframe)
    if emap is not None:
        # Every replayed minute but the last, which closes by the feed's silence (reported alone).
        minutes = day_minutes(plan)
        full = set(minutes[:-1])
        last_minute = [e for e in events if int(e.bar_start) == minutes[-1]]
    else:
        # Only minutes fed from start to end count (not a partial first or last minute).
        full = set(whole_minutes(plan, spec.until, sent.started_at, sent.ended_at))
    measured = [e for e in events if int(e.bar_start) in full]
    lat = event_latencies(measured, grace, wall_of)
    last = lat["last_per_minute"]
    out["latency_ms"] = {"from_deadline": summary(lat["from_deadline"]), "from_close": summary(lat["from_close"]),
                         "close_lag": summary(lat["close_lag"]), "last_per_minute": {str(m): v for m, v in last.items()},
                         "last_per_minute_summary": summary(list(last.values())),
                         "first_per_minute_summary": summary(list(lat["first_per_minute"].values())),
                         "closed_early": lat["closed_early"],
                         "events_outside_full_minutes": len(events) - len(measured)}
    if plan.extended:
        # Contiguous history: nothing before the feed went unobserved. Otherwise (start-up overran,
        # or no history) the feed started at a boundary: intervals from its first minute on are whole.
        observed_from = None if feed_from is not None else first_minute
        closing = {m: closing_timeframes(m, HIGHER_TIMEFRAMES, seen.get(m, ()), observed_from=observed_from)
                   for m in last}
        split = split_last_by_closing(last, closing)
        out["latency_ms"]["closing"] = {str(m): tfs for m, tfs in closing.items()}
        out["latency_ms"]["last_per_minute_by_closing"] = split
        per_tf: dict[str, list[EventTimes]] = {}
        for e, tf in zip(events, timeframes):
            if int(e.bar_start) in full:
                per_tf.setdefault(tf, []).append(e)
        out["latency_ms"]["last_by_timeframe"] = last_by_timeframe(
            {tf: event_latencies(evs, grace, wall_of)["last_per_minute"] for tf, evs in per_tf.items()}, closing)
        closed_in = ", ".join(f"{tf} in {k}" for tf, k in split["minutes_closing"].items())
        result["notes"].append(
            f"5/15/60-minute bars close only with the 1-minute bar ending at a 5/15/60-minute boundary (60: at :30 UTC, "
            f"the session's hours): {split['with_higher']['n']} of the {len(last)} measured minutes closed a higher "
            f"timeframe too ({closed_in}); a higher bar's events are timed from the end + grace of that minute; the "
            "history reaches the feed's first minute (a boundary), so the bars the feed starts in are whole: every "
            "timeframe closes at the first :30 UTC in the run (--minutes 60 at most)")
    counts = list(lat["events_per_minute"].values())
    out["events"] = len(measured)
    out["events_per_minute"] = sum(counts) / len(counts) if counts else None
    out["bars_in_db_s"] = summary([poller.arrivals[m] - poller.wall_of(m + 60) for m in sorted(poller.arrivals)])
    out["bars_missing_minutes"] = {str(m): poller.counts.get(m) for m in poller.pending()}
    # Process and Redis samples.
    samples = sampler.samples
    cpu = [(s.t, s.cpu) for s in samples]
    out["cpu_share"] = cpu_share(cpu, sent.started_at, sent.ended_at)
    rss = [(s.t, s.rss) for s in samples]
    out["rss"] = {"max": max((r for _, r in rss), default=None), "end": end_sample.rss if end_sample else None,
                  "at_start": out.pop("rss_at_start", None)}
    if emap is not None:  # after the first period of event time
        out["rss"]["first_period"] = value_at(rss, emap.wall_at(plan.day_open + 60 * plan.period_minutes))
    elif plan.period_minutes:
        out["rss"]["first_period"] = value_at(rss, sent.started_at + 60 * plan.period_minutes)
    omem = [s.omem for s in samples if s.omem is not None]
    ids = [s.sub_id for s in samples if s.sub_id is not None]
    out["backlog"] = {"max_omem": max(omem, default=None),
                      "max_tot_mem": max((s.tot_mem for s in samples if s.tot_mem is not None), default=None),
                      "reconnects": sum(1 for a, b in zip(ids, ids[1:]) if a != b),
                      "samples_without_subscription": sum(1 for s in samples[2:] if s.omem is None)}
    out["critical_alerts"] = len(recorder.on(ch["critical_alerts"]))
    health = []
    for t, p in recorder.on(ch["health"]):
        try:
            health.append((t, orjson.loads(p)["health"]["data_flow"]["ticks_per_second"]))
        except (KeyError, TypeError, ValueError):
            pass
    fed = [s for s in samples if sent.started_at - 2 <= s.t <= sent.ended_at + 2]  # the feeding window
    result["series"] = {
        "sent_per_second": sorted(sent.per_second.items()),
        "cpu_share": per_interval_rates([(s.t, s.cpu) for s in fed]),
        "rss_mb": [(s.t, s.rss / 2**20) for s in fed],
        "omem_mb": [(s.t, (s.omem or 0) / 2**20) for s in fed],
        "service_ticks_per_second": [(t, v) for t, v in health if sent.started_at <= t <= sent.ended_at + 15],
        "latencies_ms": lat["from_deadline"],
    }
    if emap is not None:
        closed = sorted(e.bar_closed_at for e in last_minute if e.bar_closed_at is not None)
        out["day"] = {
            "date": plan.date, "open": plan.day_open, "speed": plan.speed, "t0": emap.t0, "minutes": plan.minutes,
            "bars_expected": len(symbols) * plan.minutes, "first_stamp": sent.first_stamp,
            "last_stamp": sent.last_stamp, "idle_after": DEFAULT_IDLE_AFTER_SECONDS,
            "last_minute": {"events": len(last_minute),
                            "closed_after_last_batch_s": closed[0] - sent.ended_at if closed else None},
        }
        result["series"]["rss_mb_by_event_minute"] = [
            ((emap.event_at(s.t) - plan.day_open) / 60, s.rss / 2**20) for s in samples if s.t >= emap.t0]
    return out


def day_minutes(plan: Plan) -> list[int]:
    """The replayed minutes' starts (epoch seconds): ``plan.minutes`` of them from the open."""
    return [int(plan.day_open) + 60 * k for k in range(plan.minutes)]


def _wait_for_bars(dsn: str, first_minute: int, sent: int, last_deadline: float, alive) -> tuple[int, int]:
    """Volume in bars once the last minute has closed: polled until it equals what was sent, or
    stops changing for 5 s (at most 60 s after the deadline)."""
    while time.time() < last_deadline + 0.5:
        time.sleep(0.2)
    total, rows = volume_since(dsn, first_minute)
    changed_at = time.time()
    give_up = last_deadline + 60
    while total < sent and time.time() < give_up and time.time() - changed_at < 5 and alive():
        time.sleep(0.5)
        now_total, rows = volume_since(dsn, first_minute)
        if now_total != total:
            total, changed_at = now_total, time.time()
    return total, rows
