"""The analysis definitions loader against a real migrated database (issue 3's loader tests).

Goes through the service's own path (``service.load_definitions``: store -> select_definitions), so
what is asserted is what a session would run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.postgres.helpers import run_sql
from tickstock.actors.service import load_definitions
from tickstock.adapters.postgres import PostgresStore, migrate
from tickstock.analysis.definitions import NO_DEFINITIONS_LOADED
from tickstock.config import load_settings

pytestmark = pytest.mark.integration

SETTINGS = load_settings(environ={})  # the repo config.yaml, with its fallback definitions


@pytest.fixture
def db(fresh_dsn: str) -> Iterator[str]:
    migrate(fresh_dsn)
    yield fresh_dsn


def load(dsn: str):
    definitions, problems, source = load_definitions(SETTINGS, lambda: PostgresStore(dsn))
    return {d.name: d for d in definitions.definitions}, problems, source


def test_the_seeded_baseline_loads_completely(db: str) -> None:
    loaded, problems, source = load(db)
    assert sorted(loaded) == ["Doji", "Hammer", "HeadShoulders", "InverseHeadShoulders", "RSI", "SMA"]
    assert problems == [] and source == "database"
    assert loaded["RSI"].params == {"period": 14} and loaded["SMA"].params == {"period": 20}
    assert loaded["Doji"].min_bars_required == 1


def test_enabled_timeframes_names_and_parameters_come_from_the_rows(db: str) -> None:
    run_sql(db, """
        UPDATE pattern_definitions SET enabled = false WHERE name = 'Hammer';
        UPDATE pattern_definitions SET applicable_timeframes = '{daily}' WHERE name = 'HeadShoulders';
        UPDATE pattern_definitions SET applicable_timeframes = NULL WHERE name = 'InverseHeadShoulders';
        UPDATE pattern_definitions SET name = 'doji', instantiation_params = NULL WHERE name = 'Doji';
        UPDATE indicator_definitions SET applicable_timeframes = '{1MIN}', period = 7 WHERE name = 'RSI';
        INSERT INTO pattern_definitions (name, enabled, applicable_timeframes) VALUES ('Marubozoo', true, '{intraday}');
    """)
    loaded, problems, _ = load(db)
    assert sorted(loaded) == ["Doji", "InverseHeadShoulders", "RSI", "SMA"]  # 'doji' maps case-insensitively
    assert loaded["RSI"].params["period"] == 7
    assert len(problems) == 1 and "Marubozoo" in problems[0]  # (TA-Lib's Marubozu would be known)


def test_empty_tables_are_loud(db: str) -> None:
    run_sql(db, "DELETE FROM pattern_definitions; DELETE FROM indicator_definitions;")
    loaded, problems, source = load(db)
    assert loaded == {} and source == "database"
    assert problems and problems[0].startswith(NO_DEFINITIONS_LOADED)


def test_everything_disabled_is_as_loud_as_empty(db: str) -> None:
    run_sql(db, "UPDATE pattern_definitions SET enabled = false; UPDATE indicator_definitions SET enabled = false;")
    loaded, problems, _ = load(db)
    assert loaded == {} and problems[0].startswith(NO_DEFINITIONS_LOADED)


def test_an_unreachable_database_falls_back_to_config_yaml_and_says_so() -> None:
    loaded, problems, source = load("postgresql://postgres@127.0.0.1:1/none")
    assert "config.yaml" in source
    assert sorted(loaded) == ["Doji", "Hammer", "HeadShoulders", "InverseHeadShoulders", "RSI", "SMA"]
    assert any("unreachable" in p for p in problems)


def test_an_operators_edit_survives_a_second_migration(db: str) -> None:
    run_sql(db, "UPDATE indicator_definitions SET period = 9 WHERE name = 'RSI';")
    migrate(db)
    loaded, _, _ = load(db)
    assert loaded["RSI"].params["period"] == 9
