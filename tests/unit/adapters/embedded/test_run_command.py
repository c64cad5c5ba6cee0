"""``python -m tickstock.actors`` and the embedded servers: started before anything else runs,
stopped on every way out (normal, error, the shutdown deadline's os._exit)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import tickstock.actors.__main__ as cli
import tickstock.adapters.embedded as embedded
from tickstock.adapters.embedded import EmbeddedError
from tickstock.adapters.embedded.plan import Decision
from tickstock.config import ENV_OVERRIDES

REPO_CONFIG = Path(__file__).resolve().parents[4] / "config.yaml"


class Recorder:
    """Stands in for ``embedded.ensure``: records the call, 'starts' one server, records its stop."""

    def __init__(self, raises: Exception | None = None) -> None:
        self.calls: list[dict] = []
        self.events: list[str] = []
        self.raises = raises

    def __call__(self, redis_url, database_url, **kwargs):
        self.calls.append({"redis_url": redis_url, "database_url": database_url, **kwargs})
        if self.raises:
            raise self.raises
        recorder = self

        class Servers:
            decision = Decision((), (), ("Redis at x is another server",), False)
            started = ["redis"]

            def stop(self) -> None:
                recorder.events.append("stop")
                self.started = []

            def summary(self) -> str:
                return "Redis did not answer: started embedded Redis"

        return Servers()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for name in ENV_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    recorder = Recorder()
    monkeypatch.setattr(embedded, "ensure", recorder)
    return recorder


def test_a_run_starts_them_first_and_stops_them_after(env, monkeypatch) -> None:
    def serve(args, settings, stop_embedded):
        env.events.append("serve")
        return 0

    monkeypatch.setattr(cli, "serve", serve)
    assert cli.main(["--config", str(REPO_CONFIG), "--now"]) == 0
    assert env.events == ["serve", "stop"]
    call = env.calls[0]
    assert call["mode"] == "auto" and call["required"] is False and call["need"] == ("redis", "postgres")
    assert call["redis_url"] == "redis://127.0.0.1:6379/0"


def test_an_error_stops_them_too(env, monkeypatch) -> None:
    def serve(args, settings, stop_embedded):
        raise RuntimeError("runtime would not build")

    monkeypatch.setattr(cli, "serve", serve)
    with pytest.raises(RuntimeError, match="would not build"):
        cli.main(["--config", str(REPO_CONFIG), "--now"])
    assert env.events == ["stop"]


def test_a_failing_stop_is_logged_never_raised(env, monkeypatch) -> None:
    stop_embedded: list = []

    def serve(args, settings, stop):
        stop_embedded.append(stop)
        return 0

    monkeypatch.setattr(cli, "serve", serve)
    real_call = env.__call__

    def failing_stop(*args, **kwargs):
        servers = real_call(*args, **kwargs)
        type(servers).stop = lambda self: (_ for _ in ()).throw(EmbeddedError("postgres: stuck"))
        return servers

    monkeypatch.setattr(embedded, "ensure", failing_stop)
    assert cli.main(["--config", str(REPO_CONFIG), "--now"]) == 0  # the finally's stop did not raise
    stop_embedded[0]()  # nor does a second call


def test_the_flag_makes_problems_fatal(env, monkeypatch) -> None:
    monkeypatch.setattr(cli, "serve", lambda *a: pytest.fail("must not run"))
    env.raises = EmbeddedError("Redis at 10.0.0.5:6379 does not answer, and no embedded server can stand in")
    assert cli.main(["--config", str(REPO_CONFIG), "--now", "--embedded"]) == 1
    assert env.calls[0]["required"] is True


def test_never_in_the_file_is_passed_on(env, monkeypatch, tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(REPO_CONFIG.read_text() + "\nembedded: never\n")
    monkeypatch.setattr(cli, "serve", lambda *a: 0)
    assert cli.main(["--config", str(config)]) == 0
    assert env.calls[0]["mode"] == "never"


def test_migrate_starts_postgres_only_and_only_when_asked(env, monkeypatch) -> None:
    monkeypatch.setattr(cli, "serve", lambda *a: 0)
    assert cli.main(["--config", str(REPO_CONFIG), "--migrate"]) == 0
    assert env.calls == []  # embedded: auto is the run command's default, not --migrate's
    assert cli.main(["--config", str(REPO_CONFIG), "--migrate", "--embedded"]) == 0
    assert env.calls[0]["need"] == ("postgres",)
    assert env.events == ["stop"]


def test_check_never_starts_anything(env, monkeypatch) -> None:
    monkeypatch.setattr(cli, "check", lambda settings: 0)
    assert cli.main(["--config", str(REPO_CONFIG), "--check", "--embedded"]) == 0
    assert env.calls == []


def test_the_deadline_exit_stops_them_before_os_exit(monkeypatch) -> None:
    import os

    import pykka

    events: list[str] = []
    stuck = SimpleNamespace(actor_class=type("StuckActor", (), {}))
    monkeypatch.setattr(pykka.ActorRegistry, "get_all", staticmethod(lambda: [stuck]))

    def fake_exit(code: int) -> None:
        events.append(f"os._exit({code})")
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    with pytest.raises(SystemExit):
        cli._exit_within(None, lambda: events.append("stop embedded"))
    assert events == ["stop embedded", "os._exit(0)"]
