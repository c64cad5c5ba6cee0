"""The demo's orchestration (tickstock/demo/__main__.py) with every command replaced by a stub
process that records what happens to it: the order things are stopped in, on each way out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickstock.adapters.embedded.process import spawn
from tickstock.config import load_settings
from tickstock.demo import __main__ as demo_main
from tickstock.demo.__main__ import Demo, DemoFailed
from tickstock.demo.plan import Commands, DemoOptions

STUB = r'''
import signal, sys, time
name, log, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def note(what):
    with open(log, "a") as f:
        f.write(f"{time.monotonic():.6f} {name} {what}\n")
def on(signum, frame):
    note(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGTERM, on)
signal.signal(signal.SIGINT, on)
note("start " + " ".join(sys.argv[4:]))
if mode == "print":
    print(sys.argv[4])
    sys.exit(0)
if mode == "die":
    time.sleep(float(sys.argv[4]))
    sys.exit(3)
while True:
    time.sleep(0.02)
'''


class StubCommands(Commands):
    """Each step is the stub, named after the step; ``modes`` makes one print or die."""

    def __init__(self, out: Path, modes: dict[str, tuple[str, ...]]) -> None:
        super().__init__(out / "config.yaml", out, python=sys.executable)
        object.__setattr__(self, "modes", modes)
        (out / "stub.py").write_text(STUB)

    def _stub(self, name: str, *extra: str) -> list[str]:
        mode = self.modes.get(name, ("run",))
        return [self.python, str(self.out / "stub.py"), name, str(self.out / "events"), *mode, *extra]

    def embedded(self, action: str, servers: tuple[str, ...] = ()) -> list[str]:
        return self._stub(f"embedded-{action}", *servers)

    def probe(self) -> list[str]:
        return self._stub("probe")

    def service(self) -> list[str]:
        return self._stub("service")

    def simulator(self) -> list[str]:
        return self._stub("simulator")

    def monitor(self, rows: int) -> list[str]:
        return self._stub("monitor")

    def chart(self, live_minutes: int) -> list[str]:
        return self._stub("chart")


def _demo(tmp_path: Path, **modes: tuple[str, ...]) -> Demo:
    options = DemoOptions(minutes=1, out=tmp_path, config=None, database_url=None, prefix="")
    defaults = {"chart": ("print", "wrote AAPL.png"), "embedded-stop": ("print", "stopped")}
    commands = StubCommands(tmp_path, {**defaults, **modes})
    return Demo(options, load_settings(environ={}), tmp_path / "config.yaml", dict(os.environ), commands)


def _events(tmp_path: Path) -> list[str]:
    """``name what`` lines in the order they happened."""
    lines = (tmp_path / "events").read_text().splitlines()
    return [line.split(" ", 1)[1] for line in sorted(lines, key=lambda line: float(line.split()[0]))]


def _run_children(demo: Demo) -> None:
    demo.service = spawn(demo.commands.service(), demo.logs["service"], detach=False)
    demo.simulator = spawn(demo.commands.simulator(), demo.logs["simulator"], detach=False)
    demo.session_ran = True
    time.sleep(0.5)  # the stubs have installed their handlers


def test_at_the_end_the_simulator_then_the_service_then_the_monitor_stop_then_the_chart_and_servers(tmp_path) -> None:
    demo = _demo(tmp_path)
    demo.embedded_started = ("redis", "postgres")
    _run_children(demo)
    demo.watch(time.time() + 1.0)
    assert demo.shut_down() == []
    stops = [e for e in _events(tmp_path) if not e.startswith(("service start", "simulator start", "monitor start"))]
    assert stops == ["simulator SIGTERM", "service SIGTERM", "monitor SIGINT", "chart start wrote AAPL.png",
                     "embedded-stop start stopped redis postgres"]  # only the servers it started


def test_a_child_ending_by_itself_fails_the_demo_and_everything_else_is_still_stopped(tmp_path) -> None:
    demo = _demo(tmp_path, simulator=("die", "0.3"))
    _run_children(demo)
    with pytest.raises(DemoFailed, match=r"the simulator ended by itself \(code 3\)"):
        demo.watch(time.time() + 30.0)
    problems = demo.shut_down()
    assert problems == [f"the simulator exited with code 3 (log {tmp_path / 'simulate.log'})"]
    events = _events(tmp_path)
    assert "service SIGTERM" in events and "monitor SIGINT" in events and "chart start wrote AAPL.png" in events
    assert not [e for e in events if e.startswith("embedded-stop")]  # it started none


def test_ctrl_c_stops_at_once_and_a_second_one_skips_the_chart(tmp_path) -> None:
    demo = _demo(tmp_path)
    _run_children(demo)
    demo.stop._on_signal(2, None)
    demo.stop._on_signal(2, None)
    started = time.monotonic()
    demo.watch(time.time() + 60.0)
    assert time.monotonic() - started < 5.0
    assert demo.shut_down() == []
    events = _events(tmp_path)
    assert "service SIGTERM" in events and "simulator SIGTERM" in events
    assert not [e for e in events if e.startswith("chart")]


def test_a_session_already_online_on_the_channels_is_refused(tmp_path) -> None:
    online = '{"online": true, "session": {"session_id": "s-1", "universe": "test:small"}}'
    demo = _demo(tmp_path, probe=("print", online))
    with pytest.raises(DemoFailed, match=r"already online on these channels \(session s-1.*DEMO_PREFIX=demo:"):
        demo.refuse_if_online()
    assert _demo(tmp_path, probe=("print", '{"online": false}')).refuse_if_online() is None


def test_a_service_that_exits_before_its_session_is_named_with_its_log(tmp_path) -> None:
    demo = _demo(tmp_path, service=("die", "0"), probe=("print", '{"online": false}'))
    with pytest.raises(DemoFailed, match=r"the service exited \(code 3\) before its session went online"):
        demo.start_service()
    assert demo.session_ran is False


def test_a_failing_step_is_named_with_the_end_of_its_output(tmp_path) -> None:
    demo = _demo(tmp_path)
    argv = [sys.executable, "-c", "import sys; print('line 1'); sys.exit('no database for you')"]
    with pytest.raises(DemoFailed, match="writing the bars failed: no database for you"):
        demo.run_step("writing the bars", argv)


def test_bad_settings_exit_2_before_anything_runs(tmp_path, capsys) -> None:
    assert demo_main.main(["--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_settings_file_is_private_and_valid(tmp_path) -> None:
    options = DemoOptions(minutes=1, out=tmp_path / "out", config=None, database_url=None, prefix="demo:")
    settings, path = demo_main.write_settings(options, {"TICKSTOCK_ADMIN_TOKEN": "secret"})
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_settings(path, environ={}) == settings
    assert settings.channels.ticks == "demo:tickstock:market:ticks" and "secret" not in path.read_text()


def test_the_service_and_the_monitor_are_signalled_when_the_demo_is_killed_9(tmp_path) -> None:
    """The children it starts are tied to it (parent-death signal): kill -9 leaves none running. The
    monitor (in the demo's own process group, on its terminal) gets the SIGINT a Ctrl-C would send:
    untied, it was left running, orphaned, after a killed demo."""
    script = f'''
import os, signal, sys, threading, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
from pathlib import Path
from tests.unit.demo.test_orchestration import _demo
demo = _demo(Path({str(tmp_path)!r}), probe=("print", '{{"online": true, "session": {{"session_id": "s", "symbol_count": 8, "universe": "demo"}}}}'))
demo.start_service()
threading.Thread(target=demo.watch, args=(time.time() + 60,), daemon=True).start()
time.sleep(1.0)
os.kill(os.getpid(), signal.SIGKILL)
'''
    with open(tmp_path / "stderr", "w") as err:  # a file: a child left running would hold a pipe open
        done = subprocess.run([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=err, timeout=60)
    assert done.returncode == -9, (tmp_path / "stderr").read_text()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not {"service SIGTERM", "monitor SIGINT"} <= set(_events(tmp_path)):
        time.sleep(0.1)
    assert {"service SIGTERM", "monitor SIGINT"} <= set(_events(tmp_path)), _events(tmp_path)
