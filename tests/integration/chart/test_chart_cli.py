"""python -m tickstock.chart as a subprocess against a database the service's own store filled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.unit.chart.synthetic import SESSION, START, bars, indicators, pattern
from tickstock.chart.figure import DPI, FIGSIZE
from tickstock.messages.records import SessionRecord

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[3]
OTHER = "1d2e3f40-0000-4000-8000-000000000000"
CONFIG = "session: {universe: 'test:x'}\nuniverses: {'test:x': [AAPL]}\n"


def chart(tmp_path: Path, dsn: str, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    output = tmp_path / f"chart{len(list(tmp_path.glob('*.png')))}.png"
    env = {**os.environ, "TICKSTOCK_DATABASE_URL": dsn, "MPLBACKEND": "TkAgg"}
    env.pop("DISPLAY", None)
    done = subprocess.run([sys.executable, "-m", "tickstock.chart", *args, "--config", str(config), "-o", str(output)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    return done, output


def check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size == (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))
        grey = np.asarray(image.convert("L"), dtype=float)
    assert grey.var() > 100  # not blank: a white page has 0
    assert (grey < 200).mean() > 0.01  # candles, lines and text cover some of it


@pytest.fixture
def filled(store, database):
    """AAPL: the session's 60 bars on 2025-10-07 with 3 detections, SMA and RSI; a day later another
    session's 30 bars with 1 detection; MSFT bars only."""
    series = bars(n=60)
    store.start_session(SessionRecord(SESSION, "test:x", START + 3.2, 2))
    store.finish_session(SessionRecord(SESSION, "test:x", START + 3.2, 2, stopped_at=START + 3600,
                                       final_status="stopped"))
    store.upsert_bars(series)
    store.insert_patterns([pattern(series[5], "Doji"), pattern(series[5], "Hammer", 0.7),
                           pattern(series[40], "Doji", 0.95)])
    store.insert_indicators(indicators(series))
    later = bars(n=30, start=START + 86_400, session_id=OTHER)
    store.upsert_bars(later)
    store.insert_patterns([pattern(later[3], "Hammer", session_id=OTHER)])
    store.upsert_bars(bars("MSFT", n=5))
    return database


def test_chart_of_a_session(tmp_path, filled):
    done, output = chart(tmp_path, filled, "AAPL", "--session", SESSION)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"wrote {output}: AAPL, session {SESSION}, 60 bars, 3 detections, SMA 20, RSI 14")
    check_png(output)


def test_chart_of_a_date_and_of_the_latest_date(tmp_path, filled):
    done, output = chart(tmp_path, filled, "AAPL", "--date", "2025-10-07")
    assert done.returncode == 0, done.stderr
    assert "2025-10-07 (America/New_York), 60 bars, 3 detections, SMA 20, RSI 14" in done.stdout
    check_png(output)
    done, output = chart(tmp_path, filled, "aapl")  # the date of the newest bar: 2025-10-08
    assert done.returncode == 0, done.stderr
    assert "2025-10-08 (America/New_York), 30 bars, 1 detections, no indicator values" in done.stdout
    check_png(output)


def test_bars_without_anything_else_still_chart(tmp_path, filled):
    done, output = chart(tmp_path, filled, "MSFT")
    assert done.returncode == 0, done.stderr
    assert "5 bars, 0 detections, no indicator values" in done.stdout
    check_png(output)


@pytest.mark.parametrize("args, message", [
    (("TSLA",), "no bars for TSLA in ohlcv_1min"),
    (("AAPL", "--date", "2025-10-09"), "no bars for AAPL on 2025-10-09 (America/New_York) in ohlcv_1min"),
    (("AAPL", "--session", "99999999-0000-4000-8000-000000000000"),
     "no session 99999999-0000-4000-8000-000000000000 in streaming_sessions and no detection or indicator value of it for AAPL"),
])
def test_nothing_to_draw_exits_1_with_a_clear_message(tmp_path, filled, args, message):
    done, output = chart(tmp_path, filled, *args)
    assert done.returncode == 1
    assert done.stderr.strip() == f"tickstock.chart: {message}"
    assert not output.exists()


def test_the_last_minutes_span_new_york_midnight(tmp_path, store, database):
    """AMD: 40 bars from 23:30 to 00:10 New York time (04:30-05:10 UTC). ``--minutes`` charts the
    minutes that end with the newest bar across the date line (the demo's chart right after
    midnight); the default, the newest bar's date, has only the 10 after midnight."""
    midnight_utc = 1_764_651_600  # 2025-12-02T05:00Z = 00:00 in New York (EST)
    store.upsert_bars(bars("AMD", n=40, start=midnight_utc - 30 * 60))
    done, output = chart(tmp_path, database, "AMD", "--minutes", "40")
    assert done.returncode == 0, done.stderr
    assert "AMD, the 40 minutes to 2025-12-02 05:10 UTC, 40 bars" in done.stdout
    check_png(output)
    done, output = chart(tmp_path, database, "AMD", "--minutes", "15")
    assert "the 15 minutes to 2025-12-02 05:10 UTC, 15 bars" in done.stdout
    done, _ = chart(tmp_path, database, "AMD")
    assert "2025-12-02 (America/New_York), 10 bars" in done.stdout
