"""Where a benchmark runs: a database of its own (created, then dropped), channel and key names with
a prefix of their own, a generated configuration, and the service as a subprocess.

Nothing here touches the shared Redis's or PostgreSQL's other data: every name carries the run's
prefix (``bench<8 hex>:``) and the database is ``tickstock_bench_<hex>``, dropped ``WITH (FORCE)``.
What the run leaves in Redis under its prefix (the service's heartbeat key has no TTL, by the
interface) is deleted when the sandbox closes, so runs do not pile up keys in the shared server.

``--extended`` (issue 10 item 4): after migrating, ``apply_extended`` switches on, in that database
only, ten common TA-Lib functions on every timeframe (``EXTENDED_PATTERNS``/``EXTENDED_INDICATORS``,
migration 005's rows with 005's parameters, ``applicable_timeframes`` = ``EXTENDED_TIMEFRAMES``); the
baseline rows are not touched. ``load_definition_set`` reads the rows back as the service does.
"""

from __future__ import annotations

import copy
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import yaml

from tickstock.adapters.postgres import scratch
from tickstock.adapters.redis.keys import delete_keys_with_prefix
from tickstock.analysis import DefinitionSet, select_definitions
from tickstock.bars.timeframes import TIMEFRAMES
from tickstock.bench.universe import history
from tickstock.config import DEFAULT_CONFIG_PATH, validate

