"""The chart's command line: arguments and the trading date's range (no database needed)."""

from __future__ import annotations

from datetime import date

import pytest

from tickstock.chart.__main__ import day_range, exchange_date, main, parse_args, safe_dsn


def test_date_is_the_new_york_calendar_date_dst_included():
    start, end = day_range(date(2025, 10, 7))
    assert (start, end - start) == (1_759_809_600, 24 * 3600)  # 2025-10-07T04:00Z, EDT
    start, end = day_range(date(2025, 3, 9))  # clocks go forward: a 23-hour day
    assert end - start == 23 * 3600
    assert exchange_date(1_759_809_600 - 1) == date(2025, 10, 6) and exchange_date(1_759_809_600) == date(2025, 10, 7)


def test_arguments():
    args = parse_args(["aapl", "--session", "0B7C6A52-7C0E-4D0E-9D57-2F1A4B1F9E11", "-o", "x.png"])
    assert (args.symbol, args.session, args.date) == ("AAPL", "0b7c6a52-7c0e-4d0e-9d57-2f1a4b1f9e11", None)
    assert parse_args(["BRK.B", "--date", "2025-10-07", "-o", "x.PNG"]).date == date(2025, 10, 7)
    assert parse_args(["AAPL", "--minutes", "90", "-o", "x.png"]).minutes == 90


@pytest.mark.parametrize("argv, problem", [
    (["AAPL", "-o", "x.jpg"], "PNG"),
    (["AAPL"], "required"),
    (["$$$", "-o", "x.png"], "not a ticker"),
    (["AAPL", "--session", "abc", "-o", "x.png"], "not a session id"),
    (["AAPL", "--date", "2025-02-30", "-o", "x.png"], "not a date"),
    (["AAPL", "--date", "2025-10-07", "--session", "0b7c6a52-7c0e-4d0e-9d57-2f1a4b1f9e11", "-o", "x.png"], "not allowed"),
    (["AAPL", "--minutes", "0", "-o", "x.png"], "--minutes must be between 1 and 527,040 (a year), got 0"),
    (["AAPL", "--minutes", "10000000", "-o", "x.png"], "--minutes must be between 1 and 527,040"),
    (["AAPL", "--minutes", "90", "--date", "2025-10-07", "-o", "x.png"], "not allowed"),
])
def test_bad_arguments_exit_2_naming_the_problem(argv, problem, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2 and problem in capsys.readouterr().err


def test_unreachable_database_exits_1_without_the_password(tmp_path, monkeypatch, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("session: {universe: 'test:x'}\nuniverses: {'test:x': [AAPL]}\n"
                      "database: {connect_timeout_seconds: 1}\n")
    monkeypatch.setenv("TICKSTOCK_DATABASE_URL", "postgresql://me:secret@127.0.0.1:1/none")
    assert main(["AAPL", "--config", str(config), "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tickstock.chart: cannot read the database at postgresql://me:***@127.0.0.1:1/none")
    assert "secret" not in err and not (tmp_path / "x.png").exists()


def test_safe_dsn():
    assert safe_dsn("postgresql://u:p@h:5/d") == "postgresql://u:***@h:5/d"
    assert safe_dsn("postgresql://root@127.0.0.1:5432/tickstock") == "postgresql://root@127.0.0.1:5432/tickstock"
