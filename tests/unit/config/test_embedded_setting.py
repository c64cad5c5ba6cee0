"""The top-level ``embedded`` key: auto by default, one of three words, 'always' only on loopback."""

from __future__ import annotations

import pytest

from tickstock.config import ConfigError, validate

BASE = {"universes": {"market_leaders:top_500": ["AAPL"]}}


def test_default_is_auto() -> None:
    assert validate(dict(BASE)).embedded == "auto"


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
def test_each_mode_is_accepted(mode) -> None:
    assert validate({**BASE, "embedded": mode}).embedded == mode


@pytest.mark.parametrize("value, problem", [
    ("sometimes", "must be one of auto, always, never, got 'sometimes'"),
    (True, "expected a string, got True"),
])
def test_anything_else_names_the_key(value, problem) -> None:
    with pytest.raises(ConfigError) as err:
        validate({**BASE, "embedded": value})
    assert err.value.key == "embedded" and err.value.problem == problem


@pytest.mark.parametrize("section, url", [
    ("redis", "redis://10.0.0.5:6379/0"), ("redis", "rediss://127.0.0.1:6380/0"), ("redis", "unix:///run/r.sock"),
    ("database", "postgresql://root@db.example.com:5432/tickstock"), ("database", "postgresql:///tickstock"),
])
def test_always_needs_loopback_tcp_urls(section, url) -> None:
    with pytest.raises(ConfigError) as err:
        validate({**BASE, "embedded": "always", section: {"url": url}})
    assert err.value.key == "embedded"
    assert f"'always' needs {section}.url on a loopback host" in err.value.problem
    validate({**BASE, "embedded": "auto", section: {"url": url}})  # auto: fine, nothing embedded for it
