"""``python -m tickstock.demo`` (``make demo``): watch TickStock detect things within three minutes.

    make demo                      # DEMO_MINUTES=4: minutes of bars to watch
    python -m tickstock.demo --minutes 2 --prefix demo:

Runs the other commands as subprocesses, in this order, each reading the demo's settings
(``var/demo/config.yaml``: the configured servers, a database of its own, the ``demo`` universe;
see plan.py):

1. ``python -m tickstock.adapters.embedded start`` for a Redis / PostgreSQL that does not answer
   (remembered: only those are stopped at the end), then ``... database`` (the demo's database);
2. ``python -m tickstock.monitor --once --json`` -- refuses to go on when a session is already
   online on these channels (another service would get the simulated ticks);
3. ``python -m tickstock.simulate.history`` -- an hour of past bars, so RSI and SMA are warm;
4. ``python -m tickstock.actors --now`` (log: var/demo/service.log), until the session is online;
5. ``python -m tickstock.simulate`` with a Doji (NVDA) and a Hammer (AAPL) injected from the next
   minute (log: var/demo/simulate.log);
6. ``python -m tickstock.monitor`` in the foreground, until ``--minutes`` whole minutes of bars
   have closed (or Ctrl-C, SIGTERM, a child that ends by itself);
7. then, on every way out: the simulator and the service are stopped (SIGTERM, in that order, the
   service's session ending ``stopped``), the monitor last; ``python -m tickstock.chart AAPL``
   writes var/demo/AAPL.png (skipped after a second Ctrl-C); the embedded servers it started stop.

The service and the simulator run in sessions of their own (a Ctrl-C reaches the monitor and this
process, which stops them in order) and receive SIGTERM if this process dies, even by kill -9.
Exit codes: 0 the demo ran (also when stopped by Ctrl-C), 1 a step failed (its log is named),
2 bad arguments or settings.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tickstock.adapters.embedded.plan import endpoint
from tickstock.adapters.embedded.process import answers, spawn, tied_to_this_process
from tickstock.config import ConfigError, Settings, load_settings, validate
from tickstock.demo import plan
from tickstock.demo.plan import Commands, DemoOptions

_ONLINE_TIMEOUT = 120.0   # start-up of the service, priming included
_STEP_TIMEOUT = 180.0     # one short command (initdb of an embedded PostgreSQL takes seconds)


class DemoFailed(Exception):
    """A step failed; the message says which and where its output is."""


class DemoStopped(Exception):
    """Ctrl-C, SIGTERM or SIGHUP before the demo's end: not a failure."""


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


