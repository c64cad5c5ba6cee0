"""Settings: YAML file, then environment overrides, validated whole before anything starts.

The schema is declarative: every key is a field of a frozen msgspec Struct with its type and range
(``Annotated[float, Meta(gt=0, le=60)]``); msgspec checks them all. What one field cannot say
(URL schemes, host and port, rules between keys, an insecure HTTP bind) is in ``_RULES``.

Guarantees: every problem is a ``ConfigError`` naming the dotted key (``bars.grace_seconds``) and what
is wrong with it; the command line turns it into exit code 2. Unknown keys are errors, not silently
ignored: a misspelt key would otherwise leave a default in force without a word. Environment
overrides pass through the same schema. Settings are immutable; ``replace`` returns a changed copy
(unvalidated: tests build settings that way, and so may code that knows what it does).
"""

import ipaddress
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlparse

import msgspec
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
    "TICKSTOCK_SESSION_CLOCK": "session.clock",
}

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")  # loguru's own
HOUR, DAY = 3600.0, 86400.0


class ConfigError(ValueError):
    """A configuration problem: ``key`` is the dotted path, ``problem`` says what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config error at '{key}': {problem}")
        self.key = key
        self.problem = problem


def seconds(le: float, gt: float = 0.0, ge: float | None = None) -> Any:
    """A duration in seconds (a float; ints accepted) above ``gt`` (or from ``ge``) up to ``le``.
    The upper bound also refuses ``.inf``; NaN fails every bound."""
    return Annotated[float, msgspec.Meta(gt=None if ge is not None else gt, ge=ge, le=le)]


def integer(ge: int, le: int) -> Any:
    """An integer within ``ge..le`` (true/false and 1.5 are refused)."""
    return Annotated[int, msgspec.Meta(ge=ge, le=le)]


Text = Annotated[str, msgspec.Meta(min_length=1)]
Universe = Annotated[list[Text], msgspec.Meta(min_length=1)]  # tickers


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A frozen group of settings; ``replace(**changes)`` returns a copy with those fields changed."""

    def replace(self, **changes: Any) -> Self:
        return msgspec.structs.replace(self, **changes)


class RedisSettings(Section):
    url: Text = "redis://127.0.0.1:6379/0"
    # The tick subscription PINGs this often; no reply for ping_timeout -> reconnect (half-open link).
    ping_interval_seconds: seconds(le=300) = 10.0
    ping_timeout_seconds: seconds(le=600) = 20.0


class DatabaseSettings(Section):
    url: Text = "postgresql://root@127.0.0.1:5432/tickstock"
    connect_timeout_seconds: seconds(ge=1, le=300) = 5.0
    # Set on every connection (PostgreSQL counts in ms, so nothing under 0.1 s: 0 would mean "none").
    statement_timeout_seconds: seconds(ge=0.1, le=HOUR) = 10.0
    lock_timeout_seconds: seconds(ge=0.1, le=HOUR) = 5.0


class ChannelSettings(Section):
    ticks: Text = "tickstock:market:ticks"
    session_started: Text = "tickstock:streaming:session_started"
    session_stopped: Text = "tickstock:streaming:session_stopped"
    health: Text = "tickstock:streaming:health"
    patterns: Text = "tickstock:patterns:streaming"
    patterns_high_confidence: Text = "tickstock:patterns:detected"
    indicators: Text = "tickstock:indicators:streaming"
    indicator_alerts: Text = "tickstock:alerts:indicators"
    critical_alerts: Text = "tickstock:alerts:critical"


class KeySettings(Section):
    heartbeat: Text = "tickstock:producer:heartbeat"
    session: Text = "tickstock:streaming:session"