REDIS_URL = os.environ.get("TICKSTOCK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_DSN = os.environ.get("TICKSTOCK_BENCH_ADMIN_DSN", "postgresql://root@127.0.0.1:5432/postgres")
UNIVERSE_KEY = "bench:generated"

#: ``--extended``: where the ten run (``intraday`` is the 1-minute bars), and the ten: migration
#: 005's rows (the names the service publishes; TA-Lib's function in the comment), 005's parameters.
EXTENDED_TIMEFRAMES: tuple[str, ...] = ("intraday", "5min", "15min", "60min")
EXTENDED_PATTERNS: tuple[dict, ...] = (
    {"name": "Engulfing", "instantiation_params": {}},                    # CDLENGULFING
    {"name": "MorningStar", "instantiation_params": {}},                  # CDLMORNINGSTAR
    {"name": "EveningStar", "instantiation_params": {}},                  # CDLEVENINGSTAR
    {"name": "ShootingStar", "instantiation_params": {}},                 # CDLSHOOTINGSTAR
    {"name": "Harami", "instantiation_params": {}},                       # CDLHARAMI
    {"name": "ThreeAdvancingWhiteSoldiers", "instantiation_params": {}},  # CDL3WHITESOLDIERS
)
EXTENDED_INDICATORS: tuple[dict, ...] = (
    {"name": "EMA", "period": 20, "parameters": {}},
    {"name": "MACD", "period": None, "parameters": {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9}},
    {"name": "BBANDS", "period": 20, "parameters": {"nbdevup": 2.0, "nbdevdn": 2.0}},
    {"name": "ATR", "period": 14, "parameters": {}},
)
EXTENDED_NAMES: tuple[str, ...] = tuple(r["name"] for r in (*EXTENDED_PATTERNS, *EXTENDED_INDICATORS))

_UPSERT_PATTERN = (
    "INSERT INTO pattern_definitions (name, display_name, category, enabled, applicable_timeframes,"
    " min_bars_required, confidence_threshold, instantiation_params)"
    " VALUES (%s, %s, 'candlestick', true, %s::VARCHAR(20)[], NULL, NULL, %s::JSONB)"
    " ON CONFLICT (name) DO UPDATE SET enabled = true, applicable_timeframes = EXCLUDED.applicable_timeframes,"
    " min_bars_required = NULL, confidence_threshold = NULL, instantiation_params = EXCLUDED.instantiation_params")
_UPSERT_INDICATOR = (
    "INSERT INTO indicator_definitions (name, display_name, enabled, applicable_timeframes, min_bars_required,"
    " confidence_threshold, period, parameters, output_type)"
    " VALUES (%s, %s, true, %s::VARCHAR(20)[], NULL, NULL, %s, %s::JSONB, 'value')"
    " ON CONFLICT (name) DO UPDATE SET enabled = true, applicable_timeframes = EXCLUDED.applicable_timeframes,"
    " min_bars_required = NULL, confidence_threshold = NULL, period = EXCLUDED.period,"
    " parameters = EXCLUDED.parameters")


def extended_rows() -> tuple[list[dict], list[dict]]:
    """(pattern rows, indicator rows) of ``--extended`` as the service reads them from the database."""
    common = {"enabled": True, "applicable_timeframes": list(EXTENDED_TIMEFRAMES), "min_bars_required": None,
              "confidence_threshold": None}
    return ([{**common, **copy.deepcopy(r)} for r in EXTENDED_PATTERNS],
            [{**common, **copy.deepcopy(r)} for r in EXTENDED_INDICATORS])


def extended_statements() -> list[tuple[str, tuple]]:
    """The SQL (statement, parameters) that writes ``extended_rows()``: each row inserted, or, if
    a row of that name exists (migration 005 seeds them disabled), enabled on every timeframe with
    these parameters. Only these ten names are written."""
    patterns, indicators = extended_rows()
    out = [(_UPSERT_PATTERN, (r["name"], r["name"], r["applicable_timeframes"], json.dumps(r["instantiation_params"])))
           for r in patterns]
    out += [(_UPSERT_INDICATOR, (r["name"], r["name"], r["applicable_timeframes"], r["period"],
                                 json.dumps(r["parameters"]))) for r in indicators]
    return out


def check_extended(definitions: DefinitionSet) -> None:
    """RuntimeError unless every one of the ten runs on every timeframe and nothing is reported
    (unknown or invalid rows): a benchmark of a set that did not load would measure something else."""
    problems = [f"unknown {n}" for n in definitions.unknown] + [f"{n}: {why}" for n, why in definitions.invalid]
    on = {d.name: d.timeframes for d in definitions}
    problems += [f"{name} runs on {', '.join(on.get(name, ())) or 'nothing'}" for name in EXTENDED_NAMES
                 if on.get(name) != TIMEFRAMES]
    if problems:
        raise RuntimeError("--extended: the definitions did not load as meant: " + "; ".join(problems))


def describe_definitions(definitions: DefinitionSet) -> list[dict]:
    """[{name, kind, timeframes}] of a loaded set, for the JSON."""
    return [{"name": d.name, "kind": d.kind, "timeframes": list(d.timeframes)} for d in definitions]


def new_prefix() -> str:
    return f"bench{secrets.token_hex(4)}:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_config(path: Path = DEFAULT_CONFIG_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def bench_config(base: dict, *, prefix: str, dsn: str, redis_url: str, symbols: Sequence[str], spill_dir: str,
                 http_port: int, universe_key: str = UNIVERSE_KEY, clock: str | None = None,
                 analysis_processes: int | None = None) -> dict:
    """``base`` (config.yaml's settings) made into a benchmark's: every channel and key prefixed,
    its own database, write-ahead log and HTTP port, a universe of ``symbols``, sessions only on
    request, ``session.clock`` if given (``event``: bars close by the ticks' own time, the
    ``day`` replay) and ``analysis.processes`` if given. Everything else (grace, batch sizes, intervals) stays as in production.
    Validated by the service's own schema (ConfigError if not valid)."""
    cfg = copy.deepcopy(base)
    cfg["channels"] = {k: prefix + v for k, v in cfg["channels"].items()}
    cfg["keys"] = {k: prefix + v for k, v in cfg["keys"].items()}
    cfg["database"]["url"] = dsn
    cfg["redis"]["url"] = redis_url
    cfg["universes"] = {universe_key: list(symbols)}
    cfg["session"].update(universe=universe_key, universe_source="yaml", auto_start=False)
    if clock is not None:
        cfg["session"]["clock"] = clock
    if analysis_processes is not None:
        cfg["analysis"]["processes"] = analysis_processes
    cfg["persistence"]["spill_dir"] = spill_dir
    cfg["http"].update(enabled=True, host="127.0.0.1", port=http_port, admin_token="")
    validate(copy.deepcopy(cfg))
    return cfg


@contextmanager
def temporary_database(admin_dsn: str = ADMIN_DSN) -> Iterator[str]:
    """A fresh empty database ``tickstock_bench_<hex>``; dropped afterwards WITH (FORCE)."""
    with scratch.temporary_database(admin_dsn, "tickstock_bench") as dsn:
        yield dsn


def seed_history(dsn: str, symbols: Sequence[str], bars: int, last_minute: int, chunk: int = 500) -> int:
    """``bars`` bars per symbol ending at ``last_minute`` into ``ohlcv_1min`` (COPY); returns rows."""
    stamps: dict[int, str] = {}
    rows = 0
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            for i in range(0, len(symbols), chunk):
                buf = io.StringIO()
                for _, series in history(symbols[i:i + chunk], bars, last_minute, seed=3 + i):
                    for b in series:
                        ts = stamps.get(b.start)
                        if ts is None:
                            ts = stamps[b.start] = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(b.start))
                        buf.write(f"{b.symbol}\t{ts}\t{b.open}\t{b.high}\t{b.low}\t{b.close}\t{b.volume}\n")
                        rows += 1
                buf.seek(0)
                cur.copy_expert("COPY ohlcv_1min (symbol, timestamp, open, high, low, close, volume) FROM STDIN", buf)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE ohlcv_1min")
    finally:
        conn.close()
    return rows