class Stop:
    """SIGINT / SIGTERM / SIGHUP: the first asks to stop, a second SIGINT to skip the chart too."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0
        self.reason = ""
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.count += 1
        self.reason = self.reason or signal.Signals(signum).name
        self.event.set()

    @property
    def hurried(self) -> bool:
        return self.count >= 2


class Demo:
    """One run: the children it started and what it must undo."""

    def __init__(self, options: DemoOptions, settings: Settings, config: Path, env: dict[str, str],
                 commands: Commands | None = None) -> None:
        self.options = options
        self.settings = settings
        self.commands = commands or Commands(config, options.out)
        self.env = env
        self.stop = Stop()
        self.embedded_started: tuple[str, ...] = ()
        self.service: subprocess.Popen | None = None
        self.simulator: subprocess.Popen | None = None
        self.monitor: subprocess.Popen | None = None
        self.logs = {"service": options.out / "service.log", "simulator": options.out / "simulate.log"}
        self.session_ran = False

    # -- steps ----------------------------------------------------------------------------------

    def run_step(self, what: str, argv: list[str], *, quiet: bool = False) -> str:
        """Run a short command to its end; its output is returned (and shown unless ``quiet``)."""
        try:
            done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=_STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise DemoFailed(f"{what} did not finish within {_STEP_TIMEOUT:.0f} s: {' '.join(argv[2:4])}") from None
        if self.stop.event.is_set():
            raise DemoStopped(f"stopped ({self.stop.reason}) during {what}")
        if done.returncode != 0:
            detail = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()
            raise DemoFailed(f"{what} failed: " + " / ".join(detail[-3:]))
        if not quiet:
            for line in done.stdout.strip().splitlines():
                say(line)
        return done.stdout

    def ensure_servers(self) -> None:
        missing = []
        for kind, url in (("redis", self.settings.redis.url), ("postgres", self.settings.database.url)):
            e = endpoint(kind, url)
            if not (e.host and answers(e.host, e.port)):
                missing.append(kind)
        if missing and self.settings.embedded == "never":
            raise DemoFailed(f"{' and '.join(missing)} do(es) not answer and the settings say embedded: never")
        if missing:
            say(f"nothing answers for {' and '.join(missing)}: starting embedded server(s) from the Python wheels "
                f"(stopped at the end)")
            self.embedded_started = tuple(missing)  # stopped at the end even if the start fails midway
            self.run_step("starting the embedded servers", self.commands.embedded("start", tuple(missing)))
        self.run_step("creating the demo's database", self.commands.embedded("database"))

    def probe(self) -> dict:
        out = self.run_step("reading the session state (python -m tickstock.monitor --once --json)",
                            self.commands.probe(), quiet=True)
        try:
            return json.loads(out)
        except ValueError:
            raise DemoFailed(f"the monitor's --json output is not JSON: {out[:200]!r}") from None

    def refuse_if_online(self) -> None:
        snap = self.probe()
        if snap.get("online"):
            session = snap.get("session") or {}
            raise DemoFailed(
                f"a session is already online on these channels (session {session.get('session_id')}, universe "
                f"{session.get('universe')}): it would receive the simulated ticks. Stop it, or run the demo on "
                f"channels of its own: make demo DEMO_PREFIX=demo:")

    def start_service(self) -> None:
        log = self.logs["service"]
        log.write_text("")  # this run's log only
        self.service = spawn(self.commands.service(), log, detach=False, env=self.env)
        say(f"service started (pid {self.service.pid}, log {log}); waiting for its session")
        deadline = time.monotonic() + _ONLINE_TIMEOUT
        while not self.stop.event.is_set():
            if self.service.poll() is not None:
                raise DemoFailed(f"the service exited (code {self.service.returncode}) before its session went "
                                 f"online:\n{_tail(log)}")
            snap = self.probe()
            if snap.get("online"):
                session = snap["session"]
                say(f"session {session['session_id']} online: {session['symbol_count']} symbols, "
                    f"universe {session['universe']}")
                self.session_ran = True
                return
            if time.monotonic() > deadline:
                raise DemoFailed(f"no session online after {_ONLINE_TIMEOUT:.0f} s:\n{_tail(log)}")
            self.stop.event.wait(0.5)
        raise DemoStopped(f"stopped ({self.stop.reason}) while the service was starting")

    def start_simulator(self) -> float:
        """Launch the simulator; returns when to stop."""
        delay = plan.launch_delay(time.time())
        if delay and self.stop.event.wait(delay):
            raise DemoStopped(f"stopped ({self.stop.reason})")
        launched = time.time()
        log = self.logs["simulator"]
        log.write_text("")
        self.simulator = spawn(self.commands.simulator(), log, detach=False, env=self.env)
        first = plan.first_minute(launched)
        grace = self.settings.bars.grace_seconds
        until = plan.stop_time(first, self.options.minutes, grace)
        doji, hammer = (spec.split(":")[0] for spec in plan.INJECTIONS)
        t = plan.hhmmss
        say(f"simulator started (log {log}): {len(plan.SYMBOLS)} symbols, shapes from the {t(first)[:5]} bar")
        say(f"expect ~{t(first + 60 + grace)} UTC: {doji} Doji and {plan.CALM[0]} RSI_OVERSOLD (bar {t(first)[:5]}); "
            f"~{t(first + 120 + grace)}: {hammer} Hammer (bar {t(first + 60)[:5]})")
        say(f"stopping at ~{t(until)} UTC after {self.options.minutes} minute(s) of bars, or on Ctrl-C; "
            f"then the chart {self.commands.chart_path}")
        return until

    def watch(self, until: float) -> None:
        rows = plan.monitor_rows(shutil.get_terminal_size((120, 50)).lines)
        # The monitor keeps this terminal (and this process group: Ctrl-C reaches it and us). Tied
        # to us like the others: if the demo is killed, its SIGINT is the one a Ctrl-C would send.
        self.monitor = subprocess.Popen(self.commands.monitor(rows), env=self.env,
                                        preexec_fn=tied_to_this_process(signal.SIGINT))
        children: dict[str, Callable[[], subprocess.Popen | None]] = {
            "service": lambda: self.service, "simulator": lambda: self.simulator, "monitor": lambda: self.monitor}
        while not self.stop.event.wait(min(0.5, max(0.0, until - time.time()))):
            if time.time() >= until:
                return
            for name, child in children.items():
                proc = child()
                if proc is not None and proc.poll() is not None:
                    if self.stop.event.is_set():
                        return  # a Ctrl-C reached it too
                    if name == "monitor" and proc.returncode == 0:
                        return  # the user ended it
                    raise DemoFailed(f"the {name} ended by itself (code {proc.returncode})"
                                     + (f":\n{_tail(self.logs[name])}" if name in self.logs else ""))

    # -- the way out ------------------------------------------------------------------------------

    def shut_down(self) -> list[str]:
        """Stop whatever runs, in order; write the chart; stop the embedded servers started.
        Never raises: problems are returned."""
        problems: list[str] = []
        deadline = self.settings.session.shutdown_deadline_seconds + 10.0
        for name, proc, sig, timeout in (("simulator", self.simulator, signal.SIGTERM, 10.0),
                                         ("service", self.service, signal.SIGTERM, deadline)):
            code = _end(proc, sig, timeout)
            if code not in (None, 0):
                problems.append(f"the {name} exited with code {code} (log {self.logs[name]})")
        if self.monitor is not None and self.monitor.poll() is None:
            time.sleep(1.5)  # one more screen: the session's stop
        _end(self.monitor, signal.SIGINT, 5.0)
        if self.session_ran and not self.stop.hurried:
            try:
                self.run_chart()
            except DemoFailed as exc:
                problems.append(str(exc))
        if self.embedded_started:
            try:
                done = subprocess.run(self.commands.embedded("stop", self.embedded_started), env=self.env,
                                      capture_output=True, text=True, timeout=_STEP_TIMEOUT)
                for line in done.stdout.strip().splitlines():
                    say(f"embedded {line}")
                if done.returncode:
                    problems.append(f"stopping the embedded servers: {done.stderr.strip()}")
            except subprocess.TimeoutExpired:
                problems.append("stopping the embedded servers took too long")
        return problems

    def run_chart(self) -> None:
        argv = self.commands.chart(self.options.minutes)
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=_STEP_TIMEOUT)
        if done.returncode != 0:
            raise DemoFailed(f"the chart failed: {done.stderr.strip() or done.stdout.strip()}")
        say(done.stdout.strip())


def _end(proc: subprocess.Popen | None, sig: int, timeout: float) -> int | None:
    """Signal ``proc`` (if still running), wait up to ``timeout``, then kill. Its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return -signal.SIGKILL
    return proc.returncode


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").rstrip().splitlines()
    except OSError:
        return f"({path} unreadable)"
    return "\n".join("  " + line for line in text[-lines:])