class SessionSettings(Section):
    universe: Text = "market_leaders:top_500"
    # 'yaml': the `universes` section of this file; 'database': the dashboard's cache_entries row.
    universe_source: Literal["yaml", "database"] = "yaml"
    # true: sessions follow the NYSE calendar; false: sessions start only by --now or the admin API.
    auto_start: bool = True
    accept_new_symbols: bool = False
    heartbeat_interval_seconds: seconds(le=10) = 5.0  # the dashboard's contract: at least every 10 s
    session_key_ttl_seconds: seconds(le=DAY) = 30.0  # must exceed heartbeat_interval_seconds
    reannounce_interval_seconds: seconds(le=DAY) = 60.0
    health_interval_seconds: seconds(le=HOUR) = 10.0
    report_interval_seconds: seconds(le=60) = 1.0  # children push their counters this often
    shutdown_deadline_seconds: seconds(ge=1, le=600) = 20.0  # SIGTERM to exit, all stages together
    startup_timeout_seconds: seconds(le=600) = 15.0
    # threads running the symbol actors (actors/dispatch.py): one per core is enough, the GIL
    # runs one at a time; more only help when handlers wait (they must not)
    symbol_workers: integer(ge=1, le=64) = 2
    # what closes bars: 'wall', the wall clock (live); 'event', the ticks' own time (a replay at any
    # speed gives the bars and detections live would: tickstock/clock.py EventTime, actors/ingress.py)
    clock: Literal["wall", "event"] = "wall"


class BarSettings(Section):
    grace_seconds: seconds(ge=0, le=59) = 2.0
    max_tick_skew_seconds: seconds(le=DAY) = 3600.0


FallbackDefinitions = dict[Literal["patterns", "indicators"], list[dict[str, Any]]]


class AnalysisSettings(Section):
    timeframe: Text = "intraday"
    prime_bars: integer(0, 10_000) = 200
    high_confidence: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.8
    indicator_ttl_seconds: seconds(le=7 * DAY) = 3600.0
    pattern_ttl_seconds: seconds(le=7 * DAY) = 3600.0
    max_component_failures: integer(1, 1000) = 3
    analyse_partial_bars: bool = False  # run detectors on a bar known to be partial
    # TA-Lib definitions run once per close for all symbols (CloseAnalysisActor), not per symbol.
    batch_talib: bool = True
    # ...in a process of their own (analysis_process.py): the other core, not the service's GIL.
    process: bool = True
    # ...split over this many processes by timeframe (1min and 15min in one, 5min and 60min in the
    # other with 2), so a close's timeframes are analysed side by side (AnalysisSpec.split). 1 on
    # two cores: there a second process took CPU from the 1-minute values (README, stop 24)
    processes: integer(1, 4) = 1
    # Used when the database cannot be read at start: same shape as the definition rows.
    fallback_definitions: FallbackDefinitions = msgspec.field(default_factory=dict)


class PersistenceSettings(Section):
    batch_size: integer(1, 100_000) = 500
    flush_interval_seconds: seconds(le=60) = 0.25
    retry_interval_seconds: seconds(le=HOUR) = 2.0
    # Above this many buffered rows the health report says persistence is backed up.
    backlog_warning: integer(1, 100_000_000) = 50_000
    # The write-ahead log: every row is appended here before anything else happens to it.
    # Relative paths are relative to the working directory.
    spill_dir: Text = "var/spill"
    fsync_interval_seconds: seconds(le=60) = 1.0
    table_retry_seconds: seconds(le=DAY) = 60.0  # retry of a table isolated by a non-transient error


class SupervisionSettings(Section):
    # shared children (ingress, publisher, persistence): past the budget the session fails
    max_restarts: integer(0, 1000) = 3
    within_seconds: seconds(le=DAY) = 60.0
    # each symbol actor: past the budget it is quarantined
    symbol_max_restarts: integer(0, 1000) = 3
    symbol_within_seconds: seconds(le=DAY) = 60.0


class HttpSettings(Section):
    enabled: bool = True
    host: Text = "127.0.0.1"  # anything but loopback requires admin_token
    port: integer(1, 65535) = 8080
    admin_token: str = ""


class HealthSettings(Section):
    feed_silent_warning_seconds: seconds(le=DAY) = 30.0
    feed_silent_critical_seconds: seconds(le=DAY) = 120.0  # not below the warning
    stale_symbol_seconds: seconds(le=DAY) = 120.0
    active_symbol_seconds: seconds(le=DAY) = 60.0
    persistence_failing_critical_seconds: seconds(le=DAY) = 120.0


class LoggingSettings(Section):
    level: Literal[LOG_LEVELS] = "INFO"  # type: ignore[valid-type]  # any letter case in the file


