"""Settings: the repo's config.yaml, every ConfigError naming its key, environment overrides, the
``universe`` argument, and the command line's exit codes (2 for a bad file, 1 when --check finds a
problem)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import tickstock.actors.__main__ as cli
from tickstock.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load_settings

REPO_CONFIG = Path(__file__).resolve().parents[3] / "config.yaml"

# The smallest file that validates: every other setting keeps its default.
BASE: dict[str, Any] = {
    "session": {"universe": "test:tiny"},
    "universes": {"test:tiny": ["AAPL", "MSFT", "NVDA"]},
}

ENV_NAMES = ("TICKSTOCK_CONFIG", "TICKSTOCK_REDIS_URL", "TICKSTOCK_DATABASE_URL", "TICKSTOCK_UNIVERSE",
             "TICKSTOCK_HTTP_HOST", "TICKSTOCK_HTTP_PORT", "TICKSTOCK_ADMIN_TOKEN", "TICKSTOCK_LOG_LEVEL")


def merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write(tmp_path: Path, extra: dict | None = None, name: str = "settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(merged(BASE, extra or {})), encoding="utf-8")
    return path


def config_error(path: Path, environ: dict | None = None, universe: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={} if environ is None else environ, universe=universe)
    return info.value


def assert_names(err: ConfigError, key: str) -> None:
    assert err.key == key, f"expected key {key!r}, got {err.key!r} ({err})"
    assert str(err).startswith(f"config error at '{key}': ")
    assert err.problem and err.problem in str(err)


# -- the repo's file -----------------------------------------------------------------------------


def test_repo_config_yaml_loads_with_top_500_universe() -> None:
    assert DEFAULT_CONFIG_PATH == REPO_CONFIG
    s = load_settings(REPO_CONFIG, environ={})
    assert isinstance(s, Settings)
    assert s.session.universe == "market_leaders:top_500" and s.session.universe_source == "yaml"
    symbols = s.universe_symbols()
    assert len(symbols) == 500
    assert len(set(symbols)) == 500
    assert all(isinstance(x, str) and x == x.strip().upper() for x in symbols)
    assert s.universe_symbols("test:tiny") == ["AAPL", "MSFT", "NVDA"]
    assert s.redis.url == "redis://127.0.0.1:6379/0"
    assert s.database.url.startswith("postgresql://")
    assert s.session.heartbeat_interval_seconds == 5.0 and isinstance(s.session.heartbeat_interval_seconds, float)
    assert s.http.port == 8080 and s.http.admin_token == ""
    assert [p["name"] for p in s.analysis.fallback_definitions["patterns"]][:3] == ["Doji", "Hammer", "HeadShoulders"]


def test_default_path_is_used_when_none_given() -> None:
    s = load_settings(environ={})
    assert len(s.universe_symbols()) == 500


def test_minimal_file_keeps_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), environ={})
    assert s.bars.grace_seconds == 2.0 and s.supervision.max_restarts == 3
    assert s.session.universe == "test:tiny" and s.universe_symbols() == ["AAPL", "MSFT", "NVDA"]
    # ints are accepted where floats are, and become floats
    s2 = load_settings(write(tmp_path, {"bars": {"grace_seconds": 3}}), environ={})
    assert s2.bars.grace_seconds == 3.0 and isinstance(s2.bars.grace_seconds, float)


def test_empty_section_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("session: {universe: 'test:tiny'}\nuniverses: {'test:tiny': [AAPL]}\nhttp:\n", encoding="utf-8")
    assert load_settings(path, environ={}).http.port == 8080


# -- every ConfigError names the key -------------------------------------------------------------

BAD = [
    pytest.param({"colour": "red"}, "colour", id="unknown-top-level-key"),
    pytest.param({"bars": {"grace_secs": 2}}, "bars.grace_secs", id="unknown-nested-key"),
    pytest.param({"bars": {"grace_seconds": "two"}}, "bars.grace_seconds", id="string-for-number"),
    pytest.param({"session": {"health_interval_seconds": "10s"}}, "session.health_interval_seconds",
                 id="string-for-float"),
    pytest.param({"http": {"port": "8080"}}, "http.port", id="string-for-int"),
    pytest.param({"persistence": {"batch_size": 1.5}}, "persistence.batch_size", id="float-for-int"),
    pytest.param({"session": {"auto_start": 1}}, "session.auto_start", id="number-for-bool"),
    pytest.param({"http": {"enabled": "yes please"}}, "http.enabled", id="string-for-bool"),
    pytest.param({"bars": {"grace_seconds": True}}, "bars.grace_seconds", id="bool-for-number"),
    pytest.param({"redis": ["redis://127.0.0.1:6379/0"]}, "redis", id="list-for-mapping"),
    pytest.param({"analysis": {"fallback_definitions": [{"name": "Doji"}]}}, "analysis.fallback_definitions",
                 id="list-for-mapping-value"),
    pytest.param({"redis": {"url": 6379}}, "redis.url", id="number-for-string"),
    pytest.param({"session": {"universe": "nope:none"}}, "session.universe", id="unknown-universe"),
    pytest.param({"session": {"universe": "empty"}, "universes": {"empty": []}}, "universes.empty",
                 id="empty-universe"),
    pytest.param({"universes": {"x": "AAPL"}}, "universes.x", id="universe-is-a-string"),
    pytest.param({"universes": {"x": [1, 2]}}, "universes.x", id="universe-of-numbers"),
    pytest.param({"universes": {"x": ["AAPL", None]}}, "universes.x", id="universe-with-null"),
    pytest.param({"universes": {"x": ["AAPL", ""]}}, "universes.x", id="universe-with-empty-string"),
    pytest.param({"universes": {"x": {"AAPL": 1}}}, "universes.x", id="universe-is-a-mapping"),
    pytest.param({"universes": ["AAPL"]}, "universes", id="universes-is-a-list"),
    pytest.param({"redis": {"url": "http://127.0.0.1:6379/0"}}, "redis.url", id="redis-wrong-scheme"),
    pytest.param({"redis": {"url": "not a url"}}, "redis.url", id="redis-unparsable"),
    pytest.param({"redis": {"url": "redis://"}}, "redis.url", id="redis-no-host"),
    pytest.param({"database": {"url": "mysql://root@127.0.0.1/tickstock"}}, "database.url", id="db-wrong-scheme"),
    pytest.param({"database": {"url": "postgresql://root@127.0.0.1:5432"}}, "database.url", id="db-no-dbname"),
    pytest.param({"database": {"url": "127.0.0.1:5432/tickstock"}}, "database.url", id="db-unparsable"),
    pytest.param({"database": {"url": "postgresql://h:notaport/tickstock"}}, "database.url", id="db-bad-port"),
    pytest.param({"bars": {"grace_seconds": -0.5}}, "bars.grace_seconds", id="negative-grace"),
    pytest.param({"session": {"heartbeat_interval_seconds": 11}}, "session.heartbeat_interval_seconds",
                 id="heartbeat-over-10"),
    pytest.param({"session": {"heartbeat_interval_seconds": 0}}, "session.heartbeat_interval_seconds",
                 id="heartbeat-zero"),
    pytest.param({"session": {"session_key_ttl_seconds": 5}}, "session.session_key_ttl_seconds",
                 id="ttl-not-above-heartbeat"),
    pytest.param({"session": {"universe_source": "redis"}}, "session.universe_source", id="bad-universe-source"),
    pytest.param({"analysis": {"high_confidence": 1.5}}, "analysis.high_confidence", id="confidence-over-1"),
    pytest.param({"http": {"port": 70000}}, "http.port", id="port-out-of-range"),
    pytest.param({"logging": {"level": "LOUD"}}, "logging.level", id="unknown-log-level"),
]


@pytest.mark.parametrize("extra,key", BAD)
def test_config_error_names_the_key(tmp_path: Path, extra: dict, key: str) -> None:
    assert_names(config_error(write(tmp_path, extra)), key)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:notaport/0", "redis://127.0.0.1:99999/0"])
def test_bad_redis_port_names_redis_url(tmp_path: Path, url: str) -> None:
    assert_names(config_error(write(tmp_path, {"redis": {"url": url}})), "redis.url")


def test_database_universe_source_does_not_need_a_yaml_universe(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, {"session": {"universe": "market_leaders:top_500",
                                                   "universe_source": "database"}}), environ={})
    assert s.session.universe_source == "database" and s.session.universe == "market_leaders:top_500"


def test_not_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("session: {universe: [unclosed\n  - : :\n", encoding="utf-8")
    err = config_error(path)
    assert_names(err, "<file>")
    assert "not valid YAML" in err.problem and str(path) in err.problem


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- redis\n- database\n", encoding="utf-8")
    assert_names(config_error(path), "<root>")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    err = config_error(path)
    assert_names(err, "<file>")
    assert "cannot read" in err.problem and str(path) in err.problem


def test_empty_file_is_defaults_and_fails_on_the_universe(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert_names(config_error(path), "session.universe")


# -- environment overrides -----------------------------------------------------------------------


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "TICKSTOCK_REDIS_URL": "redis://cache.internal:6380/2",
        "TICKSTOCK_DATABASE_URL": "postgresql://app:pw@db.internal:5433/prod",
        "TICKSTOCK_HTTP_PORT": "9090",
        "TICKSTOCK_ADMIN_TOKEN": "t0ken",
        "TICKSTOCK_HTTP_HOST": "0.0.0.0",
        "TICKSTOCK_LOG_LEVEL": "DEBUG",
    }
    s = load_settings(write(tmp_path, {"http": {"port": 8000, "admin_token": "from-file"}}), environ=env)
    assert s.redis.url == "redis://cache.internal:6380/2"
    assert s.database.url == "postgresql://app:pw@db.internal:5433/prod"
    assert s.http.port == 9090 and isinstance(s.http.port, int)
    assert s.http.admin_token == "t0ken" and s.http.host == "0.0.0.0"
    assert s.logging.level == "DEBUG"


def test_empty_environment_value_is_ignored(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, {"http": {"port": 8000}}), environ={"TICKSTOCK_HTTP_PORT": ""})
    assert s.http.port == 8000


@pytest.mark.parametrize("env,key", [
    ({"TICKSTOCK_HTTP_PORT": "eighty"}, "http.port"),
    ({"TICKSTOCK_HTTP_PORT": "80.5"}, "http.port"),
    ({"TICKSTOCK_HTTP_PORT": "0"}, "http.port"),
    ({"TICKSTOCK_REDIS_URL": "localhost:6379"}, "redis.url"),
    ({"TICKSTOCK_DATABASE_URL": "sqlite:///tickstock.db"}, "database.url"),
    ({"TICKSTOCK_UNIVERSE": "no:such"}, "session.universe"),
    ({"TICKSTOCK_LOG_LEVEL": "chatty"}, "logging.level"),
])
def test_bad_environment_value_names_the_key(tmp_path: Path, env: dict, key: str) -> None:
    assert_names(config_error(write(tmp_path), environ=env), key)


def test_non_integer_port_names_the_variable(tmp_path: Path) -> None:
    err = config_error(write(tmp_path), environ={"TICKSTOCK_HTTP_PORT": "eighty"})
    assert "TICKSTOCK_HTTP_PORT" in err.problem and "'eighty'" in err.problem


def test_tickstock_config_selects_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"http": {"port": 8123}}, name="chosen.yaml")
    s = load_settings(environ={"TICKSTOCK_CONFIG": str(path)})
    assert s.http.port == 8123 and s.session.universe == "test:tiny"
    # an explicit path wins over the variable
    other = write(tmp_path, {"http": {"port": 8124}}, name="explicit.yaml")
    assert load_settings(other, environ={"TICKSTOCK_CONFIG": str(path)}).http.port == 8124
    # the variable pointing nowhere is the missing-file error
    err = config_error(None, environ={"TICKSTOCK_CONFIG": str(tmp_path / "nowhere.yaml")})
    assert_names(err, "<file>")
    assert "nowhere.yaml" in err.problem


def test_environment_override_into_an_empty_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("session: {universe: 'test:tiny'}\nuniverses: {'test:tiny': [AAPL]}\nhttp:\n", encoding="utf-8")
    assert load_settings(path, environ={"TICKSTOCK_HTTP_PORT": "9091"}).http.port == 9091


# -- the universe argument -----------------------------------------------------------------------


def test_universe_argument_selects_the_universe() -> None:
    s = load_settings(REPO_CONFIG, environ={}, universe="test:small")
    assert s.session.universe == "test:small"
    assert s.universe_symbols() == ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V"]


def test_universe_argument_wins_over_environment() -> None:
    s = load_settings(REPO_CONFIG, environ={"TICKSTOCK_UNIVERSE": "test:small"}, universe="test:tiny")
    assert s.session.universe == "test:tiny" and len(s.universe_symbols()) == 3
    assert load_settings(REPO_CONFIG, environ={"TICKSTOCK_UNIVERSE": "test:small"}).session.universe == "test:small"


def test_unknown_universe_argument() -> None:
    err = config_error(REPO_CONFIG, universe="market_leaders:top_9000")
    assert_names(err, "session.universe")
    assert "market_leaders:top_9000" in err.problem and "test:tiny" in err.problem  # lists the known ones


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No TICKSTOCK_* variable from the host leaks in; logging set-up is recorded, not applied
    (it would replace loguru's handlers for every later test)."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    levels: list[str] = []
    monkeypatch.setattr(cli, "configure_logging", levels.append)
    return levels


def test_main_bad_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, clean_env) -> None:
    path = write(tmp_path, {"bars": {"grace_secs": 2}})
    assert cli.main(["--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "config error at 'bars.grace_secs'" in err
    assert clean_env == []  # nothing else ran


def test_main_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, clean_env) -> None:
    assert cli.main(["--config", str(tmp_path / "absent.yaml")]) == 2
    assert "config error at '<file>'" in capsys.readouterr().err


def test_main_unknown_universe_exits_2(capsys: pytest.CaptureFixture, clean_env) -> None:
    assert cli.main(["--config", str(REPO_CONFIG), "--universe", "no:such", "--check"]) == 2
    assert "config error at 'session.universe'" in capsys.readouterr().err


def test_main_bad_environment_exits_2(monkeypatch, capsys: pytest.CaptureFixture, clean_env) -> None:
    monkeypatch.setenv("TICKSTOCK_HTTP_PORT", "http")
    assert cli.main(["--config", str(REPO_CONFIG), "--check"]) == 2
    assert "config error at 'http.port'" in capsys.readouterr().err


def _prow(name: str, **kw: Any) -> dict:
    row = {"name": name, "enabled": True, "applicable_timeframes": None, "min_bars_required": None,
           "confidence_threshold": None, "instantiation_params": None}
    row.update(kw)
    return row


def _irow(name: str, period: int) -> dict:
    return {"name": name, "enabled": True, "applicable_timeframes": None, "min_bars_required": None,
            "confidence_threshold": None, "period": period, "parameters": None}


class _OkRedis:
    urls: list[str] = []

    def __init__(self, url: str, *args: Any, **kwargs: Any) -> None:
        self.urls.append(url)

    def ping(self) -> None:
        pass


class _OkStore:
    closed = 0

    def __init__(self, dsn: str, *args: Any, **kwargs: Any) -> None:
        self.dsn = dsn

    def ping(self) -> None:
        pass

    def close(self) -> None:
        type(self).closed += 1

    def load_definitions(self):
        return ([_prow("Doji"), _prow("Hammer"), _prow("HeadShoulders")], [_irow("RSI", 14), _irow("SMA", 20)])

    def load_universe(self, key: str) -> list[str]:
        return ["aapl", "MSFT"]


def test_main_check_prints_the_plan(monkeypatch, tmp_path: Path, capsys: pytest.CaptureFixture, clean_env) -> None:
    import tickstock.adapters.postgres as pg
    import tickstock.adapters.redis as rd

    _OkRedis.urls = []
    _OkStore.closed = 0
    monkeypatch.setattr(rd, "RedisPublisher", _OkRedis)
    monkeypatch.setattr(pg, "PostgresStore", _OkStore)
    assert cli.main(["--config", str(REPO_CONFIG), "--universe", "test:small", "--check"]) == 0
    out, err = capsys.readouterr()
    assert "redis:     ok (redis://127.0.0.1:6379/0)" in out
    assert "database:  ok (postgresql://" in out
    assert "universe:  test:small (yaml), 10 symbols: AAPL, MSFT, NVDA, AMZN, GOOGL, META, TSLA, BRK.B, JPM, V\n" in out
    assert "analysis:  Doji, Hammer, HeadShoulders, RSI, SMA (from database)" in out
    assert "ticks:     tickstock:market:ticks; http: 127.0.0.1:8080" in out
    assert "PROBLEM" not in err
    assert _OkRedis.urls == ["redis://127.0.0.1:6379/0"]
    assert _OkStore.closed >= 2  # the ping's store and the definitions' store
    assert clean_env == ["INFO"]


def test_main_check_truncates_a_long_universe(monkeypatch, capsys: pytest.CaptureFixture, clean_env) -> None:
    import tickstock.adapters.postgres as pg
    import tickstock.adapters.redis as rd

    monkeypatch.setattr(rd, "RedisPublisher", _OkRedis)
    monkeypatch.setattr(pg, "PostgresStore", _OkStore)
    assert cli.main(["--config", str(REPO_CONFIG), "--check"]) == 0
    out = capsys.readouterr().out
    assert "universe:  market_leaders:top_500 (yaml), 500 symbols: AAPL, MSFT, NVDA, " in out
    assert " ...\n" in out


def test_main_check_database_universe(monkeypatch, tmp_path, capsys: pytest.CaptureFixture, clean_env) -> None:
    import tickstock.adapters.postgres as pg
    import tickstock.adapters.redis as rd

    monkeypatch.setattr(rd, "RedisPublisher", _OkRedis)
    monkeypatch.setattr(pg, "PostgresStore", _OkStore)
    path = write(tmp_path, {"session": {"universe": "market_leaders:top_500", "universe_source": "database"}})
    assert cli.main(["--config", str(path), "--check"]) == 0
    assert "universe:  market_leaders:top_500 (database), 2 symbols: AAPL, MSFT\n" in capsys.readouterr().out


def test_main_check_unreachable_endpoints_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture, clean_env) -> None:
    path = write(tmp_path, {"redis": {"url": "redis://127.0.0.1:1/0"},
                            "database": {"url": "postgresql://root@127.0.0.1:1/tickstock?connect_timeout=2"}})
    assert cli.main(["--config", str(path), "--check"]) == 1
    out, err = capsys.readouterr()
    assert "redis:     ok" not in out and "database:  ok" not in out
    assert "universe:  test:tiny (yaml), 3 symbols: AAPL, MSFT, NVDA" in out  # YAML needs no database
    assert "analysis:  NONE (from config.yaml (database unreachable))" in out
    problems = [line for line in err.splitlines() if line.startswith("PROBLEM:")]
    assert any(line.startswith("PROBLEM:   redis redis://127.0.0.1:1/0: ") for line in problems)
    assert any(line.startswith("PROBLEM:   database postgresql://root@127.0.0.1:1/tickstock") for line in problems)
    assert any("definitions database unreachable" in line and "fallback" in line for line in problems)
    assert any("no pattern or indicator definitions loaded" in line for line in problems)


def test_main_check_database_universe_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture, clean_env) -> None:
    path = write(tmp_path, {"redis": {"url": "redis://127.0.0.1:1/0"},
                            "database": {"url": "postgresql://root@127.0.0.1:1/tickstock?connect_timeout=2"},
                            "session": {"universe_source": "database"}})
    assert cli.main(["--config", str(path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "PROBLEM:   universe 'test:tiny' could not be read from cache_entries" in err