def apply_extended(dsn: str) -> None:
    """``extended_statements()`` in the run's own (migrated) database, one transaction."""
    if "tickstock_bench_" not in dsn:  # never the shared or the default database
        raise ValueError(f"--extended writes definitions only into a benchmark's own database, not {dsn!r}")
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            for statement, params in extended_statements():
                cur.execute(statement, params)
    finally:
        conn.close()


def load_definition_set(dsn: str, timeframe: str = "intraday") -> DefinitionSet:
    """The definitions a session started now would run: every row read by the service's own store,
    selected by the service's own ``select_definitions``."""
    from tickstock.adapters.postgres.store import PostgresStore

    store = PostgresStore(dsn)
    try:
        pattern_rows, indicator_rows = store.load_definitions()
    finally:
        store.close()
    return select_definitions(pattern_rows, indicator_rows, timeframe)


def _child_env() -> dict[str, str]:
    # The generated file must be the whole truth: no TICKSTOCK_* override from this shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKSTOCK_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def migrate(config_path: Path, timeout: float = 120) -> None:
    """The service's own ``--migrate`` on the benchmark's configuration."""
    done = subprocess.run([sys.executable, "-m", "tickstock.actors", "--migrate", "--config", str(config_path)],
                          env=_child_env(), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"--migrate failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")


class ServiceProcess:
    """``python -m tickstock.actors --now --config <file>``, its log in ``log_path``."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.exit_code: int | None = None

    def start(self) -> ServiceProcess:
        self._log = open(self.log_path, "w")
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tickstock.actors", "--now", "--config", str(self.config_path)],
            env=_child_env(), stdout=self._log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait(10)
        self._log.close()
        return self.exit_code

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Sandbox:
    """Everything one run needs, torn down on exit: a temp dir, a database, a config file."""

    def __init__(self, symbols: Sequence[str], redis_url: str = REDIS_URL, admin_dsn: str = ADMIN_DSN,
                 keep_dir: str | None = None, clock: str | None = None, analysis_processes: int | None = None) -> None:
        self.symbols = list(symbols)
        self.clock = clock
        self.analysis_processes = analysis_processes
        self.redis_url = redis_url
        self.admin_dsn = admin_dsn
        self.keep_dir = keep_dir
        self.prefix = new_prefix()
        self.migrated = False

    def migrate(self) -> None:
        """The service's own ``--migrate`` on this run's database, once."""
        if not self.migrated:
            migrate(self.config_path)
            self.migrated = True

    def __enter__(self) -> Sandbox:
        if self.keep_dir:
            self.dir = Path(self.keep_dir)
            self.dir.mkdir(parents=True, exist_ok=True)
            self._tmp = None
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="tickstock-bench-")
            self.dir = Path(self._tmp.name)
        self._db = temporary_database(self.admin_dsn)
        self.dsn = self._db.__enter__()
        self.http_port = free_port()
        self.cfg = bench_config(base_config(), prefix=self.prefix, dsn=self.dsn, redis_url=self.redis_url,
                                symbols=self.symbols, spill_dir=str(self.dir / "spill"), http_port=self.http_port,
                                clock=self.clock, analysis_processes=self.analysis_processes)
        self.config_path = self.dir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        return self

    def channel(self, name: str) -> str:
        return self.cfg["channels"][name]

    @property
    def grace(self) -> float:
        return float(self.cfg["bars"]["grace_seconds"])

    def service(self) -> ServiceProcess:
        return ServiceProcess(self.config_path, self.dir / "service.log")

    def __exit__(self, *exc) -> None:
        try:
            self._db.__exit__(None, None, None)
        finally:
            try:
                delete_prefixed_keys(self.redis_url, self.prefix)
            finally:
                if self._tmp is not None:
                    self._tmp.cleanup()


def delete_prefixed_keys(redis_url: str, prefix: str) -> int:
    """Delete every key whose name starts with ``prefix`` (a run's own, ``bench<8 hex>:``); returns
    how many. Refuses a prefix that is not a benchmark's, so no other data can be matched."""
    if not (prefix.startswith("bench") and prefix.endswith(":") and len(prefix) > len("bench:")):
        raise ValueError(f"not a benchmark's key prefix: {prefix!r}")
    return delete_keys_with_prefix(redis_url, prefix)
