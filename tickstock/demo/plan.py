"""What ``python -m tickstock.demo`` runs, decided without running anything: options, the demo's
settings, each step's command line, and when to start and stop.

Guarantees (tests/unit/demo/test_plan.py):

- ``parse_args`` takes ``--minutes`` or else ``DEMO_MINUTES`` (default 4), a whole number from 1 to
  600; a bad value exits 2 naming where it came from. ``DEMO_PREFIX`` likewise for ``--prefix``.
- ``demo_settings`` is the base settings (file + environment, as the service reads them) with
  only this changed: the database is the demo's own (``tickstock_demo`` on the same server unless
  ``--database-url``), the universe is ``demo`` (``SYMBOLS``, the only one kept), sessions are manual
  (``auto_start: false``) on the wall clock, HTTP is off (no port to clash with a running service;
  no admin token written to disk), the write-ahead log is under the output directory, and with a
  prefix every channel and key carries it. The result passes the service's own validation.
- ``child_env`` gives the children the demo's settings file and none of the ``TICKSTOCK_*``
  overrides (already folded into that file): an exported ``TICKSTOCK_DATABASE_URL`` can never send
  the simulated bars to the real database.
- Timing: the simulator is never launched within ``LAUNCH_MARGIN`` seconds before a minute
  boundary (``launch_delay``), so its injected shapes start at the next boundary after the launch
  (``first_minute``: the simulator starts them at the first boundary after its own start, which
  follows the launch by ~1 s); the demo stops ``minutes`` whole minutes after that, once the last
  minute's bar has closed and been analysed (``stop_time``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from tickstock.config import ENV_OVERRIDES, Settings, validate

__all__ = [
    "CALM", "CHART_SYMBOL", "DATABASE_NAME", "DEFAULT_MINUTES", "HISTORY_MINUTES", "INJECTIONS", "LAUNCH_MARGIN",
    "SEED", "SYMBOLS", "UNIVERSE", "Commands", "DemoOptions", "child_env", "demo_database_url", "demo_settings",
    "first_minute", "launch_delay", "monitor_rows", "parse_args", "stop_time",
]

UNIVERSE = "demo"
SYMBOLS = ("AAPL", "NVDA", "MSFT", "AMZN", "GOOGL", "META", "TSLA", "JPM")
INJECTIONS = ("NVDA:doji", "AAPL:hammer")  # Doji on the first whole minute, Hammer on the second
CALM = ("AAPL",)           # its history makes the hammer's first bar cross RSI 30 (RSI_OVERSOLD)
CHART_SYMBOL = "AAPL"      # the hammer, the RSI alert
SEED = 1
HISTORY_MINUTES = 60
DEFAULT_MINUTES = 4
MAX_MINUTES = 600
DATABASE_NAME = "tickstock_demo"
DEFAULT_OUT = Path("var/demo")
LAUNCH_MARGIN = 4.0        # seconds; the simulator takes ~1 s from launch to its walk's start
STOP_MARGIN = 1.5          # seconds after the last bar's close + grace: its events are out by then
MINUTE = 60


@dataclass(frozen=True)
class DemoOptions:
    """The command line, checked."""

    minutes: int
    out: Path
    config: str | None
    database_url: str | None
    prefix: str


def _minutes(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{where} must be a whole number of minutes (1..{MAX_MINUTES}), got {text!r}") from None
    if not 1 <= value <= MAX_MINUTES:
        raise ValueError(f"{where} must be between 1 and {MAX_MINUTES} minutes, got {value}")
    return value


def parse_args(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> DemoOptions:
    """The options; exits 2 with the problem named (argparse) on a bad one."""
    environ = os.environ if environ is None else environ
    p = argparse.ArgumentParser(
        prog="python -m tickstock.demo",
        description="Watch TickStock detect things: servers if needed, the service, the market simulator with "
                    "a Doji, a Hammer and an RSI alert injected, and the monitor; then a chart.")
    p.add_argument("--minutes", metavar="N",
                   help=f"whole minutes of bars to watch after the first one begins (default $DEMO_MINUTES "
                        f"or {DEFAULT_MINUTES}); Ctrl-C stops earlier")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"settings, logs and the chart (default {DEFAULT_OUT})")
    p.add_argument("--config", help="base settings (default: $TICKSTOCK_CONFIG or config.yaml)")
    p.add_argument("--database-url", help=f"the demo's database (default: {DATABASE_NAME} on the configured server)")
    p.add_argument("--prefix", help="put this before every channel and key name (default $DEMO_PREFIX, else none: "
                                    "the contract's channels, which the dashboard reads)")
    args = p.parse_args(argv)
    if args.minutes is not None:
        where, text = "--minutes", args.minutes
    else:
        where, text = "DEMO_MINUTES", environ.get("DEMO_MINUTES") or str(DEFAULT_MINUTES)
    try:
        minutes = _minutes(text.strip(), where)
    except ValueError as exc:
        p.error(str(exc))
    prefix = args.prefix if args.prefix is not None else environ.get("DEMO_PREFIX", "")
    if any(c.isspace() for c in prefix):
        p.error(f"the prefix must not contain white space, got {prefix!r}")
    return DemoOptions(minutes, args.out, args.config, args.database_url, prefix)


def demo_database_url(url: str, name: str = DATABASE_NAME) -> str:
    """``url`` with its database replaced by ``name`` (same server, role and parameters)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def demo_settings(base: Settings, *, database_url: str | None, prefix: str, out: Path) -> dict[str, Any]:
    """The demo's settings as a plain mapping (to write as YAML); see the module docstring."""
    data = msgspec.to_builtins(base)
    data["database"]["url"] = database_url or demo_database_url(base.database.url)
    if prefix:
        data["channels"] = {k: prefix + v for k, v in data["channels"].items()}
        data["keys"] = {k: prefix + v for k, v in data["keys"].items()}
    data["universes"] = {UNIVERSE: list(SYMBOLS)}
    data["session"].update(universe=UNIVERSE, universe_source="yaml", auto_start=False, accept_new_symbols=False,
                           clock="wall")
    data["http"].update(enabled=False, admin_token="")
    data["persistence"]["spill_dir"] = str((out / "spill").absolute())
    validate(data)  # ConfigError if the result would not run
    return data


