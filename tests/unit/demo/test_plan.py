"""The demo's plan (tickstock/demo/plan.py): options, settings, the children's environment, timing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickstock.config import ENV_OVERRIDES, load_settings, validate
from tickstock.demo import plan
from tickstock.demo.plan import Commands

BASE = load_settings(environ={})


# -- options ------------------------------------------------------------------------------------

def test_minutes_default_to_four_then_demo_minutes_then_the_flag() -> None:
    assert plan.parse_args([], environ={}).minutes == plan.DEFAULT_MINUTES == 4
    assert plan.parse_args([], environ={"DEMO_MINUTES": "2"}).minutes == 2
    assert plan.parse_args(["--minutes", "7"], environ={"DEMO_MINUTES": "2"}).minutes == 7
    assert plan.parse_args([], environ={"DEMO_MINUTES": ""}).minutes == 4  # make passes an empty one


@pytest.mark.parametrize("argv, environ, named", [
    (["--minutes", "0"], {}, "--minutes must be between 1 and 600"),
    (["--minutes", "601"], {}, "--minutes must be between 1 and 600"),
    (["--minutes", "2.5"], {}, "--minutes must be a whole number"),
    ([], {"DEMO_MINUTES": "four"}, "DEMO_MINUTES must be a whole number of minutes (1..600), got 'four'"),
    ([], {"DEMO_PREFIX": "a b:"}, "the prefix must not contain white space"),
])
def test_a_bad_option_exits_2_naming_where_it_came_from(argv, environ, named, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        plan.parse_args(argv, environ=environ)
    assert exc.value.code == 2
    assert named in capsys.readouterr().err


def test_prefix_from_the_flag_or_demo_prefix_and_none_by_default() -> None:
    assert plan.parse_args([], environ={}).prefix == ""
    assert plan.parse_args([], environ={"DEMO_PREFIX": "demo:"}).prefix == "demo:"
    assert plan.parse_args(["--prefix", "x:"], environ={"DEMO_PREFIX": "demo:"}).prefix == "x:"


# -- settings -----------------------------------------------------------------------------------

def test_demo_settings_change_only_the_database_universe_sessions_http_and_spill(tmp_path: Path) -> None:
    base = load_settings(environ={"TICKSTOCK_SESSION_CLOCK": "event", "TICKSTOCK_ADMIN_TOKEN": "secret",
                                  "TICKSTOCK_DATABASE_URL": "postgresql://alice@127.0.0.1:5433/prod?sslmode=disable"})
    data = plan.demo_settings(base, database_url=None, prefix="", out=tmp_path / "demo")
    settings = validate(data)
    assert settings.database.url == "postgresql://alice@127.0.0.1:5433/tickstock_demo?sslmode=disable"
    assert settings.session.universe == "demo" and settings.universe_symbols() == list(plan.SYMBOLS)
    assert list(settings.universes) == ["demo"]
    assert settings.session.auto_start is False and settings.session.clock == "wall"
    assert settings.http.enabled is False and settings.http.admin_token == ""
    assert settings.persistence.spill_dir == str((tmp_path / "demo" / "spill").absolute())
    assert settings.channels == base.channels and settings.keys == base.keys  # the contract's: the dashboard sees it
    for section in ("redis", "bars", "analysis", "supervision", "health", "logging"):
        assert getattr(settings, section) == getattr(base, section)


def test_a_database_url_and_a_prefix_are_taken_as_given(tmp_path: Path) -> None:
    data = plan.demo_settings(BASE, database_url="postgresql://root@127.0.0.1:5432/tickstock_test_1",
                              prefix="demo:", out=tmp_path)
    settings = validate(data)
    assert settings.database.url == "postgresql://root@127.0.0.1:5432/tickstock_test_1"
    for section in ("channels", "keys"):
        ours, theirs = getattr(settings, section), getattr(BASE, section)
        for name in theirs.__struct_fields__:
            assert getattr(ours, name) == "demo:" + getattr(theirs, name)


def test_children_get_the_demos_settings_file_and_no_override() -> None:
    environ = {name: "x" for name in ENV_OVERRIDES} | {"PATH": "/bin", "TICKSTOCK_CONFIG": "config.yaml"}
    env = plan.child_env(environ, Path("/tmp/demo/config.yaml"))
    assert env["TICKSTOCK_CONFIG"] == "/tmp/demo/config.yaml" and env["PATH"] == "/bin"
    assert not set(ENV_OVERRIDES) & set(env)


def test_every_command_reads_the_demos_settings_and_the_simulator_gets_the_injections() -> None:
    commands = Commands(Path("/d/config.yaml"), Path("/d"), python="py")
    argvs = [commands.embedded("start", ("redis",)), commands.probe(), commands.history(), commands.service(),
             commands.simulator(), commands.monitor(5), commands.chart(4)]
    for argv in argvs:
        assert argv[:2] == ["py", "-m"] and argv[-2:] == ["--config", "/d/config.yaml"]
    assert commands.simulator()[3:] == ["--universe", "demo", "--seed", "1", "--inject", "NVDA:doji",
                                        "--inject", "AAPL:hammer", "--config", "/d/config.yaml"]
    history = commands.history()
    assert history[history.index("--calm") + 1] == "AAPL" and "--replace" in history
    assert history[history.index("--seed") + 1] == "1"  # the simulator's seed: the walk continues the history
    assert commands.chart(4)[3:8] == ["AAPL", "--minutes", "67", "-o", "/d/AAPL.png"]  # 60 of history, 4 live, 3 more
    assert commands.chart_path == Path("/d/AAPL.png")


# -- timing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("now, delay", [(1200.0, 0.0), (1230.0, 0.0), (1255.9, 0.0), (1256.5, 3.55), (1259.99, 0.06)])
def test_the_simulator_is_not_launched_just_before_a_boundary(now: float, delay: float) -> None:
    assert plan.launch_delay(now) == pytest.approx(delay, abs=1e-6)


@given(st.floats(min_value=1e9, max_value=2e9, allow_nan=False), st.floats(min_value=0.001, max_value=0.999))
def test_the_first_minute_is_where_the_simulator_starts_its_shapes(now: float, share: float) -> None:
    """The simulator starts its shapes at the first boundary at or after its walk's start, which
    follows the launch by less than LAUNCH_MARGIN."""
    launch = now + plan.launch_delay(now)
    walk_start = launch + share * (plan.LAUNCH_MARGIN - 0.05)
    assert plan.first_minute(launch) == math.ceil(walk_start / 60) * 60


def test_the_demo_stops_once_the_last_minute_closed_and_was_analysed() -> None:
    assert plan.stop_time(1260, 4, 2.0) == 1260 + 240 + 2.0 + plan.STOP_MARGIN


@pytest.mark.parametrize("lines, rows", [(24, 2), (50, 8), (56, 10), (200, 10)])
def test_monitor_rows_fit_the_terminal(lines: int, rows: int) -> None:
    assert plan.monitor_rows(lines) == rows
