"""Planning timeframes: the exchange sessions are read only when a definition runs on 60min."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tickstock.actors.plan import SESSIONS_DAYS_AHEAD, SESSIONS_DAYS_BACK, make_plan, session_table
from tickstock.config import Settings

pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray:DeprecationWarning")

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2024, 11, 29, 11, 0, tzinfo=NY).timestamp()  # the day after Thanksgiving


class Store:
    def __init__(self, patterns, indicators=()):
        self.rows = (list(patterns), list(indicators))

    def load_definitions(self):
        return self.rows

    def close(self):
        pass


def settings() -> Settings:
    s = Settings()
    return s.replace(universes={"test:one": ["AAPL"]}, session=s.session.replace(universe="test:one"))


def plan_with(patterns, calendar_calls):
    def clock():
        calendar_calls.append(NOW)
        return NOW
    return make_plan(settings(), lambda: Store(patterns), False, "sid", clock=clock)


def test_no_60min_definition_reads_no_calendar():
    calls: list = []
    plan = plan_with([{"name": "Doji", "applicable_timeframes": ["intraday", "5min", "15min"]}], calls)
    assert plan.sessions is None and calls == []
    assert plan.definitions.timeframes == ("1min", "5min", "15min")


def test_a_60min_definition_gets_the_sessions_around_now():
    calls: list = []
    plan = plan_with([{"name": "Doji", "applicable_timeframes": ["60min"]}], calls)
    assert calls == [NOW]
    table = plan.sessions
    days = {dt.datetime.fromtimestamp(o, NY).date(): (o, c) for o, c in table.windows}
    o, c = days[dt.date(2024, 11, 29)]
    assert (dt.datetime.fromtimestamp(o, NY).time(), dt.datetime.fromtimestamp(c, NY).time()) == (
        dt.time(9, 30), dt.time(13, 0))
    assert dt.date(2024, 11, 28) not in days  # Thanksgiving
    first, last = min(days), max(days)
    assert (dt.date(2024, 11, 29) - first).days <= SESSIONS_DAYS_BACK <= (dt.date(2024, 11, 29) - first).days + 4
    assert SESSIONS_DAYS_AHEAD - 4 <= (last - dt.date(2024, 11, 29)).days <= SESSIONS_DAYS_AHEAD


def test_a_calendar_failure_leaves_the_grid_and_says_so(monkeypatch):
    import tickstock.actors.plan as plan_module

    def broken(now):
        raise RuntimeError("no calendar today")
    monkeypatch.setattr(plan_module, "session_table", broken)
    plan = plan_with([{"name": "Doji", "applicable_timeframes": ["60min"]}], [])
    assert plan.sessions is None
    assert plan.definitions.for_timeframe("60min")[0].name == "Doji"  # the definition still runs


def test_session_table_uses_the_given_calendar():
    seen = {}

    class Calendar:
        def __init__(self, now, lookback_days):
            seen["args"] = (now, lookback_days)

        def next_window(self, t):
            raise LookupError("none")

    with pytest.raises(LookupError):
        session_table(NOW, Calendar)
    assert seen["args"] == (NOW, SESSIONS_DAYS_BACK + 1)


def test_a_bar_of_another_year_gets_that_years_sessions():
    """A replay (event time) of a day far from the plan's: its 60-minute bars still end at its close."""
    table = session_table(NOW)
    replayed = dt.datetime(2023, 7, 3, 12, 45, tzinfo=NY).timestamp()  # a 13:00 early close
    start, end = table.hour(int(replayed) - int(replayed) % 60)
    assert (dt.datetime.fromtimestamp(start, NY).time(), dt.datetime.fromtimestamp(end, NY).time()) == (
        dt.time(12, 30), dt.time(13, 0))
    assert table.extensions == 1 and table.source_error is None
    lo, hi = table.covers[-1]
    assert lo <= replayed < hi


def test_the_table_pickles_with_its_source_for_the_analysis_process():
    """The analysis process gets a copy of the session's table: it pickles (no lock, no closure),
    and the copy still extends itself from the calendar for a bar of another year."""
    import pickle

    copy = pickle.loads(pickle.dumps(session_table(NOW)))
    assert copy.windows == session_table(NOW).windows
    replayed = dt.datetime(2023, 7, 3, 12, 45, tzinfo=NY).timestamp()
    start, end = copy.hour(int(replayed) - int(replayed) % 60)
    assert dt.datetime.fromtimestamp(end, NY).time() == dt.time(13, 0) and copy.extensions == 1
    assert copy.source_error is None
