"""Settings: YAML file, then environment overrides, validated before anything starts.

Every problem is a ``ConfigError`` that names the key (``bars.grace_seconds``) and what is wrong
with it; the command line turns it into exit code 2. Unknown keys are errors, not silently ignored:
a misspelt key would otherwise leave a default in force without a word.
"""

from __future__ import annotations

import dataclasses
import os

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"

# Environment variable -> dotted key it overrides. Secrets and endpoints live here, not in the file.
ENV_OVERRIDES = {
    "TICKSTOCK_REDIS_URL": "redis.url",
    "TICKSTOCK_DATABASE_URL": "database.url",
    "TICKSTOCK_UNIVERSE": "session.universe",
    "TICKSTOCK_HTTP_HOST": "http.host",
    "TICKSTOCK_HTTP_PORT": "http.port",
    "TICKSTOCK_ADMIN_TOKEN": "http.admin_token",
    "TICKSTOCK_LOG_LEVEL": "logging.level",
}


class ConfigError(ValueError):
    """A configuration problem: ``key`` is the dotted path, ``problem`` says what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config error at '{key}': {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "postgresql://root@127.0.0.1:5432/tickstock"


@dataclass(frozen=True)
class ChannelSettings:
    ticks: str = "tickstock:market:ticks"
    session_started: str = "tickstock:streaming:session_started"
    session_stopped: str = "tickstock:streaming:session_stopped"
    health: str = "tickstock:streaming:health"
    patterns: str = "tickstock:patterns:streaming"
    patterns_high_confidence: str = "tickstock:patterns:detected"
    indicators: str = "tickstock:indicators:streaming"
    indicator_alerts: str = "tickstock:alerts:indicators"
    critical_alerts: str = "tickstock:alerts:critical"


@dataclass(frozen=True)
class KeySettings:
    heartbeat: str = "tickstock:producer:heartbeat"
    session: str = "tickstock:streaming:session"


@dataclass(frozen=True)
class SessionSettings:
    universe: str = "market_leaders:top_500"
    # 'yaml': the `universes` section of this file; 'database': the dashboard's cache_entries row.
    universe_source: str = "yaml"
    # true: sessions follow the NYSE calendar; false: sessions start only by --now or the admin API.
    auto_start: bool = True
    accept_new_symbols: bool = False
    heartbeat_interval_seconds: float = 5.0
    session_key_ttl_seconds: float = 30.0
    reannounce_interval_seconds: float = 60.0
    health_interval_seconds: float = 10.0
    shutdown_timeout_seconds: float = 15.0
    startup_timeout_seconds: float = 15.0


@dataclass(frozen=True)
class BarSettings:
    grace_seconds: float = 2.0
    max_tick_skew_seconds: float = 3600.0


@dataclass(frozen=True)
class AnalysisSettings:
    timeframe: str = "intraday"
    prime_bars: int = 200
    high_confidence: float = 0.8
    indicator_ttl_seconds: float = 3600.0
    pattern_ttl_seconds: float = 3600.0
    max_component_failures: int = 3
    # Used when the database cannot be read at start: same shape as the definition rows.
    fallback_definitions: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PersistenceSettings:
    batch_size: int = 500
    flush_interval_seconds: float = 0.25
    retry_interval_seconds: float = 2.0
    # Above this many buffered rows the health report says persistence is backed up.
    backlog_warning: int = 50_000
    # Rows still unwritten when a session ends (database down) are saved here and written by the
    # next session. Relative paths are relative to the working directory.
    spill_dir: str = "var/spill"


@dataclass(frozen=True)
class SupervisionSettings:
    max_restarts: int = 3
    within_seconds: float = 60.0


@dataclass(frozen=True)
class HttpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token: str = ""


@dataclass(frozen=True)
class HealthSettings:
    feed_silent_warning_seconds: float = 30.0
    feed_silent_critical_seconds: float = 120.0
    stale_symbol_seconds: float = 120.0
    active_symbol_seconds: float = 60.0
    persistence_failing_critical_seconds: float = 120.0


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"


@dataclass(frozen=True)
class Settings:
    redis: RedisSettings = field(default_factory=RedisSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    channels: ChannelSettings = field(default_factory=ChannelSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    bars: BarSettings = field(default_factory=BarSettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    persistence: PersistenceSettings = field(default_factory=PersistenceSettings)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    universes: dict = field(default_factory=dict)

    def universe_symbols(self, key: str | None = None) -> list[str]:
        """Symbols of a YAML universe (the active one by default); ConfigError if unknown or empty."""
        key = key or self.session.universe
        if key not in self.universes:
            known = ", ".join(sorted(self.universes)) or "none"
            raise ConfigError("session.universe", f"unknown universe {key!r} (known: {known})")
        symbols = self.universes[key]
        if not symbols:
            raise ConfigError(f"universes.{key}", "universe is empty")
        return list(symbols)

    def replace(self, **sections: Any) -> "Settings":
        return dataclasses.replace(self, **sections)


# ---------------------------------------------------------------------------------------------
# Loading and validation


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """Coerce/validate one scalar against its annotation; ints are accepted where floats are."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(key, f"expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"expected a string, got {value!r}")
    if annotation is dict:
        if isinstance(value, dict):
            return value
        raise ConfigError(key, f"expected a mapping, got {value!r}")
    raise ConfigError(key, f"unsupported setting type {annotation!r}")  # pragma: no cover


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(prefix or "<root>", f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(where, f"unknown key (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = _build(annotation, value, key)
        else:
            kwargs[name] = _check_type(key, value, annotation)
    return cls(**kwargs)


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    section, _, name = dotted.partition(".")
    if data.get(section) is None:  # absent, or present but empty (``http:``): defaults
        data[section] = {}
    node = data[section]
    if not isinstance(node, dict):
        raise ConfigError(section, "expected a mapping")
    node[name] = value


def _env_value(dotted: str, raw: str) -> Any:
    if dotted == "http.port":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(dotted, f"TICKSTOCK_HTTP_PORT must be an integer, got {raw!r}") from None
    return raw


def _validate(s: Settings) -> None:
    redis_url = urlparse(s.redis.url)
    if redis_url.scheme not in ("redis", "rediss", "unix") or not (redis_url.hostname or redis_url.path):
        raise ConfigError("redis.url", f"not a redis:// URL: {s.redis.url!r}")
    db_url = urlparse(s.database.url)
    if db_url.scheme not in ("postgresql", "postgres") or not db_url.path.strip("/"):
        raise ConfigError("database.url", f"not a postgresql://host/dbname URL: {s.database.url!r}")
    for key, url in (("redis.url", redis_url), ("database.url", db_url)):
        try:
            url.port
        except ValueError as exc:
            raise ConfigError(key, str(exc)) from None
    for name, symbols in s.universes.items():
        key = f"universes.{name}"
        if not isinstance(symbols, list) or not all(isinstance(x, str) and x for x in symbols):
            raise ConfigError(key, "expected a list of ticker strings")
    if s.session.universe_source not in ("yaml", "database"):
        raise ConfigError("session.universe_source", "must be 'yaml' or 'database'")
    if s.session.universe_source == "yaml":
        s.universe_symbols()  # raises naming the key when unknown or empty
    positive = {
        "bars.max_tick_skew_seconds": s.bars.max_tick_skew_seconds,
        "session.heartbeat_interval_seconds": s.session.heartbeat_interval_seconds,
        "session.health_interval_seconds": s.session.health_interval_seconds,
        "session.reannounce_interval_seconds": s.session.reannounce_interval_seconds,
        "session.session_key_ttl_seconds": s.session.session_key_ttl_seconds,
        "persistence.batch_size": s.persistence.batch_size,
        "persistence.flush_interval_seconds": s.persistence.flush_interval_seconds,
        "supervision.within_seconds": s.supervision.within_seconds,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(key, f"must be > 0, got {value}")
    if s.session.heartbeat_interval_seconds > 10:
        raise ConfigError("session.heartbeat_interval_seconds", "must be <= 10 (the dashboard's contract)")
    if s.session.session_key_ttl_seconds <= s.session.heartbeat_interval_seconds:
        raise ConfigError("session.session_key_ttl_seconds", "must exceed the heartbeat interval")
    if s.bars.grace_seconds < 0:
        raise ConfigError("bars.grace_seconds", "must be >= 0")
    if s.analysis.prime_bars < 0:
        raise ConfigError("analysis.prime_bars", "must be >= 0")
    if not 0 <= s.analysis.high_confidence <= 1:
        raise ConfigError("analysis.high_confidence", "must be within 0..1")
    if s.supervision.max_restarts < 0:
        raise ConfigError("supervision.max_restarts", "must be >= 0")
    if not 0 < s.http.port < 65536:
        raise ConfigError("http.port", f"must be a TCP port, got {s.http.port}")
    if s.logging.level.upper() not in ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("logging.level", f"unknown level {s.logging.level!r}")


def load_settings(
    path: str | os.PathLike | None = None,
    environ: typing.Mapping[str, str] | None = None,
    universe: str | None = None,
) -> Settings:
    """Read ``path`` (else $TICKSTOCK_CONFIG, else the packaged config.yaml), apply environment
    overrides and ``universe``, and validate. Raises ``ConfigError`` naming the key on any problem."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("TICKSTOCK_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("<file>", f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("<root>", f"{path} must hold a mapping at the top level")
    for env_name, dotted in ENV_OVERRIDES.items():
        if environ.get(env_name):
            _set_dotted(data, dotted, _env_value(dotted, environ[env_name]))
    if universe:
        _set_dotted(data, "session.universe", universe)
    settings = _build(Settings, data, "")
    _validate(settings)
    return settings


__all__ = ["ConfigError", "Settings", "load_settings", "DEFAULT_CONFIG_PATH", "ENV_OVERRIDES"]
