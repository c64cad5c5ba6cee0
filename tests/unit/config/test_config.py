"""Settings: the repo's config.yaml, every ConfigError naming its key, environment overrides, the
``universe`` argument, and the command line's exit codes (2 for a bad file, 1 when --check finds a
problem)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

import tickstock.actors.__main__ as cli
from tickstock.config import DEFAULT_CONFIG_PATH, ConfigError, HttpSettings, SessionSettings, Settings, load_settings

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
    import tickstock.actors.wiring as wiring
    import tickstock.adapters.redis as rd

    _OkRedis.urls = []
    _OkStore.closed = 0
    monkeypatch.setattr(rd, "RedisPublisher", _OkRedis)
    monkeypatch.setattr(wiring, "PostgresStore", _OkStore)
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
    import tickstock.actors.wiring as wiring
    import tickstock.adapters.redis as rd

    monkeypatch.setattr(rd, "RedisPublisher", _OkRedis)
    monkeypatch.setattr(wiring, "PostgresStore", _OkStore)
    assert cli.main(["--config", str(REPO_CONFIG), "--check"]) == 0
    out = capsys.readouterr().out
    assert "universe:  market_leaders:top_500 (yaml), 500 symbols: AAPL, MSFT, NVDA, " in out
    assert " ...\n" in out


def test_main_check_database_universe(monkeypatch, tmp_path, capsys: pytest.CaptureFixture, clean_env) -> None:
    import tickstock.actors.wiring as wiring
    import tickstock.adapters.redis as rd

    monkeypatch.setattr(rd, "RedisPublisher", _OkRedis)
    monkeypatch.setattr(wiring, "PostgresStore", _OkStore)
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


# -- the schema: a type and a range for every key ------------------------------------------------


def nested(dotted: str, value: Any) -> dict:
    section, _, name = dotted.partition(".")
    return {section: {name: value}}


def leaves() -> list[tuple[str, Any, Any]]:
    """(dotted key, msgspec type info, default) of every setting inside a section."""
    out = []
    for section in msgspec.inspect.type_info(Settings).fields:
        if isinstance(section.type, msgspec.inspect.StructType):
            out += [(f"{section.name}.{f.name}", f.type, f.default) for f in section.type.fields]
    return out


DAY, WEEK = 86400, 7 * 86400
# key -> (refused, accepted): each refused value breaks exactly that key's range.
RANGES: dict[str, tuple[list, list]] = {
    "redis.ping_interval_seconds": ([0, -1, 301], [0.5, 19]),
    "redis.ping_timeout_seconds": ([0, 601], [10.5, 600]),
    "database.connect_timeout_seconds": ([0, 0.5, 301], [1, 300]),
    "database.statement_timeout_seconds": ([0, 0.05, 3601], [0.1, 3600]),
    "database.lock_timeout_seconds": ([0, 0.05, 3601], [0.1, 3600]),
    "session.heartbeat_interval_seconds": ([0, -5, 10.5], [0.1, 10]),
    "session.session_key_ttl_seconds": ([0, -30, DAY + 1], [5.5, DAY]),
    "session.reannounce_interval_seconds": ([0, DAY + 1], [0.5, DAY]),
    "session.health_interval_seconds": ([0, 3601], [0.5, 3600]),
    "session.report_interval_seconds": ([0, -1, 61], [0.05, 60]),
    "session.shutdown_deadline_seconds": ([0, 0.5, 601], [1, 600]),
    "session.startup_timeout_seconds": ([0, 601], [0.5, 600]),
    "session.symbol_workers": ([0, -1, 65], [1, 64]),
    "bars.grace_seconds": ([-0.5, 59.5], [0, 59]),
    "bars.max_tick_skew_seconds": ([0, DAY + 1], [0.5, DAY]),
    "analysis.prime_bars": ([-1, 10_001], [0, 10_000]),
    "analysis.high_confidence": ([-0.1, 1.01], [0, 1]),
    "analysis.indicator_ttl_seconds": ([0, -1, WEEK + 1], [1, WEEK]),
    "analysis.pattern_ttl_seconds": ([0, -1, WEEK + 1], [1, WEEK]),
    "analysis.max_component_failures": ([0, -1, 1001], [1, 1000]),
    "analysis.processes": ([0, -1, 5], [1, 4]),
    "persistence.batch_size": ([0, 100_001], [1, 100_000]),
    "persistence.flush_interval_seconds": ([0, 61], [0.01, 60]),
    "persistence.retry_interval_seconds": ([0, -2, 3601], [0.1, 3600]),
    "persistence.backlog_warning": ([0, 100_000_001], [1, 100_000_000]),
    "persistence.fsync_interval_seconds": ([0, 61], [0.01, 60]),
    "persistence.table_retry_seconds": ([0, DAY + 1], [1, DAY]),
    "supervision.max_restarts": ([-1, 1001], [0, 1000]),
    "supervision.within_seconds": ([0, DAY + 1], [1, DAY]),
    "supervision.symbol_max_restarts": ([-1, 1001], [0, 1000]),
    "supervision.symbol_within_seconds": ([0, DAY + 1], [1, DAY]),
    "http.port": ([0, -1, 65_536], [1, 65_535]),
    "health.feed_silent_warning_seconds": ([0, DAY + 1], [1, 120]),
    "health.feed_silent_critical_seconds": ([0, DAY + 1], [30, DAY]),
    "health.stale_symbol_seconds": ([0, DAY + 1], [1, DAY]),
    "health.active_symbol_seconds": ([0, DAY + 1], [1, DAY]),
    "health.persistence_failing_critical_seconds": ([0, DAY + 1], [1, DAY]),
}
NUMBERS = [(k, t) for k, t, _ in leaves() if isinstance(t, (msgspec.inspect.FloatType, msgspec.inspect.IntType))]


def test_every_number_has_a_lower_and_an_upper_bound_and_a_test() -> None:
    for key, info in NUMBERS:
        assert (info.ge is not None or info.gt is not None) and info.le is not None, key
    assert sorted(RANGES) == sorted(k for k, _ in NUMBERS)  # a new number needs its line above


def test_every_string_but_the_token_must_not_be_empty(tmp_path: Path) -> None:
    strings = [k for k, t, _ in leaves() if isinstance(t, msgspec.inspect.StrType)]
    assert "channels.ticks" in strings and "persistence.spill_dir" in strings
    for key in strings:
        if key == "http.admin_token":
            continue
        err = config_error(write(tmp_path, nested(key, "")))
        assert_names(err, key)
        assert err.problem == "expected a string of length >= 1, got ''"


@pytest.mark.parametrize("key", sorted(RANGES))
def test_range_refuses_out_of_bounds_and_accepts_its_bounds(tmp_path: Path, key: str) -> None:
    refused, accepted = RANGES[key]
    is_int = isinstance(dict(NUMBERS)[key], msgspec.inspect.IntType)
    wrong_types = [True, "1", 1.5] if is_int else [True, "1", float("inf"), float("-inf"), float("nan")]
    for value in refused + wrong_types:
        err = config_error(write(tmp_path, nested(key, value)))
        assert_names(err, key)
        assert repr(value) in err.problem, err.problem  # says what it got
    for value in accepted:
        section, _, name = key.partition(".")
        got = getattr(getattr(load_settings(write(tmp_path, nested(key, value)), environ={}), section), name)
        assert got == value and type(got) is (int if is_int else float)


def test_range_error_says_the_bound(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, {"persistence": {"retry_interval_seconds": 0}}))
    assert err.problem == "expected a number > 0.0, got 0"
    err = config_error(write(tmp_path, {"analysis": {"max_component_failures": 0}}))
    assert err.problem == "expected an integer >= 1, got 0"
    err = config_error(write(tmp_path, {"bars": {"grace_seconds": "two"}}))
    assert err.problem == "expected a number, got 'two'"


@pytest.mark.parametrize("key,value", [
    ("session.universe_source", "redis"), ("session.universe_source", "YAML"),
    ("logging.level", "LOUD"), ("logging.level", "warn"), ("logging.level", 10),
])
def test_enumerations(tmp_path: Path, key: str, value: Any) -> None:
    err = config_error(write(tmp_path, nested(key, value)))
    assert_names(err, key)
    if isinstance(value, str):
        assert err.problem.startswith("must be one of ") and repr(value.upper() if key == "logging.level" else value) in err.problem


@pytest.mark.parametrize("level", ["trace", "Debug", "info", "SUCCESS", "warning", "error", "CRITICAL"])
def test_log_levels_are_loguru_levels_in_any_case(tmp_path: Path, level: str) -> None:
    assert load_settings(write(tmp_path, {"logging": {"level": level}}), environ={}).logging.level == level.upper()


@pytest.mark.parametrize("flag", ["session.auto_start", "session.accept_new_symbols", "http.enabled",
                                  "analysis.analyse_partial_bars"])
def test_flags_are_booleans(tmp_path: Path, flag: str) -> None:
    for value in (0, "true", None):
        assert_names(config_error(write(tmp_path, nested(flag, value))), flag)


def test_removed_shutdown_timeout_is_an_unknown_key(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, {"session": {"shutdown_timeout_seconds": 15}}))
    assert_names(err, "session.shutdown_timeout_seconds")
    assert err.problem.startswith("unknown key") and "shutdown_deadline_seconds" in err.problem


def test_new_keys_and_their_defaults() -> None:
    s = Settings()
    assert s.session.shutdown_deadline_seconds == 20.0 and s.session.report_interval_seconds == 1.0
    assert s.session.startup_timeout_seconds == 15.0 and s.session.symbol_workers == 2
    assert (s.database.connect_timeout_seconds, s.database.statement_timeout_seconds,
            s.database.lock_timeout_seconds) == (5.0, 10.0, 5.0)
    assert (s.redis.ping_interval_seconds, s.redis.ping_timeout_seconds) == (10.0, 20.0)
    assert (s.persistence.spill_dir, s.persistence.fsync_interval_seconds, s.persistence.table_retry_seconds) == (
        "var/spill", 1.0, 60.0)
    assert (s.supervision.max_restarts, s.supervision.within_seconds) == (3, 60.0)
    assert (s.supervision.symbol_max_restarts, s.supervision.symbol_within_seconds) == (3, 60.0)
    assert s.analysis.analyse_partial_bars is False


def test_repo_config_yaml_lists_every_key_with_the_code_default() -> None:
    data = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    for key, _, default in leaves():
        section, _, name = key.partition(".")
        assert name in data[section], f"{key} missing from config.yaml"
        if key != "analysis.fallback_definitions":
            assert data[section][name] == default, key


# -- rules between keys --------------------------------------------------------------------------


@pytest.mark.parametrize("extra,key", [
    ({"session": {"heartbeat_interval_seconds": 5, "session_key_ttl_seconds": 5}}, "session.session_key_ttl_seconds"),
    ({"session": {"heartbeat_interval_seconds": 8, "session_key_ttl_seconds": 6}}, "session.session_key_ttl_seconds"),
    ({"redis": {"ping_interval_seconds": 20, "ping_timeout_seconds": 20}}, "redis.ping_timeout_seconds"),
    ({"redis": {"ping_interval_seconds": 30}}, "redis.ping_timeout_seconds"),
    ({"health": {"feed_silent_warning_seconds": 60, "feed_silent_critical_seconds": 59}},
     "health.feed_silent_critical_seconds"),
])
def test_cross_field_rule_names_the_key(tmp_path: Path, extra: dict, key: str) -> None:
    err = config_error(write(tmp_path, extra))
    assert_names(err, key)
    other = {"session.session_key_ttl_seconds": "session.heartbeat_interval_seconds",
             "redis.ping_timeout_seconds": "redis.ping_interval_seconds",
             "health.feed_silent_critical_seconds": "health.feed_silent_warning_seconds"}[key]
    assert other in err.problem  # names the key it is compared with


def test_cross_field_rules_accept_what_fits(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, {
        "session": {"heartbeat_interval_seconds": 5, "session_key_ttl_seconds": 5.5},
        "redis": {"ping_interval_seconds": 20, "ping_timeout_seconds": 20.5},
        "health": {"feed_silent_warning_seconds": 60, "feed_silent_critical_seconds": 60},
    }), environ={})
    assert s.session.session_key_ttl_seconds == 5.5 and s.redis.ping_timeout_seconds == 20.5
    assert s.health.feed_silent_critical_seconds == 60


# -- URLs and hosts ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://cache.example.com:6380/1",
                                 "redis://:secret@[::1]:6379", "redis://localhost", "unix:///run/redis.sock"])
def test_redis_urls_accepted(tmp_path: Path, url: str) -> None:
    assert load_settings(write(tmp_path, {"redis": {"url": url}}), environ={}).redis.url == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "tcp://127.0.0.1:6379", "redis:127.0.0.1",
                                 "postgresql://127.0.0.1/x", "redis://127.0.0.1:0/0", "redis://127.0.0.1:65536",
                                 "redis://bad host:6379", "redis://[::1:6379", "unix://", "127.0.0.1:6379"])
def test_redis_urls_refused(tmp_path: Path, url: str) -> None:
    assert_names(config_error(write(tmp_path, {"redis": {"url": url}})), "redis.url")


@pytest.mark.parametrize("url", ["postgresql://root@127.0.0.1:5432/tickstock", "postgres://u:p@db.internal/prod",
                                 "postgresql:///tickstock", "postgresql://[::1]:5433/t?sslmode=require"])
def test_database_urls_accepted(tmp_path: Path, url: str) -> None:
    assert load_settings(write(tmp_path, {"database": {"url": url}}), environ={}).database.url == url


@pytest.mark.parametrize("url", ["mysql://root@127.0.0.1/tickstock", "postgresql+psycopg2://h/t", "redis://h/0",
                                 "postgresql://h:0/t", "postgresql://h:70000/t", "postgresql://h/",
                                 "postgresql:/h/t", "postgresql://bad host/t"])
def test_database_urls_refused(tmp_path: Path, url: str) -> None:
    assert_names(config_error(write(tmp_path, {"database": {"url": url}})), "database.url")


def test_url_error_hides_the_password(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, {"database": {"url": "mysql://app:s3cret@db/prod"}}))
    assert "s3cret" not in str(err) and "app:***@db" in err.problem


@pytest.mark.parametrize("host", ["bad host", "-x", "a/b", "http://127.0.0.1"])
def test_http_host_must_parse(tmp_path: Path, host: str) -> None:
    assert_names(config_error(write(tmp_path, {"http": {"host": host, "admin_token": "t"}})), "http.host")


# -- an insecure HTTP bind is a config error -----------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "192.168.1.10", "example.com"])
def test_non_loopback_bind_without_token_is_a_config_error(tmp_path: Path, host: str) -> None:
    err = config_error(write(tmp_path, {"http": {"host": host}}))
    assert_names(err, "http.admin_token")
    assert "TICKSTOCK_ADMIN_TOKEN" in err.problem
    # a blank token is no token
    assert_names(config_error(write(tmp_path, {"http": {"host": host, "admin_token": "  "}})), "http.admin_token")
    # with a token, or with HTTP disabled, the same host is fine
    assert load_settings(write(tmp_path, {"http": {"host": host, "admin_token": "t0ken"}}), environ={}).http.host == host
    assert load_settings(write(tmp_path, {"http": {"host": host, "enabled": False}}), environ={}).http.enabled is False


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_bind_needs_no_token(tmp_path: Path, host: str) -> None:
    assert load_settings(write(tmp_path, {"http": {"host": host}}), environ={}).http.admin_token == ""


def test_insecure_bind_from_the_environment_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(TICKSTOCK_CONFIG=str(write(tmp_path)), TICKSTOCK_HTTP_HOST="0.0.0.0")
    done = subprocess.run([sys.executable, "-m", "tickstock.actors", "--check"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "config error at 'http.admin_token'" in done.stderr and "Traceback" not in done.stderr
    env["TICKSTOCK_ADMIN_TOKEN"] = "t0ken"  # the same bind with a token passes validation (then checks the rest)
    done = subprocess.run([sys.executable, "-m", "tickstock.actors", "--check", "--universe", "no:such"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "config error at 'session.universe'" in done.stderr


def test_main_insecure_bind_in_the_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, clean_env) -> None:
    path = write(tmp_path, {"http": {"host": "0.0.0.0"}})
    assert cli.main(["--config", str(path), "--check"]) == 2
    assert "config error at 'http.admin_token'" in capsys.readouterr().err
    assert clean_env == []


def test_main_out_of_range_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture, clean_env) -> None:
    path = write(tmp_path, {"persistence": {"retry_interval_seconds": 0}})
    assert cli.main(["--config", str(path), "--check"]) == 2
    assert "config error at 'persistence.retry_interval_seconds': expected a number > 0.0, got 0" in \
        capsys.readouterr().err


# -- environment overrides go through the same schema --------------------------------------------


@pytest.mark.parametrize("env,key", [
    ({"TICKSTOCK_HTTP_PORT": "70000"}, "http.port"),
    ({"TICKSTOCK_HTTP_PORT": "-1"}, "http.port"),
    ({"TICKSTOCK_HTTP_HOST": "0.0.0.0"}, "http.admin_token"),
    ({"TICKSTOCK_HTTP_HOST": "no such host"}, "http.host"),
    ({"TICKSTOCK_REDIS_URL": "http://127.0.0.1:6379"}, "redis.url"),
    ({"TICKSTOCK_DATABASE_URL": "postgresql://h:0/t"}, "database.url"),
    ({"TICKSTOCK_LOG_LEVEL": "verbose"}, "logging.level"),
])
def test_environment_values_are_validated_by_the_schema(tmp_path: Path, env: dict, key: str) -> None:
    assert_names(config_error(write(tmp_path), environ=env), key)


def test_environment_values_are_converted(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), environ={"TICKSTOCK_HTTP_PORT": "65535", "TICKSTOCK_LOG_LEVEL": "debug",
                                                "TICKSTOCK_HTTP_HOST": "::", "TICKSTOCK_ADMIN_TOKEN": "t"})
    assert s.http.port == 65535 and type(s.http.port) is int
    assert s.logging.level == "DEBUG" and s.http.host == "::"


# -- error locations inside lists and mappings ---------------------------------------------------


@pytest.mark.parametrize("extra,key,problem", [
    ({"universes": {"x": ["AAPL", None]}}, "universes.x", "[1]: expected a string, got None"),
    ({"universes": {"x": []}}, "universes.x", "expected a list of length >= 1, got []"),
    ({"universes": {7: ["AAPL"]}}, "universes", "bad key: expected a string, got 7"),
    ({"analysis": {"fallback_definitions": {"indicator": []}}}, "analysis.fallback_definitions.indicator",
     "unknown key (allowed: patterns, indicators)"),
    ({"analysis": {"fallback_definitions": {"patterns": "Doji"}}}, "analysis.fallback_definitions.patterns",
     "expected a list, got 'Doji'"),
    ({"analysis": {"fallback_definitions": {"patterns": [{"name": "Doji"}, "Hammer"]}}},
     "analysis.fallback_definitions.patterns", "[1]: expected a mapping, got 'Hammer'"),
    ({"bars": {"grace_secs": 2}}, "bars.grace_secs", "unknown key (allowed: grace_seconds, max_tick_skew_seconds)"),
])
def test_error_location_and_problem(tmp_path: Path, extra: dict, key: str, problem: str) -> None:
    err = config_error(write(tmp_path, extra))
    assert_names(err, key)
    assert err.problem == problem


# -- the settings objects ------------------------------------------------------------------------


def test_settings_are_immutable_and_replace_returns_changed_copies() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.session.heartbeat_interval_seconds = 1.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s.http = HttpSettings()  # type: ignore[misc]
    session = s.session.replace(heartbeat_interval_seconds=2.0)
    changed = s.replace(session=session, http=s.http.replace(port=9000))
    assert changed.session.heartbeat_interval_seconds == 2.0 and changed.http.port == 9000
    assert s.session.heartbeat_interval_seconds == 5.0 and s.http.port == 8080  # the original is untouched
    assert msgspec.structs.replace(s.bars, grace_seconds=1.5).grace_seconds == 1.5
    with pytest.raises(TypeError):
        s.session.replace(shutdown_timeout_seconds=1.0)  # no such key
    assert Settings() == Settings() and Settings().session == SessionSettings()
