"""The monitor's command line: argument checks and exit codes (no Redis needed)."""

from __future__ import annotations

import socket

import pytest

from tickstock.monitor.__main__ import main, parse_args
from tickstock.config import safe_url

MINIMAL = "session: {universe: 'test:x'}\nuniverses: {'test:x': [AAPL]}\n"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on leaving: nothing listens there


@pytest.mark.parametrize("argv", [["--json"], ["--wait", "3"], ["--interval", "0"], ["--once", "--wait", "-1"],
                                  ["--rows", "0"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2 and "error:" in capsys.readouterr().err


def test_unreachable_redis_exits_1_with_a_clear_message_and_no_password(tmp_path, monkeypatch, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(MINIMAL)
    monkeypatch.setenv("TICKSTOCK_REDIS_URL", f"redis://:secret@127.0.0.1:{closed_port()}/0")
    assert main(["--config", str(config), "--once", "--json", "--wait", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("tickstock.monitor: cannot read Redis at redis://:***@127.0.0.1:")
    assert "secret" not in captured.err


def test_bad_configuration_exits_2(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(MINIMAL + "redis: {url: 'http://nope'}\n")
    assert main(["--config", str(config), "--once", "--json"]) == 2
    assert "redis.url" in capsys.readouterr().err


def test_safe_url_masks_only_the_password():
    assert safe_url("redis://user:pw@host:6380/1") == "redis://user:***@host:6380/1"
    assert safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
