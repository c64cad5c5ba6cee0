"""``python -m tickstock.simulate.history`` against the real PostgreSQL, in a database of the test's
own: the bars land in ``ohlcv_1min`` where a session primes from, ``--replace`` leaves them the
symbols' only past, and a database that is not a demo's or a test's is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from tests.pg import query, temporary_database
from tickstock.adapters.postgres import PostgresStore
from tickstock.demo import plan
from tickstock.simulate import history
from tickstock.simulate.history import walk_pasts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[3]
NOW = 1_760_000_017.5
END = int(NOW // 60) * 60  # the minute NOW is in


@pytest.fixture
def dsn(monkeypatch):
    with temporary_database() as url:
        monkeypatch.setenv("TICKSTOCK_DATABASE_URL", url)
        yield url


def test_writes_each_symbols_past_where_a_session_primes_from_ending_at_the_walks_start(dsn, capsys) -> None:
    symbols = "AAPL,NVDA,MSFT"
    assert history.main(["--symbols", symbols, "--minutes", "30", "--calm", "AAPL", "--seed", "4"], now=NOW) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote 90 bars into tickstock_test_") and "calm: AAPL" in out
    rows = query(dsn, "SELECT symbol, count(*), min(extract(epoch FROM timestamp)), max(extract(epoch FROM timestamp)) "
                       "FROM ohlcv_1min GROUP BY symbol ORDER BY symbol")
    assert [(s, n, float(lo), float(hi)) for s, n, lo, hi in rows] == \
        [(s, 30, END - 30 * 60, END - 60) for s in ("AAPL", "MSFT", "NVDA")]
    prices = {p.symbol: p.price for p in walk_pasts(symbols.split(","), seed=4, rate=6.0)}
    with PostgresStore(dsn) as store:  # what a session's priming reads
        primed = store.load_recent_bars(list(prices), 200)
    assert {s: bars[-1].close for s, bars in primed.items()} == prices


def test_replace_leaves_the_history_as_the_symbols_only_past(dsn, capsys) -> None:
    assert history.main(["--symbols", "AAPL,NVDA", "--minutes", "20"], now=NOW - 3600) == 0
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:  # a detection and a value of an earlier run, and another symbol's bar
        cur.execute("INSERT INTO intraday_patterns (symbol, pattern_type, detection_timestamp) VALUES ('AAPL', 'Doji', now())")
        cur.execute("INSERT INTO intraday_indicators (symbol, indicator_type, value, calculation_timestamp) "
                    "VALUES ('NVDA', 'RSI', 50, now())")
        cur.execute("INSERT INTO ohlcv_1min VALUES ('TSLA', now(), 1, 1, 1, 1, 1)")
    conn.close()
    assert history.main(["--symbols", "AAPL,NVDA", "--minutes", "20", "--replace"], now=NOW) == 0
    assert "after deleting their earlier rows" in capsys.readouterr().out
    counts = dict(query(dsn, "SELECT symbol, count(*) FROM ohlcv_1min GROUP BY symbol"))
    assert counts == {"AAPL": 20, "NVDA": 20, "TSLA": 1}  # an hour-old run's bars are gone, TSLA untouched
    assert query(dsn, "SELECT count(*) FROM ohlcv_1min_parts WHERE symbol IN ('AAPL', 'NVDA')") == [(40,)]
    assert query(dsn, "SELECT count(*) FROM intraday_patterns") == [(0,)]
    assert query(dsn, "SELECT count(*) FROM intraday_indicators") == [(0,)]


def test_a_database_not_named_demo_or_test_is_refused_untouched(monkeypatch, capsys) -> None:
    monkeypatch.setenv("TICKSTOCK_DATABASE_URL", "postgresql://root@127.0.0.1:5432/tickstock")
    assert history.main(["--symbols", "AAPL"], now=NOW) == 2
    assert "refusing to write synthetic bars into database 'tickstock'" in capsys.readouterr().err


def test_unreachable_database_exits_1_naming_it(monkeypatch, capsys) -> None:
    monkeypatch.setenv("TICKSTOCK_DATABASE_URL", "postgresql://root@127.0.0.1:1/tickstock_demo")
    assert history.main(["--symbols", "AAPL"], now=NOW) == 1
    assert "database 'tickstock_demo':" in capsys.readouterr().err


def test_bad_arguments_exit_2(dsn) -> None:
    for argv, message in ((["--symbols", "AAPL", "--calm", "NVDA"], "--calm NVDA: not among the symbols"),
                          (["--symbols", "AAPL", "--minutes", "10"], "--minutes must be between 16 and 10000")):
        done = subprocess.run([sys.executable, "-m", "tickstock.simulate.history", *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr


def test_the_demo_universe_with_the_demos_arguments(dsn, tmp_path) -> None:
    """As the demo runs it: its settings file, its universe, its calm symbol."""
    config = tmp_path / "config.yaml"
    import yaml

    from tickstock.config import load_settings
    data = plan.demo_settings(load_settings(environ={}), database_url=dsn, prefix="", out=tmp_path)
    config.write_text(yaml.safe_dump(data))
    argv = plan.Commands(config, tmp_path).history()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert query(dsn, "SELECT count(DISTINCT symbol), count(*) FROM ohlcv_1min") == \
        [(len(plan.SYMBOLS), len(plan.SYMBOLS) * plan.HISTORY_MINUTES)]
