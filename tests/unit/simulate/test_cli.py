"""The command line's refusals: bad arguments, settings and replay input end with exit code 2 and
a message naming the problem before anything is published; an unreachable Redis with 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickstock.simulate import __main__ as cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # exchange_calendars on pandas 3


@pytest.fixture(autouse=True)
def no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_configure_logging", lambda quiet: None)  # keep the test run's loguru


@pytest.mark.parametrize("argv, message", [
    (["--replay", "a.csv", "--replay-db", "x", "--date", "2025-10-07"], "exclusive"),
    (["--replay-db", "postgresql://x"], "needs --date"),
    (["--date", "2025-10-07"], "goes with --replay-db"),
    (["--replay", "a.csv", "--inject", "NVDA:doji"], "not a replay"),
    (["--replay", "a.csv", "--universe", "test:tiny"], "--symbols to filter"),
    (["--inject", "NVDA:wedge"], "unknown shape 'wedge'"),
    (["--rate", "0"], "must be > 0"),
    (["--speed", "fast"], "speed 'fast'"),
    (["--date", "07/10/2025", "--replay-db"], "not a date"),
    (["--universe", "x", "--symbols", "A"], "not allowed with"),
])
def test_bad_arguments_exit_2_naming_the_problem(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_replay_file_exits_2_naming_file_and_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("symbol,timestamp,price,volume\nAAPL,1760000040,1,1\nAAPL,1760000041,zero,1\n")
    assert cli.main(["--replay", str(path), "--speed", "max"]) == 2
    assert f"{path}:3: price 'zero' is not a number" in capsys.readouterr().err


def test_an_unknown_universe_exits_2(capsys) -> None:
    assert cli.main(["--universe", "nope:none", "--seconds", "1"]) == 2
    assert "unknown universe 'nope:none'" in capsys.readouterr().err


def test_an_injection_outside_the_universe_exits_2(capsys) -> None:
    assert cli.main(["--symbols", "AAPL", "--inject", "NVDA:doji", "--seconds", "1"]) == 2
    assert "not in the simulated universe: NVDA" in capsys.readouterr().err


def test_an_unreachable_redis_exits_1(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TICKSTOCK_REDIS_URL", "redis://127.0.0.1:1/0")
    assert cli.main(["--symbols", "AAPL", "--seconds", "1"]) == 1
    assert "redis at redis://127.0.0.1:1/0 does not answer" in capsys.readouterr().err