def write_settings(options: DemoOptions, environ: dict[str, str]) -> tuple[Settings, Path]:
    """The demo's settings, written to ``<out>/config.yaml`` (mode 0600: it may hold a password)."""
    base = load_settings(options.config, environ=environ)
    data = plan.demo_settings(base, database_url=options.database_url, prefix=options.prefix, out=options.out)
    options.out.mkdir(parents=True, exist_ok=True)
    path = (options.out / "config.yaml").absolute()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Written by python -m tickstock.demo from the base settings; rewritten at each run.\n")
        yaml.safe_dump(data, f, sort_keys=False)
    return validate(data), path


def main(argv: list[str] | None = None) -> int:
    options = plan.parse_args(argv)
    environ = dict(os.environ)
    try:
        settings, config = write_settings(options, environ)
    except ConfigError as exc:
        print(f"tickstock.demo: {exc}", file=sys.stderr)
        return 2
    demo = Demo(options, settings, config, plan.child_env(environ, config))
    demo.stop.install()
    failure: str | None = None
    try:
        say(f"settings {config}: database {endpoint('postgres', settings.database.url).database}, "
            f"ticks on {settings.channels.ticks}")
        demo.ensure_servers()
        demo.refuse_if_online()
        demo.run_step("writing the symbols' past bars", demo.commands.history())
        demo.start_service()
        until = demo.start_simulator()
        demo.watch(until)
    except DemoStopped as exc:
        say(str(exc))
    except DemoFailed as exc:
        failure = str(exc)
    except Exception as exc:  # anything else still ends with the children stopped
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        problems = demo.shut_down()
        demo.stop.restore()
    if failure:
        print(f"tickstock.demo: {failure}", file=sys.stderr)
    for problem in problems:
        print(f"tickstock.demo: {problem}", file=sys.stderr)
    if demo.session_ran:
        servers = (f" (with the servers up: python -m tickstock.adapters.embedded start --config {config})"
                   if demo.embedded_started else "")
        say(f"logs in {options.out}; the demo's database stays until the next run{servers}: "
            f"python -m tickstock.chart NVDA --config {config} -o nvda.png")
    return 1 if failure or problems else 0


if __name__ == "__main__":
    sys.exit(main())
