"""tickstock.ctl against a real AdminServer (in-process): output and exit codes."""

from __future__ import annotations

import json
import socket

import pytest

from tickstock import ctl


@pytest.fixture(autouse=True)
def _no_env_token(monkeypatch):
    # The developer's own $TICKSTOCK_ADMIN_TOKEN / $TICKSTOCK_URL must not leak into these tests.
    monkeypatch.delenv("TICKSTOCK_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("TICKSTOCK_URL", raising=False)


def run(server, capsys, *args: str) -> tuple[int, str, str]:
    code = ctl.main(["--url", f"http://127.0.0.1:{server.port}", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_start_stop_status_with_the_right_token(server, capsys, fake, token):
    code, out, err = run(server, capsys, "--token", token, "start")
    assert code == 0, err
    assert json.loads(out)["started"] is True
    assert fake.start_calls == [True]

    code, out, _ = run(server, capsys, "status")
    assert code == 0
    assert json.loads(out)["running"] is True

    code, out, _ = run(server, capsys, "--token", token, "--reason", "test over", "stop")
    assert code == 0
    body = json.loads(out)
    assert (body["final_status"], body["reason"]) == ("stopped", "test over")
    assert fake.stop_calls == [("stopped", "test over")]


def test_wrong_token_exits_1_with_status_on_stderr(server, capsys, fake):
    code, out, err = run(server, capsys, "--token", "wrong", "start")
    assert code == 1
    assert "HTTP 403" in err and "invalid token" in err
    assert json.loads(out)["error"] == "invalid token"
    assert fake.start_calls == []


def test_missing_token_exits_1_with_401(server, capsys, fake):
    code, _, err = run(server, capsys, "start")
    assert code == 1
    assert "HTTP 401" in err
    assert fake.start_calls == []


def test_token_from_environment(server, capsys, fake, token, monkeypatch):
    monkeypatch.setenv("TICKSTOCK_ADMIN_TOKEN", token)
    code, _, err = run(server, capsys, "start")
    assert code == 0, err
    assert fake.start_calls == [True]


def test_second_start_and_idle_stop_exit_1_with_409(server, capsys, token):
    assert run(server, capsys, "--token", token, "start")[0] == 0
    code, _, err = run(server, capsys, "--token", token, "start")
    assert code == 1
    assert "HTTP 409" in err and "already running" in err
    assert run(server, capsys, "--token", token, "stop")[0] == 0
    code, _, err = run(server, capsys, "--token", token, "stop")
    assert code == 1
    assert "HTTP 409: no session running" in err


def test_health_reflects_readiness(make_server, capsys):
    code, out, _ = run(make_server(ready=(True, "ok")), capsys, "health")
    assert code == 0
    assert json.loads(out)["ready"] is True
    code, _, err = run(make_server(ready=(False, "database unreachable")), capsys, "health")
    assert code == 1
    assert "HTTP 503: database unreachable" in err


def test_unreachable_server_exits_1(capsys):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ctl.main(["--url", f"http://127.0.0.1:{port}", "--timeout", "2", "status"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "cannot reach" in err


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        ctl.main(["reboot"])
    assert exc.value.code == 2
