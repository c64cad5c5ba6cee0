"""Migration 005: the common TA-Lib definitions and VWAP are seeded disabled, load as valid rows
once enabled, and leave the baseline exactly as it was (issue 10)."""

from __future__ import annotations

import pytest

from tests.integration.postgres.helpers import run_sql
from tickstock.adapters.postgres import PostgresStore, migrate
from tickstock.analysis import select_definitions
from tickstock.analysis.talib_functions import TalibComponent
from tickstock.analysis.vwap import VWAP

pytestmark = pytest.mark.integration

SEEDED_PATTERNS = ["Engulfing", "MorningStar", "EveningStar", "ShootingStar", "Harami",
                   "ThreeAdvancingWhiteSoldiers", "ThreeBlackCrows"]
SEEDED_INDICATORS = ["VWAP", "EMA", "MACD", "BBANDS", "ATR", "ADX", "STOCH"]
BASELINE = ("Doji", "Hammer", "HeadShoulders", "InverseHeadShoulders", "RSI", "SMA")


def rows(dsn: str):
    store = PostgresStore(dsn)
    try:
        return store.load_definitions()
    finally:
        store.close()


def test_the_seeded_rows_are_disabled_and_the_baseline_unchanged(fresh_dsn: str) -> None:
    migrate(fresh_dsn)
    patterns, indicators = rows(fresh_dsn)
    assert [r["name"] for r in patterns if not r["enabled"]] == SEEDED_PATTERNS
    assert [r["name"] for r in indicators if not r["enabled"]] == SEEDED_INDICATORS
    ds = select_definitions(patterns, indicators)
    assert ds.names() == BASELINE and ds.problems() == []
    assert sorted(ds.skipped) == sorted(SEEDED_PATTERNS + SEEDED_INDICATORS)


def test_every_seeded_row_loads_valid_under_its_own_name_once_enabled(fresh_dsn: str) -> None:
    migrate(fresh_dsn)
    run_sql(fresh_dsn, "UPDATE pattern_definitions SET enabled = true; UPDATE indicator_definitions SET enabled = true;")
    ds = select_definitions(*rows(fresh_dsn))
    assert ds.unknown == () and ds.invalid == () and ds.problems() == []
    assert ds.names() == BASELINE[:4] + tuple(SEEDED_PATTERNS) + BASELINE[4:] + tuple(SEEDED_INDICATORS)
    by_name = {d.name: d for d in ds}
    for name in SEEDED_PATTERNS + SEEDED_INDICATORS[1:]:
        assert isinstance(by_name[name].create(), TalibComponent)
    assert isinstance(by_name["VWAP"].create(), VWAP)
    assert by_name["MACD"].create().talib_params == {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9}
    assert by_name["EMA"].create().talib_params == {"timeperiod": 20}
    assert by_name["BBANDS"].create().talib_params == {"timeperiod": 20, "nbdevup": 2.0, "nbdevdn": 2.0, "matype": 0}


def test_an_operators_row_of_the_same_name_is_kept(fresh_dsn: str) -> None:
    migrate(fresh_dsn)
    run_sql(fresh_dsn, "DELETE FROM schema_migrations WHERE version LIKE '005%';"
                       "DELETE FROM pattern_definitions WHERE name = 'Engulfing';"
                       "INSERT INTO pattern_definitions (name, enabled, instantiation_params) "
                       "VALUES ('engulfing', true, '{\"confidence\": 0.8}');")
    migrate(fresh_dsn)
    patterns, _ = rows(fresh_dsn)
    mine = [r for r in patterns if r["name"].lower() == "engulfing"]
    assert [(r["name"], r["enabled"], r["instantiation_params"]) for r in mine] == [("engulfing", True, {"confidence": 0.8})]