def child_env(environ: Mapping[str, str], config: Path) -> dict[str, str]:
    """The environment of every child: the demo's settings file, no ``TICKSTOCK_*`` override."""
    env = {k: v for k, v in environ.items() if k not in ENV_OVERRIDES}
    env["TICKSTOCK_CONFIG"] = str(config)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class Commands:
    """Each step's command line, all reading the demo's settings file ``config``."""

    config: Path
    out: Path
    python: str = sys.executable

    def _module(self, module: str, *args: str) -> list[str]:
        return [self.python, "-m", module, *args, "--config", str(self.config)]

    def embedded(self, action: str, servers: tuple[str, ...] = ()) -> list[str]:
        return self._module("tickstock.adapters.embedded", action, *servers)

    def probe(self) -> list[str]:
        """One snapshot of what a consumer sees now (``status`` online/idle), as JSON."""
        return self._module("tickstock.monitor", "--once", "--json", "--wait", "0")

    def history(self) -> list[str]:
        return self._module("tickstock.simulate.history", "--universe", UNIVERSE, "--seed", str(SEED),
                            "--minutes", str(HISTORY_MINUTES), "--calm", ",".join(CALM), "--replace")

    def service(self) -> list[str]:
        return self._module("tickstock.actors", "--now")

    def simulator(self) -> list[str]:
        injections = [arg for spec in INJECTIONS for arg in ("--inject", spec)]
        return self._module("tickstock.simulate", "--universe", UNIVERSE, "--seed", str(SEED), *injections)

    def monitor(self, rows: int) -> list[str]:
        return self._module("tickstock.monitor", "--rows", str(rows))

    @property
    def chart_path(self) -> Path:
        return self.out / f"{CHART_SYMBOL}.png"

    def chart(self, live_minutes: int) -> list[str]:
        """The chart of the history and the ``live_minutes`` the demo ran (and the minutes it started
        and stopped in), whatever dates they fall on: the history of a demo run just after midnight
        in New York lies on the day before."""
        minutes = HISTORY_MINUTES + live_minutes + 3
        return self._module("tickstock.chart", CHART_SYMBOL, "--minutes", str(minutes), "-o", str(self.chart_path))


def launch_delay(now: float, margin: float = LAUNCH_MARGIN) -> float:
    """Seconds to wait before launching the simulator at ``now``: 0, unless a minute boundary is
    less than ``margin`` away -- then until just after it."""
    to_boundary = MINUTE - now % MINUTE
    return to_boundary + 0.05 if to_boundary < margin else 0.0


def first_minute(launch: float) -> int:
    """The minute the injected shapes start in, for a simulator launched at ``launch`` (not within
    ``LAUNCH_MARGIN`` before a boundary): the next boundary."""
    return (int(launch // MINUTE) + 1) * MINUTE


def stop_time(first: int, minutes: int, grace_seconds: float) -> float:
    """When ``minutes`` whole minutes from ``first`` are closed (grace included) and analysed."""
    return first + minutes * MINUTE + grace_seconds + STOP_MARGIN


def monitor_rows(terminal_lines: int) -> int:
    """Rows per monitor table so that its screen (about 25 lines + 3 tables) fits: 2..10."""
    return max(2, min(10, (terminal_lines - 26) // 3))


def hhmmss(t: float) -> str:
    """``t`` as HH:MM:SS UTC."""
    import time

    return time.strftime("%H:%M:%S", time.gmtime(math.floor(t)))