class Settings(Section):
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    channels: ChannelSettings = msgspec.field(default_factory=ChannelSettings)
    keys: KeySettings = msgspec.field(default_factory=KeySettings)
    session: SessionSettings = msgspec.field(default_factory=SessionSettings)
    bars: BarSettings = msgspec.field(default_factory=BarSettings)
    analysis: AnalysisSettings = msgspec.field(default_factory=AnalysisSettings)
    persistence: PersistenceSettings = msgspec.field(default_factory=PersistenceSettings)
    supervision: SupervisionSettings = msgspec.field(default_factory=SupervisionSettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    universes: dict[Text, Universe] = msgspec.field(default_factory=dict)  # key -> tickers
    # Redis/PostgreSQL not answering at start: 'auto' runs real ones from the Python wheels on the
    # URLs' loopback ports (data under var/embedded, stopped with the service); 'always' wants those
    # embedded ones on the ports; 'never' starts nothing (tickstock/adapters/embedded/plan.py).
    embedded: Literal["auto", "always", "never"] = "auto"

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


# ---------------------------------------------------------------------------------------------
# Rules one field cannot state: each returns the problem, or None.


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1; False for anything else, names included."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere, so treat it as exposed


_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?\.?$")


def _host_problem(host: str) -> str | None:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        return None if _HOSTNAME.match(host) else f"not a host name or IP address: {host!r}"


def safe_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``: what logs, errors and screens show."""
    try:
        parsed = urlparse(url)
        password = parsed.password
    except ValueError:  # not a URL at all: nothing to hide that can be found
        return url
    return url.replace(f":{password}@", ":***@", 1) if password else url


def _url_problem(url: str, schemes: tuple[str, ...], database: bool = False) -> str | None:
    """None for a URL with one of ``schemes``, a host that parses (a database URL may leave it to
    libpq's socket), a port within 1..65535 if any, and for a database its name."""
    try:
        parsed = urlparse(url)
    except ValueError as exc:  # an unclosed [ipv6 bracket
        return f"not a URL: {exc}"
    url = safe_url(url)  # a config error goes to logs: never with the password
    if parsed.scheme not in schemes or "://" not in url:
        return f"scheme must be {' or '.join(s + '://' for s in schemes)}, got {url!r}"
    if parsed.scheme == "unix":
        return None if parsed.path else f"no socket path in {url!r}"
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port == 0:
        return f"bad port in {url!r} (1..65535)"
    if parsed.hostname and _host_problem(parsed.hostname) or not (parsed.hostname or database):
        return f"no usable host in {url!r}"
    if database and not parsed.path.strip("/"):
        return f"no database name in {url!r}"
    return None


def _insecure_bind(s: Settings) -> str | None:
    if s.http.enabled and not s.http.admin_token.strip() and not is_loopback(s.http.host):
        return (f"required when http.host ({s.http.host!r}) is not loopback: set TICKSTOCK_ADMIN_TOKEN, "
                "or bind http.host to 127.0.0.1, or set http.enabled: false")
    return None


def _embedded_always(s: Settings) -> str | None:
    """``always`` runs both servers embedded: each URL must be a TCP one on a loopback host."""
    if s.embedded != "always":
        return None
    for key, url in (("redis.url", s.redis.url), ("database.url", s.database.url)):
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "postgresql", "postgres") or not is_loopback(parsed.hostname or ""):
            return (f"'always' needs {key} on a loopback host (127.0.0.1, ::1, localhost) without TLS, "
                    f"got {parsed.scheme}://{parsed.hostname or ''}")
    return None


def _above(value: float, floor: float, floor_key: str, strictly: bool = True) -> str | None:
    if value > floor or (not strictly and value == floor):
        return None
    return f"must be {'greater than' if strictly else 'at least'} {floor_key} ({floor:g}), got {value:g}"


_RULES: tuple[tuple[str, typing.Callable[[Settings], str | None]], ...] = (
    ("redis.url", lambda s: _url_problem(s.redis.url, ("redis", "rediss", "unix"))),
    ("database.url", lambda s: _url_problem(s.database.url, ("postgresql", "postgres"), database=True)),
    ("http.host", lambda s: _host_problem(s.http.host)),
    ("http.admin_token", _insecure_bind),
    ("embedded", _embedded_always),
    ("session.session_key_ttl_seconds", lambda s: _above(
        s.session.session_key_ttl_seconds, s.session.heartbeat_interval_seconds, "session.heartbeat_interval_seconds")),
    ("redis.ping_timeout_seconds", lambda s: _above(
        s.redis.ping_timeout_seconds, s.redis.ping_interval_seconds, "redis.ping_interval_seconds")),
    ("health.feed_silent_critical_seconds", lambda s: _above(
        s.health.feed_silent_critical_seconds, s.health.feed_silent_warning_seconds,
        "health.feed_silent_warning_seconds", strictly=False)),
)


# ---------------------------------------------------------------------------------------------
# Loading: YAML -> overrides -> msgspec schema -> rules


_WORDS = {"float": "a number", "int": "an integer", "str": "a string", "bool": "true/false",
          "object": "a mapping", "array": "a list", "null": "null"}
_AT = re.compile(r"^(?P<msg>.*?)(?: - at (?P<is_key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")


def _bare(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp


def _args(tp: Any) -> tuple:
    """Key and value types of a mapping type (``str`` keys for a Struct), item type of a list."""
    tp = _bare(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return (str, None)
    return typing.get_args(tp) or (None,)


def _literals(tp: Any) -> tuple:
    tp = _bare(tp)
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else ()


def _fits(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(value, tp)
        return True
    except msgspec.ValidationError:
        return False


def _first_misfit(mapping: Any, tp: Any, keys: bool) -> Any:
    """The first key of ``mapping`` whose key (or value) does not fit ``tp``: msgspec says where
    in a mapping an error is, but not under which key."""
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            if not _fits(key if keys else value, tp):
                return key
    return msgspec.UNSET


def _words(message: str) -> str:
    """``Expected `float` > 0.0, got `str``` -> ``expected a number > 0.0`` (the value is added later)."""
    message = re.sub(r"`(\w+)`", lambda m: _WORDS.get(m[1], m[1]), re.sub(r", got `\w+`$", "", message))
    return message[0].lower() + message[1:]


def _translate(exc: msgspec.ValidationError, data: Any) -> ConfigError:
    """msgspec's ``Expected `float`, got `str` - at `$.bars.grace_seconds``` -> ConfigError at
    ``bars.grace_seconds``: ``expected a number, got 'two'``. List positions go in the problem."""
    match = _AT.match(str(exc))
    names: list[str] = []
    where, value, tp = "", data, Settings
    for name, index in _SEGMENT.findall(match["path"] or ""):
        if name:
            fields = {f.name: f.type for f in msgspec.structs.fields(_bare(tp))}
            names.append(name)
            value, tp = value.get(name, msgspec.UNSET), fields[name]
        elif index == "...":
            tp = _args(tp)[-1]
            name = _first_misfit(value, tp, keys=False)
            names.append(str(name))
            value = value[name] if name is not msgspec.UNSET else name
        else:
            where += f"[{index}]"
            value, tp = value[int(index)], _args(tp)[-1]
    problem = match["msg"]
    unknown = re.match(r"Object contains unknown field `(.+)`$", problem)
    if unknown or match["is_key"]:
        key_type = _args(tp)[0]
        name = unknown[1] if unknown else _first_misfit(value, key_type, keys=True)
        allowed = [f.name for f in msgspec.structs.fields(_bare(tp))] if unknown else _literals(key_type)
        if allowed:
            names.append(str(name))
            problem, value = f"unknown key (allowed: {', '.join(allowed)})", msgspec.UNSET
        else:
            problem, value = f"bad key: {_words(problem)}", name
    elif problem.startswith("Invalid enum value") and _literals(tp):
        problem = f"must be one of {', '.join(_literals(tp))}"
    else:
        problem = _words(problem)
    if value is not msgspec.UNSET:
        problem += f", got {value!r}"
    return ConfigError(".".join(names) or "<root>", f"{where}: {problem}" if where else problem)


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


def validate(data: dict) -> Settings:
    """Settings from a parsed file (top-level mapping), or ``ConfigError`` naming the first bad key."""
    data = {k: v for k, v in data.items() if v is not None}  # ``http:`` alone: the defaults
    logging = data.get("logging")
    if isinstance(logging, dict) and isinstance(logging.get("level"), str):
        data["logging"] = {**logging, "level": logging["level"].upper()}
    try:
        settings = msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        raise _translate(exc, data) from None
    for key, rule in _RULES:
        problem = rule(settings)
        if problem:
            raise ConfigError(key, problem)
    if settings.session.universe_source == "yaml":
        settings.universe_symbols()  # raises naming the key when unknown
    return settings


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
    return validate(data)


__all__ = ["ConfigError", "Settings", "load_settings", "validate", "is_loopback", "DEFAULT_CONFIG_PATH",
           "ENV_OVERRIDES"]
